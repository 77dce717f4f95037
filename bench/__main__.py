"""`python -m bench [--quick] [--out PATH]`: run the benchmark, write the results.

The full run takes about 6 minutes and, by default, refreshes the results block of
docs/PERFORMANCE.md; `--quick` is a smoke run under 2 minutes that writes
bench/results/quick.json and leaves the document alone (its numbers are too short-run
to publish).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path

from rich.console import Console

from bench.profiles import FULL, QUICK
from bench.report import markdown_block, summary_table, update_doc, write_json
from bench.runner import run, wait_until_quiet

__all__ = ["main"]

_RESULTS = Path("bench/results")
_DOC = Path("docs/PERFORMANCE.md")


def main(argv: list[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    _stop_on_sigterm()
    profile = QUICK if arguments.quick else FULL
    out = arguments.out or _RESULTS / ("quick.json" if arguments.quick else "latest.json")
    default_doc = not arguments.quick and arguments.render is None
    write_doc = default_doc if arguments.doc is None else arguments.doc
    command = " ".join(["python -m bench", *(argv if argv is not None else sys.argv[1:])])
    # Piped (make bench | tee), rich would assume 80 columns and wrap the summary table.
    console = Console() if sys.stdout.isatty() else Console(width=120)
    if arguments.render is not None:
        # Re-render a past run (after a change to the report's format): nothing is measured.
        results = json.loads(arguments.render.read_text())
    else:
        if arguments.wait_quiet:
            wait_until_quiet(console, minutes=arguments.wait_quiet)
        try:
            results = asyncio.run(run(profile, command, console))
        except KeyboardInterrupt:
            console.print("[yellow]interrupted: nothing written; the servers were stopped[/yellow]")
            return 130
        write_json(out, results)
    console.print(summary_table(results))
    if arguments.render is None:
        console.print(f"wrote {out} ({results['duration_s']:.0f} s)")
    if write_doc:
        update_doc(_DOC, markdown_block(results))
        console.print(f"updated the results block of {_DOC}")
    return 0


def _stop_on_sigterm() -> None:
    """`kill` stops a run as Ctrl-C does: asyncio.run then cancels the run, whose context
    managers stop the service's processes, PostgreSQL and NATS instead of leaving them
    behind (a plain SIGTERM ends the interpreter without running them)."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: a few seconds per point (< 2 min)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="results file (default bench/results/latest.json; quick.json with --quick)",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="MINUTES",
        help="on a shared machine: first wait up to MINUTES for other jobs' CPU to drop",
    )
    parser.add_argument(
        "--render",
        type=Path,
        metavar="RESULTS_JSON",
        help="measure nothing: show a past run's results (with --doc, rewrite the doc's block)",
    )
    parser.add_argument(
        "--doc",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"refresh the results block of {_DOC} (default: on for full runs only)",
    )
    return parser


if __name__ == "__main__":
    sys.exit(main())
