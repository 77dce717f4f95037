"""Invoices as the billing service sends them, and what has settled them.

The billing service owns invoicing; this service keeps a copy for the customer's payment
tab and the price exception report. An invoice is known by billing's own number: its id
is derived from it (uuid5), so a resend of the same invoice meets the first on one stream.
Resending the same content changes nothing; other content under the same number is a
conflict, never an edit (billing corrects an invoice by voiding it and issuing another).

    open → partially_paid → paid        payments and applied customer credit settle it,
    open | partially_paid → open ...    a refund reopens what it gives back,
    open → void                         only while nothing has settled it.

Amounts are in the invoice's one currency (`domain.money`); a line's amount is quantity
times unit price, rounded to the minor unit; the total is the sum of the lines. Every
event carries `customer_id`; a line's description may name people, so it is personal
data (`domain.personal_data`): the numbers, amounts and dates stay after an erasure,
as accounting law wants them kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING
from uuid import UUID, uuid5

from domain.base import TracedAggregate
from domain.errors import ConflictError, RuleViolationError
from domain.money import ZERO, check_amount, check_currency, rounded
from domain.relinking import Relinkable

__all__ = ["STATUSES", "Invoice", "InvoiceLine", "invoice_id"]

STATUSES = ("open", "partially_paid", "paid", "void")
_NAMESPACE = UUID("9d0b6c4e-3f1a-4e8b-b2d7-5c6a1e9f0a43")
MAX_LINES = 500
MAX_QUANTITY = 10_000_000
"""With unit prices of at most 15 digits, lines and totals stay exact in 28 digits."""


def invoice_id(number: str) -> UUID:
    """The id of billing's invoice `number` (numbers are unique across the business)."""
    return uuid5(_NAMESPACE, number)


@dataclass(frozen=True)
class InvoiceLine:
    """One line: what was sold, how many, at what price, and its list price if known."""

    description: str | None
    """Free text from billing; personal data (it may name the customer's people or things),
    None once the customer is erased."""
    quantity: Decimal
    unit_price: Decimal
    """What the customer was charged per unit."""
    amount: Decimal
    """quantity x unit_price, rounded to the currency's minor unit."""
    service_id: str | None = None
    """The service sold, as the business's catalogue names it."""
    list_price: Decimal | None = None
    """The catalogue price per unit when invoiced: a unit price that differs is a price
    exception (this service keeps no catalogue of its own)."""


class Invoice(Relinkable, TracedAggregate):
    """A copy of one of billing's invoices, with what has settled it."""

    if TYPE_CHECKING:  # annotations at run time would make the library build a dataclass
        customer_id: UUID
        number: str
        currency: str
        lines: list[InvoiceLine]
        issued_at: datetime
        due_at: datetime | None
        total: Decimal
        paid: Decimal
        """Payments less refunds."""
        credited: Decimal
        """Customer credit applied to it."""
        status: str

    class Issued(TracedAggregate.Created):
        customer_id: UUID
        number: str
        currency: str
        lines: list[InvoiceLine]
        issued_at: datetime
        due_at: datetime | None
        total: Decimal
        status: str

        def apply(self, invoice: Invoice) -> None:
            invoice.customer_id, invoice.number = self.customer_id, self.number
            invoice.currency, invoice.lines = self.currency, list(self.lines)
            invoice.issued_at, invoice.due_at = self.issued_at, self.due_at
            invoice.total, invoice.status = self.total, self.status
            invoice.paid = invoice.credited = rounded(ZERO, self.currency)  # "0.00"

    class PaymentApplied(TracedAggregate.Event):
        """A payment (positive) or refund (negative) of `domain.payments` on this invoice."""

        customer_id: UUID
        payment_id: UUID
        amount: Decimal
        status: str

        def apply(self, invoice: Invoice) -> None:
            invoice.paid += self.amount
            invoice.status = self.status

    class CreditApplied(TracedAggregate.Event):
        """Customer credit used to settle part of the invoice (`Customer.CreditApplied`)."""

        customer_id: UUID
        credit_id: UUID
        amount: Decimal
        status: str

        def apply(self, invoice: Invoice) -> None:
            invoice.credited += self.amount
            invoice.status = self.status

    class Voided(TracedAggregate.Event):
        customer_id: UUID

        def apply(self, invoice: Invoice) -> None:
            invoice.status = "void"

    # ---- merges of its customer ------------------------------------------------------------

    class Relinked(Relinkable.Relinked):
        pass

    @classmethod
    def issue(
        cls,
        *,
        customer_id: UUID,
        number: str,
        currency: str,
        lines: list[InvoiceLine],
        issued_at: datetime,
        due_at: datetime | None,
    ) -> Invoice:
        """Record billing's invoice; its lines' amounts and its total are computed here."""
        number, currency, priced = _checked(number, currency, lines, issued_at, due_at)
        total = sum((line.amount for line in priced), ZERO)
        return cls._create(
            cls.Issued,
            id=invoice_id(number),
            customer_id=customer_id,
            number=number,
            currency=currency,
            lines=priced,
            issued_at=issued_at,
            due_at=due_at,
            total=total,
            status=_status(total, ZERO),
        )

    def is_same(
        self,
        *,
        customer_id: UUID,
        currency: str,
        lines: list[InvoiceLine],
        issued_at: datetime,
        due_at: datetime | None,
    ) -> bool:
        """Whether a resend of this invoice's number says what the first send said."""
        _, currency, priced = _checked(self.number, currency, lines, issued_at, due_at)
        return (customer_id, currency, priced, issued_at, due_at) == (
            self.customer_id,
            self.currency,
            self.lines,
            self.issued_at,
            self.due_at,
        )

    @property
    def open_amount(self) -> Decimal:
        """What is still to pay (0 for a void invoice)."""
        if self.status == "void":
            return rounded(ZERO, self.currency)
        return self.total - self.paid - self.credited

    def apply_payment(self, payment_id: UUID, amount: Decimal) -> None:
        """Settle by a payment (positive) or give back by a refund (negative)."""
        self._check_not_void()
        if amount > self.open_amount:
            raise ConflictError(
                f"the payment of {amount} is more than the open amount {self.open_amount}",
                field="amount",
            )
        if -amount > self.paid:
            raise ConflictError(
                f"the refund of {-amount} is more than was paid on the invoice, {self.paid}",
                field="amount",
            )
        self.trigger_event(
            self.PaymentApplied,
            customer_id=self.customer_id,
            payment_id=payment_id,
            amount=amount,
            status=_status(self.total, self.paid + amount + self.credited),
        )

    def apply_credit(self, credit_id: UUID, amount: Decimal) -> None:
        """Settle part of the invoice with customer credit (at most its open amount)."""
        self._check_not_void()
        check_amount(amount, self.currency, "amount", positive=True)
        if amount > self.open_amount:
            raise ConflictError(
                f"{amount} is more than the open amount {self.open_amount}", field="amount"
            )
        self.trigger_event(
            self.CreditApplied,
            customer_id=self.customer_id,
            credit_id=credit_id,
            amount=amount,
            status=_status(self.total, self.paid + self.credited + amount),
        )

    def void(self) -> None:
        """Cancel an invoice nothing has settled (refund and return credit first)."""
        self._check_not_void()
        if self.paid or self.credited:
            raise ConflictError(
                f"{self.paid + self.credited} {self.currency} has settled this invoice:"
                " refund it before voiding",
                field="status",
            )
        self.trigger_event(self.Voided, customer_id=self.customer_id)

    def _check_not_void(self) -> None:
        if self.status == "void":
            raise ConflictError(f"invoice {self.number} is void", field="status")


def _status(total: Decimal, settled: Decimal) -> str:
    if settled >= total:
        return "paid"
    return "partially_paid" if settled > 0 else "open"


def _checked(
    number: str,
    currency: str,
    lines: list[InvoiceLine],
    issued_at: datetime,
    due_at: datetime | None,
) -> tuple[str, str, list[InvoiceLine]]:
    """The number, currency and lines (amounts computed) of a valid invoice; else 422."""
    number = number.strip()
    if not number:
        raise RuleViolationError("number", "an invoice needs billing's number")
    currency = check_currency(currency)
    if not lines:
        raise RuleViolationError("lines", "an invoice needs at least one line")
    if len(lines) > MAX_LINES:
        raise RuleViolationError("lines", f"at most {MAX_LINES} lines")
    if due_at is not None and due_at < issued_at:
        raise RuleViolationError("due_at", "an invoice cannot be due before it is issued")
    return number, currency, [_priced(i, line, currency) for i, line in enumerate(lines)]


def _priced(index: int, line: InvoiceLine, currency: str) -> InvoiceLine:
    field = f"lines.{index}"
    if not line.quantity.is_finite() or line.quantity <= 0:
        raise RuleViolationError(f"{field}.quantity", "must be more than 0")
    if line.quantity >= MAX_QUANTITY:
        raise RuleViolationError(f"{field}.quantity", f"must be less than {MAX_QUANTITY}")
    unit_price = check_amount(line.unit_price, currency, f"{field}.unit_price")
    list_price = (
        None
        if line.list_price is None
        else check_amount(line.list_price, currency, f"{field}.list_price")
    )
    description = line.description.strip() if line.description else None
    if not description and not line.service_id:
        raise RuleViolationError(f"{field}.description", "a line needs a description or a service")
    return InvoiceLine(
        description=description,
        quantity=line.quantity,
        unit_price=unit_price,
        amount=rounded(line.quantity * unit_price, currency),
        service_id=line.service_id,
        list_price=list_price,
    )
