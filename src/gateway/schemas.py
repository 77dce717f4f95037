"""The JSON shapes of the customer endpoints, as pydantic models.

Requests forbid unknown fields (a typo must not be silently dropped); responses are built
through these models too, so `/openapi.json` describes exactly what the handlers send.
Shape and type checks live here; business rules (uniqueness, at most two staff, a valid
phone number) are the domain's, which names the field in its own refusal.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from gateway.text import RequestModel

__all__ = [
    "AddressIn",
    "BlockIn",
    "CommandOut",
    "ContactIn",
    "CreditIn",
    "CustomerOut",
    "CustomerPatch",
    "CustomerRegistration",
    "EventOut",
    "EventsPage",
    "KeyCustodyIn",
    "NoteIn",
    "PriceIn",
    "RegisteredOut",
    "SystemIn",
    "SystemPatch",
]


def _no_float(value: Any) -> Any:
    # A JSON number is a binary float: 0.1 + 0.2 money errors start here.
    if isinstance(value, float):
        raise ValueError('money is a decimal string such as "12.50", not a number')
    return value


Money = Annotated[
    Decimal,
    BeforeValidator(_no_float),
    Field(max_digits=14, decimal_places=2),
    PlainSerializer(lambda d: format(d, "f"), return_type=str),
]
Percent = Annotated[Decimal, Field(ge=0, le=100, max_digits=5, decimal_places=2)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
ShortText = Annotated[str, Field(max_length=200)]
LongText = Annotated[str, Field(max_length=10_000)]
StaffId = Annotated[str, Field(min_length=1, max_length=100)]


class _In(RequestModel):
    """Extra fields forbidden, strings stripped, control characters refused."""


class AddressIn(_In):
    kind: Literal["delivery", "billing", "site"]
    line1: Name
    line2: ShortText | None = None
    city: ShortText | None = None
    region: ShortText | None = None
    postal_code: Annotated[str, Field(max_length=20)] | None = None
    country: ShortText | None = None


class _ProfileFields(_In):
    last_name: ShortText | None = None
    email: Annotated[str, Field(max_length=320)] | None = None
    mobile_phone: Annotated[str, Field(max_length=40)] | None = None
    phone: Annotated[str, Field(max_length=40)] | None = None
    parent_customer_id: UUID | None = None
    company_name: ShortText | None = None
    dba_name: ShortText | None = None
    tax_id: Annotated[str, Field(max_length=50)] | None = None
    birthday: date | None = None
    sex: Annotated[str, Field(max_length=20)] | None = None
    citizenship: ShortText | None = None
    id_number: Annotated[str, Field(max_length=50)] | None = None
    id_issued_by: ShortText | None = None
    group: ShortText | None = None
    store: ShortText | None = None
    dedicated_operator_id: StaffId | None = None
    preferred_staff_id: StaffId | None = None
    discount_percent: Percent | None = None
    payment_terms_days: Annotated[int, Field(ge=0, le=3650)] | None = None
    custom_fields: dict[Annotated[str, Field(max_length=100)], LongText] | None = None


class CustomerRegistration(_ProfileFields):
    """POST /v1/customers."""

    first_name: Name
    username: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    customer_number: Annotated[int, Field(gt=0, lt=2**63)] | None = None
    addresses: Annotated[list[AddressIn], Field(max_length=50)] = []
    source: ShortText = "telephone"
    assigned_staff_ids: Annotated[list[StaffId], Field(max_length=10)] = []
    newsletter: bool | None = None
    """Defaults to the business setting (CUSTOMERS_NEWSLETTER_DEFAULT)."""
    promotional_sms: bool = False
    notification_channels: list[Literal["email", "sms"]] = ["email"]
    gps_tracking_visible: bool = False
    send_registration_email: bool = True


class CustomerPatch(_ProfileFields):
    """PATCH /v1/customers/{id}: JSON merge patch; `null` clears an optional field."""

    # Non-nullable fields default to None only to tell "absent" from "given";
    # an explicit null is refused by their type.
    first_name: Name = None  # type: ignore[assignment]
    username: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    source: ShortText = None  # type: ignore[assignment]
    assigned_staff_ids: Annotated[list[StaffId], Field(max_length=10)] = None  # type: ignore[assignment]
    newsletter: bool = None  # type: ignore[assignment]
    promotional_sms: bool = None  # type: ignore[assignment]
    notification_channels: list[Literal["email", "sms"]] = None  # type: ignore[assignment]
    gps_tracking_visible: bool = None  # type: ignore[assignment]
    send_registration_email: bool = None  # type: ignore[assignment]
    consent_channel: ShortText | None = None
    """Where a newsletter/SMS consent change was given (telephone, portal, in person...)."""


class BlockIn(_In):
    reason: LongText | None = None


class NoteIn(_In):
    text: Annotated[str, Field(min_length=1, max_length=10_000)]
    urgent: bool = False


class ContactIn(_In):
    name: Name
    role: ShortText | None = None
    email: Annotated[str, Field(max_length=320)] | None = None
    phone: Annotated[str, Field(max_length=40)] | None = None


class SystemIn(_In):
    system_type: Name
    ip_address: Annotated[str, Field(max_length=100)] | None = None
    login: ShortText | None = None
    secret: Annotated[str, Field(max_length=1000)] | None = None
    """Write-only: stored encrypted, never returned."""
    version: ShortText | None = None
    notes: LongText | None = None


class SystemPatch(_In):
    system_type: Name = None  # type: ignore[assignment]
    ip_address: Annotated[str, Field(max_length=100)] | None = None
    login: ShortText | None = None
    secret: Annotated[str, Field(max_length=1000)] | None = None
    version: ShortText | None = None
    notes: LongText | None = None


class KeyCustodyIn(_In):
    holder_staff_id: StaffId
    location: ShortText | None = None


class PriceIn(_In):
    price: Money


class CreditIn(_In):
    amount: Money
    reason: Annotated[str, Field(min_length=1, max_length=1000)]


# ---- responses ------------------------------------------------------------------------


class DuplicateReasonOut(BaseModel):
    reason: Literal[
        "same_phone",
        "same_email",
        "same_tax_id",
        "similar_name_same_address",
        "similar_name_same_company",
    ]
    detail: str
    """Which fields matched (`mobile_phone ~ phone`), or how alike the names are: never
    the values themselves."""


class LikelyDuplicateOut(BaseModel):
    customer_id: UUID
    score: float = Field(ge=0, le=1)
    """0 to 1: how likely the two records are one customer."""
    reasons: list[DuplicateReasonOut]


class RegisteredOut(BaseModel):
    id: UUID
    customer_number: int
    version: int
    likely_duplicates: list[LikelyDuplicateOut] | None = None
    """Known customers this one is likely a duplicate of, best first: a warning, not a
    refusal. Read from the duplicates view when the registration was decided, so a
    customer registered moments before may be missing; null when it could not be read."""


class CommandOut(BaseModel):
    """The changed aggregate's id and version, plus the id of a part a command added."""

    model_config = ConfigDict(extra="allow")
    id: UUID
    version: int


class NoteOut(BaseModel):
    note_id: UUID
    text: str
    urgent: bool
    added_at: datetime
    added_by: str


class ContactOut(BaseModel):
    contact_id: UUID
    name: str
    role: str | None
    email: str | None
    phone: str | None


class AddressOut(BaseModel):
    address_id: UUID
    kind: str
    line1: str
    line2: str | None
    city: str | None
    region: str | None
    postal_code: str | None
    country: str | None


class SystemOut(BaseModel):
    system_id: UUID
    system_type: str
    ip_address: str | None
    login: str | None
    has_secret: bool
    version: str | None
    notes: str | None


class KeyCustodyOut(BaseModel):
    holder_staff_id: str
    location: str | None
    since: datetime


class CreditOut(BaseModel):
    credit_id: UUID
    amount: Money
    reason: str
    added_at: datetime
    added_by: str


class ConsentOut(BaseModel):
    topic: str
    granted: bool
    channel: str
    at: datetime
    by: str


class StandingMergeOut(BaseModel):
    merge_id: UUID
    merged_ids: list[UUID]


class CustomerOut(BaseModel):
    id: UUID
    customer_number: int
    version: int
    registered_at: datetime
    updated_at: datetime
    deleted: bool
    blocked: bool
    block_reason: str | None
    erased: bool
    first_name: str
    last_name: str | None
    email: str | None
    mobile_phone: str | None
    phone: str | None
    username: str | None
    parent_customer_id: UUID | None
    company_name: str | None
    dba_name: str | None
    tax_id: str | None
    birthday: date | None
    sex: str | None
    citizenship: str | None
    id_number: str | None
    id_issued_by: str | None
    source: str
    group: str | None
    store: str | None
    dedicated_operator_id: str | None
    preferred_staff_id: str | None
    assigned_staff_ids: list[str]
    discount_percent: (
        Annotated[Decimal, PlainSerializer(lambda d: format(d, "f"), return_type=str)] | None
    )
    payment_terms_days: int | None
    newsletter: bool
    promotional_sms: bool
    notification_channels: list[str]
    gps_tracking_visible: bool
    send_registration_email: bool
    custom_fields: dict[str, str]
    notes: list[NoteOut]
    """Urgent notes first."""
    contacts: list[ContactOut]
    addresses: list[AddressOut]
    systems: list[SystemOut]
    """Installed equipment; secrets are never returned."""
    key_custody: KeyCustodyOut | None
    custom_prices: dict[str, Money]
    credits: list[CreditOut]
    credit_balance: Money
    consents: list[ConsentOut]
    """Every newsletter and promotional SMS decision: when, where, by whom."""
    merges: list[StandingMergeOut] = []
    """Merges of duplicates into this customer that stand (not undone): what unmerge takes."""


class EventOut(BaseModel):
    position: int
    version: int
    type: str
    at: datetime
    actor: str
    correlation_id: str
    payload: dict[str, Any]


class EventsPage(BaseModel):
    items: list[EventOut]
    next_cursor: str | None
