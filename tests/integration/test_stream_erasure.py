"""The relay's record of stream messages per customer, and erasures that survive a crash."""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from typing import Any
from uuid import uuid4

import pytest

from infrastructure.database import drop_schema, ensure_schema
from infrastructure.eventstore import read_model_datastore
from infrastructure.settings import Settings
from workers.stream_erasure import StreamErasure


@pytest.fixture
def datastore(make_settings: Any, database_url: str) -> Iterator[tuple[Any, str]]:
    settings: Settings = make_settings(database_url=database_url)
    schema = f"s_{secrets.token_hex(5)}"
    ensure_schema(database_url, schema)
    store = read_model_datastore(settings, schema)
    yield store, schema
    store.close()
    drop_schema(database_url, schema)


def test_a_pending_erasure_is_finished_by_the_next_relay(datastore: tuple[Any, str]) -> None:
    """The deletion fails after the commit (a crash); the next relay deletes the messages."""
    store, schema = datastore
    ada, bob = uuid4(), uuid4()

    def crash(sequences: Sequence[int]) -> None:
        raise ConnectionError("NATS went away")

    first = StreamErasure(store, schema, crash)
    first.create_tables()
    with store.transaction(commit=True) as cursor:
        first.record(cursor, [(ada, 3), (bob, 4), (ada, 7)], [(ada, 9)])
    with pytest.raises(ConnectionError):
        first.purge_pending()
    deleted: list[int] = []
    second = StreamErasure(store, schema, deleted.extend)
    assert second.purge_pending() == 1
    assert deleted == [3, 7], "only the erased customer's messages, in order"
    assert second.purge_pending() == 0, "done once"
    with store.transaction(commit=False) as cursor:
        cursor.execute(f"SELECT customer_id, stream_seq FROM {schema}.relay_customer_messages")
        assert [(r["customer_id"], r["stream_seq"]) for r in cursor.fetchall()] == [(bob, 4)]
