"""Two processes spend the same customer credit at once: the event store lets one win.

Two service instances stand for two gateway processes (each has its own in-process turns,
so only the event store's version check on the customer's stream can decide). Each pair
starts together at a barrier and applies the whole balance to a different invoice: the
invoices' streams do not meet, the customer's does.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from domain.errors import ConflictError
from domain.service import CustomerService
from infrastructure.eventstore import build_service
from infrastructure.settings import Settings

LINES = [{"description": "Visit", "quantity": Decimal(1), "unit_price": Decimal("130.00")}]


@pytest.fixture
def other_process(api_settings: Settings) -> Iterator[CustomerService]:
    other = build_service(api_settings)
    yield other
    other.close()


def invoice(service: CustomerService, customer_id: UUID) -> UUID:
    receipt = service.record_invoice(
        customer_id,
        f"RACE-{secrets.token_hex(5)}",
        "EUR",
        LINES,
        datetime(2026, 3, 1, tzinfo=UTC),
    )
    return receipt.aggregate_id


def race(first: CustomerService, second: CustomerService) -> tuple[UUID, list[UUID], list[Any]]:
    """A customer with 10.00 of credit and two invoices; each service applies 10.00 to one
    of them, both let go at once: the customer, the invoices and the two outcomes."""
    customer_id = first.register_customer({"first_name": "Race"}).aggregate_id
    first.add_credit(customer_id, Decimal("10.00"), "goodwill")
    targets = [invoice(first, customer_id) for _ in range(2)]
    barrier = threading.Barrier(2)
    outcomes: list[Any] = []

    def spend(on: CustomerService, target: UUID) -> None:
        barrier.wait()
        try:
            outcomes.append(on.apply_credit_to_invoice(customer_id, target, Decimal("10.00")))
        except ConflictError as refused:
            outcomes.append(refused)

    threads = [
        threading.Thread(target=spend, args=(on, target))
        for on, target in zip((first, second), targets, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return customer_id, targets, outcomes


def test_two_applications_racing_for_the_same_credit_one_wins(
    service: CustomerService, other_process: CustomerService
) -> None:
    """Five races for a balance of 10.00: each time one application wins, the other is
    refused naming 0.00, and the balance ends at zero, never below."""
    for _ in range(5):
        customer_id, targets, outcomes = race(service, other_process)
        refusals = [o for o in outcomes if isinstance(o, ConflictError)]
        assert len(outcomes) == 2 and len(refusals) == 1, outcomes
        assert "available credit is 0.00" in refusals[0].message
        assert service.get_customer(customer_id).credit_balance == Decimal("0.00")
        statuses = sorted(service.get_invoice(customer_id, t).status for t in targets)
        assert statuses == ["open", "partially_paid"]
