"""One new record of each kind a merge moves (`LINKED_KINDS`), for a customer, by its name
in the merge's answer: what the merge tests create."""

from __future__ import annotations

import hashlib
import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

from domain.service import CustomerService, Receipt

__all__ = ["KINDS", "new_record"]

_SHA = hashlib.sha256(b"backup").hexdigest()
_ISSUED = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
_LINES = [{"description": "Screen repair", "quantity": Decimal("1"), "unit_price": Decimal("80")}]
_numbers = itertools.count(1)

KINDS = (
    "appointments",
    "tickets",
    "pets",
    "files",
    "interactions",
    "chat_messages",
    "satisfaction_scores",
    "packages",
    "invoices",
    "payments",
)


def new_record(service: CustomerService, customer: UUID, kind: str) -> Receipt:
    """Save a new record of `kind` for the customer."""
    s, n = service, f"{next(_numbers)}-{uuid4().hex[:8]}"
    start = datetime.now(UTC) + timedelta(days=3)
    if kind == "appointments":
        return s.book_appointment(customer, start, start + timedelta(hours=1))
    if kind == "tickets":
        return s.open_ticket(customer, "screen", "cracked", {"type": "phone"})
    if kind == "pets":
        return s.add_pet(customer, {"name": "Rex", "species": "dog"})
    if kind == "files":
        return s.upload_file(
            customer, uuid4(), name="a.cfg", size=6, content_type="text/plain",
            sha256=_SHA, uploader="bob",
        )  # fmt: skip
    if kind == "interactions":
        return s.log_interaction(
            customer, kind="call", direction="inbound", summary="s", staff_id="bob"
        )
    if kind == "chat_messages":
        return s.post_message(customer, "hello", sender="staff")
    if kind == "satisfaction_scores":
        return s.give_satisfaction(customer, 4)
    if kind == "packages":
        return s.buy_package(customer, name="10 washes", sessions=10)
    if kind == "invoices":
        return s.record_invoice(customer, f"INV-{n}", "EUR", _LINES, _ISSUED)
    if kind == "payments":
        return s.record_payment(
            customer, f"PAY-{n}", kind="payment", amount=Decimal("5.00"), currency="EUR",
            method="card", paid_at=_ISSUED,
        )  # fmt: skip
    raise ValueError(kind)
