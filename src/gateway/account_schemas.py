"""The JSON shapes of the loyalty, cards and packages tabs (`gateway.accounts`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from domain.loyalty import MAX_POINTS
from domain.packages import MAX_SESSIONS
from gateway.listing import PageQuery
from gateway.schemas import CommandOut, Money, Name, ShortText
from gateway.text import RequestModel

__all__ = [
    "CardAddedOut",
    "CardIn",
    "CardOut",
    "CardPage",
    "LoyaltyEntryIn",
    "LoyaltyEntryOut",
    "LoyaltyPage",
    "LoyaltyRecordedOut",
    "PackageIn",
    "PackageOut",
    "PackagePage",
    "PackageUsedOut",
    "PackagesQuery",
]

Brand = Literal["visa", "mastercard", "amex", "discover", "diners", "jcb", "unionpay", "maestro"]
"""`domain.cards.BRANDS`, spelled out for the OpenAPI document (a unit test holds them equal)."""
PackageStatus = Literal["active", "used_up", "expired", "deactivated"]


# ---- loyalty ------------------------------------------------------------------------------


class LoyaltyEntryIn(RequestModel):
    """POST /v1/customers/{id}/loyalty."""

    points: Annotated[int, Field(strict=True, ge=-MAX_POINTS, le=MAX_POINTS)]
    """Points awarded (positive) or taken (negative); not zero. The balance may not go
    below zero: a larger debit answers 409 naming the balance."""
    reason: Annotated[str, Field(min_length=1, max_length=500)]


class LoyaltyRecordedOut(CommandOut):
    """`id` and `version` are the ledger's (its ETag); the entry's own id and the balance."""

    entry_id: UUID
    balance: int


class LoyaltyEntryOut(BaseModel):
    id: UUID
    points: int
    reason: str | None
    """Null once the customer is erased."""
    balance: int
    """The balance after this entry."""
    recorded_at: datetime
    recorded_by: str


class LoyaltyPage(BaseModel):
    balance: int
    version: int
    """The ledger's version (0 before the first entry): If-Match for the next entry."""
    items: list[LoyaltyEntryOut]
    """Newest first."""
    next_cursor: str | None


# ---- cards --------------------------------------------------------------------------------


class CardIn(RequestModel):
    """POST /v1/customers/{id}/cards: what a payment provider returned for a card, never
    the card's number (anything that looks like one, anywhere, is refused with 422)."""

    provider: Annotated[str, Field(min_length=1, max_length=50, pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
    """The payment provider that issued the token (`stripe`, `adyen`...)."""
    token: Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$")]
    """The provider's opaque token for the card."""
    brand: Brand
    last4: Annotated[str, Field(pattern=r"^[0-9]{4}$")]
    exp_month: Annotated[int, Field(strict=True, ge=1, le=12)]
    exp_year: Annotated[int, Field(strict=True, ge=2000, le=2200)]
    """Not in the past (the card is valid through the end of its month)."""


class CardAddedOut(CommandOut):
    """`id` and `version` are the wallet's (If-Match of a removal); the card's own id."""

    card_id: UUID


class CardOut(BaseModel):
    id: UUID
    provider: str
    token: str | None
    """Staff and services only: null for a customer token."""
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    added_at: datetime
    added_by: str


class CardPage(BaseModel):
    version: int
    """The wallet's version (0 before the first card): If-Match of a removal."""
    items: list[CardOut]
    next_cursor: str | None


# ---- packages -----------------------------------------------------------------------------


class PackageIn(RequestModel):
    """POST /v1/customers/{id}/packages: a prepaid bundle of sessions sold to the customer."""

    name: Name
    service_id: ShortText | None = None
    """The service its sessions are for, if one."""
    sessions: Annotated[int, Field(strict=True, ge=1, le=MAX_SESSIONS)]
    expires_at: AwareDatetime | None = None
    """No use after this moment; in the future when bought."""
    price: Money | None = None
    """What the customer paid, a decimal string."""


class PackageUsedOut(CommandOut):
    use_id: UUID
    sessions_left: int


class PackageOut(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    id: UUID
    name: str
    service_id: str | None
    sessions: int
    sessions_left: int
    expires_at: datetime | None
    price: Money | None
    status: PackageStatus
    """Now: deactivated, used_up (no session left), expired, else active."""
    bought_at: datetime
    updated_at: datetime
    version: int
    """The package's version: If-Match of its use or deactivation."""


class PackagePage(BaseModel):
    items: list[PackageOut]
    """Newest first."""
    next_cursor: str | None


class PackagesQuery(PageQuery):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    status: list[PackageStatus] | None = None
    """Only packages with any of these statuses now (repeat for several): `active` for the
    active tab, the other three for the inactive one."""
