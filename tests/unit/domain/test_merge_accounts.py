"""A merge moves the loyalty balance and the stored cards that fit; its undoing moves them back.

Each ledger's entries add up to its balance on both sides; unmerge takes back exactly what
the merge moved, or is refused (409 naming `loyalty`) when the survivor spent it since; a
card that does not fit, or that the survivor holds already, stays on the merged customer
and the answer says so. Races: a debit or a card saved on the merged customer while the
merge runs is either moved by it or refused naming the survivor, never left behind.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest

from domain.cards import CardWallet, card_wallet_id
from domain.errors import ConflictError, MergedCustomerError
from domain.loyalty import LoyaltyLedger, PointsSpentSinceMergeError, loyalty_ledger_id
from domain.merge_accounts import AccountsMove
from domain.service import CustomerService, Receipt

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
CARD: dict[str, Any] = {"provider": "stripe", "brand": "visa", "last4": "4242"}


@pytest.fixture
def two(service: CustomerService) -> tuple[UUID, UUID]:
    service.clock = lambda: NOW
    survivor = service.register_customer({"first_name": "Ann"}).aggregate_id
    merged = service.register_customer({"first_name": "Ann"}).aggregate_id
    return survivor, merged


def merge(service: CustomerService, survivor: UUID, *merged: UUID) -> Receipt:
    versions = {i: service.get_customer(i).version for i in (survivor, *merged)}
    return service.merge_customers(survivor, list(merged), expected_versions=versions)


def unmerge(service: CustomerService, survivor: UUID, receipt: Receipt) -> Receipt:
    version = service.get_customer(survivor).version
    return service.unmerge_customers(survivor, receipt.result["merge_id"], expected_version=version)


def ledger(service: CustomerService, customer: UUID) -> LoyaltyLedger:
    found: LoyaltyLedger = service.repository.get(loyalty_ledger_id(customer))
    return found


def wallet(service: CustomerService, customer: UUID) -> CardWallet:
    found: CardWallet = service.repository.get(card_wallet_id(customer))
    return found


def add_card(service: CustomerService, customer: UUID, token: str) -> UUID:
    receipt = service.add_card(customer, token=token, exp_month=12, exp_year=2030, **CARD)
    card_id: UUID = receipt.result["card_id"]
    return card_id


def assert_entries_add_up(found: LoyaltyLedger) -> None:
    assert sum(e.points for e in found.entries) == found.balance
    assert all(e.balance >= 0 for e in found.entries)


# ---- loyalty --------------------------------------------------------------------------------


def test_a_merge_adds_the_merged_balance_to_the_survivor_with_an_entry_naming_it_on_each_side(
    service: CustomerService, two: tuple[UUID, UUID]
) -> None:
    survivor, merged = two
    service.record_loyalty_points(survivor, 100, "signed up")
    service.record_loyalty_points(merged, 30, "first visit")
    receipt = merge(service, survivor, merged)
    merge_id = receipt.result["merge_id"]
    assert receipt.result["moved"][str(merged)]["loyalty_points"] == 30
    kept, gone = ledger(service, survivor), ledger(service, merged)
    assert (kept.balance, gone.balance) == (130, 0)
    assert (kept.entries[-1].points, gone.entries[-1].points) == (30, -30)
    assert str(merge_id) in kept.entries[-1].reason and str(merged) in kept.entries[-1].reason
    assert str(merge_id) in gone.entries[-1].reason and str(survivor) in gone.entries[-1].reason
    assert_entries_add_up(kept)
    assert_entries_add_up(gone)


def test_several_merged_customers_add_their_balances_one_entry_each(
    service: CustomerService, two: tuple[UUID, UUID]
) -> None:
    survivor, first = two
    second = service.register_customer({"first_name": "Ann"}).aggregate_id
    service.record_loyalty_points(first, 10, "a")
    service.record_loyalty_points(second, 25, "b")
    receipt = merge(service, survivor, first, second)
    assert ledger(service, survivor).balance == 35  # opened by the merge: it had none
    assert [e.points for e in ledger(service, survivor).entries] == [10, 25]
    unmerge(service, survivor, receipt)
    balances = [ledger(service, i).balance for i in (survivor, first, second)]
    assert balances == [0, 10, 25]


def test_unmerge_takes_back_exactly_what_the_merge_moved_and_the_survivor_keeps_its_own(
    service: CustomerService, two: tuple[UUID, UUID]
) -> None:
    survivor, merged = two
    service.record_loyalty_points(survivor, 100, "signed up")
    service.record_loyalty_points(merged, 30, "first visit")
    receipt = merge(service, survivor, merged)
    service.record_loyalty_points(survivor, -90, "redeemed")  # 40 left, 30 of them merged
    answer = unmerge(service, survivor, receipt)
    assert answer.result["moved_back"][str(merged)]["loyalty_points"] == 30
    assert (ledger(service, survivor).balance, ledger(service, merged).balance) == (10, 30)
    assert_entries_add_up(ledger(service, survivor))
    assert_entries_add_up(ledger(service, merged))


def test_unmerge_is_refused_naming_loyalty_and_the_balance_when_the_merged_points_were_spent(
    service: CustomerService, two: tuple[UUID, UUID]
) -> None:
    survivor, merged = two
    service.record_loyalty_points(merged, 50, "first visit")
    receipt = merge(service, survivor, merged)
    service.record_loyalty_points(survivor, -30, "redeemed")
    with pytest.raises(PointsSpentSinceMergeError) as refused:
        unmerge(service, survivor, receipt)
    assert refused.value.field == "loyalty"
    assert refused.value.message.startswith("balance is 20, cannot take back the 50 points")
    assert service.get_customer(merged).merged_into == survivor  # nothing was undone
    # Awarding the spent points back lets the unmerge go through.
    service.record_loyalty_points(survivor, 30, "make good before unmerge")
    unmerge(service, survivor, receipt)
    assert (ledger(service, survivor).balance, ledger(service, merged).balance) == (0, 50)


def test_a_tombstone_takes_no_points(service: CustomerService, two: tuple[UUID, UUID]) -> None:
    survivor, merged = two
    merge(service, survivor, merged)
    with pytest.raises(MergedCustomerError) as refused:
        service.record_loyalty_points(merged, 5, "late")
    assert refused.value.survivor_id == survivor


# ---- cards ----------------------------------------------------------------------------------


def test_cards_move_to_the_survivor_while_it_has_room_and_the_rest_stay_named(
    service: CustomerService, two: tuple[UUID, UUID]
) -> None:
    survivor, merged = two
    add_card(service, survivor, "pm_own")
    first, second = add_card(service, merged, "pm_1"), add_card(service, merged, "pm_2")
    receipt = merge(service, survivor, merged)
    moved = receipt.result["moved"][str(merged)]
    assert moved["cards"] == [first]  # the older one
    assert moved["cards_not_moved"] == [{"card_id": second, "reason": "no_room"}]
    assert set(wallet(service, survivor).cards) >= {first}
    assert wallet(service, survivor).cards[first].token == "pm_1"
    assert list(wallet(service, merged).cards) == [second]  # kept, not dropped


def test_a_card_the_survivor_holds_already_stays_and_takes_no_room(
    service: CustomerService, two: tuple[UUID, UUID]
) -> None:
    survivor, merged = two
    add_card(service, survivor, "pm_same")
    same, other = add_card(service, merged, "pm_same"), add_card(service, merged, "pm_other")
    moved = merge(service, survivor, merged).result["moved"][str(merged)]
    assert moved["cards"] == [other]
    assert moved["cards_not_moved"] == [{"card_id": same, "reason": "survivor_has_it"}]
    tokens = sorted(c.token for c in wallet(service, survivor).cards.values())
    assert tokens == ["pm_other", "pm_same"]


def test_unmerge_moves_back_the_cards_still_on_the_survivor(
    service: CustomerService, two: tuple[UUID, UUID]
) -> None:
    survivor, merged = two
    first, second = add_card(service, merged, "pm_1"), add_card(service, merged, "pm_2")
    receipt = merge(service, survivor, merged)
    assert not wallet(service, merged).cards
    removed = wallet(service, survivor)
    service.remove_card(survivor, second, expected_version=removed.version)
    add_card(service, survivor, "pm_new")
    answer = unmerge(service, survivor, receipt)
    assert answer.result["moved_back"][str(merged)]["cards"] == [first]
    assert list(wallet(service, merged).cards) == [first]  # one removed since stays removed
    assert [c.token for c in wallet(service, survivor).cards.values()] == ["pm_new"]


def test_cards_follow_a_chain_of_merges_and_come_back_undone_in_order(
    service: CustomerService, two: tuple[UUID, UUID]
) -> None:
    middle, first = two
    last = service.register_customer({"first_name": "Ann"}).aggregate_id
    card = add_card(service, first, "pm_1")
    service.record_loyalty_points(first, 7, "a")
    one = merge(service, middle, first)
    two_ = merge(service, last, middle)
    assert list(wallet(service, last).cards) == [card] and ledger(service, last).balance == 7
    unmerge(service, last, two_)
    unmerge(service, middle, one)
    assert list(wallet(service, first).cards) == [card] and ledger(service, first).balance == 7
    assert not wallet(service, middle).cards and ledger(service, middle).balance == 0


# ---- races ----------------------------------------------------------------------------------


def test_a_debit_that_read_the_customer_before_the_merge_is_refused_naming_the_survivor(
    service: CustomerService, two: tuple[UUID, UUID], monkeypatch: Any
) -> None:
    """The merge commits between the debit's read of its customer and its save: the debit's
    save meets the merge on the ledger's stream, and its retry finds a tombstone."""
    survivor, merged = two
    service.record_loyalty_points(merged, 40, "visits")
    load = service.load

    def load_then_merge(aggregate_id: UUID, kind: type[Any], expected: int | None) -> Any:
        found = load(aggregate_id, kind, expected)
        if aggregate_id == merged:
            monkeypatch.setattr(service, "load", load)
            merge(service, survivor, merged)
        return found

    monkeypatch.setattr(service, "load", load_then_merge)
    with pytest.raises(MergedCustomerError) as refused:
        service.record_loyalty_points(merged, -40, "redeemed")
    assert service.load is load  # the merge did run in the gap
    assert refused.value.survivor_id == survivor
    assert (ledger(service, survivor).balance, ledger(service, merged).balance) == (40, 0)


@pytest.mark.parametrize("had_points", [True, False], ids=["a ledger", "no ledger yet"])
def test_points_saved_after_the_merge_read_the_ledger_are_moved_too(
    service: CustomerService, two: tuple[UUID, UUID], monkeypatch: Any, had_points: bool
) -> None:
    """The award commits between the merge's read of the ledger and its save (the merged
    customer's first ever, or one more): the merge is decided again and moves it."""
    survivor, merged = two
    if had_points:
        service.record_loyalty_points(merged, 10, "visit")
    read = AccountsMove._ledger
    awarded: list[int] = []

    def award_in_the_gap(self: AccountsMove, customer_id: UUID) -> LoyaltyLedger:
        found = read(self, customer_id)
        if customer_id == merged and not awarded:
            awarded.append(service.record_loyalty_points(merged, 5, "late").result["balance"])
        return found

    monkeypatch.setattr(AccountsMove, "_ledger", award_in_the_gap)
    receipt = merge(service, survivor, merged)
    total = 15 if had_points else 5
    assert awarded and receipt.result["moved"][str(merged)]["loyalty_points"] == total
    assert (ledger(service, survivor).balance, ledger(service, merged).balance) == (total, 0)
    assert_entries_add_up(ledger(service, merged))


def test_a_card_added_after_the_merge_read_the_wallet_is_moved_too(
    service: CustomerService, two: tuple[UUID, UUID], monkeypatch: Any
) -> None:
    survivor, merged = two
    read = AccountsMove._wallet
    added: list[UUID] = []

    def add_in_the_gap(self: AccountsMove, customer_id: UUID) -> CardWallet:
        found = read(self, customer_id)
        if customer_id == merged and not added:
            added.append(add_card(service, merged, "pm_late"))
        return found

    monkeypatch.setattr(AccountsMove, "_wallet", add_in_the_gap)
    receipt = merge(service, survivor, merged)
    assert receipt.result["moved"][str(merged)]["cards"] == added
    assert list(wallet(service, survivor).cards) == added
    assert not wallet(service, merged).cards


def test_a_card_added_that_read_the_customer_before_the_merge_is_refused_naming_the_survivor(
    service: CustomerService, two: tuple[UUID, UUID], monkeypatch: Any
) -> None:
    survivor, merged = two
    load = service.load

    def load_then_merge(aggregate_id: UUID, kind: type[Any], expected: int | None) -> Any:
        found = load(aggregate_id, kind, expected)
        if aggregate_id == merged:
            monkeypatch.setattr(service, "load", load)
            merge(service, survivor, merged)
        return found

    monkeypatch.setattr(service, "load", load_then_merge)
    with pytest.raises(MergedCustomerError) as refused:
        add_card(service, merged, "pm_late")
    assert refused.value.survivor_id == survivor
    assert service.load is load  # the merge did run in the gap
    assert not wallet(service, merged).cards


def test_points_spent_on_the_survivor_while_the_unmerge_runs_refuse_it(
    service: CustomerService, two: tuple[UUID, UUID], monkeypatch: Any
) -> None:
    """The debit commits between the unmerge's read of the survivor's ledger and its save:
    the unmerge is decided again on the new balance, which no longer covers the points."""
    survivor, merged = two
    service.record_loyalty_points(merged, 50, "visits")
    receipt = merge(service, survivor, merged)
    read = AccountsMove._ledger
    spent: list[int] = []

    def spend_in_the_gap(self: AccountsMove, customer_id: UUID) -> LoyaltyLedger:
        found = read(self, customer_id)
        if customer_id == survivor and not spent:
            spent.append(service.record_loyalty_points(survivor, -20, "redeemed").result["balance"])
        return found

    monkeypatch.setattr(AccountsMove, "_ledger", spend_in_the_gap)
    with pytest.raises(ConflictError) as refused:
        unmerge(service, survivor, receipt)
    assert spent == [30] and refused.value.field == "loyalty"
    assert (ledger(service, survivor).balance, ledger(service, merged).balance) == (30, 0)
