"""Loyalty points, stored cards and prepaid packages in memory: the rules of each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from domain.cards import MAX_CARDS, CardWallet, card_wallet_id
from domain.errors import ConflictError, NotFoundError, RuleViolationError, VersionMismatchError
from domain.loyalty import MAX_POINTS, InsufficientPointsError, LoyaltyLedger, loyalty_ledger_id
from domain.packages import Package
from domain.sealing import SecretSealer
from domain.service import CustomerService

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
CARD: dict[str, Any] = {
    "provider": "stripe",
    "token": "pm_1Nv0abcDEF",
    "brand": "visa",
    "last4": "4242",
    "exp_month": 12,
    "exp_year": 2029,
}


@pytest.fixture
def customer(service: CustomerService) -> UUID:
    service.clock = lambda: NOW
    return service.register_customer({"first_name": "Ann"}).aggregate_id


def ledger(service: CustomerService, customer: UUID) -> LoyaltyLedger:
    found: LoyaltyLedger = service.repository.get(loyalty_ledger_id(customer))
    return found


def wallet(service: CustomerService, customer: UUID) -> CardWallet:
    found: CardWallet = service.repository.get(card_wallet_id(customer))
    return found


# ---- loyalty ------------------------------------------------------------------------------


def test_points_add_up_and_a_debit_past_the_balance_is_refused_naming_it(
    service: CustomerService, customer: UUID
) -> None:
    """Awards and debits move the balance; one larger than the balance is a 409 with it."""
    service.record_loyalty_points(customer, 100, "signed up")
    receipt = service.record_loyalty_points(customer, -60, "redeemed a wash")
    assert receipt.result["balance"] == 40
    with pytest.raises(InsufficientPointsError) as refused:
        service.record_loyalty_points(customer, -50, "too much")
    assert (refused.value.message, refused.value.field) == (
        "balance is 40, cannot take 50",
        "points",
    )
    assert refused.value.balance == 40
    assert [e.points for e in ledger(service, customer).entries] == [100, -60]


@pytest.mark.parametrize("points", [0, MAX_POINTS + 1, -MAX_POINTS - 1])
def test_points_are_non_zero_and_bounded(
    service: CustomerService, customer: UUID, points: int
) -> None:
    with pytest.raises(RuleViolationError) as refused:
        service.record_loyalty_points(customer, points, "x")
    assert refused.value.field == "points"


def test_an_entry_needs_a_reason(service: CustomerService, customer: UUID) -> None:
    with pytest.raises(RuleViolationError) as refused:
        service.record_loyalty_points(customer, 5, "  ")
    assert refused.value.field == "reason"


def test_the_ledger_version_starts_at_zero_for_if_match(
    service: CustomerService, customer: UUID
) -> None:
    """Before the first entry the ledger's version is 0; after it, the ledger's own."""
    with pytest.raises(VersionMismatchError):
        service.record_loyalty_points(customer, 5, "x", expected_version=1)
    first = service.record_loyalty_points(customer, 5, "x", expected_version=0)
    assert first.version == 2  # opened, then the entry
    service.record_loyalty_points(customer, 5, "y", expected_version=2)


def test_no_points_for_an_unknown_deleted_or_erased_customer(
    service: CustomerService, customer: UUID
) -> None:
    with pytest.raises(NotFoundError):
        service.record_loyalty_points(uuid4(), 5, "x")
    service.delete_customer(customer, expected_version=1)
    with pytest.raises(ConflictError) as deleted:
        service.record_loyalty_points(customer, 5, "x")
    assert deleted.value.field == "deleted"
    service.restore_customer(customer, expected_version=2)
    service.erase_customer(customer, expected_version=3)
    with pytest.raises(ConflictError) as erased:
        service.record_loyalty_points(customer, 5, "x")
    assert erased.value.field == "erased"


class LedgerMachine(RuleBasedStateMachine):
    """Any sequence of awards and debits: the balance is the sum and never below zero."""

    def __init__(self) -> None:
        super().__init__()
        self.service = CustomerService(sealer=SecretSealer(SecretSealer.generate_key()))
        self.customer = self.service.register_customer({"first_name": "Ann"}).aggregate_id
        self.expected = 0

    @rule(points=st.integers(-500, 500).filter(bool))
    def record(self, points: int) -> None:
        try:
            self.service.record_loyalty_points(self.customer, points, "r")
        except InsufficientPointsError as refused:
            assert self.expected + points < 0 and refused.balance == self.expected
        else:
            self.expected += points

    @invariant()
    def balance_is_the_sum_and_never_negative(self) -> None:
        if self.expected == 0 and not self.service.recorder.select_events(
            loyalty_ledger_id(self.customer)
        ):
            return
        found = ledger(self.service, self.customer)
        assert found.balance == self.expected == sum(e.points for e in found.entries) >= 0


TestLedgerMachine = LedgerMachine.TestCase


# ---- cards --------------------------------------------------------------------------------


def test_at_most_two_cards_and_a_removed_one_makes_room(
    service: CustomerService, customer: UUID
) -> None:
    """A third card is a 409 naming the limit; removing one lets another in."""
    first = service.add_card(customer, **CARD).result["card_id"]
    service.add_card(customer, **{**CARD, "token": "pm_second", "brand": "amex"})
    with pytest.raises(ConflictError) as third:
        service.add_card(customer, **{**CARD, "token": "pm_third"})
    assert third.value.field == "cards" and str(MAX_CARDS) in third.value.message
    removed = service.remove_card(customer, first, expected_version=3)
    service.add_card(customer, **{**CARD, "token": "pm_third"}, expected_version=removed.version)
    assert sorted(c.token for c in wallet(service, customer).cards.values()) == [
        "pm_second",
        "pm_third",
    ]


def test_the_same_token_twice_is_refused(service: CustomerService, customer: UUID) -> None:
    service.add_card(customer, **CARD)
    with pytest.raises(ConflictError) as again:
        service.add_card(customer, **CARD)
    assert again.value.field == "token"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"token": "4111111111111111"}, "token"),
        ({"token": "tok 1"}, "token"),
        ({"brand": "bitcoin"}, "brand"),
        ({"last4": "424"}, "last4"),
        ({"last4": "42a2"}, "last4"),
        ({"exp_month": 13}, "exp_month"),
        ({"exp_year": 2025}, "exp_year"),
        ({"exp_year": 2026, "exp_month": 5}, "exp_month"),
        ({"provider": "Stripe Inc"}, "provider"),
    ],
)
def test_a_card_is_a_token_with_brand_last4_and_an_expiry_not_past(
    service: CustomerService, customer: UUID, change: dict[str, Any], field: str
) -> None:
    with pytest.raises(RuleViolationError) as refused:
        service.add_card(customer, **{**CARD, **change})
    assert refused.value.field == field


def test_a_card_expiring_this_month_is_still_valid(
    service: CustomerService, customer: UUID
) -> None:
    service.add_card(customer, **{**CARD, "exp_year": 2026, "exp_month": 6})


def test_removing_an_unknown_card_is_not_found(service: CustomerService, customer: UUID) -> None:
    with pytest.raises(NotFoundError):
        service.remove_card(customer, uuid4(), expected_version=0)
    service.add_card(customer, **CARD)
    with pytest.raises(NotFoundError):
        service.remove_card(customer, uuid4(), expected_version=2)


def test_no_card_for_an_erased_customer(service: CustomerService, customer: UUID) -> None:
    service.erase_customer(customer, expected_version=1)
    with pytest.raises(ConflictError) as erased:
        service.add_card(customer, **CARD)
    assert erased.value.field == "erased"


# ---- packages -----------------------------------------------------------------------------


def buy(service: CustomerService, customer: UUID, **fields: Any) -> UUID:
    fields.setdefault("name", "5 grooming sessions")
    fields.setdefault("sessions", 2)
    return service.buy_package(customer, **fields).aggregate_id


def package(service: CustomerService, package_id: UUID) -> Package:
    found: Package = service.repository.get(package_id)
    return found


def test_sessions_are_used_until_none_is_left(service: CustomerService, customer: UUID) -> None:
    """Each use takes one; a use past zero is a 409 naming sessions_left."""
    package_id = buy(service, customer, price=Decimal("99.00"), service_id="groom")
    assert service.use_package_session(customer, package_id).result["sessions_left"] == 1
    service.use_package_session(customer, package_id, expected_version=2)
    with pytest.raises(ConflictError) as used_up:
        service.use_package_session(customer, package_id)
    assert used_up.value.field == "sessions_left"
    assert package(service, package_id).status(NOW) == "used_up"


def test_no_use_after_the_expiry(service: CustomerService, customer: UUID) -> None:
    package_id = buy(service, customer, expires_at=NOW + timedelta(days=30))
    service.clock = lambda: NOW + timedelta(days=30)
    with pytest.raises(ConflictError) as expired:
        service.use_package_session(customer, package_id)
    assert expired.value.field == "expires_at"


def test_no_use_once_deactivated_and_deactivating_twice_is_refused(
    service: CustomerService, customer: UUID
) -> None:
    package_id = buy(service, customer)
    with pytest.raises(VersionMismatchError):
        service.deactivate_package(customer, package_id, expected_version=2)
    service.deactivate_package(customer, package_id, expected_version=1)
    with pytest.raises(ConflictError) as deactivated:
        service.use_package_session(customer, package_id)
    assert deactivated.value.field == "status"
    with pytest.raises(ConflictError):
        service.deactivate_package(customer, package_id, expected_version=2)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"sessions": 0}, "sessions"),
        ({"name": " "}, "name"),
        ({"expires_at": NOW}, "expires_at"),
        ({"price": Decimal("-1")}, "price"),
    ],
)
def test_a_package_needs_sessions_a_name_and_a_future_expiry(
    service: CustomerService, customer: UUID, fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(RuleViolationError) as refused:
        buy(service, customer, **fields)
    assert refused.value.field == field


def test_another_customers_package_is_not_found(service: CustomerService, customer: UUID) -> None:
    package_id = buy(service, customer)
    other = service.register_customer({"first_name": "Bo"}).aggregate_id
    with pytest.raises(NotFoundError):
        service.use_package_session(other, package_id)


def test_no_use_for_an_erased_customer(service: CustomerService, customer: UUID) -> None:
    package_id = buy(service, customer)
    service.erase_customer(customer, expected_version=1)
    with pytest.raises(ConflictError) as erased:
        service.use_package_session(customer, package_id)
    assert erased.value.field == "erased"
