"""What a merge costs as the log grows: the look-up of a customer's records, and a merge.

`python -m bench.merge_cost [--database URL] [--sizes 10000 100000] [--rounds 5]`

A merge finds the merged customer's records (every kind it moves, `LINKED_KINDS`) with one
query over the events (`infrastructure.linked_records.LinkedRecords`), which reads the
creating and relinking events through a partial expression index: this measures that scan and a whole merge (a customer with three tickets
merged into another) on logs holding that many tickets of other customers. Uses
`--database` or `CUSTOMERS_DATABASE_URL` (default the machine's test server) in a schema
of its own, dropped at the end.
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import statistics
import time

from pydantic import SecretStr

from domain.service import CustomerService
from domain.tickets import Device, Ticket
from infrastructure.database import drop_schema
from infrastructure.eventstore import build_service, migrate_event_store
from infrastructure.settings import Settings

_DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
_BATCH = 500


def _fill(service: CustomerService, tickets: int) -> None:
    """That many tickets for a few other customers, saved 500 per save (fast to write)."""
    owners = [
        service.register_customer({"first_name": f"Other{i}"}).aggregate_id for i in range(20)
    ]
    device = Device(type="laptop")
    for start in range(0, tickets, _BATCH):
        batch = [
            Ticket.open(
                customer_id=owners[n % len(owners)],
                number=n + 1,
                subject="screen",
                problem="cracked",
                device=device,
            )
            for n in range(start, min(start + _BATCH, tickets))
        ]
        service.save(*batch)


def _merge_once(service: CustomerService) -> tuple[float, float]:
    """Seconds of the look-up and of a whole merge, for a fresh pair of customers."""
    survivor = service.register_customer({"first_name": "Ann"}).aggregate_id
    merged = service.register_customer({"first_name": "Anne"}).aggregate_id
    for _ in range(3):
        service.open_ticket(merged, "screen", "cracked", {"type": "phone"})
    started = time.perf_counter()
    found = service.linked_records(merged)
    look_up = time.perf_counter() - started
    assert len(found) == 3
    versions = {survivor: 1, merged: 1}
    started = time.perf_counter()
    service.merge_customers(survivor, [merged], expected_versions=versions)
    return look_up, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database", default=os.environ.get("CUSTOMERS_DATABASE_URL", _DEFAULT_URL)
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--rounds", type=int, default=5)
    arguments = parser.parse_args()
    settings = Settings(
        database_url=arguments.database,
        db_schema=f"bench_merge_{secrets.token_hex(4)}",
        jwt_secret=SecretStr(secrets.token_urlsafe(32)),
        secret_key=SecretStr(base64.urlsafe_b64encode(os.urandom(32)).decode()),
        key_encryption_key=SecretStr(base64.urlsafe_b64encode(os.urandom(32)).decode()),
    )
    migrate_event_store(settings)
    service = build_service(settings)
    print(f"load average before: {os.getloadavg()[0]:.1f} (other jobs share the machine)")
    try:
        filled = 0
        for size in sorted(arguments.sizes):
            _fill(service, size - filled)
            filled = size
            runs = [_merge_once(service) for _ in range(arguments.rounds)]
            look_up = statistics.median(r[0] for r in runs) * 1000
            merge = statistics.median(r[1] for r in runs) * 1000
            events = service.recorder.max_notification_id() or 0
            print(
                f"{size:>8,} other tickets ({events:,} events): look-up {look_up:7.1f} ms,"
                f" whole merge {merge:7.1f} ms (median of {arguments.rounds})",
                flush=True,
            )
    finally:
        service.close()
        drop_schema(arguments.database, settings.db_schema)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
