"""One run: start the system, run every measurement in order, assemble the results."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import psutil
from rich.console import Console

from bench.context import Context, Outcome
from bench.identities import Registrations
from bench.lag import measure_lag
from bench.machine import describe
from bench.monitor import CpuMeter, RssSampler
from bench.profiles import Profile
from bench.read_side import measure_rebuild, measure_search
from bench.reference import measure_reference
from bench.register import measure_half_peak, measure_register
from bench.system import start_system
from bench.targets import KEYS, TARGETS, status
from bench.ui import Display
from bench.updates import measure_updates

__all__ = ["MEASUREMENTS", "run", "wait_until_quiet"]

Measurement = Callable[[Context], Awaitable[Outcome]]

# Foreign CPU share (%) above which the run warns that it is not alone on the machine.
_QUIET_PCT = 10.0

# In this order: the half-peak phase needs the peak rate, the updates need customers.
MEASUREMENTS: tuple[Measurement, ...] = (
    measure_reference,
    measure_register,
    measure_half_peak,
    measure_updates,
    measure_lag,
    measure_rebuild,
    measure_search,
)


async def run(profile: Profile, command: str, console: Console) -> dict[str, Any]:
    """Measure everything once; the results as latest.json holds them."""
    began = time.monotonic()
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    outcome = Outcome()
    with contextlib.ExitStack() as stack:
        with console.status("starting PostgreSQL, NATS and the service's processes"):
            system = stack.enter_context(start_system())
        console.print(
            f"service on {system.base_url}, schema {system.schema},"
            f" processes: {', '.join(f'{n} ({p.pid})' for n, p in system.processes.items())}"
        )
        machine = describe(system)
        meter = CpuMeter(system.processes, system.postmaster)
        outcome.details["before_run"] = await _foreign_load(meter, console)
        with (
            RssSampler(system.processes, profile.rss_interval) as rss,
            Display(console) as display,
        ):
            ctx = Context(system, profile, display, meter, Registrations(secrets.token_hex(3)))
            for measure in MEASUREMENTS:
                _merge(outcome, await measure(ctx))
                ctx.values.update(outcome.values)
        _merge(outcome, _memory(rss.peaks_mb, system.exited_at_start))
        console.print("stopping the service and the servers")
    _merge(outcome, _ratio(outcome.values))
    return _assemble(profile, command, date, time.monotonic() - began, machine, outcome)


def wait_until_quiet(console: Console, *, minutes: float, window: float = 5.0) -> bool:
    """Wait until the machine's CPU stays under the quiet threshold for `window` seconds.

    Nothing of the run exists yet, so all the CPU used is other jobs'. False on timeout:
    the run then starts anyway and its per-phase column says how loaded it was.
    """
    deadline = time.monotonic() + minutes * 60
    with console.status("waiting for other jobs on the machine to quiet down") as status:
        while time.monotonic() < deadline:
            busy = psutil.cpu_percent(interval=window)
            status.update(f"waiting for a quiet machine: {busy:.0f}% busy over {window:.0f} s")
            if busy < _QUIET_PCT:
                return True
    console.print("[yellow]the machine did not quiet down; running anyway[/yellow]")
    return False


async def _foreign_load(meter: CpuMeter, console: Console) -> dict[str, object]:
    """Two idle seconds: how much CPU other jobs on the machine take before we start."""
    before = meter.snapshot()
    await asyncio.sleep(2.0)
    idle = CpuMeter.delta(before, meter.snapshot(), 0)
    foreign = idle.get("other_processes_cpu_pct")
    if isinstance(foreign, float) and foreign > _QUIET_PCT:
        console.print(
            f"[yellow]other processes use {foreign:.0f}% of the machine's CPU: the numbers"
            " will be pessimistic (see other_processes_cpu_pct per phase)[/yellow]"
        )
    return idle


def _memory(peaks_mb: dict[str, float], exited: dict[str, int]) -> Outcome:
    """gateway_rss_mb and worker_rss_mb (the largest worker's peak), per process in details.

    A worker that exited at start-up ran no load, so its peak says nothing: not measured.
    """
    outcome = Outcome(
        details={
            "rss_peak_mb": {k: round(v, 1) for k, v in peaks_mb.items()},
            # What each worker process had to do: its memory grows with each follower.
            "worker_followers": _followers(),
            **({"exited_at_start": exited} if exited else {}),
        }
    )
    gateways = [v for k, v in peaks_mb.items() if k.startswith("gateway")]
    workers = {k: v for k, v in peaks_mb.items() if not k.startswith("gateway") and k not in exited}
    outcome.values["gateway_rss_mb"] = round(max(gateways), 1) if gateways else None
    if workers:
        outcome.values["worker_rss_mb"] = round(max(workers.values()), 1)
    else:
        outcome.values["worker_rss_mb"] = None
        outcome.not_measured["worker_rss_mb"] = (
            "no worker process ran: "
            + ", ".join(f"{name} exited at start with code {code}" for name, code in exited.items())
            if exited
            else "no worker processes yet (customers run starts only: " + ", ".join(peaks_mb) + ")"
        )
    return outcome


def _followers() -> dict[str, list[str]]:
    """The followers of each worker process `children()` starts (by its command line)."""
    from workers.__main__ import children
    from workers.runners import IMPORT_WORKER, follower_names

    layout = {}
    for child in children():
        named = list(child.argv[child.argv.index("worker") + 1 :]) if "worker" in child.argv else []
        followers = follower_names() if named == ["all"] else named
        if followers and followers != [IMPORT_WORKER]:
            layout[child.name] = followers
    return layout


def _ratio(values: dict[str, float | None]) -> Outcome:
    register, reference = values.get("register_rate_32"), values.get("reference_insert_rate_32")
    key = "ratio_register_to_reference_32"
    if not register or not reference:
        return Outcome({key: None}, {key: "register_rate_32 or reference_insert_rate_32 missing"})
    return Outcome({key: round(register / reference, 3)})


def _merge(into: Outcome, outcome: Outcome) -> None:
    into.values.update(outcome.values)
    into.not_measured.update(outcome.not_measured)
    into.details.update(outcome.details)


def _assemble(
    profile: Profile,
    command: str,
    date: str,
    seconds: float,
    machine: dict[str, Any],
    outcome: Outcome,
) -> dict[str, Any]:
    missing = [key for key in KEYS if key not in outcome.values]
    if missing:
        raise RuntimeError(f"measurements did not report: {', '.join(missing)}")
    return {
        "mode": profile.name,
        "date": date,
        "command": command,
        "duration_s": round(seconds, 1),
        "profile": {
            "warmup_s": profile.warmup,
            "duration_s": profile.duration,
            "half_peak_duration_s": profile.half_peak_duration,
            "update_clients": profile.update_clients,
        },
        "machine": machine,
        **{key: outcome.values[key] for key in KEYS},
        "not_measured": outcome.not_measured,
        "targets": {
            key: {"target": TARGETS[key].text, "status": status(key, outcome.values[key])}
            for key in KEYS
            if key in TARGETS
        },
        "details": outcome.details,
    }
