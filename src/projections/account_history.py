"""What loyalty, card and package events set in their customer's history.

Field names (the `field` of a change):

    loyalty[<entry_id>].points, .reason    one ledger entry
    loyalty.balance                        the balance after it
    cards[<card_id>].provider, .brand, .last4, .expiry   (`2029-12`; never the token)
    packages[<package_id>].name, .service_id, .sessions, .sessions_left, .expires_at,
        .price, .deactivated

A removed card clears its fields. Opening a ledger or a wallet changes nothing shown. A
merge (or its undoing) shows as the entry it made on each side (`PointsMoved`; none for no
points), and as the cards it moved: set on the customer they went to, cleared on the other.
"""

from __future__ import annotations

from domain.cards import CardWallet
from domain.loyalty import LoyaltyLedger
from domain.packages import Package
from projections.history_fields import Fields, Recorders, as_json, removed_fields

__all__ = ["RECORDERS"]

RECORDERS = Recorders(personal=("loyalty[*].reason", "cards[*].last4", "cards[*].expiry"))
"""What each loyalty, card and package event sets in the customer's history."""


@RECORDERS(LoyaltyLedger.PointsMoved)
@RECORDERS(LoyaltyLedger.PointsRecorded)
def _points(event: LoyaltyLedger.PointsRecorded, before: Fields) -> Fields | None:
    if not event.points:  # a merge's mark on a ledger without points
        return None
    prefix = f"loyalty[{event.entry_id}]."
    return {
        f"{prefix}points": event.points,
        f"{prefix}reason": event.reason,
        "loyalty.balance": event.balance,
    }


@RECORDERS(CardWallet.CardMovedIn)
@RECORDERS(CardWallet.CardAdded)
def _card_added(event: CardWallet.CardAdded, before: Fields) -> Fields:
    prefix = f"cards[{event.card_id}]."
    expiry = (
        f"{event.exp_year:04d}-{event.exp_month:02d}"
        if event.exp_year is not None and event.exp_month is not None
        else None
    )
    return {
        f"{prefix}provider": event.provider,
        f"{prefix}brand": event.brand,
        f"{prefix}last4": event.last4,
        f"{prefix}expiry": expiry,
    }


@RECORDERS(CardWallet.CardRemoved)
def _card_removed(event: CardWallet.CardRemoved, before: Fields) -> Fields:
    return removed_fields(before, f"cards[{event.card_id}].")


@RECORDERS(CardWallet.CardsMovedOut)
def _cards_moved_out(event: CardWallet.CardsMovedOut, before: Fields) -> Fields | None:
    if not event.card_ids:  # a merge's mark on a wallet it took nothing from
        return None
    cleared: Fields = {}
    for card_id in event.card_ids:
        cleared.update(removed_fields(before, f"cards[{card_id}]."))
    return cleared


@RECORDERS(Package.Bought)
def _bought(event: Package.Bought, before: Fields) -> Fields:
    prefix = f"packages[{event.originator_id}]."
    return {
        f"{prefix}name": event.name,
        f"{prefix}service_id": event.service_id,
        f"{prefix}sessions": event.sessions,
        f"{prefix}sessions_left": event.sessions,
        f"{prefix}expires_at": as_json(event.expires_at),
        f"{prefix}price": as_json(event.price),
        f"{prefix}deactivated": False,
    }


@RECORDERS(Package.SessionUsed)
def _used(event: Package.SessionUsed, before: Fields) -> Fields:
    return {f"packages[{event.originator_id}].sessions_left": event.sessions_left}


@RECORDERS(Package.Deactivated)
def _deactivated(event: Package.Deactivated, before: Fields) -> Fields:
    return {f"packages[{event.originator_id}].deactivated": True}
