"""Every command and query about invoices, payments and the customer credit spent on them.

Billing's records arrive keyed by billing's own numbers: a resend of an invoice or a
payment with the same content answers as the first did and records nothing; other content
under a known number is refused (409). They are accepted for a soft-deleted customer
(an accounting fact does not wait for a restore) but not for an erased one, nor for one
merged into another (409 naming the survivor, where billing should send them).

A payment that names an invoice, and customer credit applied to one, are saved with the
invoice's event in one atomic save: the invoice's status never disagrees with them. The
customer's available credit never goes below zero: applying credit saves the customer's
`CreditApplied` with the invoice's, so two applications racing for the same credit meet
on the customer's stream and the loser, re-reading, is refused naming what is left.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain.customers import Customer
from domain.errors import (
    ConflictError,
    MergedCustomerError,
    NotFoundError,
    RuleViolationError,
    VersionMismatchError,
)
from domain.invoices import Invoice, InvoiceLine, invoice_id
from domain.money import check_amount
from domain.payments import Payment, payment_id
from domain.references import followed
from domain.write_path import Change, Idempotency, Receipt, WritePath

__all__ = ["BillingCommands"]

LINE_FIELDS = ("description", "quantity", "unit_price", "service_id", "list_price")


class BillingCommands(WritePath):
    """The billing part of the service: invoices, payments, credit applied to invoices."""

    def record_invoice(
        self,
        customer_id: UUID,
        number: str,
        currency: str,
        lines: Sequence[Mapping[str, Any]],
        issued_at: datetime,
        due_at: datetime | None = None,
        *,
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        """Keep billing's invoice; a resend of its number with the same content is a no-op."""
        given = [_line(i, line) for i, line in enumerate(lines)]
        content: dict[str, Any] = {
            "currency": currency,
            "lines": given,
            "issued_at": issued_at,
            "due_at": due_at,
        }

        seen: list[int] = []

        def attempt() -> Change:
            customer = self._billed_customer(customer_id)
            seen[:] = [customer.version]
            existing = self._existing(invoice_id(number.strip()), Invoice)
            if existing is not None:
                if existing.customer_id != customer.id or not existing.is_same(
                    customer_id=customer.id, **content
                ):
                    raise ConflictError(
                        f"invoice {existing.number} was recorded with other content", field="number"
                    )
                raise _AlreadyRecordedError(_invoice_result(existing))
            invoice = Invoice.issue(customer_id=customer.id, number=number, **content)
            return Change(invoice.id, invoice.version, _invoice_result(invoice), [invoice])

        return followed(self, self._recording(attempt, idempotency), customer_id, seen)

    def record_payment(
        self,
        customer_id: UUID,
        number: str,
        *,
        kind: str,
        amount: Decimal,
        currency: str,
        method: str,
        paid_at: datetime,
        reference: str | None = None,
        invoice_number: str | None = None,
        expected_invoice_version: int | None = None,
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        """Keep billing's payment or refund; one that names an invoice moves its status."""
        content: dict[str, Any] = {
            "kind": kind,
            "amount": amount,
            "currency": currency,
            "method": method,
            "paid_at": paid_at,
            "reference": reference,
        }
        invoice_number = invoice_number.strip() if invoice_number else None

        seen: list[int] = []

        def attempt() -> Change:
            customer = self._billed_customer(customer_id)
            seen[:] = [customer.version]
            existing = self._existing(payment_id(number.strip()), Payment)
            if existing is not None:
                if existing.customer_id != customer.id or not existing.is_same(
                    customer_id=customer.id, invoice_number=invoice_number, **content
                ):
                    raise ConflictError(
                        f"payment {existing.number} was recorded with other content", field="number"
                    )
                settled = existing.invoice_id and self._existing(existing.invoice_id, Invoice)
                raise _AlreadyRecordedError(_payment_result(existing, settled or None))
            invoice = None
            if invoice_number is not None:
                invoice = self._invoice_named(customer.id, invoice_number)
                if expected_invoice_version not in (None, invoice.version):
                    raise VersionMismatchError(expected_invoice_version, invoice.version)
            payment = Payment.record(
                customer_id=customer.id,
                number=number,
                invoice_id=invoice.id if invoice else None,
                invoice_number=invoice_number,
                **content,
            )
            to_save: list[Aggregate] = [payment]
            if invoice is not None:
                if invoice.currency != payment.currency:
                    raise ConflictError(
                        f"invoice {invoice.number} is in {invoice.currency}", field="currency"
                    )
                invoice.apply_payment(payment.id, payment.signed_amount)
                to_save.append(invoice)
            return Change(payment.id, payment.version, _payment_result(payment, invoice), to_save)

        return followed(self, self._recording(attempt, idempotency), customer_id, seen)

    def apply_credit_to_invoice(
        self,
        customer_id: UUID,
        invoice: UUID,
        amount: Decimal,
        *,
        expected_version: int | None = None,
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        """Settle part of an invoice with the customer's credit, never more than is left."""

        def attempt() -> Change:
            customer = self._billed_customer(customer_id)
            target = self._invoice(customer.id, invoice, expected_version)
            check_amount(amount, target.currency, "amount", positive=True)
            if amount > customer.credit_balance:
                raise ConflictError(
                    f"the customer's available credit is {customer.credit_balance}",
                    field="amount",
                )
            credit_id = customer.record_credit_use(amount, target.id, target.number)
            target.apply_credit(credit_id, amount)
            result = {
                **_invoice_result(target),
                "credit_id": credit_id,
                "credit_balance": customer.credit_balance,
            }
            return Change(target.id, target.version, result, [customer, target])

        return self.execute(attempt, idempotency, key=customer_id)

    def void_invoice(
        self,
        customer_id: UUID,
        invoice: UUID,
        *,
        expected_version: int,
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        """Void an invoice nothing has settled."""

        def attempt() -> Change:
            target = self._invoice(self._billed_customer(customer_id).id, invoice, expected_version)
            target.void()
            return Change(target.id, target.version, _invoice_result(target), [target])

        return self.execute(attempt, idempotency, key=invoice)

    def get_invoice(self, customer_id: UUID, invoice: UUID) -> Invoice:
        """The invoice now, with its lines (NotFoundError for another customer's)."""
        return self._invoice(customer_id, invoice, None)

    # ---- helpers --------------------------------------------------------------------------

    def _recording(self, attempt: Any, idempotency: Idempotency | None) -> Receipt:
        try:
            return self.execute(attempt, idempotency)
        except _AlreadyRecordedError as already:
            result = already.result
            position = self.recorder.max_notification_id() or 0
            return Receipt(result["id"], result["version"], position, result, replayed=True)

    def _billed_customer(self, customer_id: UUID) -> Customer:
        customer: Customer = self.load(customer_id, Customer, None)
        if customer.erased:
            raise ConflictError(f"customer {customer_id} is erased", field="erased")
        if customer.merged_into is not None:
            raise MergedCustomerError(customer.id, customer.merged_into)
        return customer

    def _existing(self, aggregate_id: UUID, kind: type[Aggregate]) -> Any:
        try:
            return self.load(aggregate_id, kind, None)
        except NotFoundError:
            return None

    def _invoice(self, customer_id: UUID, invoice: UUID, expected_version: int | None) -> Invoice:
        found: Invoice = self.load(invoice, Invoice, None)
        if found.customer_id != customer_id:
            raise NotFoundError("invoice", invoice)
        if expected_version is not None and expected_version != found.version:
            raise VersionMismatchError(expected_version, found.version)
        return found

    def _invoice_named(self, customer_id: UUID, number: str) -> Invoice:
        found = self._existing(invoice_id(number), Invoice)
        if found is None or found.customer_id != customer_id:
            raise RuleViolationError(
                "invoice_number", f"there is no invoice {number} for this customer"
            )
        invoice: Invoice = found
        return invoice


class _AlreadyRecordedError(Exception):
    """The record is already kept with this content: answer as the first time."""

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(result["id"])
        self.result = result


def _line(index: int, given: Mapping[str, Any]) -> InvoiceLine:
    unknown = set(given) - set(LINE_FIELDS)
    if unknown:
        raise RuleViolationError(f"lines.{index}.{sorted(unknown)[0]}", "not a field of a line")
    return InvoiceLine(
        description=given.get("description"),
        quantity=given["quantity"],
        unit_price=given["unit_price"],
        amount=Decimal(0),  # computed by Invoice.issue
        service_id=given.get("service_id"),
        list_price=given.get("list_price"),
    )


def _invoice_result(invoice: Invoice) -> dict[str, Any]:
    return {
        "id": invoice.id,
        "version": invoice.version,
        "number": invoice.number,
        "status": invoice.status,
        "total": invoice.total,
        "open_amount": invoice.open_amount,
    }


def _payment_result(payment: Payment, invoice: Invoice | None) -> dict[str, Any]:
    return {
        "id": payment.id,
        "version": payment.version,
        "number": payment.number,
        "invoice_id": payment.invoice_id,
        "invoice_status": invoice.status if invoice else None,
    }
