"""Value objects of the customer record and the rules that normalise contact points."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from domain.errors import RuleViolationError

__all__ = [
    "NOTIFICATION_CHANNELS",
    "Address",
    "Consent",
    "Contact",
    "Credit",
    "InstalledSystem",
    "KeyCustody",
    "Note",
    "Profile",
    "normalise_email",
    "normalise_phone",
]

NOTIFICATION_CHANNELS = ("email", "sms")
MAX_ASSIGNED_STAFF = 2
NOT_NULL_FIELDS = (
    "source",
    "assigned_staff_ids",
    "newsletter",
    "promotional_sms",
    "notification_channels",
    "gps_tracking_visible",
    "send_registration_email",
    "custom_fields",
)
"""Fields with a default but no "unknown": a merge-patch null cannot clear them."""


@dataclass(frozen=True)
class Profile:
    """Everything a customer is registered with, apart from the number and the parts."""

    first_name: str
    last_name: str | None = None
    email: str | None = None
    mobile_phone: str | None = None
    """E.164, unique across customers."""
    phone: str | None = None
    username: str | None = None
    """Unique, and immutable once set."""
    parent_customer_id: UUID | None = None
    """The head office of a multi-site customer."""
    company_name: str | None = None
    dba_name: str | None = None
    tax_id: str | None = None
    birthday: date | None = None
    sex: str | None = None
    citizenship: str | None = None
    id_number: str | None = None
    id_issued_by: str | None = None
    source: str = "telephone"
    """How the customer found the business; the seeds default to the telephone."""
    group: str | None = None
    store: str | None = None
    dedicated_operator_id: str | None = None
    preferred_staff_id: str | None = None
    """Gets appointments booked without a named staff member."""
    assigned_staff_ids: tuple[str, ...] = ()
    discount_percent: Decimal | None = None
    payment_terms_days: int | None = None
    newsletter: bool = True
    promotional_sms: bool = False
    notification_channels: tuple[str, ...] = ("email",)
    gps_tracking_visible: bool = False
    send_registration_email: bool = True
    custom_fields: dict[str, str] = field(default_factory=dict)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        """Rebuild from stored JSON, where tuples came back as lists."""
        values = dict(data)
        for name in ("assigned_staff_ids", "notification_channels"):
            if values.get(name) is not None:  # a null is left for check_rules to refuse
                values[name] = tuple(values[name])
        if values.keys() == _PROFILE_FIELD_NAMES:
            # Every field, as every stored profile has them: the frozen thirty-field
            # `__init__` would only set them one by one (a third of decoding a
            # registration). Profile has no `__post_init__` to skip.
            profile = object.__new__(cls)
            profile.__dict__.update(values)
            return profile
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def check_rules(self) -> None:
        """Raise RuleViolationError for the first value the business does not allow."""
        if not isinstance(self.first_name, str) or not self.first_name.strip():
            raise RuleViolationError("first_name", "first_name must not be blank")
        for name in NOT_NULL_FIELDS:
            if getattr(self, name) is None:
                raise RuleViolationError(name, f"{name} cannot be null")
        if len(self.assigned_staff_ids) > MAX_ASSIGNED_STAFF:
            raise RuleViolationError(
                "assigned_staff_ids", f"at most {MAX_ASSIGNED_STAFF} staff can be assigned"
            )
        if len(set(self.assigned_staff_ids)) != len(self.assigned_staff_ids):
            raise RuleViolationError("assigned_staff_ids", "a staff member is assigned twice")
        if self.discount_percent is not None and not 0 <= self.discount_percent <= 100:
            raise RuleViolationError("discount_percent", "discount_percent must be 0 to 100")
        if self.payment_terms_days is not None and self.payment_terms_days < 0:
            raise RuleViolationError("payment_terms_days", "payment_terms_days must be >= 0")
        unknown = set(self.notification_channels) - set(NOTIFICATION_CHANNELS)
        if unknown:
            raise RuleViolationError(
                "notification_channels",
                f"unknown channel(s) {sorted(unknown)}; allowed: {list(NOTIFICATION_CHANNELS)}",
            )
        if self.parent_customer_id is not None and not isinstance(self.parent_customer_id, UUID):
            raise RuleViolationError("parent_customer_id", "parent_customer_id must be a UUID")


_PROFILE_FIELD_NAMES = frozenset(Profile.field_names())


@dataclass(frozen=True)
class Note:
    note_id: UUID
    text: str
    urgent: bool
    added_at: datetime
    added_by: str


@dataclass(frozen=True)
class Contact:
    """A person to ask for at the customer's site."""

    contact_id: UUID
    name: str
    role: str | None = None
    email: str | None = None
    phone: str | None = None


@dataclass(frozen=True)
class Address:
    address_id: UUID
    kind: str
    """delivery, billing or site."""
    line1: str
    line2: str | None = None
    city: str | None = None
    region: str | None = None
    postal_code: str | None = None
    country: str | None = None


ADDRESS_KINDS = ("delivery", "billing", "site")


@dataclass(frozen=True)
class InstalledSystem:
    """Equipment at the customer's; the secret is only ever held sealed."""

    system_id: UUID
    system_type: str
    ip_address: str | None = None
    login: str | None = None
    sealed_secret: str | None = None
    version: str | None = None
    notes: str | None = None


@dataclass(frozen=True)
class KeyCustody:
    """Who holds the customer's keys, and where they are kept."""

    holder_staff_id: str
    location: str | None
    since: datetime


@dataclass(frozen=True)
class Credit:
    credit_id: UUID
    amount: Decimal
    reason: str
    added_at: datetime
    added_by: str


@dataclass(frozen=True)
class Consent:
    """One decision about marketing: kept as history, because regulators ask when and how."""

    topic: str
    """newsletter or promotional_sms."""
    granted: bool
    channel: str
    """Where the decision was taken: telephone, web, portal, in person, import..."""
    at: datetime
    by: str


def normalise_email(value: str, *, field_name: str = "email") -> str:
    """The address as stored: syntax checked (RFC 5322), domain lower-cased."""
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise RuleViolationError(field_name, f"not a valid email address: {error}") from None


def normalise_phone(value: str, region: str, *, field_name: str) -> str:
    """The number in E.164, whatever formatting was typed; local numbers read in `region`."""
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as error:
        raise RuleViolationError(field_name, f"not a phone number: {error}") from None
    if not phonenumbers.is_valid_number(number):
        raise RuleViolationError(field_name, f"not a valid phone number for region {region}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
