"""The follower machinery: exactly-once batches, parked poison events, one active runner."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from psycopg import Cursor, sql

from domain.customers import Customer
from domain.service import CustomerService
from infrastructure.eventstore import build_service, migrate_event_store, read_model_datastore
from infrastructure.settings import Settings
from projections.base import ReadModel
from workers.follower import Follower


class TypeCounts(ReadModel):
    """A tiny read model: how many events of each type, and who was poisoned."""

    name = "type_counts"

    def migrate(self) -> None:
        super().migrate()
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (type text PRIMARY KEY, n int NOT NULL)"
                ).format(self.table("counts"))
            )

    def apply(self, cursor: Cursor[Any], event: Any, position: int) -> None:
        if isinstance(event, Customer.NoteAdded) and event.text == "poison":
            raise ValueError("cannot apply this note")
        cursor.execute(
            sql.SQL(
                "INSERT INTO {} VALUES (%s, 1) ON CONFLICT (type) DO UPDATE SET n = {}.n + 1"
            ).format(self.table("counts"), self.table("counts")),
            (type(event).__qualname__,),
        )

    def counts(self) -> dict[str, int]:
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(sql.SQL("SELECT type, n FROM {}").format(self.table("counts")))
            return {row["type"]: row["n"] for row in cursor.fetchall()}


@pytest.fixture
def stack(make_settings: Any, database_url: str) -> Iterator[tuple[Settings, CustomerService]]:
    """A service on a schema of its own (so positions start at 1), migrated."""
    import secrets

    settings = make_settings(database_url=database_url, db_schema=f"f_{secrets.token_hex(5)}")
    migrate_event_store(settings)
    service = build_service(settings)
    yield settings, service
    service.close()
    from infrastructure.database import drop_schema

    drop_schema(database_url, settings.db_schema)
    drop_schema(database_url, f"{settings.db_schema}_type_counts")


def open_model(settings: Settings) -> TypeCounts:
    model = TypeCounts(read_model_datastore(settings, f"{settings.db_schema}_type_counts"))
    model.migrate()
    return model


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def start(follower: Follower) -> threading.Thread:
    thread = threading.Thread(target=follower.run, daemon=True)
    thread.start()
    return thread


def test_follower_applies_every_event_once_and_parks_a_poison_one(
    stack: tuple[Settings, CustomerService],
) -> None:
    """Each event is counted once; one that cannot be applied is parked and the rest go on."""
    settings, service = stack
    ids = [service.register_customer({"first_name": f"c{i}"}).aggregate_id for i in range(5)]
    service.add_note(ids[0], "poison", False)
    service.add_note(ids[1], "fine", False)
    model = open_model(settings)
    follower = Follower("type_counts", service, model, settings.database_url or "", batch_size=3)
    thread = start(follower)
    head = service.recorder.max_notification_id()
    wait_for(lambda: model.position() == head)
    follower.stop()
    thread.join(5)
    assert model.counts()["Customer.Registered"] == 5
    assert model.counts()["Customer.NoteAdded"] == 1
    assert len(model.parked_positions()) == 1


def test_a_standby_takes_over_when_the_active_runner_stops(
    stack: tuple[Settings, CustomerService],
) -> None:
    """Two runners of one name: one leads; when it stops, the other resumes from its position."""
    settings, service = stack
    model_a, model_b = open_model(settings), open_model(settings)
    url = settings.database_url or ""
    first = Follower("type_counts", service, model_a, url)
    second = Follower("type_counts", service, model_b, url, standby_poll_seconds=0.2)
    first_thread = start(first)
    wait_for(lambda: model_a.position() >= 0)
    time.sleep(0.3)
    second_thread = start(second)
    service.register_customer({"first_name": "before"})
    wait_for(lambda: model_a.position() == service.recorder.max_notification_id())
    first.stop()
    first_thread.join(5)
    service.register_customer({"first_name": "after"})
    started = time.monotonic()
    wait_for(lambda: model_b.position() == service.recorder.max_notification_id())
    assert time.monotonic() - started < 5
    second.stop()
    second_thread.join(5)
    assert model_b.counts()["Customer.Registered"] == 2


def true_counts(service: CustomerService) -> dict[str, int]:
    """Event types counted straight from the event store."""
    counts: dict[str, int] = {}
    for n in service.recorder.select_notifications(start=1, limit=1_000_000):
        name = type(service.mapper.to_domain_event(n)).__qualname__
        counts[name] = counts.get(name, 0) + 1
    return counts


def test_rebuild_swaps_in_identical_tables_while_the_live_runner_keeps_going(
    stack: tuple[Settings, CustomerService],
) -> None:
    """A rebuild under concurrent writes swaps in tables equal to the truth, and the live
    runner carries on in them."""
    from projections.rebuild import rebuild

    settings, service = stack
    live = open_model(settings)
    follower = Follower("type_counts", service, live, settings.database_url or "", batch_size=50)
    thread = start(follower)
    ids = [service.register_customer({"first_name": f"c{i}"}).aggregate_id for i in range(30)]
    writing = threading.Event()

    def write() -> None:
        i = 0
        while not writing.is_set():
            service.add_note(ids[i % len(ids)], f"note {i}", False)
            i += 1

    writer = threading.Thread(target=write)
    writer.start()
    try:
        time.sleep(0.3)

        def open_at(schema: str) -> TypeCounts:
            return TypeCounts(read_model_datastore(settings, schema))

        rebuild(service, open_at, f"{settings.db_schema}_type_counts")
        time.sleep(0.3)
    finally:
        writing.set()
        writer.join()
    head = service.recorder.max_notification_id()
    wait_for(lambda: live.position() == head)
    follower.stop()
    thread.join(5)
    expected = true_counts(service)
    assert live.counts() == expected
    assert expected["Customer.NoteAdded"] > 0


def test_retry_applies_parked_events_once_the_model_is_fixed(
    stack: tuple[Settings, CustomerService],
) -> None:
    """A parked event is applied by retry after the fix, and is no longer listed as parked."""
    settings, service = stack
    cid = service.register_customer({"first_name": "p"}).aggregate_id
    service.add_note(cid, "poison", False)
    model = open_model(settings)
    follower = Follower("type_counts", service, model, settings.database_url or "")
    thread = start(follower)
    wait_for(lambda: model.position() == service.recorder.max_notification_id())
    follower.stop()
    thread.join(5)
    [parked] = model.parked_positions()

    class Fixed(TypeCounts):
        def apply(self, cursor: Cursor[Any], event: Any, position: int) -> None:
            # The fix: poison notes are now counted like any other note.
            if isinstance(event, Customer.NoteAdded):
                cursor.execute(
                    sql.SQL(
                        "INSERT INTO {} VALUES ('Customer.NoteAdded', 1) ON CONFLICT (type)"
                        " DO UPDATE SET n = {}.n + 1"
                    ).format(self.table("counts"), self.table("counts")),
                )
                return
            super().apply(cursor, event, position)

    fixed = Fixed(read_model_datastore(settings, f"{settings.db_schema}_type_counts"))
    events = [
        (n.id, service.mapper.to_domain_event(n))
        for n in service.recorder.select_notifications(start=parked, limit=1)
    ]
    assert fixed.retry_parked(events) == []
    assert fixed.counts()["Customer.NoteAdded"] == 1
    assert fixed.parked_positions() == []
