"""`python -m bench.half_peak`: the open-loop register phase alone, and when its tail happens.

The full run's `register_half_peak` phase, without the rest of the run: a fresh system,
`--prefill` seconds of closed-loop registrations first (the full run has registered some
40,000 customers by then), then Poisson arrivals at `--rate` for `--seconds`. Beside the
percentiles it prints what a tail needs to be explained: how late the generator itself
sent, the slow answers per second of the window (clustered? periodic? at the start?), and
with `--pg-slow MS` PostgreSQL's statements slower than that (embedded server only).
Results go to bench/results/half_peak.json (every arrival, for a closer look).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import re
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.anatomy import _server_log, _set_statement_logging
from bench.context import Context
from bench.identities import Registrations
from bench.load import Arrival, closed_loop, open_loop, sessions
from bench.monitor import CpuMeter
from bench.profiles import FULL
from bench.register import register_operation
from bench.stats import percentile
from bench.system import System, start_system
from bench.ui import Display

__all__ = ["main"]

_OUT = Path("bench/results/half_peak.json")
_FRACTIONS = (0.5, 0.9, 0.99, 0.999, 1.0)
_SERVER_LOGGING = (
    ("log_lock_waits", "on"),
    ("log_autovacuum_min_duration", "0"),
    ("log_checkpoints", "on"),
)
_DURATION = re.compile(r"duration: ([0-9.]+) ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.half_peak", description=__doc__)
    parser.add_argument("--rate", type=float, default=192.0, help="arrivals per second")
    parser.add_argument("--seconds", type=float, default=FULL.half_peak_duration)
    parser.add_argument("--warmup", type=float, default=FULL.warmup)
    parser.add_argument(
        "--prefill", type=float, default=20.0, help="seconds of 32 closed-loop clients first"
    )
    parser.add_argument("--slow-ms", type=float, default=100.0, help="what counts as slow")
    parser.add_argument(
        "--pg-slow", type=float, default=None, metavar="MS", help="log statements over MS"
    )
    parser.add_argument("--keep-logs", type=Path, help="copy the service's logs here")
    parser.add_argument("--out", type=Path, default=_OUT)
    arguments = parser.parse_args(argv)
    console = Console(width=120)
    results = asyncio.run(_run(arguments, console))
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(json.dumps(results, indent=1) + "\n")
    console.print(f"wrote {arguments.out}")
    return 0


async def _run(arguments: argparse.Namespace, console: Console) -> dict[str, Any]:
    with start_system() as system, Display(console) as display:
        meter = CpuMeter(system.processes, system.postmaster)
        ctx = Context(system, FULL, display, meter, Registrations(secrets.token_hex(3)))
        if arguments.prefill > 0:
            async with (
                ctx.phase("prefill, 32 clients", arguments.prefill) as phase,
                sessions(system.base_url, system.token, 32) as pool,
            ):
                filled = await closed_loop(
                    pool, register_operation(ctx), phase, 0.0, arguments.prefill
                )
            display.log(f"prefill: {len(ctx.customer_ids):,} customers ({filled.rate:.0f}/s)")
        log = _server_log(system)
        log_start = _log_size(log)
        if log is not None:
            _server_logging(system, arguments.pg_slow, on=True)
        trace: list[Arrival] = []
        seconds = arguments.warmup + arguments.seconds
        began = time.time()
        async with (
            ctx.phase(f"open loop at {arguments.rate:,.0f}/s", seconds) as phase,
            sessions(system.base_url, system.token, FULL.open_loop_connections) as pool,
        ):
            window, lateness = await open_loop(
                pool,
                register_operation(ctx),
                phase,
                arguments.rate,
                arguments.warmup,
                arguments.seconds,
                trace=trace,
            )
        if log is not None:
            _server_logging(system, arguments.pg_slow, on=False)
        server_lines = _new_lines(log, log_start)
        if arguments.keep_logs is not None:
            shutil.copytree(system.log_dir, arguments.keep_logs, dirs_exist_ok=True)
            if server_lines:
                (arguments.keep_logs / "postgresql.log").write_text("".join(server_lines))
        results = _summarise(trace, window.summary(), phase.cpu(window.completed), arguments)
        results["window_began_unix"] = round(began + arguments.warmup, 3)
        results["server_log_lines"] = len(server_lines)
        _print(console, results, lateness.ms(0.99), server_lines)
        return results


def _server_logging(system: System, slow_ms: float | None, *, on: bool) -> None:
    """Lock waits, autovacuum runs and checkpoints in the server's log; statements over
    `slow_ms` too if given."""
    if slow_ms is not None:
        _set_statement_logging(system, on=on)
    with system.connect() as connection:
        for name, value in _SERVER_LOGGING:
            if on:
                connection.execute(f"ALTER SYSTEM SET {name} = {value}")
            else:
                connection.execute(f"ALTER SYSTEM RESET {name}")
        if on and slow_ms is not None:
            connection.execute(f"ALTER SYSTEM SET log_min_duration_statement = {int(slow_ms)}")
        connection.execute("SELECT pg_reload_conf()")


def _summarise(
    trace: list[Arrival], summary: dict[str, Any], cpu: dict[str, object], arguments: Any
) -> dict[str, Any]:
    ok = [a for a in trace if a.status == 201]
    latencies = [a.latency for a in ok]
    late = [a.lateness for a in trace]
    slow = [a for a in ok if a.latency * 1000 >= arguments.slow_ms]
    per_second = collections.Counter(int(a.due) for a in slow)
    return {
        "rate": arguments.rate,
        "seconds": arguments.seconds,
        "arrivals": len(trace),
        "statuses": dict(collections.Counter(str(a.status) for a in trace)),
        "latency_ms": {str(f): _ms(percentile(latencies, f)) for f in _FRACTIONS},
        "lateness_ms": {str(f): _ms(percentile(late, f)) for f in _FRACTIONS},
        "slow_ms": arguments.slow_ms,
        "slow": len(slow),
        "slow_per_second": {str(k): per_second[k] for k in sorted(per_second)},
        "histogram_ms": _histogram(latencies),
        "cpu": cpu,
        "window": summary,
        "trace": [[round(a.due, 4), _ms(a.lateness), _ms(a.latency), a.status] for a in trace],
    }


def _histogram(latencies: list[float]) -> dict[str, int]:
    edges = (5, 10, 20, 30, 50, 100, 200, 500, 900, 1100, 2000, 5000)
    counts: collections.Counter[str] = collections.Counter()
    for seconds in latencies:
        ms = seconds * 1000
        edge = next((e for e in edges if ms < e), None)
        counts[f"<{edge}" if edge else f">={edges[-1]}"] += 1
    return {label: counts[label] for label in [f"<{e}" for e in edges] + [f">={edges[-1]}"]}


def _print(
    console: Console, results: dict[str, Any], lateness_p99: float | None, server: list[str]
) -> None:
    console.print(f"arrivals {results['arrivals']}, statuses {results['statuses']}")
    console.print("latency ms (p50 p90 p99 p99.9 max):", results["latency_ms"])
    console.print("send lateness ms:", results["lateness_ms"])
    console.print("histogram:", {k: v for k, v in results["histogram_ms"].items() if v})
    console.print(
        f"slow (>= {results['slow_ms']:.0f} ms): {results['slow']} by second of the window:",
        results["slow_per_second"],
    )
    cpu = results["cpu"]
    console.print("cpu:", {k: v for k, v in cpu.items() if "ms_per_op" in k or "pct" in k})
    slow_statements = [line for line in server if _DURATION.search(line)]
    console.print(f"server log: {len(server)} lines, {len(slow_statements)} slow statements")
    notable = ("checkpoint", "vacuum", "analyze", "waiting", "acquired", "cancel")
    for line in [line for line in server if any(word in line for word in notable)][:40]:
        console.print("  " + line.strip()[:200])
    for line in slow_statements[:30]:
        console.print("  " + line.strip()[:200])


def _log_size(log: Path | None) -> int:
    return log.stat().st_size if log is not None else 0


def _new_lines(log: Path | None, start: int) -> list[str]:
    if log is None:
        return []
    with open(log, errors="replace") as file:
        file.seek(start)
        return file.readlines()


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


if __name__ == "__main__":
    raise SystemExit(main())
