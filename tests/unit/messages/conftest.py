"""Fixtures of the message tests: a service on the in-memory store, its log, the schemas."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import jsonschema
import pytest

from domain.sealing import SecretSealer
from domain.service import CustomerService
from projections.asyncapi import asyncapi_document

Log = list[tuple[int, Any]]


@pytest.fixture
def service() -> CustomerService:
    """A service on the in-memory (POPO) store."""
    return CustomerService(sealer=SecretSealer(SecretSealer.generate_key()))


@pytest.fixture
def read_log(service: CustomerService) -> Callable[[], Log]:
    """The whole global log as (position, event), internal events included."""

    def read() -> Log:
        notifications = service.recorder.select_notifications(start=1, limit=10_000)
        return [(n.id, service.mapper.to_domain_event(n)) for n in notifications]

    return read


@pytest.fixture
def full_life(service: CustomerService) -> str:
    """A customer who went through every command there is; returns the system's secret."""
    secret = "hunter2-do-not-publish"
    customer_id = service.register_customer(
        {
            "first_name": "Ada",
            "last_name": "Lovelace",
            "email": "ada@example.com",
            "mobile_phone": "+14155552671",
            "birthday": date(1815, 12, 10),
            "discount_percent": Decimal("12.50"),
            "notification_channels": ["email", "sms"],
            "addresses": [{"kind": "billing", "line1": "12 St James Sq", "city": "London"}],
            "custom_fields": {"gate_code": "4711-blue"},
        }
    ).aggregate_id
    version = service.change_profile(
        customer_id, {"group": "vip", "newsletter": False}, expected_version=1
    ).version
    version = service.block_customer(customer_id, "unpaid", expected_version=version).version
    version = service.unblock_customer(customer_id, expected_version=version).version
    note = service.add_note(customer_id, "Call first", True).version
    customer = service.get_customer(customer_id)
    note_id = next(iter(customer.notes))
    service.remove_note(customer_id, note_id, expected_version=note)
    service.add_contact(customer_id, {"name": "Bob", "role": "caretaker"})
    service.add_address(customer_id, {"kind": "site", "line1": "1 Main St"})
    service.install_system(customer_id, {"system_type": "alarm", "secret": secret})
    customer = service.get_customer(customer_id)
    system_id = next(iter(customer.systems))
    service.change_system(
        customer_id, system_id, {"secret": secret + "2"}, expected_version=customer.version
    )
    service.reveal_secret(customer_id, system_id)
    service.hand_keys_to(customer_id, "staff-7", "safe 2")
    service.set_custom_price(customer_id, "svc-1", Decimal("99.90"))
    service.add_credit(customer_id, Decimal("5.00"), "goodwill")
    # Billing's records: an invoice paid in part and settled by credit, a voided one.
    lines = [{"description": "Visit", "quantity": Decimal(1), "unit_price": Decimal("20.00")}]
    issued = datetime(2026, 3, 1, tzinfo=UTC)
    invoice = service.record_invoice(customer_id, "INV-1", "EUR", lines, issued).aggregate_id
    service.record_payment(
        customer_id,
        "PAY-1",
        kind="payment",
        amount=Decimal("15.00"),
        currency="EUR",
        method="card",
        paid_at=issued,
        invoice_number="INV-1",
    )
    service.apply_credit_to_invoice(customer_id, invoice, Decimal("5.00"))
    voided = service.record_invoice(customer_id, "INV-2", "EUR", lines, issued)
    service.void_invoice(customer_id, voided.aggregate_id, expected_version=1)
    customer = service.get_customer(customer_id)
    version = service.remove_system(
        customer_id, system_id, expected_version=customer.version
    ).version
    customer = service.get_customer(customer_id)
    contact_id, address_id = next(iter(customer.contacts)), next(iter(customer.addresses))
    version = service.remove_contact(customer_id, contact_id, expected_version=version).version
    version = service.remove_address(customer_id, address_id, expected_version=version).version
    version = service.delete_customer(customer_id, expected_version=version).version
    version = service.restore_customer(customer_id, expected_version=version).version
    # A duplicate with equipment merged in and out again (its secret moves with it).
    duplicate = service.register_customer({"first_name": "Ada", "email": "ada@work.example"})
    service.install_system(duplicate.aggregate_id, {"system_type": "nas", "secret": secret})
    # Its invoice and payment move with it, and back (`invoice.relinked`, `payment.relinked`).
    service.record_invoice(duplicate.aggregate_id, "INV-3", "EUR", lines, issued)
    service.record_payment(
        duplicate.aggregate_id,
        "PAY-3",
        kind="payment",
        amount=Decimal("1.00"),
        currency="EUR",
        method="cash",
        paid_at=issued,
    )
    merged = service.merge_customers(
        customer_id,
        [duplicate.aggregate_id],
        expected_versions={customer_id: version, duplicate.aggregate_id: duplicate.version + 1},
    )
    service.unmerge_customers(
        customer_id, merged.result["merge_id"], expected_version=merged.version
    )
    # Erasure ends a life: a second customer's, so the first one's events stay readable.
    erased = service.register_customer({"first_name": "Eve", "email": "eve@example.com"})
    service.erase_customer(erased.aggregate_id, expected_version=erased.version)
    return secret


@pytest.fixture(scope="session")
def validate() -> Callable[[str, dict[str, Any]], None]:
    """Check a message against the AsyncAPI document's payload schema for its subject."""
    document = asyncapi_document()
    by_address = {c["address"]: c for c in document["channels"].values()}
    messages = document["components"]["messages"]

    def check(subject: str, body: dict[str, Any]) -> None:
        [reference] = by_address[subject]["messages"].values()
        message = messages[reference["$ref"].rsplit("/", 1)[1]]
        schema = {"$ref": message["payload"]["$ref"], "components": document["components"]}
        jsonschema.Draft202012Validator(
            schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
        ).validate(body)

    return check
