"""`python -m bench.lag_rate --rate R [--seconds S]`: the lag phase alone, at a fixed rate.

The full run measures the lag at half of the peak it measured first, so two runs on a
shared machine offer different rates; comparing two versions of the followers needs the
same rate in both (A B A B). This starts the system as the full run does, registers at
`R`/s open loop with each registration's search (`bench/lag.py`), and prints the four lag
keys, the CPU per registration of every process, their peak RSS and the database's
transactions per registration, and writes them to bench/results/lag_rate.json. It changes
nothing in the service.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.context import Context
from bench.identities import Registrations
from bench.lag import measure_lag
from bench.monitor import CpuMeter, RssSampler
from bench.profiles import FULL
from bench.system import System, start_system
from bench.ui import Display

__all__ = ["main"]

_OUT = Path("bench/results/lag_rate.json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lag_rate", description=__doc__)
    parser.add_argument("--rate", type=float, required=True, help="registrations per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window")
    parser.add_argument("--out", type=Path, default=_OUT)
    arguments = parser.parse_args(argv)
    console = Console(width=120)
    results = asyncio.run(_run(arguments.rate, arguments.seconds, console))
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(json.dumps(results, indent=2) + "\n")
    console.print_json(json.dumps(results))
    return 0


async def _run(rate: float, seconds: float, console: Console) -> dict[str, Any]:
    profile = replace(FULL, half_peak_duration=seconds)
    with start_system() as system:
        meter = CpuMeter(system.processes, system.postmaster)
        with RssSampler(system.processes, profile.rss_interval) as rss, Display(console) as ui:
            ctx = Context(system, profile, ui, meter, Registrations(secrets.token_hex(3)))
            # measure_lag runs at half the best register rate measured before it.
            ctx.values["register_rate_given"] = 2 * rate
            before = _transactions(system)
            outcome = await measure_lag(ctx)
            transactions = _transactions(system) - before
        lag = outcome.details["lag"]
        return {
            **outcome.values,
            "rate_per_s": rate,
            "processes": sorted(system.processes),
            "cpu_ms_per_registration": lag.get("cpu_ms_per_op"),
            "machine_busy_pct": lag.get("machine_busy_pct"),
            "other_processes_cpu_pct": lag.get("other_processes_cpu_pct"),
            "rss_peak_mb": {k: round(v, 1) for k, v in rss.peaks_mb.items()},
            # Counted, not timed: what a loaded machine cannot blur (warm-up and drain too).
            "transactions_per_registration": round(transactions / len(ctx.customer_ids), 2),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "details": lag,
        }


def _transactions(system: System) -> int:
    """Transactions committed or rolled back in the run's database so far."""
    with system.connect() as connection:
        row = connection.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database"
            " WHERE datname = current_database()"
        ).fetchone()
    assert row is not None
    return int(str(row[0]))


if __name__ == "__main__":
    raise SystemExit(main())
