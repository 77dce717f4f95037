"""Invoices, payments and customer credit on the in-memory store: the billing rules."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from domain.customers import Customer
from domain.errors import (
    ConflictError,
    MergedCustomerError,
    NotFoundError,
    RuleViolationError,
    VersionMismatchError,
)
from domain.invoices import Invoice
from domain.money import check_amount, check_currency
from domain.service import CustomerService

ISSUED = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
LINES = [
    {"description": "Screen repair", "quantity": Decimal("1"), "unit_price": Decimal("80.00"),
     "service_id": "screen", "list_price": Decimal("100.00")},
    {"description": "Labour", "quantity": Decimal("1.5"), "unit_price": Decimal("33.33")},
]  # fmt: skip


def number() -> str:
    return f"INV-{secrets.token_hex(4)}"


@pytest.fixture
def customer(register: Callable[..., Customer]) -> Customer:
    return register()


def issue(service: CustomerService, customer: Customer, **given: Any) -> Any:
    values: dict[str, Any] = {
        "number": number(),
        "currency": "EUR",
        "lines": LINES,
        "issued_at": ISSUED,
        "due_at": ISSUED + timedelta(days=14),
        **given,
    }
    return service.record_invoice(customer.id, **values)


def pay(service: CustomerService, customer: Customer, invoice_number: str | None, amount: str,
        kind: str = "payment", **given: Any) -> Any:  # fmt: skip
    values: dict[str, Any] = {
        "kind": kind,
        "amount": Decimal(amount),
        "currency": "EUR",
        "method": "card",
        "paid_at": ISSUED + timedelta(days=1),
        "invoice_number": invoice_number,
        **given,
    }
    return service.record_payment(customer.id, given.pop("number", number()), **values)


def test_totals_are_computed_per_line_rounded_to_the_minor_unit(
    service: CustomerService, customer: Customer
) -> None:
    """80.00 + 1.5 x 33.33 = 80.00 + 50.00 (49.995 rounded half up): 130.00, open."""
    receipt = issue(service, customer)
    assert receipt.result["total"] == Decimal("130.00")
    assert receipt.result["status"] == "open"
    invoice = service.get_invoice(customer.id, receipt.aggregate_id)
    assert [line.amount for line in invoice.lines] == [Decimal("80.00"), Decimal("50.00")]


def test_a_resend_with_the_same_content_is_a_no_op_and_other_content_a_conflict(
    service: CustomerService, customer: Customer
) -> None:
    """Same number and content: the same answer, nothing recorded; changed lines: 409."""
    first = issue(service, customer, number="INV-1")
    again = issue(service, customer, number="INV-1")
    assert (again.aggregate_id, again.replayed) == (first.aggregate_id, True)
    assert again.result == first.result
    assert service.get_invoice(customer.id, first.aggregate_id).version == 1
    with pytest.raises(ConflictError) as refused:
        issue(service, customer, number="INV-1", currency="USD")
    assert refused.value.field == "number"


def test_payments_move_the_status_and_refunds_reopen(
    service: CustomerService, customer: Customer
) -> None:
    """open → partially_paid → paid; a refund back to partially_paid; more than open: 409."""
    invoice = issue(service, customer, number=(n := number()))
    assert pay(service, customer, n, "30.00").result["invoice_status"] == "partially_paid"
    with pytest.raises(ConflictError, match=r"open amount 100\.00"):
        pay(service, customer, n, "100.01")
    assert pay(service, customer, n, "100.00").result["invoice_status"] == "paid"
    assert pay(service, customer, n, "20.00", "refund").result["invoice_status"] == (
        "partially_paid"
    )
    with pytest.raises(ConflictError, match="more than was paid"):
        pay(service, customer, n, "110.01", "refund")
    shown = service.get_invoice(customer.id, invoice.aggregate_id)
    assert (shown.paid, shown.open_amount, shown.version) == (
        Decimal("110.00"),
        Decimal("20.00"),
        4,
    )


def test_a_payment_on_another_currency_or_an_unknown_invoice_is_refused(
    service: CustomerService, customer: Customer, register: Callable[..., Customer]
) -> None:
    """Currency mismatch: 409 on currency; an invoice of another customer: 422 by name."""
    issue(service, customer, number=(n := number()))
    with pytest.raises(ConflictError) as refused:
        pay(service, customer, n, "10", currency="USD")
    assert refused.value.field == "currency"
    with pytest.raises(RuleViolationError) as unknown:
        pay(service, register(), n, "10")
    assert unknown.value.field == "invoice_number"


def test_amounts_follow_the_currency_minor_unit() -> None:
    """EUR takes cents, JPY none, KWD fils; NaN, negative and XAU are refused."""
    assert check_amount(Decimal("12.5"), "EUR", "a") == Decimal("12.50")
    assert check_amount(Decimal("12.500"), "KWD", "a") == Decimal("12.500")
    for amount, currency in (("12.001", "EUR"), ("1.5", "JPY"), ("NaN", "EUR"), ("-1", "EUR")):
        with pytest.raises(RuleViolationError):
            check_amount(Decimal(amount), currency, "a")
    assert check_currency("eur") == "EUR"
    for code in ("EURO", "XAU", "ZZZ"):
        with pytest.raises(RuleViolationError):
            check_currency(code)


def test_credit_applies_up_to_the_balance_and_the_open_amount(
    service: CustomerService, customer: Customer
) -> None:
    """Credit 50: 40 applied, 20 more refused naming 10.00 left; the customer lists the use."""
    service.add_credit(customer.id, Decimal("50.00"), "referral")
    invoice = issue(service, customer).aggregate_id
    applied = service.apply_credit_to_invoice(customer.id, invoice, Decimal("40.00"))
    assert applied.result["credit_balance"] == Decimal("10.00")
    assert applied.result["status"] == "partially_paid"
    with pytest.raises(ConflictError, match=r"available credit is 10\.00"):
        service.apply_credit_to_invoice(customer.id, invoice, Decimal("20.00"))
    credits = service.get_customer(customer.id).credits
    assert [c.amount for c in credits] == [Decimal("50.00"), Decimal("-40.00")]


def test_void_only_an_unsettled_invoice_and_nothing_after(
    service: CustomerService, customer: Customer
) -> None:
    """Settled: 409; stale If-Match: 412; void: payments refused."""
    settled = issue(service, customer, number=(n := number())).aggregate_id
    pay(service, customer, n, "1.00")
    with pytest.raises(ConflictError, match="refund it"):
        service.void_invoice(customer.id, settled, expected_version=2)
    fresh = issue(service, customer, number=(m := number())).aggregate_id
    with pytest.raises(VersionMismatchError):
        service.void_invoice(customer.id, fresh, expected_version=2)
    service.void_invoice(customer.id, fresh, expected_version=1)
    assert service.get_invoice(customer.id, fresh).status == "void"
    with pytest.raises(ConflictError, match="void"):
        pay(service, customer, m, "1.00")


def test_another_customers_invoice_is_not_found(
    service: CustomerService, customer: Customer, register: Callable[..., Customer]
) -> None:
    """An invoice under the wrong customer's path does not exist there."""
    invoice = issue(service, customer).aggregate_id
    with pytest.raises(NotFoundError):
        service.get_invoice(register().id, invoice)


def test_an_erased_customer_takes_no_billing_records_and_a_deleted_one_does(
    service: CustomerService, customer: Customer, register: Callable[..., Customer]
) -> None:
    """Erased: 409; soft-deleted: the accounting fact is still kept, credit is not spent."""
    deleted = register()
    service.add_credit(deleted.id, Decimal("5"), "goodwill")
    service.delete_customer(deleted.id, expected_version=2)
    invoice = issue(service, deleted).aggregate_id
    with pytest.raises(ConflictError):
        service.apply_credit_to_invoice(deleted.id, invoice, Decimal("1"))
    service.erase_customer(customer.id, expected_version=1)
    with pytest.raises(ConflictError) as refused:
        issue(service, customer)
    assert refused.value.field == "erased"


def test_replaying_an_invoice_gives_its_state(service: CustomerService, customer: Customer) -> None:
    """The stored events rebuild the invoice as it was decided."""
    receipt = issue(service, customer, number=(n := number()))
    pay(service, customer, n, "130.00")
    invoice: Invoice = service.repository.get(receipt.aggregate_id)
    assert (invoice.status, invoice.open_amount, invoice.number) == ("paid", Decimal("0.00"), n)


def test_a_merged_customer_takes_no_billing_records_and_its_credit_moves(
    service: CustomerService, customer: Customer, register: Callable[..., Customer]
) -> None:
    """Records for a merged customer: 409 naming the survivor; its credit, uses included,
    is the survivor's."""
    merged = register()
    service.add_credit(merged.id, Decimal("30.00"), "referral")
    invoice = issue(service, merged).aggregate_id
    service.apply_credit_to_invoice(merged.id, invoice, Decimal("10.00"))
    versions = {customer.id: 1, merged.id: service.get_customer(merged.id).version}
    service.merge_customers(customer.id, [merged.id], expected_versions=versions)
    with pytest.raises(MergedCustomerError) as refused:
        issue(service, merged)
    assert refused.value.survivor_id == customer.id
    assert service.get_customer(customer.id).credit_balance == Decimal("20.00")
