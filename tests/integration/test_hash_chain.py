"""Tamper evidence on the real event store: rows edited, deleted or moved with SQL are caught."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg import sql

from domain.errors import ConflictError
from domain.sealing import SecretSealer
from domain.service import CustomerService
from infrastructure.audit_log import Verification, verify_chain
from infrastructure.database import drop_schema, postgres_env
from infrastructure.eventstore import build_service, migrate_event_store, recorder
from infrastructure.hash_chain import ChainKey
from infrastructure.settings import Settings


@dataclass
class Store:
    """A service on a schema of its own, and raw SQL on its events table."""

    service: CustomerService
    settings: Settings
    database_url: str

    def verify(self, stream_id: UUID | None = None) -> Verification:
        chained = recorder(self.service)
        assert chained.chain_key is not None
        return verify_chain(chained, chained.chain_key, stream_id)

    def sql(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        """Run `statement` with `{events}` naming the events table, as an attacker would."""
        events = sql.Identifier(self.settings.db_schema, "crm_events")
        with psycopg.connect(self.database_url, autocommit=True) as connection:
            cursor = connection.execute(sql.SQL(statement).format(events=events), params)
            return cursor.fetchall() if cursor.description else []

    def position(self, stream_id: UUID, version: int) -> int:
        rows = self.sql(
            "SELECT notification_id FROM {events} WHERE originator_id = %s"
            " AND originator_version = %s",
            stream_id,
            version,
        )
        return int(rows[0][0])


@pytest.fixture
def store(make_settings: Any, database_url: str) -> Iterator[Store]:
    """A fresh schema per test: tampering must not spoil the session's shared store."""
    settings = make_settings(database_url=database_url, db_schema=f"h_{secrets.token_hex(5)}")
    migrate_event_store(settings)
    service = build_service(settings)
    yield Store(service, settings, database_url)
    service.close()
    drop_schema(database_url, settings.db_schema)


def _customer_with_notes(store: Store, notes: int = 3) -> UUID:
    customer_id = store.service.register_customer({"first_name": "Ada"}).aggregate_id
    for i in range(notes):
        store.service.add_note(customer_id, f"note {i}", False)
    return customer_id


def test_an_untouched_store_verifies_including_grouped_saves(store: Store) -> None:
    """Registrations and notes saved concurrently (many streams and versions per
    transaction) all verify, and every stream and event is counted."""
    customer_id = _customer_with_notes(store, 1)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: store.service.add_note(customer_id, f"n{i}", False), range(20)))
        list(
            pool.map(lambda i: store.service.register_customer({"first_name": f"c{i}"}), range(20))
        )
    ((events, streams),) = store.sql("SELECT count(*), count(DISTINCT originator_id) FROM {events}")
    result = store.verify()
    assert result.ok, result.first_break
    assert (result.events_checked, result.streams_checked) == (events, streams)
    assert (
        result.head is not None
        and result.head.position == store.sql("SELECT max(notification_id) FROM {events}")[0][0]
    )
    one = store.verify(customer_id)
    assert one.ok and one.events_checked == 22 and one.streams_checked == 1


def test_two_writers_with_their_own_connections_keep_one_chain(store: Store) -> None:
    """Two services on one store (as two gateway processes: separate pools, separate group
    commits) writing at once still leave one unbroken chain: each save reads the log's
    head under the table lock."""
    other = build_service(store.settings)
    try:
        shared = store.service.register_customer({"first_name": "Shared"}).aggregate_id
        with ThreadPoolExecutor(16) as pool:
            futures = [
                pool.submit(service.add_note, shared, f"{i}", False)
                if i % 3 == 0
                else pool.submit(service.register_customer, {"first_name": f"w{i}"})
                for i in range(60)
                for service in (store.service, other)
            ]
            notes = 0
            for future in futures:
                try:
                    receipt = future.result()
                except ConflictError:
                    continue  # two processes racing on one customer may give up: no effect
                notes += receipt.aggregate_id == shared
    finally:
        other.close()
    result = store.verify()
    assert result.ok, result.first_break
    assert notes > 0 and store.verify(shared).events_checked == 1 + notes


def test_an_edited_state_is_caught_at_its_event(store: Store) -> None:
    """Changing one byte of a stored state breaks the chain exactly there."""
    customer_id = _customer_with_notes(store)
    store.sql(
        "UPDATE {events} SET state = overlay(state PLACING '\\x21'::bytea FROM 3)"
        " WHERE originator_id = %s AND originator_version = 2",
        customer_id,
    )
    for result in (store.verify(), store.verify(customer_id)):
        assert result.first_break is not None
        assert (result.first_break.stream_id, result.first_break.version) == (customer_id, 2)
        assert "not what was written" in result.first_break.reason


def test_an_edited_topic_is_caught(store: Store) -> None:
    """Relabelling an event as another type (a note as a deletion) is caught."""
    customer_id = _customer_with_notes(store)
    store.sql(
        "UPDATE {events} SET topic = 'domain.customers:Customer.Deleted'"
        " WHERE originator_id = %s AND originator_version = 3",
        customer_id,
    )
    result = store.verify()
    assert result.first_break is not None
    assert (result.first_break.stream_id, result.first_break.version) == (customer_id, 3)


def test_a_deleted_middle_event_is_caught_as_missing(store: Store) -> None:
    """Deleting version 2 of four reports version 2 of that stream missing."""
    customer_id = _customer_with_notes(store)
    store.sql(
        "DELETE FROM {events} WHERE originator_id = %s AND originator_version = 2", customer_id
    )
    for result in (store.verify(), store.verify(customer_id)):
        assert result.first_break is not None
        assert (result.first_break.stream_id, result.first_break.version) == (customer_id, 2)
        assert "missing" in result.first_break.reason


def test_a_deleted_last_event_of_a_stream_is_caught_by_the_next_in_the_log(store: Store) -> None:
    """Deleting a stream's last event leaves its own chain whole, but the event that
    followed it in the log no longer links: the break names that one and the gap."""
    customer_id = _customer_with_notes(store)
    deleted = store.position(customer_id, 4)
    later = store.service.register_customer({"first_name": "Bob"}).aggregate_id
    store.sql(
        "DELETE FROM {events} WHERE originator_id = %s AND originator_version = 4", customer_id
    )
    result = store.verify()
    assert result.first_break is not None
    assert (result.first_break.stream_id, result.first_break.version) == (later, 1)
    assert f"after position {deleted - 1}" in result.first_break.reason
    assert "missing" in result.first_break.reason


def test_the_last_event_of_the_log_is_vouched_for_by_the_head(store: Store) -> None:
    """The log's final event has no successor: its deletion shows as a changed head."""
    _customer_with_notes(store)
    before = store.verify()
    store.sql(
        "DELETE FROM {events} WHERE notification_id = (SELECT max(notification_id) FROM {events})"
    )
    after = store.verify()
    assert after.ok and after.head != before.head


def test_swapped_versions_are_caught(store: Store) -> None:
    """Swapping versions 2 and 3 of a stream (reordering its history) is caught."""
    customer_id = _customer_with_notes(store)
    store.sql(
        "UPDATE {events} SET originator_version = -originator_version"
        " WHERE originator_id = %s AND originator_version IN (2, 3)",
        customer_id,
    )
    store.sql(
        "UPDATE {events} SET originator_version = CASE originator_version WHEN -2 THEN 3"
        " ELSE 2 END WHERE originator_id = %s AND originator_version < 0",
        customer_id,
    )
    for result in (store.verify(), store.verify(customer_id)):
        assert result.first_break is not None
        assert (result.first_break.stream_id, result.first_break.version) == (customer_id, 2)


def test_an_event_moved_to_another_stream_is_caught(store: Store) -> None:
    """A note taken off one customer and appended to another as its next version is caught
    on the stream it was moved to."""
    first = _customer_with_notes(store, 0)
    second = _customer_with_notes(store, 0)
    store.service.add_note(first, "meant for the first customer only", False)
    store.sql(
        "UPDATE {events} SET originator_id = %s, originator_version = 2"
        " WHERE originator_id = %s AND originator_version = 2",
        second,
        first,
    )
    for result in (store.verify(), store.verify(second)):
        assert result.first_break is not None
        assert (result.first_break.stream_id, result.first_break.version) == (second, 2)
        assert "not what was written" in result.first_break.reason


def test_an_edit_rehashed_without_the_key_is_still_caught(store: Store) -> None:
    """An attacker who edits an event and recomputes its chain with any key but the
    service's (here a random one) leaves a break at the edit."""
    customer_id = _customer_with_notes(store)
    forger = ChainKey(secrets.token_bytes(32))
    target = store.position(customer_id, 3)
    store.sql(
        "UPDATE {events} SET state = state || '\\x20'::bytea WHERE notification_id = %s", target
    )
    rows = store.sql(
        "SELECT notification_id, originator_id, originator_version, topic, state FROM {events}"
        " ORDER BY notification_id"
    )
    streams: dict[UUID, bytes] = {}
    log: bytes | None = None
    for position, stream, version, topic, state in rows:
        link = forger.stream_hash(streams.get(stream), stream, version, topic, bytes(state))
        streams[stream], log = link, forger.log_hash(log, position, link)
        store.sql(
            "UPDATE {events} SET stream_hash = %s, log_hash = %s WHERE notification_id = %s",
            link,
            log,
            position,
        )
    result = store.verify()
    assert result.first_break is not None and result.events_checked == 0


def test_a_row_inserted_around_the_service_has_no_hash_and_is_reported(store: Store) -> None:
    """An event INSERTed with plain SQL (no audit key) gets no hashes: verify names it."""
    customer_id = _customer_with_notes(store, 0)
    store.sql(
        "INSERT INTO {events} (originator_id, originator_version, topic, state)"
        " VALUES (%s, 2, 'domain.customers:Customer.Deleted', '\\x7b7d'::bytea)",
        customer_id,
    )
    result = store.verify()
    assert result.first_break is not None
    assert (result.first_break.stream_id, result.first_break.version) == (customer_id, 2)
    assert "no hash" in result.first_break.reason


def test_events_from_before_the_chain_are_back_filled_by_the_migration(store: Store) -> None:
    """A store written before the chain existed (no hash columns, the library's own
    recorder) is chained by the next migration, which records how far it back-filled;
    new events then chain on."""
    store.sql("ALTER TABLE {events} DROP COLUMN stream_hash, DROP COLUMN log_hash")
    settings = store.settings
    assert settings.database_url is not None and settings.secret_key is not None
    legacy = CustomerService(
        postgres_env(settings.database_url, settings.db_schema),
        sealer=SecretSealer(settings.secret_key.get_secret_value()),
    )
    try:
        old = _customer_with_notes(Store(legacy, settings, store.database_url))
    finally:
        legacy.close()
    ((head,),) = store.sql("SELECT max(notification_id) FROM {events}")
    migrate_event_store(store.settings)
    store.service.add_note(old, "after the migration", False)
    result = store.verify()
    assert result.ok, result.first_break
    assert result.backfilled_through == head
    assert store.verify(old).events_checked == 5


def test_the_recorder_refuses_to_write_without_its_key(store: Store) -> None:
    """A recorder without the audit key would write unchained events: it refuses."""
    chained = recorder(store.service)
    chained.chain_key = None
    with pytest.raises(Exception, match="no audit key"):
        store.service.register_customer({"first_name": "Unchained"})
