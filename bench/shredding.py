"""`python -m bench.shredding [--database URL]`: what per-customer encryption costs.

Without a database: maps the events of a full registration (profile, address, note,
contact) to stored events and back, with the library's plain `Mapper` and with the
service's `ShreddingMapper` (keys already cached, as on the write path after `prepare`),
and prints CPU microseconds per event each way.

With `--database postgresql://...`: registrations per second from 8 threads through the
service on that database (a throwaway schema), with data keys in PostgreSQL as deployed,
against the same service with the plain mapper and no key table; the two alternate over
several rounds, so a busy machine disturbs both alike.
"""

from __future__ import annotations

import time
from datetime import date
from typing import Any

from eventsourcing.persistence import Mapper

from domain.customers import Customer
from domain.key_ring import InMemoryKeyRing
from domain.sealing import SecretSealer
from domain.service import CustomerService
from domain.shredding import ShreddingMapper
from domain.values import Address, Profile

ROUNDS = 500
REPEATS = 7
"""Each mapper is timed REPEATS times, interleaved; the fastest run counts (CPU time of this
process): on a shared machine the minimum is the least disturbed."""


def _events() -> list[Any]:
    profile = Profile(
        first_name="Ada",
        last_name="Lovelace",
        email="ada@example.com",
        mobile_phone="+14155552671",
        birthday=date(1815, 12, 10),
        custom_fields={"gate_code": "4711"},
    )
    address = Address(address_id=__import__("uuid").uuid4(), kind="billing", line1="12 St James Sq")
    customer = Customer.register(customer_number=1, profile=profile, addresses=[address])
    customer.add_note("Call first", urgent=True)
    customer.add_contact(name="Bob", phone="+14155552672")
    customer.hand_keys_to("staff-1", None)
    return list(customer.collect_events())


def _time(mapper: Mapper[Any], events: list[Any]) -> tuple[float, float]:
    started = time.process_time()
    for _ in range(ROUNDS):
        stored = [mapper.to_stored_event(e) for e in events]
    write = time.process_time() - started
    started = time.process_time()
    for _ in range(ROUNDS):
        for s in stored:
            mapper.to_domain_event(s)
    read = time.process_time() - started
    per_event = 1e6 / (ROUNDS * len(events))
    return write * per_event, read * per_event


def _register_rates(database_url: str, rounds: int = 4, count: int = 400) -> None:
    import base64
    import os
    import secrets
    from concurrent.futures import ThreadPoolExecutor

    from pydantic import SecretStr

    from infrastructure.database import drop_schema
    from infrastructure.eventstore import build_service, migrate_event_store
    from infrastructure.settings import Settings

    settings = Settings(
        database_url=database_url,
        db_schema=f"shred_{secrets.token_hex(4)}",
        jwt_secret=SecretStr(secrets.token_urlsafe(32)),
        secret_key=SecretStr(SecretSealer.generate_key()),
        key_encryption_key=SecretStr(base64.urlsafe_b64encode(os.urandom(32)).decode()),
    )
    migrate_event_store(settings)
    shredding = build_service(settings)
    plain = build_service(settings)
    plain.key_ring = InMemoryKeyRing()  # no key table: what the service did before
    plain.mapper = plain.events.mapper = Mapper(plain.mapper.transcoder)
    rates: dict[str, list[float]] = {"plain mapper": [], "shredding + keys": []}
    try:
        with ThreadPoolExecutor(8) as pool:
            for _ in range(rounds):
                for name, service in (("plain mapper", plain), ("shredding + keys", shredding)):
                    started = time.perf_counter()
                    list(
                        pool.map(
                            lambda i, s=service: s.register_customer(
                                {
                                    "first_name": f"Ada{i}",
                                    "last_name": "Lovelace",
                                    "email": f"{secrets.token_hex(6)}@example.com",
                                    "addresses": [{"kind": "billing", "line1": "12 St James"}],
                                }
                            ),
                            range(count),
                        )
                    )
                    rates[name].append(count / (time.perf_counter() - started))
    finally:
        shredding.close()
        plain.close()
        drop_schema(database_url, settings.db_schema)
    print(f"registrations/s, 8 threads, {count} per round, {rounds} rounds alternating")
    for name, values in rates.items():
        print(f"  {name:18} best {max(values):6.0f}  rounds {[round(v) for v in values]}")


def main() -> None:
    import sys

    if len(sys.argv) == 3 and sys.argv[1] == "--database":
        _register_rates(sys.argv[2])
        return
    # The service's own transcoder (its registered transcodings) and an in-memory key ring.
    service = CustomerService(sealer=SecretSealer(SecretSealer.generate_key()))
    transcoder = service.mapper.transcoder
    events = _events()
    keys = InMemoryKeyRing()
    keys.prepare([events[0].originator_id])
    mappers = {"plain": Mapper(transcoder), "shredding": ShreddingMapper(transcoder, keys)}
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in mappers}
    for _ in range(REPEATS):
        for name, mapper in mappers.items():
            runs[name].append(_time(mapper, events))
    plain, shredding = (
        (min(w for w, _ in runs[n]), min(r for _, r in runs[n])) for n in ("plain", "shredding")
    )
    print(
        f"{len(events)} events x {ROUNDS} rounds, best of {REPEATS},"
        " CPU microseconds per event (write / read)"
    )
    print(f"  library Mapper     {plain[0]:7.1f} / {plain[1]:7.1f}")
    print(f"  ShreddingMapper    {shredding[0]:7.1f} / {shredding[1]:7.1f}")


if __name__ == "__main__":
    main()
