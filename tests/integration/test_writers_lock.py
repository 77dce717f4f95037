"""How saves are serialised on the events table: not behind VACUUM, still behind old writers.

VACUUM and ANALYZE (autovacuum's too) hold the events table in SHARE UPDATE EXCLUSIVE
mode while they run; another connection holding that lock mode stands for them here.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from psycopg import sql

from domain.service import CustomerService
from infrastructure.database import drop_schema
from infrastructure.eventstore import build_service, migrate_event_store
from infrastructure.settings import Settings

_WAIT = 3.0
"""Seconds a save may take here: far more than it needs, far less than lock_timeout (5 s)."""


@pytest.fixture
def settings(make_settings: Any, database_url: str) -> Iterator[Settings]:
    settings = make_settings(database_url=database_url, db_schema=f"w_{secrets.token_hex(5)}")
    migrate_event_store(settings)
    yield settings
    drop_schema(database_url, settings.db_schema)


@pytest.fixture
def service(settings: Settings) -> Iterator[CustomerService]:
    service = build_service(settings)
    service.register_customer({"first_name": "Warm"})  # pool open, statements prepared
    yield service
    service.close()


def _holding(database_url: str, settings: Settings, mode: str) -> psycopg.Connection[Any]:
    """A connection inside a transaction that holds the events table in `mode`."""
    connection = psycopg.connect(database_url)
    connection.execute(
        sql.SQL("LOCK TABLE {} IN {} MODE").format(
            sql.Identifier(settings.db_schema, "crm_events"), sql.SQL(mode)
        )
    )
    return connection


def _positions_drawn(database_url: str, settings: Settings) -> int:
    sequence = sql.Identifier(settings.db_schema, "crm_events_notification_id_seq")
    with psycopg.connect(database_url, autocommit=True) as connection:
        row = connection.execute(sql.SQL("SELECT last_value FROM {}").format(sequence)).fetchone()
    assert row is not None
    return int(row[0])


def test_a_save_does_not_wait_for_a_vacuum_holding_the_events_table(
    service: CustomerService, settings: Settings, database_url: str
) -> None:
    """With the table held as VACUUM holds it, a registration still commits at once (in
    the library's EXCLUSIVE mode it waited until PostgreSQL cancelled the autovacuum, 1 s,
    or for a manual or anti-wraparound VACUUM, until lock_timeout)."""
    vacuum = _holding(database_url, settings, "SHARE UPDATE EXCLUSIVE")
    try:
        with ThreadPoolExecutor(1) as pool:
            saved = pool.submit(service.register_customer, {"first_name": "Beside vacuum"})
            done = _finished_within(saved, _WAIT)
            vacuum.rollback()
            receipt = saved.result()
    finally:
        vacuum.close()
    assert done, "the save waited for the vacuum's lock"
    assert receipt.position > 0


def test_a_save_waits_for_an_exclusive_writer_before_drawing_positions(
    service: CustomerService, settings: Settings, database_url: str
) -> None:
    """A writer that still takes the table in EXCLUSIVE mode (the previous release during
    a rolling upgrade, the chain's back-fill) keeps a save out until it commits, and the
    save draws no position before then: positions stay in commit order."""
    drawn = _positions_drawn(database_url, settings)
    writer = _holding(database_url, settings, "EXCLUSIVE")
    try:
        with ThreadPoolExecutor(1) as pool:
            saved = pool.submit(service.register_customer, {"first_name": "After writer"})
            assert not _finished_within(saved, 0.5)
            assert _positions_drawn(database_url, settings) == drawn
            writer.commit()
            receipt = saved.result(timeout=_WAIT)
    finally:
        writer.close()
    assert receipt.position > drawn


def _finished_within(future: Future[Any], seconds: float) -> bool:
    try:
        future.exception(timeout=seconds)
    except TimeoutError:
        return False
    return True
