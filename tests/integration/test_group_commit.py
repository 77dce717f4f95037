"""Group commit on the real event store: concurrent commands share transactions safely."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from domain.errors import UniqueValueTakenError
from domain.service import CustomerService
from infrastructure.database import drop_schema
from infrastructure.eventstore import build_service, migrate_event_store


@pytest.fixture
def service(make_settings: Any, database_url: str) -> Iterator[CustomerService]:
    """A service on a fresh schema of its own."""
    settings = make_settings(database_url=database_url, db_schema=f"g_{secrets.token_hex(5)}")
    migrate_event_store(settings)
    service = build_service(settings)
    yield service
    service.close()
    drop_schema(database_url, settings.db_schema)


def test_concurrent_registrations_all_commit_with_distinct_positions(
    service: CustomerService,
) -> None:
    """Sixty-four registrations from sixteen threads all commit, each with its own position."""
    with ThreadPoolExecutor(16) as pool:
        receipts = list(
            pool.map(lambda i: service.register_customer({"first_name": f"c{i}"}), range(64))
        )
    assert len({r.position for r in receipts}) == 64
    assert len({r.result["customer_number"] for r in receipts}) == 64
    for receipt in receipts:
        assert service.get_customer(receipt.aggregate_id).version == 1


def test_commands_racing_on_one_customer_in_one_group_all_apply(
    service: CustomerService,
) -> None:
    """Forty notes added at once to one customer: each lands once, versions 2..41 in order."""
    cid = service.register_customer({"first_name": "busy"}).aggregate_id
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: service.add_note(cid, f"n{i}", False), range(40)))
    customer = service.get_customer(cid)
    assert customer.version == 41
    assert sorted(n.text for n in customer.notes.values()) == sorted(f"n{i}" for i in range(40))


def test_a_conflict_in_a_group_fails_only_the_loser(service: CustomerService) -> None:
    """Twelve registrations for one email in parallel with thirty others: one email wins,
    eleven are refused, and every other registration commits."""
    email = f"{secrets.token_hex(5)}@example.com"

    def register(i: int) -> str:
        fields = {"first_name": f"r{i}"} | ({"email": email} if i < 12 else {})
        try:
            service.register_customer(fields)
        except UniqueValueTakenError:
            return "taken"
        return "created"

    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(register, range(42)))
    assert outcomes[:12].count("created") == 1
    assert outcomes[12:] == ["created"] * 30
