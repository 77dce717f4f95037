"""Stored payment cards: at most two per customer, kept only as a payment provider's token.

The service never holds a card number. A card is the token a payment provider (Stripe,
Adyen...) gave for it, with what people need to tell cards apart: brand, last 4 digits and
expiry. The cards of a customer are one wallet aggregate, its id derived from the
customer's (`card_wallet_id`), so two cards added at once meet on one stream and the
limit of two holds. Every event carries `customer_id`; token, last 4 digits and expiry
are the customer's personal data (`domain.personal_data`), unreadable once erased.

A merge of customers moves the merged one's cards to the survivor's wallet, each with its
id, while the survivor has room under the limit (`CardMovedIn` there, `CardsMovedOut` on
the merged wallet, which a merge always marks so that a card added there meanwhile meets
it on one stream); the survivor's wallet remembers which merge brought each card, and
undoing the merge moves those still there back (`domain.merge_accounts`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID, uuid4, uuid5

from domain.base import TracedAggregate
from domain.card_numbers import looks_like_card_number
from domain.errors import ConflictError, NotFoundError, RuleViolationError

__all__ = ["BRANDS", "MAX_CARDS", "CardWallet", "StoredCard", "card_wallet_id"]

MAX_CARDS = 2
"""Seed 002: "You or your customer can add up to 2 credit cards"."""
BRANDS = ("visa", "mastercard", "amex", "discover", "diners", "jcb", "unionpay", "maestro")

_NAMESPACE = UUID("d2b7c4e9-1f6a-4a3d-8e5b-7c0a9f3e6d14")
_LAST4 = re.compile(r"[0-9]{4}")
_TOKEN = re.compile(r"[\x21-\x7e]{1,255}")
_PROVIDER = re.compile(r"[a-z0-9][a-z0-9_.-]{0,49}")


def card_wallet_id(customer_id: UUID) -> UUID:
    """The id of a customer's wallet: every writer of that customer meets on one stream."""
    return uuid5(_NAMESPACE, str(customer_id))


@dataclass(frozen=True)
class StoredCard:
    card_id: UUID
    provider: str
    token: str
    """The provider's token: what a charge is made with, never the card number."""
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    added_at: datetime
    added_by: str


def _stored(
    event: CardWallet.CardAdded | CardWallet.CardMovedIn, added_at: datetime, added_by: str
) -> StoredCard:
    """The wallet's card for an event that put one in it, first added `added_at`."""
    return StoredCard(
        event.card_id,
        event.provider,
        event.token,
        event.brand,
        event.last4,
        event.exp_month,
        event.exp_year,
        added_at,
        added_by,
    )


class CardWallet(TracedAggregate):
    """A customer's stored cards."""

    if TYPE_CHECKING:  # annotations at run time would make the library build a dataclass
        customer_id: UUID
        cards: dict[UUID, StoredCard]
        brought: dict[UUID, tuple[UUID, UUID]]
        """By card id: the merge that moved it here and the customer it came from (kept
        when the card moves on, so undoing a later merge of this customer finds it again)."""

    class Opened(TracedAggregate.Created):
        customer_id: UUID

        def apply(self, wallet: CardWallet) -> None:
            wallet.customer_id, wallet.cards, wallet.brought = self.customer_id, {}, {}

    class CardAdded(TracedAggregate.Event):
        customer_id: UUID
        card_id: UUID
        provider: str
        token: str
        brand: str
        last4: str
        exp_month: int
        exp_year: int

        def apply(self, wallet: CardWallet) -> None:
            wallet.cards[self.card_id] = _stored(self, self.timestamp, self.actor)

    class CardRemoved(TracedAggregate.Event):
        customer_id: UUID
        card_id: UUID

        def apply(self, wallet: CardWallet) -> None:
            wallet.cards.pop(self.card_id, None)

    class CardMovedIn(TracedAggregate.Event):
        """A card a merge moved here from another customer's wallet (`undone`: moved back
        by its undoing), with its id and when and by whom it was first added."""

        customer_id: UUID
        card_id: UUID
        provider: str
        token: str
        brand: str
        last4: str
        exp_month: int
        exp_year: int
        added_at: datetime
        added_by: str
        merge_id: UUID
        from_customer_id: UUID
        undone: bool

        def apply(self, wallet: CardWallet) -> None:
            wallet.cards[self.card_id] = _stored(self, self.added_at, self.added_by)
            if not self.undone:
                wallet.brought[self.card_id] = (self.merge_id, self.from_customer_id)

    class CardsMovedOut(TracedAggregate.Event):
        """The cards a merge (or its undoing) moved to `to_customer_id`'s wallet; none when
        they did not fit or there were none: then only the merge's mark on the stream."""

        customer_id: UUID
        card_ids: list[UUID]
        merge_id: UUID
        to_customer_id: UUID
        undone: bool

        def apply(self, wallet: CardWallet) -> None:
            for card_id in self.card_ids:
                wallet.cards.pop(card_id, None)

    @classmethod
    def open(cls, customer_id: UUID) -> CardWallet:
        return cls._create(cls.Opened, id=card_wallet_id(customer_id), customer_id=customer_id)

    def add_card(
        self,
        *,
        provider: str,
        token: str,
        brand: str,
        last4: str,
        exp_month: int,
        exp_year: int,
        now: datetime,
    ) -> UUID:
        """Store a provider's token for a card that has not expired; at most two cards."""
        if not _PROVIDER.fullmatch(provider):
            raise RuleViolationError(
                "provider", "a provider's name: lower-case letters, digits, '.', '_' or '-'"
            )
        if not _TOKEN.fullmatch(token):
            raise RuleViolationError("token", "a token is 1 to 255 visible ASCII characters")
        if looks_like_card_number(token):
            raise RuleViolationError("token", "a token must not be the card number itself")
        if brand not in BRANDS:
            raise RuleViolationError("brand", f"brand must be one of {list(BRANDS)}")
        if not _LAST4.fullmatch(last4):
            raise RuleViolationError("last4", "the last 4 digits of the card number")
        if not 1 <= exp_month <= 12:
            raise RuleViolationError("exp_month", "a month, 1 to 12")
        if exp_year < now.year or exp_year > now.year + 50:
            raise RuleViolationError(
                "exp_year",
                "the card has expired" if exp_year < now.year else "an expiry year within 50 years",
            )
        if exp_year == now.year and exp_month < now.month:
            raise RuleViolationError("exp_month", "the card has expired")
        if any(c.provider == provider and c.token == token for c in self.cards.values()):
            raise ConflictError("this card is stored already", field="token")
        if len(self.cards) >= MAX_CARDS:
            raise ConflictError(
                f"a customer has at most {MAX_CARDS} cards: remove one first", field="cards"
            )
        card_id = uuid4()
        self.trigger_event(
            self.CardAdded,
            customer_id=self.customer_id,
            card_id=card_id,
            provider=provider,
            token=token,
            brand=brand,
            last4=last4,
            exp_month=exp_month,
            exp_year=exp_year,
        )
        return card_id

    def remove_card(self, card_id: UUID) -> None:
        if card_id not in self.cards:
            raise NotFoundError("card", card_id)
        self.trigger_event(self.CardRemoved, customer_id=self.customer_id, card_id=card_id)

    def move_out(
        self, to: CardWallet, merge_id: UUID, *, undone: bool = False
    ) -> tuple[list[UUID], dict[UUID, str]]:
        """Move cards to the wallet `to`, oldest first, while it has room; a card `to` holds
        already (same provider and token) stays. On undoing a merge: the cards that merge
        brought from `to`'s customer. Returns the ids moved and, by id, why one stayed
        (`survivor_has_it`, `no_room`)."""
        stayed: dict[UUID, str] = {}
        if undone:
            cards = [
                c
                for c in self.cards.values()
                if self.brought.get(c.card_id) == (merge_id, to.customer_id)
            ]
        else:
            held = {(c.provider, c.token) for c in to.cards.values()}
            room = max(MAX_CARDS - len(to.cards), 0)
            cards = []
            for card in sorted(self.cards.values(), key=lambda c: c.added_at):
                if (card.provider, card.token) in held:
                    stayed[card.card_id] = "survivor_has_it"
                elif len(cards) < room:
                    cards.append(card)
                else:
                    stayed[card.card_id] = "no_room"
        if cards or not undone:
            self.trigger_event(
                self.CardsMovedOut,
                customer_id=self.customer_id,
                card_ids=[c.card_id for c in cards],
                merge_id=merge_id,
                to_customer_id=to.customer_id,
                undone=undone,
            )
        for card in cards:
            to.trigger_event(
                to.CardMovedIn,
                customer_id=to.customer_id,
                card_id=card.card_id,
                provider=card.provider,
                token=card.token,
                brand=card.brand,
                last4=card.last4,
                exp_month=card.exp_month,
                exp_year=card.exp_year,
                added_at=card.added_at,
                added_by=card.added_by,
                merge_id=merge_id,
                from_customer_id=self.customer_id,
                undone=undone,
            )
        return [c.card_id for c in cards], stayed
