"""One read of the log's new records per wake-up for all followers of a process (`LogTail`)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql
from tests.integration.test_follower import TypeCounts, _head, start, wait_for
from tests.integration.test_follower import stack as stack  # the fixture
from tests.integration.test_rebuild_equals_incremental import tables

from domain.customers import Customer
from domain.service import CustomerService
from infrastructure.database import drop_schema
from infrastructure.eventstore import read_model_datastore
from infrastructure.settings import Settings
from projections.base import ReadModel
from projections.catalog import open_read_model
from projections.reading import LogReader
from projections.rebuild import rebuild
from workers.follower import Follower
from workers.log_tail import LogTail, notifications
from workers.wakeups import LogWakeups


@contextlib.contextmanager
def log_reads(service: CustomerService) -> Iterator[list[str]]:
    """The statements that read the log after a position, sent on the event store's
    connections while inside (every follower read borrows one of them)."""
    found: list[str] = []

    class CountingCursor(psycopg.Cursor[Any]):
        def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
            text = query.as_string(self) if isinstance(query, sql.Composable) else str(query)
            if "notification_id >" in text:
                found.append(text)
            return super().execute(query, *args, **kwargs)

    datastore: Any = service.recorder.datastore  # type: ignore[attr-defined]
    original = datastore.get_connection

    @contextlib.contextmanager
    def counted() -> Iterator[Any]:
        with original() as connection:
            connection.cursor_factory = CountingCursor
            try:
                yield connection
            finally:
                connection.cursor_factory = psycopg.Cursor

    datastore.get_connection = counted
    try:
        yield found
    finally:
        del datastore.get_connection


def counting_models(settings: Settings, n: int) -> list[TypeCounts]:
    models = []
    for i in range(n):
        model_class = type(f"Counts{i}", (TypeCounts,), {"name": f"type_counts_{i}"})
        model = model_class(read_model_datastore(settings, f"{settings.db_schema}_counts_{i}"))
        model.migrate()
        models.append(model)
    return models


def test_followers_at_the_head_share_one_read_of_the_log_per_commit(
    stack: tuple[Settings, CustomerService],
) -> None:
    """Four followers of one process, at the head, woken by each of three commits: the
    log is read about once per commit (it was once per follower), and each follower
    applies every event."""
    settings, service = stack
    url = settings.database_url or ""
    wakeups = LogWakeups(url, service.recorder.channel_name)  # type: ignore[attr-defined]
    tail = LogTail(service, wakeups)
    models = counting_models(settings, 4)
    followers = [
        Follower(m.name, service, m, url, poll_seconds=60, wakeups=wakeups, tail=tail)
        for m in models
    ]
    threads = [start(follower) for follower in followers]
    try:
        cid = service.register_customer({"first_name": "h"}).aggregate_id
        wait_for(lambda: all(m.position() == _head(service) for m in models))
        with log_reads(service) as reads:
            for i in range(3):
                service.add_note(cid, f"n{i}", False)
                head = _head(service)
                wait_for(lambda head=head: all(m.position() == head for m in models))
        assert 3 <= len(reads) <= 5, reads  # one per follower per commit would be 12
        assert all(m.counts()["Customer.NoteAdded"] == 3 for m in models)
    finally:
        for follower in followers:
            follower.stop()
        for thread in threads:
            thread.join(5)
        wakeups.stop()
        for i in range(4):
            drop_schema(url, f"{settings.db_schema}_counts_{i}")


def _notes_only(event_class: type[Any]) -> bool:
    return event_class is Customer.NoteAdded


def test_a_read_behind_the_window_is_refused_and_one_inside_it_equals_the_database_s(
    stack: tuple[Settings, CustomerService],
) -> None:
    """For every position: the window serves the batch a database read gives (a model
    that wants notes only, and the relay's every event), or refuses when the position
    lies before the records it holds."""
    settings, service = stack
    for i in range(6):
        cid = service.register_customer({"first_name": f"w{i}"}).aggregate_id
        service.add_note(cid, f"note {i}", False)
    wakeups = LogWakeups(settings.database_url or "", "unused")
    tail = LogTail(service, wakeups, max_records=5, page=4)
    model = LogReader(service, _notes_only)
    tail.join(model.ignored_topics)
    head = _head(service)
    assert tail.read(head - 5, 1, wakeups.generation())  # the window starts there
    served = refused = 0
    for after in range(head, -1, -1):
        rows = tail.read(after, 3, wakeups.generation())
        expected = model.read(after, 3)
        stored = service.recorder.select_notifications(
            start=after, limit=3, inclusive_of_start=False
        )
        if rows is None:
            refused += 1
            continue
        served += 1
        assert (rows[-1][0], model.decode(rows)) == expected if rows else expected is None
        relayed = notifications(rows)
        assert relayed is not None
        assert service.decoded(relayed) == service.decoded(stored)
    assert served == 6 and refused == head - 5, (served, refused)


def test_records_served_after_an_erasure_decode_as_erased(
    stack: tuple[Settings, CustomerService],
) -> None:
    """The window holds records as stored (encrypted), so a follower served them after
    the customer's erasure decodes them without its personal data, as a read would."""
    settings, service = stack
    cid = service.register_customer({"first_name": "Ada"}).aggregate_id
    wakeups = LogWakeups(settings.database_url or "", "unused")
    tail = LogTail(service, wakeups)
    model = LogReader(service, lambda c: c is Customer.Registered)
    tail.join(model.ignored_topics)
    rows = tail.read(0, 10, wakeups.generation())
    assert rows is not None
    before = model.decode(rows)
    assert before is not None and before[0][1].profile.first_name == "Ada"
    service.erase_customer(cid, expected_version=1)
    with log_reads(service) as reads:
        rows = tail.read(0, 1, wakeups.generation())
    assert reads == [], "served from the window"
    assert rows is not None
    after = model.decode(rows)
    assert after is not None and after[0][1].profile.first_name == ""
    assert after == model.decode(rows)
    found = model.read(0, 1)
    assert found is not None and after == found[1]


@pytest.mark.timeout(120)
def test_concurrent_writers_and_followers_sharing_a_small_window_equal_a_rebuild(
    stack: tuple[Settings, CustomerService],
) -> None:
    """Three writers commit while three read models follow through one shared tail whose
    window is smaller than the burst (some reads are served, some go to the database,
    the window starts again): each model ends with the tables a rebuild from 0 gives."""
    settings, service = stack
    url = settings.database_url or ""
    wakeups = LogWakeups(url, service.recorder.channel_name)  # type: ignore[attr-defined]
    tail = LogTail(service, wakeups, max_records=15, page=6)
    names = ("search", "history", "conversations")
    live: dict[str, ReadModel] = {name: open_read_model(settings, name) for name in names}
    for model in live.values():
        model.migrate()
    followers = [
        Follower(name, service, model, url, batch_size=4, wakeups=wakeups, tail=tail)
        for name, model in live.items()
    ]
    threads = [start(follower) for follower in followers]

    def write(n: int) -> None:
        for i in range(12):
            receipt = service.register_customer({"first_name": f"Writer{n}", "last_name": f"X{i}"})
            service.add_note(receipt.aggregate_id, f"note {n} {i}", False)
            if i % 5 == 4:
                service.erase_customer(receipt.aggregate_id, expected_version=2)

    try:
        writers = [threading.Thread(target=write, args=(n,)) for n in range(3)]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
        head = _head(service)
        wait_for(lambda: all(m.position() == head for m in live.values()), timeout=60)
    finally:
        for follower in followers:
            follower.stop()
        for thread in threads:
            thread.join(5)
        wakeups.stop()
    try:
        for name, model in live.items():
            rebuilt_schema = f"{model.schema}_rebuilt"
            rebuild(
                service,
                lambda schema, name=name: open_read_model(settings, name, schema=schema),
                rebuilt_schema,
            )
            rebuilt = open_read_model(settings, name, schema=rebuilt_schema)
            try:
                assert tables(rebuilt) == tables(model), name
            finally:
                rebuilt.datastore.close()
                drop_schema(url, rebuilt_schema)
    finally:
        for model in live.values():
            model.datastore.close()
            drop_schema(url, model.schema)
