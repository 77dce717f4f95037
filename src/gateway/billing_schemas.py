"""The JSON shapes of invoices, payments, credit applied to invoices and the price report.

Money is a decimal string ("12.50"): a JSON number (a binary float) is refused, and so
are NaN and infinities. Up to three decimal places pass here; the currency's own minor
unit (2 for EUR, 0 for JPY, 3 for KWD) is the domain's check (`domain.money`), which names
the field too.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from gateway.listing import PageQuery
from gateway.schemas import CommandOut
from gateway.text import RequestModel

__all__ = [
    "CreditUseIn",
    "CreditUseOut",
    "InvoiceIn",
    "InvoiceOut",
    "InvoicePage",
    "InvoiceRecordedOut",
    "InvoicesQuery",
    "PaymentIn",
    "PaymentPage",
    "PaymentRecordedOut",
    "PaymentsQuery",
    "PriceExceptionPage",
    "PriceExceptionsQuery",
]

InvoiceStatus = Literal["open", "partially_paid", "paid", "void"]
Method = Literal["cash", "card", "bank_transfer", "direct_debit", "cheque", "online", "other"]


def _decimal_string(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError('money is a decimal string such as "12.50", not a JSON number')
    return value


def _no_float(value: Any) -> Any:
    if isinstance(value, float):
        raise ValueError('a quantity is a decimal string such as "1.5", or an integer')
    return value


_PLAIN = PlainSerializer(lambda d: format(d, "f"), return_type=str, when_used="json")
Amount = Annotated[
    Decimal,
    BeforeValidator(_decimal_string),
    Field(ge=0, max_digits=15, decimal_places=3, examples=["12.50"]),
    _PLAIN,
]
Quantity = Annotated[
    Decimal,
    BeforeValidator(_no_float),
    # Bounded so that a line (quantity x a 15-digit price) and a 500-line total stay exact
    # in Decimal's 28 digits.
    Field(gt=0, lt=10_000_000, max_digits=10, decimal_places=3, examples=["1", "1.5"]),
    _PLAIN,
]
MoneyOut = Annotated[Decimal, _PLAIN]
Number = Annotated[str, Field(min_length=1, max_length=64)]
"""Billing's own number of the record: the key a resend is recognised by."""
CurrencyCode = Annotated[str, Field(pattern=r"^[A-Za-z]{3}$", examples=["EUR"])]
ServiceId = Annotated[str, Field(min_length=1, max_length=100)]


class InvoiceLineIn(RequestModel):
    description: Annotated[str, Field(max_length=1000)] | None = None
    """What was sold (personal data: gone after an erasure). A line needs a description
    or a service_id."""
    quantity: Quantity
    unit_price: Amount
    """What the customer was charged per unit."""
    service_id: ServiceId | None = None
    list_price: Amount | None = None
    """The catalogue price per unit: a unit price that differs is a price exception."""


class InvoiceIn(RequestModel):
    """POST /v1/customers/{id}/invoices: billing's invoice."""

    number: Number
    currency: CurrencyCode
    """ISO 4217; every amount of the invoice is in it."""
    issued_at: AwareDatetime
    due_at: AwareDatetime | None = None
    lines: Annotated[list[InvoiceLineIn], Field(min_length=1, max_length=500)]


class PaymentIn(RequestModel):
    """POST /v1/customers/{id}/payments: billing's payment or refund."""

    number: Number
    kind: Literal["payment", "refund"] = "payment"
    """A refund gives money back (its amount is positive too)."""
    amount: Amount
    currency: CurrencyCode
    method: Method
    paid_at: AwareDatetime
    reference: Annotated[str, Field(max_length=200)] | None = None
    """A bank or cheque reference (personal data: gone after an erasure)."""
    invoice_number: Number | None = None
    """The invoice it settles (or refunds), by billing's number; none: money on account."""


CreditAmount = Annotated[
    Decimal,
    BeforeValidator(_decimal_string),
    Field(gt=0, max_digits=14, decimal_places=2, examples=["12.50"]),
    _PLAIN,
]
"""Customer credit is kept in cents, as `POST /v1/customers/{id}/credits` takes it."""


class CreditUseIn(RequestModel):
    """POST .../invoices/{invoice_id}/apply-credit."""

    amount: CreditAmount
    """At most the customer's available credit and the invoice's open amount (and no more
    decimal places than the invoice's currency has)."""


class InvoiceRecordedOut(CommandOut):
    number: str
    status: InvoiceStatus
    total: MoneyOut
    open_amount: MoneyOut


class CreditUseOut(InvoiceRecordedOut):
    credit_id: UUID
    credit_balance: MoneyOut
    """The customer's credit left after this use."""


class PaymentRecordedOut(CommandOut):
    number: str
    invoice_id: UUID | None
    invoice_status: InvoiceStatus | None
    """The invoice's status after the payment (null: none named)."""


class InvoiceLineOut(BaseModel):
    description: str | None
    quantity: MoneyOut
    unit_price: MoneyOut
    amount: MoneyOut
    service_id: str | None
    list_price: MoneyOut | None


class InvoiceOut(BaseModel):
    id: UUID
    customer_id: UUID
    number: str
    currency: str
    lines: list[InvoiceLineOut]
    total: MoneyOut
    paid: MoneyOut
    """Payments less refunds."""
    credited: MoneyOut
    """Customer credit applied."""
    open_amount: MoneyOut
    status: InvoiceStatus
    issued_at: datetime
    due_at: datetime | None
    version: int


class InvoiceItem(BaseModel):
    id: UUID
    customer_id: UUID
    number: str
    currency: str
    total: MoneyOut
    paid: MoneyOut
    credited: MoneyOut
    open_amount: MoneyOut
    status: InvoiceStatus
    overdue: bool
    """Past its due time with an open amount."""
    line_count: int
    issued_at: datetime
    due_at: datetime | None
    updated_at: datetime
    version: int


class InvoicePage(BaseModel):
    items: list[InvoiceItem]
    next_cursor: str | None


class PaymentItem(BaseModel):
    id: UUID
    customer_id: UUID
    number: str
    kind: Literal["payment", "refund"]
    amount: MoneyOut
    currency: str
    method: Method
    reference: str | None
    invoice_id: UUID | None
    invoice_number: str | None
    paid_at: datetime
    recorded_at: datetime


class PaymentPage(BaseModel):
    items: list[PaymentItem]
    next_cursor: str | None


class PriceExceptionItem(BaseModel):
    id: UUID
    customer_id: UUID
    invoice_id: UUID
    invoice_number: str
    invoice_status: InvoiceStatus
    line_index: int
    """The line's place on the invoice, from 0."""
    currency: str
    service_id: str | None
    description: str | None
    quantity: MoneyOut
    unit_price: MoneyOut
    """What the customer paid per unit."""
    list_price: MoneyOut
    difference: MoneyOut
    """unit_price - list_price (negative: below the list price)."""
    custom_price_at_issue: MoneyOut | None
    """The customer's custom price for the service when the invoice was issued."""
    custom_price: MoneyOut | None
    """The customer's custom price for the service today."""
    matches_custom_price: bool | None
    """Whether the unit price is the custom price of the day (null: there was none)."""
    issued_at: datetime


class PriceExceptionPage(BaseModel):
    items: list[PriceExceptionItem]
    next_cursor: str | None


class _Query(PageQuery):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class InvoicesQuery(_Query):
    status: list[InvoiceStatus] | None = None
    """Any of these statuses (repeat the parameter for several)."""


class PaymentsQuery(_Query):
    pass


class PriceExceptionsQuery(_Query):
    customer_id: UUID | None = None
    service_id: ServiceId | None = None
    from_: date | None = Field(default=None, alias="from")
    """Invoices issued on or after this day (in the business time zone)."""
    to: date | None = None
    """Invoices issued on or before this day (in the business time zone)."""
