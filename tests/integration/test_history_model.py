"""The history read model on real PostgreSQL: rows, field-level changes, masking, replay."""

from __future__ import annotations

import gc
import os
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg import sql

from domain.context import acting_as
from domain.customers import Customer
from domain.service import CustomerService, Idempotency
from domain.values import Address, Profile
from infrastructure.database import drop_schema
from infrastructure.eventstore import build_service, migrate_event_store, read_model_datastore
from infrastructure.settings import Settings
from projections.history import MASK, HistoryModel
from projections.rebuild import catch_up
from workers.follower import Follower

Change = dict[str, Any]


@dataclass
class Stack:
    settings: Settings
    service: CustomerService
    schemas: list[str]

    def model(self, suffix: str = "history") -> HistoryModel:
        """A migrated history model in a schema of its own (dropped after the test)."""
        schema = f"{self.settings.db_schema}_{suffix}"
        self.schemas.append(schema)
        model = HistoryModel(read_model_datastore(self.settings, schema))
        model.migrate()
        return model

    def follow(self, model: HistoryModel, *, batch_size: int = 500) -> None:
        """Run a follower over `model` until it has processed the head of the log."""
        follower = Follower(
            f"history-{model.schema}",
            self.service,
            model,
            self.settings.database_url or "",
            batch_size=batch_size,
        )
        thread = threading.Thread(target=follower.run, daemon=True)
        thread.start()
        head = self.service.recorder.max_notification_id() or 0
        deadline = time.monotonic() + 30
        while model.position() < head:
            assert time.monotonic() < deadline, "the follower did not catch up"
            time.sleep(0.02)
        follower.stop()
        thread.join(10)


@pytest.fixture
def stack(make_settings: Any, database_url: str) -> Iterator[Stack]:
    """A service on a schema of its own (positions start at 1), and its models' schemas."""
    settings = make_settings(database_url=database_url, db_schema=f"h_{secrets.token_hex(5)}")
    migrate_event_store(settings)
    service = build_service(settings)
    stack = Stack(settings, service, [])
    yield stack
    service.close()
    for schema in [settings.db_schema, *stack.schemas]:
        drop_schema(database_url, schema)


def history(model: HistoryModel, customer_id: UUID) -> list[dict[str, Any]]:
    with model.datastore.transaction(commit=False) as cursor:
        cursor.execute(
            sql.SQL("SELECT * FROM {} WHERE customer_id = %s ORDER BY position").format(
                model.table("history")
            ),
            (customer_id,),
        )
        return list(cursor.fetchall())


def changes(row: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {c["field"]: (c["from"], c["to"]) for c in row["changes"]}


def register(service: CustomerService, **fields: Any) -> UUID:
    return service.register_customer({"first_name": "Ada", **fields}).aggregate_id


def test_registration_lists_every_non_empty_field_from_null(stack: Stack) -> None:
    """A registration row lists each non-empty field with `from: null`, and nothing empty."""
    with acting_as("alice@shop", "req-1"):
        customer_id = register(
            stack.service,
            last_name="Lovelace",
            email="ada@example.com",
            birthday=date(1815, 12, 10),
            discount_percent=Decimal("12.5"),
            assigned_staff_ids=["s1"],
            custom_fields={"gate": "1234"},
            addresses=[{"kind": "billing", "line1": "12 St James Sq", "city": "London"}],
        )
    model = stack.model()
    stack.follow(model)
    [row] = history(model, customer_id)
    assert (row["type"], row["version"], row["actor"], row["correlation_id"]) == (
        "customer.registered",
        1,
        "alice@shop",
        "req-1",
    )
    found = changes(row)
    assert all(before is None for before, _ in found.values())
    assert found["first_name"] == (None, "Ada")
    assert found["birthday"] == (None, "1815-12-10")
    assert found["discount_percent"] == (None, "12.5")
    assert found["assigned_staff_ids"] == (None, ["s1"])
    assert found["custom_fields.gate"] == (None, "1234")
    assert found["consent.newsletter"] == (None, True)
    assert found["consent.promotional_sms"] == (None, False)
    address = next(f for f in found if f.endswith("].city"))
    assert address.startswith("addresses[") and found[address] == (None, "London")
    assert "phone" not in found and "deleted" not in found and "custom_fields" not in found
    assert not any(after in (None, "", [], {}) for _, after in found.values())


def test_a_profile_change_shows_each_field_from_and_to(stack: Stack) -> None:
    """A profile change lists exactly the changed fields; clearing one reads `to: null`."""
    customer_id = register(
        stack.service, company_name="Old Ltd", custom_fields={"gate": "1", "dog": "yes"}
    )
    stack.service.change_profile(
        customer_id,
        {"company_name": None, "group": "vip", "custom_fields": {"gate": "2", "wifi": "x"}},
        expected_version=1,
    )
    model = stack.model()
    stack.follow(model)
    rows = history(model, customer_id)
    assert [r["type"] for r in rows] == ["customer.registered", "customer.profile_changed"]
    assert changes(rows[1]) == {
        "company_name": ("Old Ltd", None),
        "group": (None, "vip"),
        "custom_fields.dog": ("yes", None),
        "custom_fields.gate": ("1", "2"),
        "custom_fields.wifi": (None, "x"),
    }


def test_a_consent_change_is_a_row_of_its_own(stack: Stack) -> None:
    """Withdrawing the newsletter is a consent row `consent.newsletter: true -> false`."""
    customer_id = register(stack.service)
    stack.service.change_profile(
        customer_id, {"newsletter": False, "group": "b"}, expected_version=1
    )
    model = stack.model()
    stack.follow(model)
    rows = history(model, customer_id)
    assert [(r["type"], changes(r)) for r in rows[1:]] == [
        ("customer.profile_changed", {"group": (None, "b")}),
        ("customer.consent_changed", {"consent.newsletter": (True, False)}),
    ]


def test_parts_are_listed_field_by_field_when_added_and_removed(stack: Stack) -> None:
    """Notes, contacts, addresses, systems, prices, credits and keys: added and removed."""
    service = stack.service
    customer_id = register(service)
    note_id = service.add_note(customer_id, "Call first", True).result["note_id"]
    contact = {"name": "Bob", "role": "manager", "email": "bob@example.com", "phone": None}
    contact_id = service.add_contact(customer_id, contact).result["contact_id"]
    address_id = service.add_address(
        customer_id, {"kind": "site", "line1": "1 Road", "city": "Leeds"}
    ).result["address_id"]
    system_id = service.install_system(
        customer_id, {"system_type": "alarm", "ip_address": "10.0.0.7"}
    ).result["system_id"]
    service.set_custom_price(customer_id, "svc.cleaning", Decimal("12.50"))
    service.set_custom_price(customer_id, "svc.cleaning", Decimal("15.00"))
    credit_id = service.add_credit(customer_id, Decimal("5.00"), "sorry").result["credit_id"]
    service.hand_keys_to(customer_id, "staff-7", "key safe")
    service.hand_keys_to(customer_id, "staff-8", None)
    version = service.get_customer(customer_id).version
    for remove, part_id in (
        (service.remove_note, note_id),
        (service.remove_contact, contact_id),
        (service.remove_address, address_id),
        (service.remove_system, system_id),
    ):
        version = remove(customer_id, part_id, expected_version=version).version
    model = stack.model()
    stack.follow(model)
    found = [(r["type"], changes(r)) for r in history(model, customer_id)[1:]]
    assert found == [
        (
            "customer.note_added",
            {
                f"notes[{note_id}].text": (None, "Call first"),
                f"notes[{note_id}].urgent": (None, True),
            },
        ),
        (
            "customer.contact_added",
            {
                f"contacts[{contact_id}].name": (None, "Bob"),
                f"contacts[{contact_id}].role": (None, "manager"),
                f"contacts[{contact_id}].email": (None, "bob@example.com"),
            },
        ),
        (
            "customer.address_added",
            {
                f"addresses[{address_id}].kind": (None, "site"),
                f"addresses[{address_id}].line1": (None, "1 Road"),
                f"addresses[{address_id}].city": (None, "Leeds"),
            },
        ),
        (
            "customer.system_installed",
            {
                f"systems[{system_id}].system_type": (None, "alarm"),
                f"systems[{system_id}].ip_address": (None, "10.0.0.7"),
            },
        ),
        ("customer.custom_price_set", {"custom_prices.svc.cleaning": (None, "12.50")}),
        ("customer.custom_price_set", {"custom_prices.svc.cleaning": ("12.50", "15.00")}),
        (
            "customer.credit_added",
            {
                f"credits[{credit_id}].amount": (None, "5.00"),
                f"credits[{credit_id}].reason": (None, "sorry"),
            },
        ),
        (
            "customer.key_custody_changed",
            {
                "key_custody.holder_staff_id": (None, "staff-7"),
                "key_custody.location": (None, "key safe"),
            },
        ),
        (
            "customer.key_custody_changed",
            {
                "key_custody.holder_staff_id": ("staff-7", "staff-8"),
                "key_custody.location": ("key safe", None),
            },
        ),
        (
            "customer.note_removed",
            {
                f"notes[{note_id}].text": ("Call first", None),
                f"notes[{note_id}].urgent": (True, None),
            },
        ),
        (
            "customer.contact_removed",
            {
                f"contacts[{contact_id}].email": ("bob@example.com", None),
                f"contacts[{contact_id}].name": ("Bob", None),
                f"contacts[{contact_id}].role": ("manager", None),
            },
        ),
        (
            "customer.address_removed",
            {
                f"addresses[{address_id}].city": ("Leeds", None),
                f"addresses[{address_id}].kind": ("site", None),
                f"addresses[{address_id}].line1": ("1 Road", None),
            },
        ),
        (
            "customer.system_removed",
            {
                f"systems[{system_id}].ip_address": ("10.0.0.7", None),
                f"systems[{system_id}].system_type": ("alarm", None),
            },
        ),
    ]


def test_secrets_show_only_as_a_mask_and_never_reach_the_tables(stack: Stack) -> None:
    """A secret reads `***` (set) or null, each new one is listed, and neither the secret
    nor its sealed form is stored anywhere in the model's tables."""
    service = stack.service
    customer_id = register(service)
    receipt = service.install_system(
        customer_id, {"system_type": "alarm", "login": "admin", "secret": "hunter2"}
    )
    system_id = receipt.result["system_id"]
    version = service.change_system(
        customer_id, system_id, {"secret": "correct horse"}, expected_version=receipt.version
    ).version
    version = service.change_system(
        customer_id, system_id, {"secret": None, "login": "root"}, expected_version=version
    ).version
    sealed = [
        e.system.sealed_secret
        for e in service.customer_events(customer_id)
        if isinstance(e, Customer.SystemInstalled)
    ]
    model = stack.model()
    stack.follow(model)
    secret = f"systems[{system_id}].secret"
    rows = history(model, customer_id)
    assert changes(rows[1])[secret] == (None, MASK)
    assert changes(rows[2]) == {secret: (MASK, MASK)}
    assert changes(rows[3]) == {
        secret: (MASK, None),
        f"systems[{system_id}].login": ("admin", "root"),
    }
    with model.datastore.transaction(commit=False) as cursor:
        cursor.execute(
            sql.SQL(
                "SELECT (SELECT string_agg(changes::text, '') FROM {})"
                " || (SELECT string_agg(fields::text, '') FROM {}) AS everything"
            ).format(model.table("history"), model.table("snapshots"))
        )
        row = cursor.fetchone()
    assert row is not None
    everything = row["everything"]
    assert sealed[0] and sealed[0] not in everything
    assert "hunter2" not in everything and "correct horse" not in everything
    assert "sealed" not in everything


def test_delete_restore_block_and_unblock_are_rows(stack: Stack) -> None:
    """Lifecycle events read as `deleted` and `blocked` going from false to true and back."""
    service = stack.service
    customer_id = register(service)
    version = service.block_customer(customer_id, "unpaid", expected_version=1).version
    version = service.unblock_customer(customer_id, expected_version=version).version
    version = service.delete_customer(customer_id, expected_version=version).version
    service.restore_customer(customer_id, expected_version=version)
    model = stack.model()
    stack.follow(model)
    found = [(r["type"], changes(r)) for r in history(model, customer_id)[1:]]
    assert found == [
        ("customer.blocked", {"blocked": (False, True), "block_reason": (None, "unpaid")}),
        ("customer.unblocked", {"blocked": (True, False), "block_reason": ("unpaid", None)}),
        ("customer.deleted", {"deleted": (False, True)}),
        ("customer.restored", {"deleted": (True, False)}),
    ]


def test_only_customer_events_make_rows_and_nothing_is_parked(stack: Stack) -> None:
    """Reservations and idempotency records are skipped without error: one row per
    customer event; another aggregate's event naming a customer, with no method yet, too."""
    service = stack.service
    key = Idempotency(uuid4(), "fingerprint")
    customer_id = service.register_customer(
        {"first_name": "Ada", "email": f"{secrets.token_hex(4)}@example.com"}, key
    ).aggregate_id
    model = stack.model()
    stack.follow(model)
    head = service.recorder.max_notification_id() or 0
    assert head > 2  # the customer, its email and number reservations, the idempotency record
    assert len(history(model, customer_id)) == 1
    assert model.parked_positions() == []

    @dataclass
    class Booked:  # an appointment's event, before the history knows appointments
        customer_id: UUID
        originator_id: UUID

    model.process([(head + 1, Booked(customer_id, uuid4()))])
    assert model.position() == head + 1
    assert len(history(model, customer_id)) == 1
    # A customer event the model has no method for still gets its row, without changes.
    registered = next(iter(service.customer_events(customer_id)))
    unknown = Customer.Event(
        originator_id=customer_id,
        originator_version=2,
        timestamp=registered.timestamp,
        actor="bob@shop",
        correlation_id="req-2",
    )
    model.process([(head + 2, unknown)])
    last = history(model, customer_id)[-1]
    assert (last["type"], last["version"], last["changes"]) == ("customer.event", 2, [])
    assert model.parked_positions() == []


def test_replaying_into_a_fresh_schema_gives_identical_tables(stack: Stack) -> None:
    """Rows and snapshots built event by event as commands happen equal a rebuild's from 0."""
    service = stack.service
    incremental = stack.model("history")
    follower = Follower(
        f"history-{incremental.schema}",
        service,
        incremental,
        stack.settings.database_url or "",
        batch_size=1,
    )
    thread = threading.Thread(target=follower.run, daemon=True)
    thread.start()
    for n in range(6):
        customer_id = register(service, custom_fields={"n": str(n)})
        version = service.change_profile(
            customer_id,
            {"group": "vip", "newsletter": n % 2 == 0, "custom_fields": {}},
            expected_version=1,
        ).version
        note_id = service.add_note(customer_id, f"note {n}", False).result["note_id"]
        version = service.remove_note(customer_id, note_id, expected_version=version + 1).version
        service.install_system(customer_id, {"system_type": "nas", "secret": "pw"})
        service.set_custom_price(customer_id, "a", Decimal(n))
    head = service.recorder.max_notification_id() or 0
    deadline = time.monotonic() + 30
    while incremental.position() < head:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    follower.stop()
    thread.join(10)
    rebuilt = stack.model("history_rebuilt")
    stack.follow(rebuilt, batch_size=500)
    for table, order in (("history", "position"), ("snapshots", "customer_id")):
        assert _table(incremental, table, order) == _table(rebuilt, table, order)
    # Six rows a customer, and a consent row for the three that said no to the newsletter.
    assert len(_table(rebuilt, "history", "position")) == 6 * 6 + 3


def test_a_batch_takes_the_same_few_statements_however_many_events_it_holds(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Applying a batch costs a fixed number of round trips, not one per event or customer."""
    service = stack.service
    ids = [register(service) for _ in range(5)]
    registered = service.recorder.max_notification_id() or 0
    for customer_id in ids:
        service.add_note(customer_id, "hello", False)
    model = stack.model()
    events = [
        (n.id, service.mapper.to_domain_event(n))
        for n in service.recorder.select_notifications(start=1, limit=1000)
    ]
    statements: list[Any] = []
    real_execute, real_copy = psycopg.Cursor.execute, psycopg.Cursor.copy

    def execute(cursor: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        statements.append(query)
        return real_execute(cursor, query, *args, **kwargs)

    def copy(cursor: Any, statement: Any, *args: Any, **kwargs: Any) -> Any:
        statements.append(statement)
        return real_copy(cursor, statement, *args, **kwargs)

    counts = []
    registrations = [e for e in events if e[0] <= registered]
    notes = [e for e in events if e[0] > registered]
    for batch in (registrations, notes):
        with model.datastore.transaction(commit=True) as cursor:
            statements.clear()
            monkeypatch.setattr(psycopg.Cursor, "execute", execute)
            monkeypatch.setattr(psycopg.Cursor, "copy", copy)
            model.apply_batch(cursor, batch)
            monkeypatch.undo()
        counts.append(len(statements))
    # Registrations: no snapshot to read. Notes: one read of the five snapshots. Then the
    # rows, the snapshots and the position (and the commit mode), whatever the batch holds.
    assert counts == [5, 6], statements


def _table(model: HistoryModel, table: str, order: str) -> list[tuple[Any, ...]]:
    with model.datastore.transaction(commit=False) as cursor:
        cursor.execute(
            sql.SQL("SELECT * FROM {} ORDER BY {}").format(
                model.table(table), sql.Identifier(order)
            )
        )
        return [tuple(row.values()) for row in cursor.fetchall()]


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("HISTORY_BENCH_EVENTS"),
    reason="a benchmark: HISTORY_BENCH_EVENTS=120000 pytest -k rebuild_throughput -s",
)
def test_rebuild_throughput(stack: Stack) -> None:
    """Prints how fast the model is rebuilt over an interleaved log of many customers."""
    target = int(os.environ["HISTORY_BENCH_EVENTS"])
    _write_interleaved_log(stack.service, target)
    gc.collect()  # the aggregates that wrote the log are gone: time the rebuild alone
    head = stack.service.recorder.max_notification_id() or 0
    model = stack.model()
    started = time.perf_counter()
    assert catch_up(stack.service, model) == head  # what `customers projections rebuild` runs
    elapsed = time.perf_counter() - started
    print(f"\nhistory: {head} events in {elapsed:.1f} s = {head / elapsed:,.0f} events/s")


def _write_interleaved_log(service: CustomerService, target: int) -> None:
    """Registrations first, then rounds of one change per customer: a customer's events
    are spread over the log, as in real life (each batch touches many customers)."""
    customers = [
        Customer.register(
            customer_number=n + 1,
            profile=Profile(
                first_name=f"First{n}",
                last_name="Last",
                email=f"user{n}@example.com",
                company_name="Acme Ltd",
                custom_fields={"tier": "b"},
            ),
            addresses=[Address(uuid4(), "billing", f"{n} High Street", city="London")],
        )
        for n in range(max(1, target // 10))
    ]
    _save(service, customers)
    rounds = 0
    while (service.recorder.max_notification_id() or 0) < target:
        for customer in customers:
            _change(service, customer, rounds)
        _save(service, customers)
        rounds += 1


def _save(service: CustomerService, aggregates: list[Customer]) -> None:
    for start in range(0, len(aggregates), 50):  # larger saves stall the library's pipeline
        service.save(*aggregates[start : start + 50])


def _change(service: CustomerService, customer: Customer, round_: int) -> None:
    match round_ % 6:
        case 0:
            customer.change_profile({"group": "vip", "phone": None}, consent_channel="staff")
        case 1:
            customer.change_profile({"newsletter": False}, consent_channel="web")
        case 2:
            customer.add_note("called about the invoice", urgent=False)
        case 3:
            customer.install_system(system_type="alarm", sealed_secret=service.sealer.seal("pw"))
        case 4:
            customer.set_custom_price("cleaning", Decimal(round_))
        case _:
            customer.add_credit(Decimal("5.00"), "goodwill")


def test_an_erased_customers_history_reads_the_same_kept_up_as_rebuilt(stack: Stack) -> None:
    """Kept up, the rows were written from clear events and redacted at the erasure; rebuilt,
    they come from the redacted events. Both must end as the same rows."""
    service = stack.service
    customer_id = register(
        service, last_name="Lovelace", email="ada@example.com", group="vip", tax_id="GB1"
    )
    service.add_note(customer_id, "calls after six", urgent=True)
    service.change_profile(
        customer_id,
        {"email": "ada@lovelace.org", "group": "gold"},
        expected_version=2,
        consent_channel="staff",
    )
    kept_up = stack.model()
    stack.follow(kept_up)
    version = service.get_customer(customer_id).version
    service.erase_customer(customer_id, expected_version=version)
    stack.follow(kept_up)
    rebuilt = stack.model("history_rebuilt")
    stack.follow(rebuilt)

    def rows(model: HistoryModel) -> list[tuple[Any, ...]]:
        return [(r["position"], r["type"], r["changes"]) for r in history(model, customer_id)]

    assert rows(kept_up) == rows(rebuilt)
    listed = {c["field"] for r in history(kept_up, customer_id) for c in r["changes"]}
    assert "group" in listed, "what is nobody's personal data stays listed, without values"
    assert all(c["from"] is c["to"] is None for r in rows(kept_up)[:-1] for c in r[2])
