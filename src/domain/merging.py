"""Merging duplicate customers into one, and undoing a merge: the rules a user can predict.

A merge is events, so it can be undone. One survivor takes the merged customers, in the
order the request names them:

- parts: every note, contact, address, installed system and credit of a merged customer
  moves to the survivor with its id (ids are unique across customers); an equipment
  secret is sealed again with the survivor's data key;
- custom prices: the survivor's price for a service wins; a service it has no price for
  takes the merged customer's;
- profile: the survivor's non-empty values win; a field empty on the survivor (None, "",
  no items) is filled from the first merged customer, in request order, that has a value
  (first_name is never empty; flags such as newsletter always have a value: the
  survivor's stays). Key custody is filled the same way;
- the merged customer becomes a tombstone (`merged_into`), its own state left as it was:
  it refuses every change (409 naming the survivor) and GET answers 308 to the survivor.

Undoing a merge gives each merged customer back exactly as it was at the merge (its state
was never touched), and takes from the survivor everything that came with it: the parts
by id (also one changed on the survivor since: the customer gets it back as it was at the
merge; one removed since comes back too), the prices and the filled profile fields and
key custody that still hold the merged values (one changed on the survivor since is the
survivor's own now, and stays). Whatever was added to the survivor since the merge stays.

The public functions decide and trigger the events; `absorb` and `give_back` only apply
(they run again on every rebuild).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from uuid import UUID

from domain.base import TracedAggregate
from domain.errors import ConflictError, MergedCustomerError, RuleViolationError
from domain.values import Address, Contact, Credit, InstalledSystem, KeyCustody, Note, Profile

if TYPE_CHECKING:
    from domain.customers import Customer

__all__ = [
    "MAX_MERGED",
    "Merged",
    "MergedInto",
    "Unmerged",
    "UnmergedFrom",
    "absorb",
    "check_merge",
    "give_back",
    "merge",
    "unmerge",
]

MAX_MERGED = 20
"""Customers one merge takes at most: a longer list is a mistake, not duplicates."""


def check_merge(survivor: Customer, merged_ids: Sequence[UUID]) -> None:
    """Refuse a merge the request already shows is wrong (before loading the others)."""
    if not merged_ids:
        raise RuleViolationError("from", "name at least one customer to merge")
    if len(merged_ids) > MAX_MERGED:
        raise RuleViolationError("from", f"a merge takes at most {MAX_MERGED} customers")
    if len(set(merged_ids)) != len(merged_ids):
        raise RuleViolationError("from", "a customer is named twice")
    if survivor.id in merged_ids:
        raise ConflictError(f"customer {survivor.id} cannot be merged into itself", field="from")
    _check_can_take_part(survivor, "id", "the survivor")


def check_mergeable(customer: Customer) -> None:
    """Refuse to merge a customer that cannot go: erased, deleted, or merged already."""
    _check_can_take_part(customer, "from", f"customer {customer.id}")


def merge(
    survivor: Customer,
    merged: Sequence[Customer],
    merge_id: UUID,
    reseal: Callable[[InstalledSystem, UUID], InstalledSystem],
) -> dict[UUID, dict[str, Any]]:
    """Move each merged customer into the survivor, in order; returns what moved, by id.

    `reseal(system, from_id)` gives the system with its secret sealed for the survivor.
    """
    moved: dict[UUID, dict[str, Any]] = {}
    for customer in merged:
        current = survivor.profile
        filled: dict[str, Any] = {}
        replaced: dict[str, Any] = {}
        for name in Profile.field_names():
            mine, theirs = getattr(current, name), getattr(customer.profile, name)
            if _empty(mine) and not _empty(theirs) and theirs != survivor.id:
                filled[name], replaced[name] = theirs, mine
        prices = {
            service: price
            for service, price in customer.custom_prices.items()
            if service not in survivor.custom_prices
        }
        custody = customer.key_custody if survivor.key_custody is None else None
        survivor.trigger_event(
            type(survivor).Merged,
            merge_id=merge_id,
            merged_id=customer.id,
            notes=list(customer.notes.values()),
            contacts=list(customer.contacts.values()),
            addresses=list(customer.addresses.values()),
            systems=[reseal(s, customer.id) for s in customer.systems.values()],
            credits=list(customer.credits),
            custom_prices=prices,
            profile=filled,
            replaced=replaced,
            key_custody=custody,
        )
        customer.trigger_event(
            type(customer).MergedInto, survivor_id=survivor.id, merge_id=merge_id
        )
        moved[customer.id] = {
            "notes": list(customer.notes),
            "contacts": list(customer.contacts),
            "addresses": list(customer.addresses),
            "systems": list(customer.systems),
            "credits": [c.credit_id for c in customer.credits],
            "custom_prices": sorted(prices),
            "profile": sorted(filled),
            "key_custody": custody is not None,
        }
    return moved


def unmerge(survivor: Customer, customer: Customer) -> dict[str, Any]:
    """Give `customer` (merged into the survivor) back; returns what went back."""
    assert customer.merge_id is not None
    brought = survivor.merges[customer.merge_id][customer.id]
    revert = {
        name: brought.replaced[name]
        for name, value in brought.profile.items()
        if _same(getattr(survivor.profile, name), value)
    }
    prices = [
        service
        for service, price in brought.custom_prices.items()
        if survivor.custom_prices.get(service) == price
    ]
    custody = brought.key_custody is not None and survivor.key_custody == brought.key_custody
    parts = {
        "notes": [n.note_id for n in brought.notes],
        "contacts": [c.contact_id for c in brought.contacts],
        "addresses": [a.address_id for a in brought.addresses],
        "systems": [s.system_id for s in brought.systems],
        "credits": [c.credit_id for c in brought.credits],
    }
    survivor.trigger_event(
        type(survivor).Unmerged,
        merge_id=customer.merge_id,
        merged_id=customer.id,
        note_ids=parts["notes"],
        contact_ids=parts["contacts"],
        address_ids=parts["addresses"],
        system_ids=parts["systems"],
        credit_ids=parts["credits"],
        profile=revert,
        custom_prices=prices,
        key_custody=custody,
    )
    customer.trigger_event(
        type(customer).UnmergedFrom, survivor_id=survivor.id, merge_id=brought.merge_id
    )
    return {
        **parts,
        "custom_prices": sorted(prices),
        "profile": sorted(revert),
        "key_custody": custody,
    }


# ---- the events (nested in Customer under the same names) --------------------------------


class Merged(TracedAggregate.Event):
    """Survivor side: what one merged customer brought (parts keep their ids)."""

    merge_id: UUID
    merged_id: UUID
    notes: list[Note]
    contacts: list[Contact]
    addresses: list[Address]
    systems: list[InstalledSystem]
    credits: list[Credit]
    custom_prices: dict[str, Decimal]
    profile: dict[str, Any]
    """The survivor's empty profile fields, filled from the merged customer."""
    replaced: dict[str, Any]
    """What those fields held before (empty values), for an unmerge to put back."""
    key_custody: KeyCustody | None

    def apply(self, customer: Any) -> None:
        absorb(customer, self)


class MergedInto(TracedAggregate.Event):
    """Merged side: the customer became a tombstone pointing at the survivor."""

    survivor_id: UUID
    merge_id: UUID

    def apply(self, customer: Any) -> None:
        customer.merged_into, customer.merge_id = self.survivor_id, self.merge_id


class Unmerged(TracedAggregate.Event):
    """Survivor side: what one merged customer brought is given back."""

    merge_id: UUID
    merged_id: UUID
    note_ids: list[UUID]
    contact_ids: list[UUID]
    address_ids: list[UUID]
    system_ids: list[UUID]
    credit_ids: list[UUID]
    """The parts that came with the merged customer and leave with it."""
    profile: dict[str, Any]
    """The filled profile fields that still held the merged values, as they were before."""
    custom_prices: list[str]
    """The services whose price still is the merged customer's: dropped."""
    key_custody: bool
    """Whether the key custody is still the merged customer's: dropped."""

    def apply(self, customer: Any) -> None:
        give_back(customer, self)


class UnmergedFrom(TracedAggregate.Event):
    """Merged side: the customer is itself again, exactly as it was at the merge."""

    survivor_id: UUID
    merge_id: UUID

    def apply(self, customer: Any) -> None:
        customer.merged_into = customer.merge_id = None


# ---- applying (every rebuild runs these again: no rule is checked here) -------------------


def absorb(survivor: Customer, brought: Merged) -> None:
    survivor.notes.update({n.note_id: n for n in brought.notes})
    survivor.contacts.update({c.contact_id: c for c in brought.contacts})
    survivor.addresses.update({a.address_id: a for a in brought.addresses})
    survivor.systems.update({s.system_id: s for s in brought.systems})
    survivor.credits.extend(brought.credits)
    survivor.custom_prices.update(brought.custom_prices)
    if brought.profile:
        survivor.profile = Profile.from_dict({**survivor.profile.as_dict(), **brought.profile})
    if brought.key_custody is not None:
        survivor.key_custody = brought.key_custody
    survivor.merges.setdefault(brought.merge_id, {})[brought.merged_id] = brought


def give_back(survivor: Customer, back: Unmerged) -> None:
    del survivor.merges[back.merge_id][back.merged_id]
    if not survivor.merges[back.merge_id]:
        del survivor.merges[back.merge_id]
    for parts, ids in (
        (survivor.notes, back.note_ids),
        (survivor.contacts, back.contact_ids),
        (survivor.addresses, back.address_ids),
        (survivor.systems, back.system_ids),
    ):
        for part_id in ids:
            parts.pop(part_id, None)  # gone already if removed from the survivor since
    credit_ids = set(back.credit_ids)
    survivor.credits = [c for c in survivor.credits if c.credit_id not in credit_ids]
    for service in back.custom_prices:
        survivor.custom_prices.pop(service, None)
    if back.profile:
        survivor.profile = Profile.from_dict({**survivor.profile.as_dict(), **back.profile})
    if back.key_custody:
        survivor.key_custody = None


# ---- helpers ---------------------------------------------------------------------------


def _check_can_take_part(customer: Customer, field: str, who: str) -> None:
    if customer.erased:
        raise ConflictError(f"{who} is erased: it cannot take part in a merge", field=field)
    if customer.merged_into is not None:
        raise MergedCustomerError(customer.id, customer.merged_into, field=field)
    if customer.deleted:
        raise ConflictError(f"{who} is deleted; restore it first", field=field)


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | tuple | list | dict) and not value)


def _same(current: Any, stored: Any) -> bool:
    """Equal, reading a stored list as the tuple it was."""
    if isinstance(current, tuple) and isinstance(stored, list):
        return current == tuple(stored)
    return bool(current == stored)
