"""Payments and refunds as the billing service records them: the payment history tab.

A payment is known by billing's own payment number, its id derived from it (uuid5), so a
resend meets the first: the same content answers the same, other content is a conflict.
A refund is a payment of kind `refund` with a positive amount: the kind says which way
the money went, so a sign can never be lost or doubled on the way.

A payment may name the invoice it settles (by billing's invoice number); the invoice's
`PaymentApplied` event is then saved in the same atomic save, so the payment and the
invoice's status can never disagree. One that names none (a deposit, money on account)
is kept in the history only. `reference` (a bank or cheque reference, free text) may
name people: it is personal data; amount, method and dates stay after an erasure.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid5

from domain.base import TracedAggregate
from domain.errors import RuleViolationError
from domain.money import check_amount, check_currency
from domain.relinking import Relinkable

__all__ = ["KINDS", "METHODS", "Payment", "payment_id"]

KINDS = ("payment", "refund")
METHODS = ("cash", "card", "bank_transfer", "direct_debit", "cheque", "online", "other")
_NAMESPACE = UUID("2e7f5a90-6c1d-4b3e-8a5f-0d9c4b7e1f62")


def payment_id(number: str) -> UUID:
    """The id of billing's payment `number`."""
    return uuid5(_NAMESPACE, number)


class Payment(Relinkable, TracedAggregate):
    """A copy of one payment or refund billing recorded."""

    if TYPE_CHECKING:  # annotations at run time would make the library build a dataclass
        customer_id: UUID
        number: str
        kind: str
        amount: Decimal
        """Always positive: `kind` says which way it went."""
        currency: str
        method: str
        paid_at: datetime
        reference: str | None
        invoice_id: UUID | None
        invoice_number: str | None

    class Recorded(TracedAggregate.Created):
        customer_id: UUID
        number: str
        kind: str
        amount: Decimal
        currency: str
        method: str
        paid_at: datetime
        reference: str | None
        invoice_id: UUID | None
        invoice_number: str | None

        def apply(self, payment: Payment) -> None:
            payment.customer_id, payment.number = self.customer_id, self.number
            payment.kind, payment.amount, payment.currency = self.kind, self.amount, self.currency
            payment.method, payment.paid_at = self.method, self.paid_at
            payment.reference = self.reference
            payment.invoice_id, payment.invoice_number = self.invoice_id, self.invoice_number

    # ---- merges of its customer ------------------------------------------------------------

    class Relinked(Relinkable.Relinked):
        pass

    @classmethod
    def record(
        cls,
        *,
        customer_id: UUID,
        number: str,
        kind: str,
        amount: Decimal,
        currency: str,
        method: str,
        paid_at: datetime,
        reference: str | None,
        invoice_id: UUID | None,
        invoice_number: str | None,
    ) -> Payment:
        """Record billing's payment or refund (on an invoice or on account)."""
        values = _checked(number, kind, amount, currency, method, reference)
        return cls._create(
            cls.Recorded,
            id=payment_id(values["number"]),
            customer_id=customer_id,
            paid_at=paid_at,
            invoice_id=invoice_id,
            invoice_number=invoice_number,
            **values,
        )

    @property
    def signed_amount(self) -> Decimal:
        """What it adds to an invoice's paid amount: negative for a refund."""
        return -self.amount if self.kind == "refund" else self.amount

    def is_same(
        self,
        *,
        customer_id: UUID,
        kind: str,
        amount: Decimal,
        currency: str,
        method: str,
        paid_at: datetime,
        reference: str | None,
        invoice_number: str | None,
    ) -> bool:
        """Whether a resend of this payment's number says what the first send said."""
        values = _checked(self.number, kind, amount, currency, method, reference)
        mine = (self.customer_id, self.kind, self.amount, self.currency, self.method)
        theirs = (customer_id, values["kind"], values["amount"], values["currency"], method)
        return (mine, self.reference, self.paid_at, self.invoice_number) == (
            theirs,
            values["reference"],
            paid_at,
            invoice_number,
        )


def _checked(
    number: str, kind: str, amount: Decimal, currency: str, method: str, reference: str | None
) -> dict[str, Any]:
    number = number.strip()
    if not number:
        raise RuleViolationError("number", "a payment needs billing's number")
    if kind not in KINDS:
        raise RuleViolationError("kind", f"kind must be one of {list(KINDS)}")
    if method not in METHODS:
        raise RuleViolationError("method", f"method must be one of {list(METHODS)}")
    currency = check_currency(currency)
    return {
        "number": number,
        "kind": kind,
        "amount": check_amount(amount, currency, "amount", positive=True),
        "currency": currency,
        "method": method,
        "reference": reference.strip() if reference and reference.strip() else None,
    }
