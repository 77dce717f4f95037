"""Which fields of which events are personal data: the one list crypto-shredding works from.

The event mapper (`domain.shredding`) takes these fields out of an event before it is
stored, encrypts them with the data key of the event's customer (`domain.key_ring`), and
stores the event with the fields redacted beside the ciphertext. Reading puts them back
while the key exists; once the customer is erased (its key destroyed) the event loads
with the redacted values, so every stream still replays.

Personal, by event (fields of a value are named after a dot; `[]` is each item of a list):

    Customer.Registered         profile.{PROFILE_FIELDS}, addresses[].{ADDRESS_FIELDS}
    Customer.ProfileChanged     changes.{PROFILE_FIELDS}
    Customer.NoteAdded          text
    Customer.ContactAdded       contact.{CONTACT_FIELDS}
    Customer.AddressAdded       address.{ADDRESS_FIELDS}
    Customer.SystemInstalled    system.{EQUIPMENT_FIELDS}   (the secret is sealed with the
    Customer.SystemChanged      changes.{EQUIPMENT_FIELDS}   same data key before the event)
    Customer.Blocked            reason
    Customer.KeyCustodyChanged  location
    Customer.CreditAdded        reason
    Customer.Merged             notes[].text, contacts[].{CONTACT_FIELDS},
                                addresses[].{ADDRESS_FIELDS}, systems[].{EQUIPMENT_FIELDS},
                                credits[].reason, profile.{PROFILE_FIELDS},
                                replaced.{PROFILE_FIELDS}, key_custody.location
    Customer.Unmerged           profile.{PROFILE_FIELDS}
    Invoice.Issued              lines[].description
    Payment.Recorded            reference
    Appointment.Booked          notes
    Appointment.Cancelled       reason
    Ticket.Opened               problem, device.serial
    Ticket.StatusChanged        note, customer_note
    Ticket.Commented            text
    PortalAccount.PasswordSet   password_hash
    Pet.Added                   name, breed, birthday, notes, vet.{VET_FIELDS}
    Pet.Changed                 changes.{PET_PERSONAL_FIELDS}
    Interaction.Logged          summary
    ChatMessage.Posted          text
    SatisfactionScore.Given     comment
    CustomerFile.Uploaded       name   (the content is kept apart, and destroyed on erasure)
    LoyaltyLedger.PointsRecorded  reason
    CardWallet.CardAdded        token, last4, exp_month, exp_year (a provider's token ties a
                                card, and so a person, to this customer)
    CardWallet.CardMovedIn      the same, for a card a merge (or its undoing) moved in

The subject (whose key) is the customer: a Customer event's own aggregate, else the
event's `customer_id`. Not personal: ids, the customer number, staff ids, groups and
flags, consents, prices and amounts, times, statuses, ticket subjects and devices' make
and model, a pet's species, an interaction's kind and direction, a satisfaction score,
loyalty points, card brands and providers, package names, sessions and prices,
invoice and payment numbers, currencies, service ids and payment methods (what
accounting law keeps after an erasure). Reservations keep no value (their ids are
derived from one: see README).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any
from uuid import UUID

__all__ = [
    "ADDRESS_FIELDS",
    "CONTACT_FIELDS",
    "EQUIPMENT_FIELDS",
    "PET_PERSONAL_FIELDS",
    "PROFILE_FIELDS",
    "VET_FIELDS",
    "Each",
    "Spec",
    "Whole",
    "merge",
    "personal_fields",
    "personal_subject",
    "redacted",
    "split",
    "subject_of",
]

PROFILE_FIELDS = (
    "first_name",
    "last_name",
    "email",
    "mobile_phone",
    "phone",
    "username",
    "company_name",
    "dba_name",
    "tax_id",
    "birthday",
    "sex",
    "citizenship",
    "id_number",
    "id_issued_by",
    "custom_fields",
)
ADDRESS_FIELDS = ("line1", "line2", "city", "region", "postal_code", "country")
CONTACT_FIELDS = ("name", "email", "phone")
EQUIPMENT_FIELDS = ("ip_address", "login", "notes")
VET_FIELDS = ("name", "clinic", "phone")
PET_PERSONAL_FIELDS = ("name", "breed", "birthday", "notes", "vet")
"""A pet's name and care notes, and its vet, say who its owner is; its species does not."""

_REDACTED_AS: dict[str, Any] = {
    "first_name": "",
    "line1": "",
    "name": "",
    "custom_fields": {},
    "text": "",
    "reason": "",
}
"""What a redacted field reads as when it cannot be null (the rest read as null)."""


@dataclass(frozen=True)
class Whole:
    """The event field itself is personal; `redacted` is what it reads as once erased."""

    redacted: Any = None


@dataclass(frozen=True)
class Each:
    """The event field is a list of values whose `fields` are personal."""

    fields: tuple[str, ...]


Spec = dict[str, tuple[str, ...] | Each | Whole]
"""Per event field: the personal fields of its value (a dataclass or a dict), or Each, or Whole."""


_CARD: Spec = {"token": Whole(), "last4": Whole(), "exp_month": Whole(), "exp_year": Whole()}


@functools.cache
def personal_fields() -> dict[type[Any], Spec]:
    """Every event class with personal data, and where it is (imported late: the aggregates
    import this module for the field lists)."""
    from domain.appointments import Appointment
    from domain.cards import CardWallet
    from domain.chat import ChatMessage
    from domain.customers import Customer
    from domain.files import CustomerFile
    from domain.interactions import Interaction
    from domain.invoices import Invoice
    from domain.loyalty import LoyaltyLedger
    from domain.payments import Payment
    from domain.pets import Pet
    from domain.portal import PortalAccount
    from domain.satisfaction import SatisfactionScore
    from domain.tickets import Ticket

    return {
        Customer.Registered: {"profile": PROFILE_FIELDS, "addresses": Each(ADDRESS_FIELDS)},
        Customer.ProfileChanged: {"changes": PROFILE_FIELDS},
        Customer.NoteAdded: {"text": Whole("")},
        Customer.ContactAdded: {"contact": CONTACT_FIELDS},
        Customer.AddressAdded: {"address": ADDRESS_FIELDS},
        Customer.SystemInstalled: {"system": EQUIPMENT_FIELDS},
        Customer.SystemChanged: {"changes": EQUIPMENT_FIELDS},
        Customer.Blocked: {"reason": Whole()},
        Customer.KeyCustodyChanged: {"location": Whole()},
        Customer.CreditAdded: {"reason": Whole("")},
        Customer.Merged: {
            "notes": Each(("text",)),
            "contacts": Each(CONTACT_FIELDS),
            "addresses": Each(ADDRESS_FIELDS),
            "systems": Each(EQUIPMENT_FIELDS),
            "credits": Each(("reason",)),
            "profile": PROFILE_FIELDS,
            "replaced": PROFILE_FIELDS,
            "key_custody": ("location",),
        },
        Customer.Unmerged: {"profile": PROFILE_FIELDS},
        Appointment.Booked: {"notes": Whole()},
        Appointment.Cancelled: {"reason": Whole()},
        Ticket.Opened: {"problem": Whole(""), "device": ("serial",)},
        Ticket.StatusChanged: {"note": Whole(), "customer_note": Whole()},
        Ticket.Commented: {"text": Whole("")},
        PortalAccount.PasswordSet: {"password_hash": Whole()},
        Pet.Added: {
            "name": Whole(""),
            "breed": Whole(),
            "birthday": Whole(),
            "notes": Whole(),
            "vet": VET_FIELDS,
        },
        Pet.Changed: {"changes": PET_PERSONAL_FIELDS},
        Interaction.Logged: {"summary": Whole("")},
        ChatMessage.Posted: {"text": Whole("")},
        SatisfactionScore.Given: {"comment": Whole()},
        CustomerFile.Uploaded: {"name": Whole("")},
        LoyaltyLedger.PointsRecorded: {"reason": Whole("")},
        CardWallet.CardAdded: _CARD,
        CardWallet.CardMovedIn: _CARD,
        Invoice.Issued: {"lines": Each(("description",))},
        Payment.Recorded: {"reference": Whole()},
    }


def subject_of(event_class: type[Any], state: dict[str, Any], originator_id: UUID) -> UUID | None:
    """The customer whose key protects this event's personal data."""
    from domain.customers import Customer

    if issubclass(event_class, Customer.Event):
        return originator_id
    customer_id = state.get("customer_id")
    return customer_id if isinstance(customer_id, UUID) else None


def personal_subject(event: Any) -> UUID | None:
    """The customer whose key an event to be stored needs; None when it holds no personal data."""
    if type(event) not in personal_fields():
        return None
    return subject_of(type(event), vars(event), event.originator_id)


def split(spec: Spec, state: dict[str, Any]) -> dict[str, Any]:
    """Take the personal values out of `state` (left redacted in place); returns them."""
    personal: dict[str, Any] = {}
    for name, inner in spec.items():
        value = state.get(name)
        if value is None:
            continue
        if isinstance(inner, Whole):
            personal[name], state[name] = value, inner.redacted
        elif isinstance(inner, Each):
            taken = [_take(item, inner.fields) for item in value]
            state[name] = [item for item, _ in taken]
            personal[name] = [values for _, values in taken]
        else:
            state[name], personal[name] = _take(value, inner)
    return personal


def merge(spec: Spec, state: dict[str, Any], personal: dict[str, Any]) -> None:
    """Put personal values taken by `split` back into the (decoded) state."""
    for name, values in personal.items():
        inner = spec.get(name)
        if isinstance(inner, Whole) or inner is None:
            state[name] = values
        elif isinstance(inner, Each):
            state[name] = [_put(item, v) for item, v in zip(state[name], values, strict=True)]
        else:
            state[name] = _put(state[name], values)


def redacted(value: Any, names: tuple[str, ...]) -> Any:
    """`value` (a dataclass or a dict) with the fields `names` redacted."""
    return _take(value, names)[0]


def _take(value: Any, names: tuple[str, ...]) -> tuple[Any, dict[str, Any]]:
    if isinstance(value, dict):
        taken = {n: value[n] for n in names if value.get(n) is not None}
        return {**value, **{n: _REDACTED_AS.get(n) for n in taken}}, taken
    taken = {n: getattr(value, n) for n in names if getattr(value, n) is not None}
    if not taken:
        return value, taken
    return _replaced(value, {n: _REDACTED_AS.get(n) for n in taken}), taken


def _put(value: Any, taken: dict[str, Any]) -> Any:
    if not taken:
        return value
    if isinstance(value, dict):
        return {**value, **taken}
    return _replaced(value, taken)


def _replaced(value: Any, changes: dict[str, Any]) -> Any:
    """`dataclasses.replace(value, **changes)`, without running `__init__` again.

    Every stored and every replayed event with personal data goes through here (twice
    for a registration), and for a `Profile` `replace` costs 5 us: thirty frozen
    `object.__setattr__` calls. The value objects have no `__post_init__`, so a copy of
    the instance's `__dict__` is the same object; any other class gets `replace`.
    """
    kind = type(value)
    if kind not in _copyable:
        _copyable[kind] = _copyable_fields(kind)
    names = _copyable[kind]
    if names is None:
        return dataclasses.replace(value, **changes)
    unknown = changes.keys() - names
    if unknown:
        raise TypeError(f"{kind.__name__} has no field {sorted(unknown)[0]!r}")
    copy = object.__new__(kind)
    copy.__dict__.update(value.__dict__)
    copy.__dict__.update(changes)
    return copy


_copyable: dict[type, frozenset[str] | None] = {}
"""Per class: its field names when `_replaced` may copy its instances, else None."""


def _copyable_fields(kind: type) -> frozenset[str] | None:
    if (
        not dataclasses.is_dataclass(kind)
        or hasattr(kind, "__post_init__")
        or hasattr(kind, "__slots__")
        or not all(f.init for f in dataclasses.fields(kind))
    ):
        return None
    return frozenset(f.name for f in dataclasses.fields(kind))
