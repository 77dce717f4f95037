"""`python -m bench.shredding`: what per-customer encryption costs the mapper, per event.

Maps the events of a full registration (profile, address, note, contact) to stored events
and back, with the library's plain `Mapper` and with the service's `ShreddingMapper`
(keys already cached, as on the write path after `prepare`), and prints microseconds per
event each way. Pure CPU: no database, so a busy machine moves both columns alike.
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


def main() -> None:
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
