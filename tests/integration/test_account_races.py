"""Races on a customer's ledger, wallet and packages, decided by the real event store.

Two service instances stand for two gateway processes (inside one process, commands on
one aggregate take turns and would never race). Each command loads its aggregate and then
waits at a barrier until the other has loaded too, so both decide on the same version:
the first save wins, the second is refused by the event store, reads again and decides
on the new state. Without the derived ids (one stream per customer) or the version check,
both would win.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID

import pytest

from domain.errors import ConflictError
from domain.loyalty import InsufficientPointsError, LoyaltyLedger, loyalty_ledger_id
from domain.service import CustomerService
from infrastructure.database import drop_schema
from infrastructure.eventstore import build_service, migrate_event_store

CARD: dict[str, Any] = {
    "provider": "stripe",
    "brand": "visa",
    "last4": "4242",
    "exp_month": 12,
    "exp_year": 2035,
}


@pytest.fixture
def services(make_settings: Any, database_url: str) -> Iterator[list[CustomerService]]:
    """Two services (two 'gateways') on one fresh schema."""
    settings = make_settings(database_url=database_url, db_schema=f"r_{secrets.token_hex(5)}")
    migrate_event_store(settings)
    services = [build_service(settings), build_service(settings)]
    yield services
    for service in services:
        service.close()
    drop_schema(database_url, settings.db_schema)


def meet_after_loading(services: list[CustomerService], loader: str) -> None:
    """Each service's first load of `loader` waits until the other's first load is done."""
    barrier = threading.Barrier(len(services), timeout=20)
    for service in services:
        original = getattr(service, loader)
        loaded = threading.Event()

        def load(
            *args: Any,
            _original: Callable[..., Any] = original,
            _loaded: threading.Event = loaded,
            **kwargs: Any,
        ) -> Any:
            found = _original(*args, **kwargs)
            if not _loaded.is_set():
                _loaded.set()
                barrier.wait()
            return found

        setattr(service, loader, load)


def race(services: list[CustomerService], command: Callable[[CustomerService], Any]) -> list[Any]:
    """Run `command` on each service at once: each one's receipt or refusal."""

    def outcome(service: CustomerService) -> Any:
        try:
            return command(service)
        except ConflictError as refused:
            return refused

    with ThreadPoolExecutor(len(services)) as pool:
        return list(pool.map(outcome, services))


def test_two_debits_that_together_overdraw_one_wins_and_the_balance_stays_positive(
    services: list[CustomerService],
) -> None:
    """Balance 50, two debits of 30 at once: one is recorded, the other refused naming 20."""
    first = services[0]
    customer = first.register_customer({"first_name": "Ann"}).aggregate_id
    first.record_loyalty_points(customer, 50, "welcome")
    meet_after_loading(services, "_ledger")
    outcomes = race(services, lambda s: s.record_loyalty_points(customer, -30, "redeem"))
    refused = [o for o in outcomes if isinstance(o, InsufficientPointsError)]
    assert len(refused) == 1 and refused[0].balance == 20, outcomes
    ledger: LoyaltyLedger = first.repository.get(loyalty_ledger_id(customer))
    assert ledger.balance == 20
    assert [e.balance for e in ledger.entries] == [50, 20]


def test_two_first_entries_at_once_open_one_ledger(services: list[CustomerService]) -> None:
    """Two awards to a customer without a ledger: one ledger, both entries."""
    customer = services[0].register_customer({"first_name": "Ann"}).aggregate_id
    meet_after_loading(services, "_ledger")
    outcomes = race(services, lambda s: s.record_loyalty_points(customer, 10, "visit"))
    assert not any(isinstance(o, Exception) for o in outcomes), outcomes
    ledger: LoyaltyLedger = services[0].repository.get(loyalty_ledger_id(customer))
    assert (ledger.balance, len(ledger.entries)) == (20, 2)


def test_two_cards_added_at_once_to_a_wallet_with_one_only_one_is_stored(
    services: list[CustomerService],
) -> None:
    """One card stored, two more at once: the limit of two holds, one is refused."""
    customer = services[0].register_customer({"first_name": "Ann"}).aggregate_id
    services[0].add_card(customer, token="pm_first", **CARD)
    meet_after_loading(services, "_wallet")
    tokens = iter(["pm_a", "pm_b"])
    lock = threading.Lock()

    def add(service: CustomerService) -> Any:
        with lock:
            token = next(tokens)
        return service.add_card(customer, token=token, **CARD)

    outcomes = race(services, add)
    refused = [o for o in outcomes if isinstance(o, ConflictError)]
    assert len(refused) == 1 and refused[0].field == "cards", outcomes
    wallet = services[0]._wallet(customer)
    assert wallet is not None and len(wallet.cards) == 2


def test_two_uses_of_the_last_session_at_once_one_wins(services: list[CustomerService]) -> None:
    """A package with one session left, used at two desks at once: one use, one 409."""
    customer = services[0].register_customer({"first_name": "Ann"}).aggregate_id
    package_id: UUID = services[0].buy_package(customer, name="2 washes", sessions=2).aggregate_id
    services[0].use_package_session(customer, package_id)
    meet_after_loading(services, "_package")
    outcomes = race(services, lambda s: s.use_package_session(customer, package_id))
    refused = [o for o in outcomes if isinstance(o, ConflictError)]
    assert len(refused) == 1 and refused[0].field == "sessions_left", outcomes
    package = services[0].repository.get(package_id)
    assert (package.sessions_left, len(package.uses)) == (0, 2)
