"""What merges and their undoing set in the histories of both sides.

Field names, beside those of `customer_history`:

    merged_into                  the survivor, while the customer is merged (a tombstone)
    merged_from[<customer_id>]   on a survivor: the merge that brought that customer

The survivor's row of a merge lists everything that came with one merged customer as if
added (its parts, prices, filled profile fields, key custody) and `merged_from[<id>]` =
the merge id; the row of the undoing lists the same as removed (or put back, for profile
fields) and `merged_from[<id>]` back to null. The merged customer's rows set and clear
`merged_into`: its own fields never changed, so nothing else is listed there.
"""

from __future__ import annotations

from typing import Any

from domain.customers import Customer
from projections.customer_history import SYSTEM_FIELDS, profile_fields, system_fields
from projections.history_fields import Fields, Recorders, as_json, part_fields, removed_fields

__all__ = ["RECORDERS"]

RECORDERS = Recorders()  # its fields are the customer's: customer_history names the personal ones
"""What the merge events of `Customer` set in the histories of both sides."""


@RECORDERS(Customer.Merged)
def _merged(event: Customer.Merged, before: Fields) -> Fields:
    fields: Fields = {f"merged_from[{event.merged_id}]": str(event.merge_id)}
    fields.update(profile_fields(event.profile, before))
    for note in event.notes:
        prefix = f"notes[{note.note_id}]."
        fields.update({f"{prefix}text": note.text, f"{prefix}urgent": note.urgent})
    for contact in event.contacts:
        fields.update(part_fields("contacts", contact.contact_id, contact))
    for address in event.addresses:
        fields.update(part_fields("addresses", address.address_id, address))
    for system in event.systems:
        values = {name: getattr(system, name) for name in SYSTEM_FIELDS}
        fields.update(system_fields(system.system_id, values))
    for credit in event.credits:
        prefix = f"credits[{credit.credit_id}]."
        fields[f"{prefix}amount"] = as_json(credit.amount)
        fields[f"{prefix}reason"] = credit.reason
    for service_id, price in sorted(event.custom_prices.items()):
        fields[f"custom_prices.{service_id}"] = as_json(price)
    if event.key_custody is not None:
        fields["key_custody.holder_staff_id"] = event.key_custody.holder_staff_id
        fields["key_custody.location"] = event.key_custody.location
    return fields


@RECORDERS(Customer.Unmerged)
def _unmerged(event: Customer.Unmerged, before: Fields) -> Fields:
    fields: Fields = {f"merged_from[{event.merged_id}]": None}
    for collection, ids in (
        ("notes", event.note_ids),
        ("contacts", event.contact_ids),
        ("addresses", event.address_ids),
        ("systems", event.system_ids),
        ("credits", event.credit_ids),
    ):
        for part_id in ids:
            fields.update(removed_fields(before, f"{collection}[{part_id}]."))
    for service_id in sorted(event.custom_prices):
        fields[f"custom_prices.{service_id}"] = None
    fields.update(profile_fields(event.profile, before))
    if event.key_custody:
        fields.update(removed_fields(before, "key_custody."))
    return fields


@RECORDERS(Customer.MergedInto)
def _merged_into(event: Any, before: Fields) -> Fields:
    return {"merged_into": str(event.survivor_id)}


@RECORDERS(Customer.UnmergedFrom)
def _unmerged_from(event: Any, before: Fields) -> Fields:
    return {"merged_into": None}
