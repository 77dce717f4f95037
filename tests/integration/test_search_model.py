"""The search read model on real PostgreSQL: what each event does to a row, and the query."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from domain.customers import Customer
from domain.service import CustomerService, Idempotency
from infrastructure.database import drop_schema
from infrastructure.eventstore import build_service, migrate_event_store, read_model_datastore
from infrastructure.settings import Settings
from projections.rebuild import rebuild
from projections.search import (
    SESSION_SETTINGS,
    TRGM_SCHEMA_QUERY,
    SearchCriteria,
    SearchModel,
    search_statement,
)
from workers.follower import Follower

Stack = tuple[Settings, CustomerService]


@pytest.fixture
def stack(make_settings: Any, database_url: str) -> Iterator[Stack]:
    """A service on a schema of its own (positions start at 1), and cleanup of its models."""
    settings = make_settings(database_url=database_url, db_schema=f"s_{secrets.token_hex(5)}")
    migrate_event_store(settings)
    service = build_service(settings)
    yield settings, service
    service.close()
    drop_schema(database_url, settings.db_schema)


OpenModel = Callable[..., SearchModel]


@pytest.fixture
def open_model(stack: Stack) -> Iterator[OpenModel]:
    """Search models on schemas beside the service's (`<schema>_<suffix>`), closed after."""
    opened: list[SearchModel] = []

    def open_one(suffix: str = "search") -> SearchModel:
        settings = stack[0]
        model = SearchModel(read_model_datastore(settings, f"{settings.db_schema}_{suffix}"))
        model.migrate()
        opened.append(model)
        return model

    yield open_one
    for model in opened:
        model.datastore.close()


def follow_to_head(stack: Stack, model: SearchModel, batch_size: int = 500) -> None:
    """Run a Follower over `model` until it has processed the head of the log."""
    settings, service = stack
    head = service.recorder.max_notification_id() or 0
    follower = Follower(
        # Named per schema: runners of one name share one lock in the whole database.
        f"search:{model.schema}",
        service,
        model,
        settings.database_url or "",
        batch_size=batch_size,
    )
    thread = threading.Thread(target=follower.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while model.position() < head and time.monotonic() < deadline:
        time.sleep(0.02)
    follower.stop()
    thread.join(10)
    assert model.position() == head


def rows(model: SearchModel) -> dict[UUID, dict[str, Any]]:
    with model.datastore.transaction(commit=False) as cursor:
        cursor.execute(sql.SQL("SELECT * FROM {} ORDER BY id").format(model.table("customers")))
        return {row["id"]: row for row in cursor.fetchall()}


def search(stack: Stack, model: SearchModel, **criteria: Any) -> list[dict[str, Any]]:
    """The search's first page, run the way the gateway runs it."""
    settings, _ = stack
    with psycopg.connect(settings.database_url or "", row_factory=dict_row) as connection:
        found = connection.execute(TRGM_SCHEMA_QUERY).fetchone()
        assert found is not None
        statement, params = search_statement(
            model.schema, found["schema"], SearchCriteria(**criteria), after=None, limit=50
        )
        connection.execute(SESSION_SETTINGS, ("5000",))
        return connection.execute(statement, params).fetchall()


def a_life(service: CustomerService) -> list[UUID]:
    """Customers with every kind of event search cares about, and some it does not."""
    ada = service.register_customer(
        {
            "first_name": "Ada",
            "last_name": "Lovelace",
            "email": "ada@example.com",
            "mobile_phone": "(415) 555-2671",
            "company_name": "Analytical Engines",
            "addresses": [
                {"kind": "site", "line1": "1 Rue", "city": "Paris"},
                {"kind": "billing", "line1": "12 St James Sq", "city": "London"},
            ],
        }
    ).aggregate_id
    zoe = service.register_customer(
        {"first_name": "Zoë", "last_name": "Škoda", "dba_name": "Zed's Repairs", "group": "VIP"}
    ).aggregate_id
    keyed = Idempotency(uuid4(), "fingerprint")  # saves an idempotency record too
    version = service.add_note(ada, "call first", True, idempotency=keyed).version
    version = service.change_profile(
        ada,
        {"last_name": "King", "group": "Gold", "birthday": date(1815, 12, 10)},
        expected_version=version,
    ).version
    berlin = service.add_address(
        ada, {"kind": "delivery", "line1": "Unter den Linden", "city": "Berlin"}
    )
    customer = service.get_customer(ada)
    billing = next(a for a in customer.addresses.values() if a.kind == "billing")
    version = service.remove_address(
        ada, billing.address_id, expected_version=berlin.version
    ).version
    alarm = service.install_system(ada, {"system_type": "Alarm", "secret": "hunter2"})
    camera = service.install_system(ada, {"system_type": "Camera"}, expected_version=alarm.version)
    version = service.change_system(
        ada, camera.result["system_id"], {"system_type": "CCTV"}, expected_version=camera.version
    ).version
    version = service.change_system(
        ada, alarm.result["system_id"], {"login": "admin"}, expected_version=version
    ).version
    version = service.remove_system(
        ada, alarm.result["system_id"], expected_version=version
    ).version
    version = service.block_customer(ada, "unpaid", expected_version=version).version
    version = service.unblock_customer(ada, expected_version=version).version
    version = service.block_customer(ada, None, expected_version=version).version
    version = service.add_credit(ada, Decimal("5"), "sorry").version
    service.delete_customer(zoe, expected_version=1)
    service.restore_customer(zoe, expected_version=2)
    gone = service.register_customer({"first_name": "Gone"}).aggregate_id
    service.delete_customer(gone, expected_version=1)
    return [ada, zoe, gone]


def test_every_event_that_changes_what_search_shows_updates_the_row(
    stack: Stack, open_model: OpenModel
) -> None:
    """Profile changes, addresses, systems, blocking and deletion all reach the row; notes,
    credits, reservations and idempotency records are stepped over without error."""
    ada, zoe, gone = a_life(stack[1])
    model = open_model()
    follow_to_head(stack, model)
    found = rows(model)
    assert model.parked_positions() == []
    row = found[ada]
    assert (row["first_name"], row["last_name"], row["customer_group"]) == ("Ada", "King", "Gold")
    assert (row["email"], row["mobile_phone"]) == ("ada@example.com", "+14155552671")
    # London was the billing city; with it removed, the first address left with a city.
    assert row["city"] == "Paris"
    assert row["facets"] == ["c:berlin", "c:paris", "g:gold", "s:cctv"]
    assert sorted(row["systems"].values()) == ["CCTV"]
    assert row["search_text"] == "ada king analytical engines ada@example.com"
    assert row["phone_digits"] == "14155552671"
    assert (row["blocked"], row["deleted"]) == (True, False)
    assert (found[zoe]["deleted"], found[zoe]["search_text"]) == (False, "zoe skoda zed's repairs")
    assert found[zoe]["facets"] == ["g:vip"]
    assert found[gone]["deleted"] is True


def test_one_batch_writes_the_same_rows_as_one_event_at_a_time(
    stack: Stack, open_model: OpenModel
) -> None:
    """Set-wise batches are only faster: the rows equal those of single-event batches."""
    a_life(stack[1])
    for i in range(30):
        stack[1].register_customer({"first_name": f"Extra{i}", "group": "bulk"})
    whole = open_model("search_whole")
    single = open_model("search_single")
    follow_to_head(stack, whole, batch_size=1000)
    follow_to_head(stack, single, batch_size=1)
    assert rows(whole) == rows(single)
    assert len(rows(whole)) == 33


def test_an_event_about_a_customer_without_a_row_is_parked_and_the_rest_applied(
    stack: Stack, open_model: OpenModel
) -> None:
    """A batch with an event the model cannot place parks that one event, applies the others
    and still advances to the end of the batch."""
    service = stack[1]
    lost = service.register_customer({"first_name": "Lost"}).aggregate_id
    service.change_profile(lost, {"last_name": "Soul"}, expected_version=1)
    kept = service.register_customer({"first_name": "Kept"}).aggregate_id
    batch = [
        (n.id, service.mapper.to_domain_event(n))
        for n in service.recorder.select_notifications(start=0, limit=100)
    ]
    # The lost customer's registration never reaches the model: its change cannot apply.
    without = [
        (p, e)
        for p, e in batch
        if not isinstance(e, Customer.Registered) or e.originator_id != lost
    ]
    model = open_model()
    model.process(without)
    assert list(rows(model)) == [kept]
    changed_at = next(p for p, e in batch if isinstance(e, Customer.ProfileChanged))
    assert model.parked_positions() == [changed_at]
    assert model.position() == batch[-1][0]


def test_best_matches_come_first(stack: Stack, open_model: OpenModel) -> None:
    """The customer number outranks a phone match, which outranks a word starting with q,
    which outranks a word one typo away."""
    service = stack[1]
    number = service.register_customer(
        {"first_name": "Numbered", "customer_number": 4155}
    ).aggregate_id
    phone = service.register_customer(
        {"first_name": "Phoned", "mobile_phone": "+1 415 555 0100"}
    ).aggregate_id
    service.register_customer({"first_name": "Nobody"})
    model = open_model()
    follow_to_head(stack, model)
    found = search(stack, model, q="4155", phone_digits=("4155",))
    assert [r["id"] for r in found] == [number, phone]
    lovelace = service.register_customer({"first_name": "Ada", "last_name": "Lovelace"})
    lovelady = service.register_customer({"first_name": "Ada", "last_name": "Lovelady"})
    typo = service.register_customer({"first_name": "Ada", "last_name": "Lovelice"})
    follow_to_head(stack, model)
    found = search(stack, model, q="lovelace")
    assert [r["id"] for r in found][:1] == [lovelace.aggregate_id]
    assert typo.aggregate_id in [r["id"] for r in found]
    found = search(stack, model, q="Lovelad")
    assert [r["id"] for r in found][:1] == [lovelady.aggregate_id]
    assert search(stack, model, q="ŠKODA zoe") == []  # nobody of that name yet
    zoe = service.register_customer({"first_name": "Zoë", "last_name": "Škoda"}).aggregate_id
    follow_to_head(stack, model)
    assert [r["id"] for r in search(stack, model, q="skoda ZOE")] == [zoe]


def test_models_share_pg_trgm_and_a_dropped_model_takes_it_nowhere(
    stack: Stack, open_model: OpenModel
) -> None:
    """pg_trgm lives outside the read models' schemas: two models use it, and dropping one's
    schema (as a rebuild does) leaves it to the other."""
    settings, service = stack
    ada = service.register_customer({"first_name": "Ada", "last_name": "Lovelace"}).aggregate_id
    first, second = open_model("search_a"), open_model("search_b")
    with psycopg.connect(settings.database_url or "", row_factory=dict_row) as connection:
        found = connection.execute(TRGM_SCHEMA_QUERY).fetchone()
    assert found is not None and found["schema"] not in (first.schema, second.schema)
    drop_schema(settings.database_url or "", first.schema)
    follow_to_head(stack, second)
    assert [r["id"] for r in search(stack, second, q="Lovelase")] == [ada]


def test_a_rebuild_swaps_in_the_same_rows(stack: Stack, open_model: OpenModel) -> None:
    """Rebuilding the search model from position 0 beside the live one gives the same rows."""
    settings, service = stack
    a_life(service)
    live = open_model()
    follow_to_head(stack, live)
    before = rows(live)
    rebuild(
        service, lambda schema: SearchModel(read_model_datastore(settings, schema)), live.schema
    )
    assert rows(live) == before


def test_a_rebuild_swaps_in_tables_that_have_planner_statistics_and_a_visibility_map(
    stack: Stack, open_model: OpenModel
) -> None:
    """The rebuilt tables are vacuumed and analyzed before the swap: the planner knows their
    size at once (never-analyzed tables read as reltuples -1 and are planned as nearly
    empty), and index-only scans need not read the heap (the word table's lookups)."""
    settings, service = stack
    for n in range(40):
        service.register_customer({"first_name": f"Stat{n}", "last_name": "Counted"})
    live = open_model()
    rebuild(
        service, lambda schema: SearchModel(read_model_datastore(settings, schema)), live.schema
    )
    with psycopg.connect(settings.database_url or "", row_factory=dict_row) as connection:
        table = connection.execute(
            "SELECT c.reltuples, c.relallvisible, c.relpages, s.last_analyze FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " JOIN pg_stat_user_tables s ON s.relid = c.oid"
            " WHERE n.nspname = %s AND c.relname = 'customers'",
            (live.schema,),
        ).fetchone()
    assert table is not None
    # A table this small is sampled whole: the estimate is the count.
    assert table["reltuples"] == 40
    assert table["last_analyze"] is not None
    assert table["relallvisible"] == table["relpages"] > 0, "every page marked all-visible"


def test_the_position_moves_past_trailing_events_search_ignores_without_decoding_them(
    stack: Stack, open_model: OpenModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events search ignores at the end of the log still move its position to the head (a
    min_position wait for them finishes), and only the events it wants are decoded."""
    service = stack[1]
    ada = service.register_customer({"first_name": "Ada", "email": "ada@example.com"})
    service.add_note(ada.aggregate_id, "call first", False)
    service.add_credit(ada.aggregate_id, Decimal("5"), "sorry")
    decoded: list[str] = []
    real_decoded = service.decoded  # pages of the log are decoded together (data keys)

    def counting(notifications: Any) -> Any:
        decoded.extend(n.topic for n in notifications)
        return real_decoded(notifications)

    monkeypatch.setattr(service, "decoded", counting)
    model = open_model()
    follow_to_head(stack, model)  # asserts the position reached the head
    head = service.recorder.max_notification_id() or 0
    assert model.position() == head
    # Registration, two reservations, a note and a credit: only the registration decoded.
    assert head == 5
    assert decoded == [decoded[0]] and decoded[0].endswith("Customer.Registered")


def test_a_rebuild_swaps_in_every_index_the_migrations_create(
    stack: Stack, open_model: OpenModel
) -> None:
    """The indexes a rebuild drops while it fills the tables are all there after the swap."""
    settings, service = stack
    a_life(service)
    live = open_model()
    reference = open_model("search_reference")
    rebuild(
        service, lambda schema: SearchModel(read_model_datastore(settings, schema)), live.schema
    )

    def indexes(schema: str) -> set[tuple[str, str]]:
        with psycopg.connect(settings.database_url or "") as connection:
            rows = connection.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s", (schema,)
            ).fetchall()
        return {
            (str(name), str(ddl).replace(f'"{schema}"', "S").replace(schema, "S"))
            for name, ddl in rows
        }

    assert indexes(live.schema) == indexes(reference.schema)
    assert len(indexes(live.schema)) >= 6


def test_whole_words_outrank_word_starts_which_outrank_other_matches_each_listed_once(
    stack: Stack, open_model: OpenModel
) -> None:
    """q as a whole word beats q starting a word, which beats q inside a word; a customer
    matching several ways (number, phone and name) is listed once, first."""
    service = stack[1]
    inside = service.register_customer({"first_name": "Joanne", "last_name": "Kay"})
    start = service.register_customer({"first_name": "Anna", "last_name": "Jones"})
    whole = service.register_customer({"first_name": "Ann", "last_name": "Smith"})
    model = open_model()
    follow_to_head(stack, model)
    found = [r["id"] for r in search(stack, model, q="ann")]
    assert found == [whole.aggregate_id, start.aggregate_id, inside.aggregate_id]
    everything = service.register_customer(
        {
            "first_name": "Ann",
            "company_name": "7123 Ltd",
            "customer_number": 7123,
            "mobile_phone": "+1 415 555 7123",
        }
    ).aggregate_id
    follow_to_head(stack, model)
    found = [r["id"] for r in search(stack, model, q="7123", phone_digits=("7123",))]
    assert found == [everything]


def test_an_email_finds_its_customer_and_every_address_that_contains_it(
    stack: Stack, open_model: OpenModel
) -> None:
    """The index is asked about the address's local part only; the whole address is still
    what must match, inside a longer one too, and a shared domain alone matches nothing."""
    service = stack[1]
    exact = service.register_customer({"first_name": "Rob", "email": "robert@example.com"})
    longer = service.register_customer({"first_name": "Al", "email": "xrobert@example.community"})
    service.register_customer({"first_name": "Other", "email": "robert@example.org"})
    service.register_customer({"first_name": "Same", "email": "roberta@example.com"})
    model = open_model()
    follow_to_head(stack, model)
    found = [r["id"] for r in search(stack, model, q="Robert@Example.com")]
    assert found == [exact.aggregate_id, longer.aggregate_id]
    assert [r["id"] for r in search(stack, model, q="jo@example.com")] == []
