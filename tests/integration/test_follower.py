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
from workers.wakeups import LogWakeups


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


class OtherTypeCounts(TypeCounts):
    """A second read model, so two followers of one process can share a listener."""

    name = "type_counts_b"


def test_followers_sharing_one_listener_miss_no_commit_written_during_their_reads(
    stack: tuple[Settings, CustomerService],
) -> None:
    """Two followers wait on one process-wide listener while writers commit from threads:
    both reach the head promptly, though their safety-net poll (60 s) never fires. A
    wake-up lost between a read and the wait would leave one of them behind."""
    settings, service = stack
    url = settings.database_url or ""
    wakeups = LogWakeups(url, service.recorder.channel_name)  # type: ignore[attr-defined]
    first = open_model(settings)
    second = OtherTypeCounts(read_model_datastore(settings, f"{settings.db_schema}_type_counts_b"))
    second.migrate()
    followers = [
        Follower(model.name, service, model, url, poll_seconds=60, wakeups=wakeups)
        for model in (first, second)
    ]
    threads = [start(follower) for follower in followers]
    try:
        cid = service.register_customer({"first_name": "w"}).aggregate_id
        wait_for(lambda: first.position() == second.position() == _head(service))
        writers = [
            threading.Thread(
                target=lambda n=n: [service.add_note(cid, f"{n}-{i}", False) for i in range(15)]
            )
            for n in range(3)
        ]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
        head = _head(service)
        wait_for(lambda: first.position() == second.position() == head, timeout=20)
        assert first.counts()["Customer.NoteAdded"] == second.counts()["Customer.NoteAdded"] == 45
    finally:
        for follower in followers:
            follower.stop()
        for thread in threads:
            thread.join(5)
        wakeups.stop()
        from infrastructure.database import drop_schema

        drop_schema(url, f"{settings.db_schema}_type_counts_b")


def test_a_lost_notification_costs_at_most_the_poll_interval(
    stack: tuple[Settings, CustomerService],
) -> None:
    """A listener that hears none of the writers' notifications (here: listening on
    another channel) delays a follower by its poll interval, not for ever."""
    settings, service = stack
    url = settings.database_url or ""
    deaf = LogWakeups(url, "nobody_notifies_this_channel")
    model = open_model(settings)
    follower = Follower(model.name, service, model, url, poll_seconds=1.0, wakeups=deaf)
    thread = start(follower)
    try:
        wait_for(lambda: model.position() == (_head(service)))
        time.sleep(0.2)  # the follower is waiting now, after an empty read
        service.register_customer({"first_name": "unheard"})
        written = time.monotonic()
        wait_for(lambda: model.position() == _head(service))
        # The poll interval, plus room for a loaded machine (never the 10 s of wait_for).
        assert time.monotonic() - written < 1.0 + 4.0
    finally:
        follower.stop()
        thread.join(5)
        deaf.stop()


def _head(service: CustomerService) -> int:
    return service.recorder.max_notification_id() or 0


class NoteCounts(TypeCounts):
    """A read model that wants notes only: registrations are positions it steps over."""

    def wants(self, event_class: type[Any]) -> bool:
        return event_class is Customer.NoteAdded


def open_note_counts(settings: Settings) -> NoteCounts:
    model = NoteCounts(read_model_datastore(settings, f"{settings.db_schema}_type_counts"))
    model.migrate()
    return model


def test_a_model_that_wants_none_of_the_new_events_still_reaches_the_head(
    stack: tuple[Settings, CustomerService],
) -> None:
    """Its position is saved once the skipped positions are due, with no rows written."""
    settings, service = stack
    model = open_note_counts(settings)
    url = settings.database_url or ""
    follower = Follower(model.name, service, model, url, poll_seconds=60, save_skipped_after=0.2)
    thread = start(follower)
    try:
        for i in range(3):
            service.register_customer({"first_name": f"s{i}"})
        wait_for(lambda: model.position() == _head(service))
        assert model.counts() == {}
    finally:
        follower.stop()
        thread.join(5)


def test_skipped_positions_are_saved_with_the_next_wanted_batch(
    stack: tuple[Settings, CustomerService],
) -> None:
    """Positions the model stepped over wait for its next batch (here long before they are
    due), which saves them with its own rows."""
    settings, service = stack
    model = open_note_counts(settings)
    url = settings.database_url or ""
    follower = Follower(model.name, service, model, url, poll_seconds=60, save_skipped_after=60)
    thread = start(follower)
    try:
        cid = service.register_customer({"first_name": "n"}).aggregate_id
        time.sleep(0.3)
        service.add_note(cid, "wanted", False)
        wait_for(lambda: model.position() == _head(service), timeout=20)
        assert model.counts() == {"Customer.NoteAdded": 1}
    finally:
        follower.stop()
        thread.join(5)


def test_a_burst_of_commits_a_model_does_not_want_saves_its_position_once_or_so(
    stack: tuple[Settings, CustomerService], database_url: str
) -> None:
    """Not one transaction (and progress notification) per commit: the positions wait to
    be due, then one save covers the burst."""
    import psycopg

    from projections.base import PROGRESS_CHANNEL

    settings, service = stack
    model = open_note_counts(settings)
    url = settings.database_url or ""
    follower = Follower(model.name, service, model, url, poll_seconds=60, save_skipped_after=1.0)
    thread = start(follower)
    with psycopg.connect(database_url, autocommit=True) as listener:
        listener.execute(f"LISTEN {PROGRESS_CHANNEL}")
        try:
            wait_for(lambda: model.position() == _head(service))
            for i in range(20):
                service.register_customer({"first_name": f"b{i}"})
            wait_for(lambda: model.position() == _head(service))
            saves = [
                n
                for n in listener.notifies(timeout=0.5, stop_after=100)
                if n.payload.startswith(f"{model.schema}:")
            ]
        finally:
            follower.stop()
            thread.join(5)
    assert 1 <= len(saves) <= 3
