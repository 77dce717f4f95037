"""The run's outputs: latest.json, the summary table on screen, and the Markdown block.

The Markdown block lives in docs/PERFORMANCE.md between two marker comments, so a full
run refreshes the numbers while the hand-written method and analysis around it stay.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.table import Table

from bench.targets import KEYS, TARGETS, status, unit

__all__ = ["markdown_block", "summary_table", "update_doc", "write_json"]

BEGIN = "<!-- bench:results:begin (written by python -m bench; edit outside these markers) -->"
END = "<!-- bench:results:end -->"

_STATUS_STYLE = {"met": "green", "not met": "red", "not measured yet": "yellow"}


def write_json(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")


def summary_table(results: dict[str, Any]) -> Table:
    table = Table(title=f"bench ({results['mode']}), {results['date']}")
    table.add_column("key", no_wrap=True)
    table.add_column("value", justify="right")
    for column in ("unit", "target", "status"):
        table.add_column(column)
    for key in KEYS:
        value = results[key]
        state = status(key, value)
        style = _STATUS_STYLE.get(state, "")
        table.add_row(
            key,
            _number(value),
            unit(key),
            TARGETS[key].text if key in TARGETS else "",
            f"[{style}]{state}[/{style}]" if style else state,
        )
    return table


def markdown_block(results: dict[str, Any]) -> str:
    """The results table with the machine, date and command, as Markdown."""
    machine = results["machine"]
    postgres = machine["postgres"]
    lines = [
        BEGIN,
        "",
        f"- **Date:** {results['date']} (run took {results['duration_s']:.0f} s,"
        f" `{results['mode']}` profile)",
        f"- **Command:** `{results['command']}` at commit `{machine['git_commit']}`",
        f"- **Machine:** {machine['nproc']} CPUs ({machine['cpu_model']}),"
        f" {machine['memory_gb']} GB RAM, Linux {machine['kernel']}, data on"
        f" {machine['data_filesystem']}; the load generator, the service's processes,"
        " PostgreSQL and NATS all run on it",
        f"- **PostgreSQL:** {postgres.get('server_version')}"
        f" ({'embedded' if machine['postgres_embedded'] else 'configured'}),"
        f" fsync={postgres.get('fsync')}, synchronous_commit={postgres.get('synchronous_commit')},"
        f" wal_sync_method={postgres.get('wal_sync_method')},"
        f" shared_buffers={postgres.get('shared_buffers')}",
        f"- **Software:** Python {machine['python']}, "
        + ", ".join(f"{k} {v}" for k, v in machine["packages"].items())
        + f"; gateway thread pool {machine['gateway_thread_pool']}",
        "",
        "| key | value | unit | target | status |",
        "|---|---:|---|---|---|",
    ]
    for key in KEYS:
        value = results[key]
        target = TARGETS[key].text if key in TARGETS else ""
        lines.append(
            f"| `{key}` | {_number(value)} | {unit(key)} | {target} | {status(key, value)} |"
        )
    if results["not_measured"]:
        lines += ["", "Not measured yet:", ""]
        reasons: dict[str, list[str]] = {}
        for key, reason in results["not_measured"].items():
            reasons.setdefault(reason, []).append(key)
        lines += [
            f"- {', '.join(f'`{k}`' for k in keys)}: {reason}" for reason, keys in reasons.items()
        ]
    followers = results["details"].get("worker_followers")
    if followers is not None:
        lines += [
            "",
            "Peak RSS by process (MB): "
            + ", ".join(f"{k} {v}" for k, v in results["details"]["rss_peak_mb"].items())
            + f"; {_layout(followers)}.",
        ]
    foreign = [
        phase["other_processes_cpu_pct"]
        for phase in results["details"].values()
        if isinstance(phase, dict)
        and "rate_per_s" in phase
        and phase.get("other_processes_cpu_pct") is not None
    ]
    if foreign:
        lines += [
            "",
            f"Processes outside the run used up to {max(foreign):.0f}% of the machine's CPU"
            " during a measured window (last column below): where that is high, the phase"
            " competed with other jobs and its numbers are pessimistic.",
        ]
    lines += ["", *_cpu_table(results["details"]), "", END]
    return "\n".join(lines)


def _cpu_table(details: dict[str, Any]) -> list[str]:
    """Per phase: rate, latency, and the CPU each party spent per operation."""
    phases = {
        name: phase
        for name, phase in details.items()
        if isinstance(phase, dict) and "rate_per_s" in phase
    }
    parties: list[str] = []
    for phase in phases.values():
        parties += [p for p in phase.get("cpu_ms_per_op", {}) if p not in parties]
    # The load generator first and PostgreSQL last; the service's processes in between.
    parties.sort(key=lambda p: (p != "bench", p == "postgres"))
    lines = [
        "Per phase (measured window only): CPU milliseconds per completed operation of the"
        " load generator (`bench`), each service process and PostgreSQL; how busy both"
        " cores were; and the share of the machine's CPU used by processes outside the run"
        " (other jobs).",
        "",
        "| phase | ops/s | p50 ms | p99 ms | "
        + " | ".join(f"{p} CPU ms/op" for p in parties)
        + " | machine busy % | iowait % | other processes % |",
        "|---|" + "---:|" * (len(parties) + 6),
    ]
    for name, phase in phases.items():
        per_op = phase.get("cpu_ms_per_op", {})
        cells = [
            phase["rate_per_s"],
            phase["p50_ms"],
            phase["p99_ms"],
            *(per_op.get(p) for p in parties),
            phase.get("machine_busy_pct"),
            phase.get("machine_iowait_pct"),
            phase.get("other_processes_cpu_pct"),
        ]
        lines.append(f"| {name} | " + " | ".join(_number(c) for c in cells) + " |")
    return lines


def update_doc(path: Path, block: str) -> None:
    """Replace the generated block of `path` (append it when the markers are missing)."""
    text = path.read_text() if path.exists() else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


def _number(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) or abs(value) >= 100:
        return f"{value:,.0f}"
    # Three significant digits below 100: 0.84, 3.46, 19.3.
    return f"{value:.3g}"


def _layout(followers: dict[str, list[str]] | list[str]) -> str:
    """Which worker process ran which followers (a list: the one `workers` process of runs
    before the search and relay followers had processes of their own)."""
    if isinstance(followers, list):
        return f"the workers process ran these followers: {followers or 'none yet'}"
    return "the worker processes ran these followers: " + "; ".join(
        f"{name} {names}" for name, names in followers.items()
    )
