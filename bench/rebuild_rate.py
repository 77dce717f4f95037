"""`python -m bench.rebuild_rate`: the search model's rebuild alone, over a log seeded once.

The bench's rebuild phase seeds its log every run (8 minutes for a million events); this
seeds it once into a kept embedded PostgreSQL (the bench's server) and then rebuilds the
search model from it as often as asked, so code changes can be compared by alternating
runs a minute apart. CPU is read for this process and for PostgreSQL (postmaster and
backends), beside the wall time and the load average.

    python -m bench.rebuild_rate seed --events 200000     # once (about 2,000 events/s)
    python -m bench.rebuild_rate run --events 200000 --rounds 3

The server's data stays in `--data` (default `.data/bench-rebuild`) between commands (the
server itself runs only while a command does); each size has its own event store schema
(`rb_<events>`) and keys. Delete the folder to start afresh.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import time
from pathlib import Path

import psutil
from pydantic import SecretStr

from bench.monitor import CpuMeter
from bench.synthetic import write_log
from infrastructure.eventstore import build_service, migrate_event_store
from infrastructure.servers import EmbeddedPostgres
from infrastructure.settings import Settings
from projections.base import read_model_schema
from projections.catalog import open_read_model
from projections.rebuild import rebuild

__all__ = ["main"]


def _server(data: Path) -> EmbeddedPostgres:
    postgres = EmbeddedPostgres(data / "postgres", keep_data=True)
    postgres.start()
    return postgres


def _settings(data: Path, url: str, events: int) -> Settings:
    """The size's settings; its secrets made on first use and kept beside the data."""
    secrets_file = data / f"rb_{events}.json"
    if not secrets_file.exists():
        secrets_file.write_text(
            json.dumps(
                {
                    "secret_key": base64.urlsafe_b64encode(os.urandom(32)).decode(),
                    "key_encryption_key": base64.urlsafe_b64encode(os.urandom(32)).decode(),
                }
            )
        )
    kept = json.loads(secrets_file.read_text())
    return Settings(
        database_url=url,
        db_schema=f"rb_{events}",
        secret_key=SecretStr(kept["secret_key"]),
        key_encryption_key=SecretStr(kept["key_encryption_key"]),
        log_level="WARNING",
    )


def seed(data: Path, events: int) -> None:
    postgres = _server(data)
    settings = _settings(data, postgres.url, events)
    migrate_event_store(settings)
    service = build_service(settings)
    try:
        if service.recorder.max_notification_id():
            print(f"{settings.db_schema} is seeded already")
            return
        started = time.perf_counter()
        written = write_log(service, events)
        print(f"{written:,} events in {time.perf_counter() - started:.0f} s")
    finally:
        service.close()


def run(data: Path, events: int, rounds: int) -> None:
    postgres = _server(data)
    settings = _settings(data, postgres.url, events)
    pid = postgres._postmaster_pid()
    meter = CpuMeter({}, psutil.Process(pid) if pid else None)
    for _ in range(rounds):
        service = build_service(settings)
        try:
            load = os.getloadavg()[0]
            started, before = time.perf_counter(), meter.snapshot()
            position = rebuild(
                service,
                lambda schema: open_read_model(settings, "search", schema=schema),
                read_model_schema(settings.db_schema, "search"),
            )
            seconds = time.perf_counter() - started
            used = meter.delta(before, meter.snapshot(), position)
        finally:
            service.close()
        cpu = used["cpu_ms_per_op"]
        assert isinstance(cpu, dict)
        print(
            f"{position:,} events in {seconds:.2f} s = {position / seconds:,.0f} events/s;"
            f" CPU µs/event client {cpu['bench'] * 1000:.1f}, postgres"
            f" {cpu.get('postgres', 0) * 1000:.1f}; others {used['other_processes_cpu_pct']}%;"
            f" load {load:.2f} -> {os.getloadavg()[0]:.2f}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.rebuild_rate")
    parser.add_argument("command", choices=("seed", "run"))
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--data", type=Path, default=Path(".data/bench-rebuild"))
    args = parser.parse_args()
    data = args.data.resolve()
    data.mkdir(parents=True, exist_ok=True)
    if args.command == "seed":
        seed(data, args.events)
    else:
        run(data, args.events, args.rounds)


if __name__ == "__main__":
    main()
