"""What the customer's own events set in its history: the recorders of `Customer` events.

Field names (the `field` of a change):

    first_name, email, birthday, ...       profile fields, named as in the API
    assigned_staff_ids, notification_channels   the whole list
    custom_fields.<key>                    one custom field
    consent.newsletter, consent.promotional_sms
    customer_number                        (registration)
    deleted, blocked, block_reason, erased
    notes[<note_id>].text, .urgent
    contacts[<contact_id>].name, .role, .email, .phone
    addresses[<address_id>].kind, .line1, .line2, .city, .region, .postal_code, .country
    systems[<system_id>].system_type, .ip_address, .login, .secret, .version, .notes
    key_custody.holder_staff_id, key_custody.location
    custom_prices.<service_id>
    credits[<credit_id>].amount, .reason

A key or service id is everything after the first dot of `custom_fields.` or
`custom_prices.`. An equipment secret is never shown, sealed or not: `systems[<id>].secret`
is `"***"` when one is set and null when not, and every new secret is listed, `"***"` to
`"***"`. Profile fields follow the profile's declaration order, the others sorted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from domain.customers import CONSENT_TOPICS, Customer
from domain.personal_data import ADDRESS_FIELDS, CONTACT_FIELDS, EQUIPMENT_FIELDS, PROFILE_FIELDS
from domain.values import InstalledSystem, Profile
from projections.history_fields import (
    MASK,
    Fields,
    Recorders,
    Renewed,
    as_json,
    part_fields,
    removed_fields,
)

__all__ = ["RECORDERS", "SYSTEM_FIELDS", "profile_fields", "system_fields"]

RECORDERS = Recorders(
    personal=(
        *(name for name in PROFILE_FIELDS if name != "custom_fields"),
        "custom_fields.*",
        *(f"addresses[*].{name}" for name in ADDRESS_FIELDS),
        *(f"contacts[*].{name}" for name in CONTACT_FIELDS),
        *(f"systems[*].{name}" for name in EQUIPMENT_FIELDS),
        "notes[*].text",
        "block_reason",
        "key_custody.location",
        "credits[*].reason",
    )
)
"""What each `Customer` event sets in the customer's history (a merge's fields too)."""

_PROFILE_RANK = {name: rank for rank, name in enumerate(Profile.field_names())}
_CUSTOM_FIELDS = len("custom_fields.")
SYSTEM_FIELDS = tuple(f.name for f in dataclasses.fields(InstalledSystem))


@RECORDERS(Customer.Registered)
def _registered(event: Customer.Registered, before: Fields) -> Fields:
    fields: Fields = {"customer_number": event.customer_number}
    fields.update(profile_fields(vars(event.profile), before, in_order=True))
    for address in event.addresses:
        fields.update(part_fields("addresses", address.address_id, address))
    return fields


@RECORDERS(Customer.ProfileChanged)
def _profile_changed(event: Customer.ProfileChanged, before: Fields) -> Fields:
    return profile_fields(event.changes, before)


@RECORDERS(Customer.ConsentChanged)
def _consent_changed(event: Customer.ConsentChanged, before: Fields) -> Fields:
    return {f"consent.{event.topic}": event.granted}


@RECORDERS(Customer.Deleted)
def _deleted(event: Customer.Deleted, before: Fields) -> Fields:
    return {"deleted": True}


@RECORDERS(Customer.Restored)
def _restored(event: Customer.Restored, before: Fields) -> Fields:
    return {"deleted": False}


@RECORDERS(Customer.Blocked)
def _blocked(event: Customer.Blocked, before: Fields) -> Fields:
    return {"blocked": True, "block_reason": event.reason}


@RECORDERS(Customer.Unblocked)
def _unblocked(event: Customer.Unblocked, before: Fields) -> Fields:
    return {"blocked": False, "block_reason": None}


@RECORDERS(Customer.NoteAdded)
def _note_added(event: Customer.NoteAdded, before: Fields) -> Fields:
    prefix = f"notes[{event.note_id}]."
    return {f"{prefix}text": event.text, f"{prefix}urgent": event.urgent}


@RECORDERS(Customer.NoteRemoved)
def _noteremoved_fields(event: Customer.NoteRemoved, before: Fields) -> Fields:
    return removed_fields(before, f"notes[{event.note_id}].")


@RECORDERS(Customer.ContactAdded)
def _contact_added(event: Customer.ContactAdded, before: Fields) -> Fields:
    return part_fields("contacts", event.contact.contact_id, event.contact)


@RECORDERS(Customer.ContactRemoved)
def _contactremoved_fields(event: Customer.ContactRemoved, before: Fields) -> Fields:
    return removed_fields(before, f"contacts[{event.contact_id}].")


@RECORDERS(Customer.AddressAdded)
def _address_added(event: Customer.AddressAdded, before: Fields) -> Fields:
    return part_fields("addresses", event.address.address_id, event.address)


@RECORDERS(Customer.AddressRemoved)
def _addressremoved_fields(event: Customer.AddressRemoved, before: Fields) -> Fields:
    return removed_fields(before, f"addresses[{event.address_id}].")


@RECORDERS(Customer.SystemInstalled)
def _system_installed(event: Customer.SystemInstalled, before: Fields) -> Fields:
    system = event.system
    return system_fields(system.system_id, {name: getattr(system, name) for name in SYSTEM_FIELDS})


@RECORDERS(Customer.SystemChanged)
def _system_changed(event: Customer.SystemChanged, before: Fields) -> Fields:
    return system_fields(event.system_id, event.changes)


@RECORDERS(Customer.SystemRemoved)
def _systemremoved_fields(event: Customer.SystemRemoved, before: Fields) -> Fields:
    return removed_fields(before, f"systems[{event.system_id}].")


@RECORDERS(Customer.KeyCustodyChanged)
def _key_custody_changed(event: Customer.KeyCustodyChanged, before: Fields) -> Fields:
    return {
        "key_custody.holder_staff_id": event.holder_staff_id,
        "key_custody.location": event.location,
    }


@RECORDERS(Customer.CustomPriceSet)
def _custom_price_set(event: Customer.CustomPriceSet, before: Fields) -> Fields:
    return {f"custom_prices.{event.service_id}": as_json(event.price)}


@RECORDERS(Customer.Erased)
def _erased(event: Customer.Erased, before: Fields) -> Fields:
    return {"erased": True}


@RECORDERS(Customer.CreditAdded)
def _credit_added(event: Customer.CreditAdded, before: Fields) -> Fields:
    prefix = f"credits[{event.credit_id}]."
    return {f"{prefix}amount": as_json(event.amount), f"{prefix}reason": event.reason}


# ---- helpers ---------------------------------------------------------------------------


def profile_fields(values: Mapping[str, Any], before: Fields, *, in_order: bool = False) -> Fields:
    """Profile values as history fields, in the profile's order (`in_order`: already so)."""
    fields: Fields = {}
    for name in values if in_order else sorted(values, key=_profile_rank):
        value = values[name]
        if name == "custom_fields":
            new = value or {}
            old = {k[_CUSTOM_FIELDS:] for k in before if k.startswith("custom_fields.")}
            for key in sorted(old | set(new)):
                fields[f"custom_fields.{key}"] = new.get(key)
        elif name in CONSENT_TOPICS:
            fields[f"consent.{name}"] = value
        else:
            fields[name] = as_json(value)
    return fields


def _profile_rank(name: str) -> int:
    # A field no longer in the profile (old history) goes last.
    return _PROFILE_RANK.get(name, len(_PROFILE_RANK))


def system_fields(system_id: UUID, values: Mapping[str, Any]) -> Fields:
    """An installed system's fields; the sealed secret only as the mask, every new one listed."""
    prefix = f"systems[{system_id}]."
    fields: Fields = {}
    for name, value in values.items():
        if name == "system_id":
            continue
        if name == "sealed_secret":
            fields[f"{prefix}secret"] = Renewed(MASK) if value else None
        else:
            fields[f"{prefix}{name}"] = as_json(value)
    return fields
