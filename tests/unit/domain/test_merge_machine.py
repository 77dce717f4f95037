"""A Hypothesis state machine of merges and unmerges among generated customers.

Customers get parts, prices, credits and records of every kind a merge moves
(`LINKED_KINDS`: appointments, tickets, pets, files, interactions, chat messages,
satisfaction scores, packages, invoices, payments); merges (into survivors that were merged
before, through chains) and unmerges come in any order. Pinned down: unmerging gives each
merged customer back exactly as it was at the merge (compared field by field, and the very
records it owned); a survivor nobody touched since the merge comes back exactly as it was
before it; the survivor keeps its own records and none of the merged one's; no record ever
points at a tombstone; every email, mobile phone and username is held by the customer whose
record (or whose merged customers' records) has it. Loyalty points and stored cards: every
ledger's entries add up to its balance, a tombstone has no points, no point and no card is
ever lost or made by a merge or unmerge, a customer holds at most 2 cards, and an unmerge
gives the merged customer back its balance and its cards (or is refused naming `loyalty`
when the survivor spent the points since).
"""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from tests.unit.domain.records import KINDS, new_record

from domain.cards import MAX_CARDS, CardWallet, card_wallet_id
from domain.customers import Customer
from domain.errors import ConflictError, MergedCustomerError
from domain.loyalty import LoyaltyLedger, PointsSpentSinceMergeError, loyalty_ledger_id
from domain.merge_commands import LINKED_KINDS, held_values
from domain.portal import PortalAccount
from domain.relinking import Relinkable
from domain.reservations import Reservation, reservation_id
from domain.sealing import SecretSealer
from domain.service import CustomerService

SETTINGS = settings(max_examples=200, stateful_step_count=40, deadline=None)
_numbers = itertools.count(1000)


def snapshot(customer: Customer) -> dict[str, Any]:
    """Everything a customer is, field by field (not its version or timestamps)."""
    return {
        "customer_number": customer.customer_number,
        "profile": customer.profile.as_dict(),
        "deleted": customer.deleted,
        "blocked": customer.blocked,
        "erased": customer.erased,
        "notes": dict(customer.notes),
        "contacts": dict(customer.contacts),
        "addresses": dict(customer.addresses),
        "systems": dict(customer.systems),
        "key_custody": customer.key_custody,
        "custom_prices": dict(customer.custom_prices),
        "credits": list(customer.credits),
        "consents": list(customer.consents),
        "merged_into": customer.merged_into,
        "merges": {m: sorted(s) for m, s in customer.merges.items()},
    }


class MergeMachine(RuleBasedStateMachine):
    customers = Bundle("customers")

    def __init__(self) -> None:
        super().__init__()
        self.service = CustomerService(sealer=SecretSealer(SecretSealer.generate_key()))
        self.records: list[UUID] = []
        self.standing: dict[UUID, dict[str, Any]] = {}
        """By merge id: survivor, merged ids, their snapshots, the survivor's before."""
        self.customer_ids: set[UUID] = set()
        self.points = 0
        """Every point awarded less every point spent: what all ledgers hold together."""
        self.cards: set[UUID] = set()
        """Every card added and not removed: what all wallets hold together."""

    def _get(self, customer_id: UUID) -> Customer:
        return self.service.get_customer(customer_id)

    def _live(self, customer_id: UUID) -> bool:
        c = self._get(customer_id)
        return c.merged_into is None and not c.erased and not c.deleted

    # ---- making customers and their records -------------------------------------------

    @initialize(target=customers)
    def first_customers(self) -> Any:
        from hypothesis.stateful import multiple

        return multiple(*(self.register(True, True, None, None) for _ in range(3)))

    @rule(
        target=customers,
        email=st.booleans(),
        mobile=st.booleans(),
        company=st.sampled_from([None, "Acme", "Globex"]),
        group=st.sampled_from([None, "vip"]),
    )
    def register(self, email: bool, mobile: bool, company: str | None, group: str | None) -> UUID:
        n = next(_numbers)
        fields: dict[str, Any] = {"first_name": f"C{n}", "company_name": company, "group": group}
        if email:
            fields["email"] = f"c{n}@example.com"
        if mobile:
            fields["mobile_phone"] = f"+1415{200 + n % 700:03d}{n % 10000:04d}"
        fields = {k: v for k, v in fields.items() if v is not None}
        customer_id = self.service.register_customer(fields).aggregate_id
        self.customer_ids.add(customer_id)
        return customer_id

    def _ledger(self, customer_id: UUID) -> LoyaltyLedger | None:
        try:
            ledger: LoyaltyLedger = self.service.repository.get(loyalty_ledger_id(customer_id))
        except AggregateNotFoundError:
            return None
        return ledger

    def _wallet(self, customer_id: UUID) -> CardWallet | None:
        try:
            wallet: CardWallet = self.service.repository.get(card_wallet_id(customer_id))
        except AggregateNotFoundError:
            return None
        return wallet

    def _balance(self, customer_id: UUID) -> int:
        ledger = self._ledger(customer_id)
        return ledger.balance if ledger else 0

    def _card_ids(self, customer_id: UUID) -> set[UUID]:
        wallet = self._wallet(customer_id)
        return set(wallet.cards) if wallet else set()

    @rule(customer=customers, points=st.integers(-60, 80).filter(bool))
    def record_points(self, customer: UUID, points: int) -> None:
        if self._live(customer) and self._balance(customer) + points >= 0:
            self.service.record_loyalty_points(customer, points, "visit")
            self.points += points

    @precondition(lambda self: bool(self.standing))
    @rule(data=st.data())
    def a_survivor_spends_everything(self, data: st.DataObject) -> None:
        """So that an unmerge meets points spent since its merge."""
        survivor = self.standing[data.draw(st.sampled_from(list(self.standing)))]["survivor"]
        balance = self._balance(survivor)
        if self._live(survivor) and balance:
            self.service.record_loyalty_points(survivor, -balance, "redeemed all")
            self.points -= balance

    @rule(customer=customers, token=st.sampled_from(["pm_a", "pm_b", "pm_c"]))
    def add_card(self, customer: UUID, token: str) -> None:
        wallet = self._wallet(customer)
        tokens = {c.token for c in wallet.cards.values()} if wallet else set()
        if self._live(customer) and len(tokens) < MAX_CARDS and token not in tokens:
            receipt = self.service.add_card(
                customer,
                provider="stripe",
                token=token,
                brand="visa",
                last4="4242",
                exp_month=12,
                exp_year=2040,
            )
            self.cards.add(receipt.result["card_id"])

    @rule(customer=customers)
    def remove_a_card(self, customer: UUID) -> None:
        wallet = self._wallet(customer)
        if wallet and wallet.cards:
            card_id = next(iter(wallet.cards))
            self.service.remove_card(customer, card_id, expected_version=wallet.version)
            self.cards.discard(card_id)

    @rule(customer=customers, kind=st.sampled_from(["note", "contact", "address", "system"]))
    def add_part(self, customer: UUID, kind: str) -> None:
        if not self._live(customer):
            return
        s = self.service
        if kind == "note":
            s.add_note(customer, "call first", urgent=False)
        elif kind == "contact":
            s.add_contact(customer, {"name": "Site boss", "phone": "+14155550100"})
        elif kind == "address":
            s.add_address(customer, {"kind": "site", "line1": "1 Main St"})
        else:
            s.install_system(customer, {"system_type": "alarm", "secret": "hunter2"})

    @rule(customer=customers, service_id=st.sampled_from(["s1", "s2"]), cents=st.integers(0, 999))
    def set_price(self, customer: UUID, service_id: str, cents: int) -> None:
        if self._live(customer):
            self.service.set_custom_price(customer, service_id, Decimal(cents) / 100)

    @rule(customer=customers)
    def add_credit_and_custody(self, customer: UUID) -> None:
        if self._live(customer):
            self.service.add_credit(customer, Decimal("5.00"), "goodwill")
            self.service.hand_keys_to(customer, "staff-1", "drawer")

    @rule(customer=customers)
    def remove_a_note(self, customer: UUID) -> None:
        c = self._get(customer)
        if self._live(customer) and c.notes:
            self.service.remove_note(customer, next(iter(c.notes)), expected_version=c.version)

    @rule(customer=customers, company=st.sampled_from(["Initech", None]))
    def change_company(self, customer: UUID, company: str | None) -> None:
        c = self._get(customer)
        if self._live(customer):
            self.service.change_profile(
                customer, {"company_name": company}, expected_version=c.version
            )

    @rule(customer=customers, kind=st.sampled_from(KINDS))
    def add_record(self, customer: UUID, kind: str) -> None:
        if self._live(customer):
            self.records.append(new_record(self.service, customer, kind).aggregate_id)
            event(f"record: {kind}")

    @rule(customer=customers)
    def invite(self, customer: UUID) -> None:
        c = self._get(customer)
        if self._live(customer) and c.profile.email and not c.blocked:
            receipt = self.service.invite_to_portal(customer)
            if receipt.aggregate_id not in self.records:
                self.records.append(receipt.aggregate_id)

    def _owned(self, customer_id: UUID) -> set[UUID]:
        """The records (of every kind) the customer owns now, but a closed portal account
        (closed by a merge into a survivor that kept its own, it stays with its tombstone)."""
        return {
            r
            for r in self.records
            if self._record(r).customer_id == customer_id and r not in self._closed()
        }

    def _closed(self) -> set[UUID]:
        return {
            r
            for r in self.records
            if isinstance(a := self._record(r), PortalAccount) and a.closed_by is not None
        }

    def _record(self, record_id: UUID) -> Relinkable:
        record = self.service.repository.get(record_id)
        assert isinstance(record, Relinkable)
        return record

    # ---- merging and unmerging -----------------------------------------------------------

    @rule(survivor=customers, merged=st.lists(customers, min_size=1, max_size=3, unique=True))
    def merge(self, survivor: UUID, merged: list[UUID]) -> None:
        everyone = [survivor, *merged]
        if survivor in merged or not all(self._live(i) for i in everyone):
            return
        before = {i: snapshot(self._get(i)) for i in everyone}
        owned = {i: self._owned(i) for i in everyone}
        balances = {i: self._balance(i) for i in everyone}
        cards = {i: self._card_ids(i) for i in everyone}
        versions = {i: self._get(i).version for i in everyone}
        receipt = self.service.merge_customers(survivor, merged, expected_versions=versions)
        result = receipt.result
        assert result["merged_ids"] == merged
        for i in merged:
            assert self._get(i).merged_into == survivor
            # Everything the merged customer had is on the survivor now.
            after = self._get(survivor)
            assert set(before[i]["notes"]) <= set(after.notes)
            assert set(before[i]["systems"]) <= set(after.systems)
            assert not self._owned(i)
        assert self._owned(survivor) == set().union(*owned.values()) - self._closed()
        closed = self._closed()
        for i in merged:
            answer = receipt.result["moved"][str(i)]
            for kind, (name, _) in LINKED_KINDS.items():
                of_kind = {r for r in owned[i] if isinstance(self._record(r), kind)}
                assert set(answer[name]) == of_kind - closed
            assert set(answer["closed_portal_accounts"]) == owned[i] & closed
            if answer["closed_portal_accounts"]:
                event("a merged portal account closed")
            assert answer["loyalty_points"] == balances[i]
            not_moved = {c["card_id"] for c in answer["cards_not_moved"]}
            assert set(answer["cards"]) | not_moved == cards[i]
            assert self._card_ids(i) == not_moved
            if not_moved:
                event("cards stayed on the merged customer")
        assert self._balance(survivor) == sum(balances.values())
        event(f"merged {len(merged)}")
        self.standing[result["merge_id"]] = {
            "survivor": survivor,
            "merged": merged,
            "before": before,
            "owned": owned,
            "survivor_version": receipt.version,
            "balances": balances,
            "cards": cards,
            "answer": result["moved"],
        }

    @precondition(lambda self: bool(self.standing))
    @rule(data=st.data())
    def unmerge(self, data: st.DataObject) -> None:
        # In the order of the merges: sorted random ids would replay differently.
        merge_id = data.draw(st.sampled_from(list(self.standing)))
        merge = self.standing[merge_id]
        survivor = self._get(merge["survivor"])
        if survivor.merged_into is not None:
            # The survivor was merged on since: that later merge must be undone first.
            try:
                self.service.unmerge_customers(
                    survivor.id, merge_id, expected_version=survivor.version
                )
            except ConflictError as refused:
                assert refused.field == "merge_id"
            else:
                raise AssertionError("unmerge of a tombstone survivor was not refused")
            event("unmerge refused: the survivor was merged on")
            return
        untouched = survivor.version == merge["survivor_version"]
        brought = sum(merge["answer"][str(i)]["loyalty_points"] for i in merge["merged"])
        try:
            self.service.unmerge_customers(survivor.id, merge_id, expected_version=survivor.version)
        except PointsSpentSinceMergeError as refused:
            assert refused.field == "loyalty" and self._balance(survivor.id) < brought
            event("unmerge refused: the merged points were spent")
            return
        event(f"unmerged, survivor {'untouched' if untouched else 'changed since'}")
        del self.standing[merge_id]
        for merged_id in merge["merged"]:
            moved = merge["answer"][str(merged_id)]
            assert self._balance(merged_id) == merge["balances"][merged_id]
            # Its cards back, but one removed since (from the survivor, or left behind).
            assert self._card_ids(merged_id) == merge["cards"][merged_id] & self.cards
            assert not self._card_ids(survivor.id) & set(moved["cards"])
        for merged_id in merge["merged"]:
            assert snapshot(self._get(merged_id)) == merge["before"][merged_id]
            assert self._owned(merged_id) == merge["owned"][merged_id]
            assert not self._owned(survivor.id) & merge["owned"][merged_id]
        after = self._get(survivor.id)
        if untouched:
            assert snapshot(after) == merge["before"][survivor.id]
            # Its own records stay (it may have got more since: they are not its version).
            assert merge["owned"][survivor.id] <= self._owned(survivor.id)
        for merged_id in merge["merged"]:
            moved = merge["before"][merged_id]
            for part in ("notes", "contacts", "addresses", "systems"):
                assert not set(moved[part]) & set(getattr(after, part))

    @rule(customer=customers)
    def refused_on_a_tombstone(self, customer: UUID) -> None:
        c = self._get(customer)
        if c.merged_into is None:
            return
        try:
            self.service.add_note(customer, "late", urgent=False)
        except MergedCustomerError as refused:
            assert refused.survivor_id == c.merged_into
        else:
            raise AssertionError("a tombstone took a note")

    # ---- what always holds ---------------------------------------------------------------

    @invariant()
    def no_point_or_card_is_lost_or_made_and_ledgers_add_up(self) -> None:
        ledgers = [x for i in self.customer_ids if (x := self._ledger(i)) is not None]
        for ledger in ledgers:
            assert sum(e.points for e in ledger.entries) == ledger.balance >= 0
            if self._get(ledger.customer_id).merged_into is not None:
                assert ledger.balance == 0
        assert sum(ledger.balance for ledger in ledgers) == self.points
        held = [c for i in self.customer_ids for c in self._card_ids(i)]
        assert sorted(held) == sorted(self.cards)  # each card on one wallet, none lost
        assert all(len(self._card_ids(i)) <= MAX_CARDS for i in self.customer_ids)

    @invariant()
    def no_record_is_orphaned(self) -> None:
        for record_id in set(self.records) - self._closed():
            assert self._get(self._record(record_id).customer_id).merged_into is None

    @invariant()
    def a_customer_has_one_open_portal_account_and_a_closed_one_is_a_tombstone_s(self) -> None:
        open_accounts: dict[UUID, int] = {}
        for record_id in self.records:
            account = self._record(record_id)
            if not isinstance(account, PortalAccount):
                continue
            if account.closed_by is not None:
                assert self._get(account.customer_id).merged_into is not None
            else:
                open_accounts[account.customer_id] = open_accounts.get(account.customer_id, 0) + 1
        assert all(n == 1 for n in open_accounts.values()), open_accounts

    @invariant()
    def values_are_held_by_who_has_them(self) -> None:
        for merge in self.standing.values():
            survivor = self._get(merge["survivor"])
            if survivor.merged_into is not None:
                continue
            for name, value in held_values(self.service, survivor):
                reservation = self.service.repository.get(reservation_id(name, value))
                assert isinstance(reservation, Reservation)
                assert reservation.owner_id == survivor.id


MergeMachine.TestCase.settings = SETTINGS
TestMergesAndUnmerges = MergeMachine.TestCase
