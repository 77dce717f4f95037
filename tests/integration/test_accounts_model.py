"""The accounts read model on real PostgreSQL: applying twice changes nothing, and an event
about a customer that reaches it after the customer's erasure keeps nothing personal.

The second case is the moment between an erasure and the destruction of the key (or a
process still holding the key in its cache): a loyalty entry or a card committed just
before the erasure may be decoded with its values in clear and reach the model after the
erasure. Here the events are decoded while the key exists and then applied after the
erasure, which is that moment made certain.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from psycopg import sql

from domain.cards import card_wallet_id
from domain.customers import Customer
from domain.loyalty import loyalty_ledger_id
from domain.service import CustomerService
from infrastructure.database import drop_schema
from infrastructure.eventstore import build_service, migrate_event_store, read_model_datastore
from projections.accounts import AccountsModel

CARD: dict[str, Any] = {
    "provider": "stripe",
    "token": "pm_late",
    "brand": "visa",
    "last4": "4242",
    "exp_month": 12,
    "exp_year": 2040,
}


@pytest.fixture
def stack(make_settings: Any, database_url: str) -> Iterator[tuple[CustomerService, AccountsModel]]:
    settings = make_settings(database_url=database_url, db_schema=f"a_{secrets.token_hex(5)}")
    migrate_event_store(settings)
    service = build_service(settings)
    model = AccountsModel(read_model_datastore(settings, f"{settings.db_schema}_accounts"))
    model.migrate()
    yield service, model
    model.datastore.close()
    service.close()
    drop_schema(database_url, settings.db_schema)


def rows(model: AccountsModel, table: str) -> list[dict[str, Any]]:
    with model.datastore.transaction(commit=False) as cursor:
        cursor.execute(sql.SQL("SELECT * FROM {}").format(model.table(table)))
        return list(cursor.fetchall())


def test_events_after_the_erasure_keep_nothing_personal_and_twice_is_once(
    stack: tuple[CustomerService, AccountsModel],
) -> None:
    service, model = stack
    customer = service.register_customer({"first_name": "Ann"}).aggregate_id
    service.record_loyalty_points(customer, 5, "Ann's birthday")
    service.add_card(customer, **CARD)
    # Decoded now, while the customer's key exists: the reason and token in clear.
    late = [
        *service.events.get(loyalty_ledger_id(customer)),
        *service.events.get(card_wallet_id(customer)),
    ]
    assert any(getattr(e, "reason", None) == "Ann's birthday" for e in late)
    service.erase_customer(customer, expected_version=1)
    erased = [e for e in service.events.get(customer) if isinstance(e, Customer.Erased)]
    batch = list(enumerate([*erased, *late], start=1))
    model.process(batch)
    entries = rows(model, "loyalty_entries")
    assert [(e["points"], e["reason"]) for e in entries] == [(5, None)]
    assert rows(model, "cards") == []
    assert [r["balance"] for r in rows(model, "loyalty_balances")] == [5]
    # The same events again (a parked event retried, say): nothing changes.
    model.retry_parked(batch)
    assert rows(model, "loyalty_entries") == entries
    assert rows(model, "cards") == []
    assert model.parked_positions() == []
