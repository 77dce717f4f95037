"""`python -m bench.vacuum_stall`: do writers stall while autovacuum works on the events table?

Registers customers through the service (no HTTP, no followers: nothing else competes)
at a steady open-loop rate into an events table prefilled like the full run's by the
half-peak phase, on a PostgreSQL of its own whose autovacuum wakes every
`--naptime` seconds instead of every minute, so that a 60 s run sees it work on the
events table several times. Prints every registration slower than `--slow-ms` by when it
was due, and what the server logged about autovacuum and lock waits.

It measures the event store's write serialisation against VACUUM and ANALYZE (which
take SHARE UPDATE EXCLUSIVE on the table): a writer that takes the table in EXCLUSIVE
mode waits for them, until PostgreSQL cancels the autovacuum after `deadlock_timeout`
(1 s by default); see "The tail at half the peak" in docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import re
import secrets
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import psycopg
from cryptography.fernet import Fernet
from psycopg import sql

from bench.stats import percentile
from infrastructure.eventstore import build_service, migrate_event_store
from infrastructure.servers import EmbeddedPostgres
from infrastructure.settings import Settings

__all__ = ["main"]

_NOTABLE = re.compile(r"crm_events|still waiting|acquired|canceling autovacuum|automatic")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.vacuum_stall", description=__doc__)
    parser.add_argument("--events", type=int, default=250_000, help="events written first")
    parser.add_argument("--rate", type=float, default=100.0, help="registrations per second")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=8, help="as the gateway's thread pool")
    parser.add_argument("--naptime", type=int, default=5, help="autovacuum_naptime, seconds")
    parser.add_argument("--slow-ms", type=float, default=200.0)
    arguments = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vacuum-stall-") as folder:
        server = EmbeddedPostgres(Path(folder) / "postgres", keep_data=False)
        server.start()
        try:
            _run(server, arguments)
        finally:
            server.close()
    return 0


def _run(server: EmbeddedPostgres, arguments: argparse.Namespace) -> None:
    settings = Settings(
        database_url=server.url,
        db_schema=f"bench_{secrets.token_hex(4)}",
        jwt_secret=secrets.token_urlsafe(32),
        secret_key=Fernet.generate_key().decode(),
        key_encryption_key=base64.urlsafe_b64encode(os.urandom(32)).decode(),
        thread_pool_size=arguments.threads,
    )
    migrate_event_store(settings)
    service = build_service(settings)
    try:
        began = time.monotonic()
        _prefill(server.url, settings.db_schema, arguments.events)
        print(f"prefilled {arguments.events:,} events in {time.monotonic() - began:.0f} s")
        log = server.pgdata / "log"
        start = log.stat().st_size if log.exists() else 0
        _configure(server.url, arguments.naptime)
        latencies = _open_loop(service, arguments)
        _configure(server.url, None)
    finally:
        service.close()
    slow = [(due, ms) for due, ms in latencies if ms >= arguments.slow_ms]
    values = [ms for _, ms in latencies]
    print(
        f"{len(values)} registrations at {arguments.rate:.0f}/s: p50"
        f" {percentile(values, 0.5):.1f} ms, p99 {percentile(values, 0.99):.1f} ms,"
        f" p99.9 {percentile(values, 0.999):.1f} ms, max {max(values):.0f} ms"
    )
    print(f"{len(slow)} at or over {arguments.slow_ms:.0f} ms (second of the run, ms):")
    print("  " + ", ".join(f"{due:.1f}s {ms:.0f}" for due, ms in slow[:80]))
    if log.exists():
        with open(log, errors="replace") as file:
            file.seek(start)
            lines = [line.rstrip() for line in file if _NOTABLE.search(line)]
        print(f"server log ({len(lines)} lines about autovacuum and lock waits):")
        for line in lines[:60]:
            print("  " + line[:220])


def _prefill(url: str, schema: str, events: int) -> None:
    """Filler rows of a registration's size, straight into the table (the chain is not
    checked here), then VACUUM ANALYZE: the table as autovacuum left it between phases."""
    table = sql.Identifier(schema, "crm_events")
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(
            sql.SQL(
                "INSERT INTO {} (originator_id, originator_version, topic, state)"
                " SELECT gen_random_uuid(), 1, 'bench:Filler',"
                " convert_to(repeat(md5(random()::text), 12), 'UTF8')"
                " FROM generate_series(1, %s)"
            ).format(table),
            (events,),
        )
        connection.execute(sql.SQL("VACUUM ANALYZE {}").format(table))


def _configure(url: str, naptime: int | None) -> None:
    settings = {
        "autovacuum_naptime": f"'{naptime}s'",
        "log_autovacuum_min_duration": "0",
        "log_lock_waits": "on",
    }
    with psycopg.connect(url, autocommit=True) as connection:
        for name, value in settings.items():
            if naptime is None:
                connection.execute(f"ALTER SYSTEM RESET {name}")
            else:
                connection.execute(f"ALTER SYSTEM SET {name} = {value}")
        connection.execute("SELECT pg_reload_conf()")


def _open_loop(service: object, arguments: argparse.Namespace) -> list[tuple[float, float]]:
    """Poisson arrivals on a pool of `threads`; (seconds into the run, ms from due)."""
    results: list[tuple[float, float]] = []
    lock = threading.Lock()
    arrivals = random.Random(11)
    began = time.monotonic()
    end = began + arguments.seconds

    def register(due: float) -> None:
        service.register_customer(  # type: ignore[attr-defined]
            {"first_name": "Stall", "email": f"{secrets.token_hex(8)}@example.com"}
        )
        with lock:
            results.append((due - began, (time.monotonic() - due) * 1000))

    futures: list[Future[None]] = []
    with ThreadPoolExecutor(arguments.threads) as pool:
        due = began
        while (due := due + arrivals.expovariate(arguments.rate)) < end:
            time.sleep(max(0.0, due - time.monotonic()))
            futures.append(pool.submit(register, due))
    for future in futures:
        future.result()
    return sorted(results)


if __name__ == "__main__":
    raise SystemExit(main())
