"""`python -m bench.anatomy`: where the time of one registration goes.

Three views of the same register load, each from its own side:

1. PostgreSQL's: every statement logged with its duration (log_min_duration_statement=0,
   embedded server only) while ONE client registers: statements per registration by
   kind, and the server's time in each (a COMMIT's time is its WAL flush).
2. The writers' lock's: at 32 clients, pg_stat_activity sampled every few milliseconds for
   the backend holding the events table's writers' lock (an advisory lock of the table's
   name: `infrastructure.hash_chain.writers_lock_statements`): is it working,
   flushing WAL, or waiting for its client (the gateway) to send the next statement?
3. The gateway's: py-spy (if installed in the venv; it is not a project dependency)
   samples which Python code holds the gateway's GIL at 32 clients, grouped by part.

Its output (bench/results/anatomy.json and tables on screen) is what docs/PERFORMANCE.md's
"Where the time goes" section is written from. It changes nothing in the service.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import re
import secrets
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from psycopg import sql
from rich.console import Console
from rich.table import Table

from bench.context import Context
from bench.identities import Registrations
from bench.load import closed_loop, sessions
from bench.monitor import CpuMeter
from bench.profiles import QUICK
from bench.register import register_operation
from bench.system import System, start_system
from bench.ui import Display
from infrastructure.hash_chain import writers_lock_name

__all__ = ["main"]

_OUT = Path("bench/results/anatomy.json")
_SPY_RATE = 200
_DURATION = re.compile(r"duration: ([0-9.]+) ms\s+(statement|parse|bind|execute)[^:]*:\s?(.*)")

# What each statement is, by its text (first match wins).
_KINDS: tuple[tuple[str, str], ...] = (
    ("pg_advisory_xact_lock", "writers' lock (advisory, keyed by the events table)"),
    ("LOCK TABLE", "LOCK TABLE events (ROW EXCLUSIVE)"),
    ("NOTIFY", "NOTIFY"),
    ("SET LOCAL lock_timeout", "SET LOCAL lock_timeout"),
    ("INSERT INTO", "INSERT events"),
    ("nextval", "SELECT nextval (customer number)"),
    ("max(notification_id)", "SELECT max(notification_id)"),
    ("MAX(notification_id)", "SELECT MAX(notification_id) (a follower's head or tracking)"),
    ("WHERE notification_id", "SELECT events after a position (a follower's batch)"),
    ("pg_notify", "SELECT pg_notify (a follower's commit)"),
    ("DEALLOCATE", "DEALLOCATE ALL"),
    ("WHERE originator_id", "SELECT events of one aggregate (repository.get)"),
    ("BEGIN", "BEGIN"),
    ("COMMIT", "COMMIT (WAL flush)"),
    ("ROLLBACK", "ROLLBACK"),
)

# Log lines name the process whose connection ran the statement (bench.system sets
# PGAPPNAME for each process; the prefix puts it in every line as " app=<name> ").
_LOG_PREFIX = "%m [%p] app=%a "

# Gateway stacks by part; the first marker found anywhere in a stack names its part.
_PARTS: tuple[tuple[str, str], ...] = (
    ("check_connection", "pool pre-ping: an empty query per connection checkout"),
    ("NumberSequence", "customer number: nextval in its own transaction"),
    ("jwt/", "token verification (PyJWT)"),
    ("prometheus_client", "metrics"),
    ("structlog", "access log (structlog + logging)"),
    ("logging/__init__", "access log (structlog + logging)"),
    ("card_numbers", "card-number refusal of the body, path, query and headers"),
    ("DuplicateLookup", "likely duplicates look-up (one statement)"),
    ("Repository.get", "reads: repository.get (reservations, number, idempotency)"),
    ("Mapper.to_stored_event", "save: encoding events (mapper, JSON transcoder)"),
    ("insert_events", "save: LOCK/NOTIFY/INSERT/COMMIT through psycopg"),
    ("Application.save", "save: collecting events, other"),
    ("(domain/", "domain: normalising, rules, aggregates"),
    ("pydantic", "request and response models (pydantic)"),
    ("run_in_executor", "thread pool hand-off"),
    ("concurrent/futures", "thread pool hand-off"),
    ("aiohttp/", "HTTP server (aiohttp) and middlewares"),
    ("(gateway/", "HTTP server (aiohttp) and middlewares"),
    ("asyncio/", "event loop"),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.anatomy", description=__doc__)
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each view")
    parser.add_argument("--clients", type=int, default=32, help="clients of views 2 and 3")
    parser.add_argument(
        "--views",
        default="1,2,3",
        help="which views to run, comma-separated (view 1 alone: statement counts in ~30 s)",
    )
    parser.add_argument("--out", type=Path, default=_OUT, help="where to write the results")
    arguments = parser.parse_args(argv)
    views = {int(view) for view in arguments.views.split(",")}
    console = Console()
    results = asyncio.run(_run(arguments.seconds, arguments.clients, views, console))
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(json.dumps(results, indent=2) + "\n")
    console.print(f"wrote {arguments.out}")
    return 0


async def _run(seconds: float, clients: int, views: set[int], console: Console) -> dict[str, Any]:
    results: dict[str, Any] = {"seconds": seconds, "clients": clients}
    with start_system() as system, Display(console) as display:
        meter = CpuMeter(system.processes, system.postmaster)
        ctx = Context(system, QUICK, display, meter, Registrations(secrets.token_hex(3)))
        await _load(ctx, "warm-up", 8, 3.0)
        if 1 in views:
            results["one_client"] = await _statements(ctx, seconds)
        if 2 in views:
            results["lock_holder"] = await _lock_holder(ctx, clients, seconds)
        if 3 in views:
            results["gateway_gil"] = await _gateway_gil(ctx, clients, seconds)
    _print(console, results)
    return results


async def _load(ctx: Context, label: str, clients: int, seconds: float) -> dict[str, Any]:
    async with (
        ctx.phase(label, seconds) as phase,
        sessions(ctx.system.base_url, ctx.system.token, clients) as pool,
    ):
        window = await closed_loop(pool, register_operation(ctx), phase, 0.5, seconds - 0.5)
    return {**window.summary(), **phase.cpu(window.completed)}


async def _statements(ctx: Context, seconds: float) -> dict[str, Any]:
    """View 1: the server's statements per registration, one client, no contention."""
    log = _server_log(ctx.system)
    if log is None:
        return {"skipped": "needs the embedded PostgreSQL (its log file)"}
    _set_statement_logging(ctx.system, on=True)
    offset = log.stat().st_size
    before = len(ctx.customer_ids)
    try:
        load = await _load(ctx, "1 client, every statement logged", 1, seconds)
    finally:
        _set_statement_logging(ctx.system, on=False)
    registered = len(ctx.customer_ids) - before
    with log.open("rb") as file:
        file.seek(offset)
        text = file.read().decode(errors="replace")
    per = max(registered, 1)
    gateway_count, gateway_ms = _tally(text, "gateway")
    workers_count, workers_ms = _tally(text, "workers")
    return {
        "registrations": registered,
        "latency_p50_ms": load["p50_ms"],
        "cpu_ms_per_registration": load.get("cpu_ms_per_op", {}),
        "statements_per_registration": _per(gateway_count, per),
        "server_ms_per_registration": _per(gateway_ms, per, digits=3),
        # The followers (read models, relay) react to every commit: their share of the
        # server's work for the same registrations.
        "workers_statements_per_registration": _per(workers_count, per),
        "workers_server_ms_per_registration": _per(workers_ms, per, digits=3),
        "note": "logging every statement slows the server: compare shares, not absolute times",
    }


def _tally(text: str, app: str) -> tuple[dict[str, float], dict[str, float]]:
    """Statements of one process's connections, by kind: how many, and server ms."""
    count: collections.Counter[str] = collections.Counter()
    server_ms: collections.defaultdict[str, float] = collections.defaultdict(float)
    lines = text.splitlines()
    for number, line in enumerate(lines):
        match = _DURATION.search(line)
        if match is None or f" app={app} " not in line:
            continue
        milliseconds, step, statement = float(match[1]), match[2], match[3]
        if not statement.strip() and number + 1 < len(lines) and lines[number + 1][:1] == "\t":
            # A statement whose text starts with a line break goes on in the next line
            # (the server indents it); a truly empty one is a pool's pre-ping.
            statement = lines[number + 1]
        kind = _kind(statement)
        server_ms[kind] += milliseconds
        # A statement is counted once: by its simple-protocol line or its execute step.
        if step in ("statement", "execute"):
            count[kind] += 1
    return dict(count), dict(server_ms)


def _per(values: dict[str, float], registrations: int, digits: int = 2) -> dict[str, float]:
    ordered = sorted(values.items(), key=lambda kv: -kv[1])
    return {k: round(v / registrations, digits) for k, v in ordered if v / registrations >= 0.01}


def _kind(statement: str) -> str:
    if not statement.strip():
        return "empty query (pool pre-ping)"
    for marker, kind in _KINDS:
        if marker in statement:
            return kind
    return statement.strip()[:60]


def _server_log(system: System) -> Path | None:
    if system.postmaster is None:
        return None
    log = Path(system.postmaster.cwd()) / "log"
    return log if log.exists() else None


def _set_statement_logging(system: System, *, on: bool) -> None:
    with system.connect() as connection:
        settings = ("log_min_duration_statement", "log_parameter_max_length", "log_line_prefix")
        if on:
            connection.execute("ALTER SYSTEM SET log_min_duration_statement = 0")
            connection.execute("ALTER SYSTEM SET log_parameter_max_length = 0")
            connection.execute(f"ALTER SYSTEM SET log_line_prefix = '{_LOG_PREFIX}'")
        else:
            for name in settings:
                connection.execute(f"ALTER SYSTEM RESET {name}")
        connection.execute("SELECT pg_reload_conf()")
    time.sleep(0.5)  # the reload reaches every backend at its next command


async def _lock_holder(ctx: Context, clients: int, seconds: float) -> dict[str, Any]:
    """View 2: what the holder of the events table's lock is doing, sampled."""
    stop = threading.Event()
    sampler = asyncio.create_task(asyncio.to_thread(_sample_lock, ctx.system, stop, seconds))
    load = await _load(ctx, f"{clients} clients, lock holder sampled", clients, seconds)
    stop.set()
    samples, waiters = await sampler
    total = max(sum(samples.values()), 1)
    return {
        "load": load,
        "samples": total,
        "holder_state_share": {k: round(v / total, 3) for k, v in samples.most_common()},
        "waiting_writers_mean": round(sum(k * v for k, v in waiters.items()) / total, 2),
    }


def _sample_lock(
    system: System, stop: threading.Event, seconds: float
) -> tuple[collections.Counter[str], collections.Counter[int]]:
    statement = (
        "SELECT l.granted, a.state, a.wait_event_type, a.wait_event, left(a.query, 40)"
        " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        # An advisory lock of a bigint key shows as its high (classid) and low (objid) halves.
        " WHERE l.locktype = 'advisory' AND l.objsubid = 1"
        " AND (l.classid::bigint << 32 | l.objid::bigint) = hashtextextended(%s, 0)"
    )
    lock = writers_lock_name(sql.Identifier(system.schema, system.events_table))
    samples: collections.Counter[str] = collections.Counter()
    waiters: collections.Counter[int] = collections.Counter()
    deadline = time.monotonic() + seconds
    with system.connect() as connection:
        time.sleep(0.5)  # skip the load's warm-up
        while not stop.is_set() and time.monotonic() < deadline:
            rows = connection.execute(statement, (lock,)).fetchall()
            holders = [row for row in rows if row[0]]
            waiters[len(rows) - len(holders)] += 1
            if not holders:
                samples["lock free"] += 1
            for _, state, wait_type, wait_event, query in holders:
                samples[_holder_state(str(state), wait_type, wait_event, str(query))] += 1
            time.sleep(0.003)
    return samples, waiters


def _holder_state(state: str, wait_type: object, wait_event: object, query: str) -> str:
    if state == "idle in transaction":
        return f"waiting for the gateway between statements (last: {_kind(query)})"
    if wait_type is None:
        return f"executing on CPU ({_kind(query)})"
    if wait_type == "Lock" and wait_event == "object":
        # A committing NOTIFY takes one database-wide lock on the notification queue.
        return f"waiting for the NOTIFY queue's commit lock ({_kind(query)})"
    if str(wait_event).startswith("WAL") or wait_type == "IO":
        return f"I/O wait {wait_event} ({_kind(query)})"
    if wait_event == "ClientRead":
        return f"waiting for the gateway inside the pipeline ({_kind(query)})"
    return f"{wait_type}:{wait_event} ({_kind(query)})"


async def _gateway_gil(ctx: Context, clients: int, seconds: float) -> dict[str, Any]:
    """View 3: which code holds the gateway's GIL, from py-spy's samples."""
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        return {"skipped": "py-spy is not installed (pip install py-spy into the venv)"}
    raw = ctx.system.log_dir / "gateway-gil.txt"
    command = [spy, "record", "--pid", str(ctx.system.processes["gateway"].pid), "--gil"]
    command += ["--nonblocking", "--rate", str(_SPY_RATE), "--format", "raw", "-o", str(raw)]
    command += ["--duration", str(int(seconds))]
    recorder = await asyncio.create_subprocess_exec(
        *command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    load = await _load(ctx, f"{clients} clients, gateway sampled by py-spy", clients, seconds)
    await recorder.wait()
    parts: collections.Counter[str] = collections.Counter()
    unplaced: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue  # not a stack line ("<stack> <samples>")
        part = _part(stack)
        parts[part] += int(count)
        if part == "other":
            unplaced[stack.rsplit(";", 1)[-1]] += int(count)
    total = max(sum(parts.values()), 1)
    return {
        "load": load,
        "samples": total,
        # py-spy --gil records a sample only when some thread holds the GIL.
        "gil_held_share": round(total / (_SPY_RATE * int(seconds)), 3),
        "share_of_gil_time": {k: round(v / total, 3) for k, v in parts.most_common()},
        "other_top_frames": {k: round(v / total, 4) for k, v in unplaced.most_common(12)},
        "note": "py-spy's own sampling takes CPU from the 2 cores: compare shares",
    }


def _part(stack: str) -> str:
    for marker, part in _PARTS:
        if marker in stack:
            return part
    return "other"


def _print(console: Console, results: dict[str, Any]) -> None:
    for title, mapping in (
        ("statements per registration (1 client)", ("one_client", "statements_per_registration")),
        ("server ms per registration (1 client)", ("one_client", "server_ms_per_registration")),
        (
            "workers' statements per registration (1 client)",
            ("one_client", "workers_statements_per_registration"),
        ),
        (
            "workers' server ms per registration (1 client)",
            ("one_client", "workers_server_ms_per_registration"),
        ),
        ("events table lock holder (share of samples)", ("lock_holder", "holder_state_share")),
        ("gateway GIL time by part (share)", ("gateway_gil", "share_of_gil_time")),
    ):
        section = results.get(mapping[0], {})
        values = section.get(mapping[1])
        if not values:
            console.print(f"{title}: {section.get('skipped', 'no data')}")
            continue
        table = Table(title=title)
        table.add_column("what")
        table.add_column("value", justify="right")
        for key, value in values.items():
            table.add_row(key, str(value))
        console.print(table)


if __name__ == "__main__":
    sys.exit(main())
