"""The event store on PostgreSQL: creating its tables once, and building the service on it.

Tables are created by `migrate_event_store` alone (the deploy step, or `customers run`
before it starts the processes): several processes creating them at once fail, so every
running process builds the service with `CREATE_TABLE=n`.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from typing import Any
from uuid import UUID

import structlog
from eventsourcing.postgres import PostgresDatastore
from eventsourcing.utils import get_topic
from psycopg import sql

from domain.sealing import SecretSealer
from domain.service import CustomerService
from infrastructure.data_keys import (
    LostKeyEncryptionKeyError,
    PostgresKeyRing,
    decode_key_encryption_key,
)
from infrastructure.database import (
    DATABASE_UNAVAILABLE,
    ensure_schema,
    parse_database_url,
    postgres_env,
)
from infrastructure.file_contents import create_file_tables
from infrastructure.hash_chain import ChainedRecorder, chain_key, install_chain
from infrastructure.imports import create_import_tables
from infrastructure.linked_records import LinkedRecords, create_linked_records_index
from infrastructure.settings import Settings

__all__ = [
    "build_service",
    "build_service_once_reachable",
    "event_positions",
    "migrate_event_store",
    "read_model_datastore",
    "recorder",
]

_NUMBER_SEQUENCES = ("customer_number_seq", "ticket_number_seq")
_log = structlog.get_logger("infrastructure.eventstore")


class NumberSequence:
    """Customer (or ticket) numbers from a Postgres sequence, fetched a block at a time.

    A round trip per registration would cost more than the rest of the command's reads;
    a block of numbers per process costs one per block. Numbers stay unique across
    processes; they are not in registration order across processes, and a restart leaves
    the unused rest of a block as a gap (as a sequence's cache would).
    """

    def __init__(
        self, service: CustomerService, schema: str, sequence: str, *, block: int = 50
    ) -> None:
        self._datastore = service.recorder.datastore  # type: ignore[attr-defined]
        self._statement = sql.SQL(
            "SELECT nextval({}) AS number FROM generate_series(1, {})"
        ).format(sql.Literal(f"{schema}.{sequence}"), sql.Literal(block))
        self._numbers: list[int] = []
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            if not self._numbers:
                with self._datastore.transaction(commit=True) as cursor:
                    cursor.execute(self._statement)
                    self._numbers = sorted(
                        (int(r["number"]) for r in cursor.fetchall()), reverse=True
                    )
            return self._numbers.pop()


class ExistingIds:
    """Which of many aggregate ids have events: one query where the library has one per id
    (a bulk import checks a batch's new customers and reservations at once)."""

    def __init__(self, service: CustomerService, schema: str) -> None:
        self._datastore = service.recorder.datastore  # type: ignore[attr-defined]
        table = sql.Identifier(schema, service.recorder.events_table_name)  # type: ignore[attr-defined]
        self._statement = sql.SQL(
            "SELECT DISTINCT originator_id FROM {} WHERE originator_id = ANY(%s)"
        ).format(table)

    def __call__(self, ids: Collection[UUID]) -> set[UUID]:
        if not ids:
            return set()
        with self._datastore.transaction(commit=False) as cursor:
            cursor.execute(self._statement, (list(ids),))
            return {row["originator_id"] for row in cursor.fetchall()}


def build_service_once_reachable(
    settings: Settings, stop: threading.Event | None = None, *, pause: float = 2.0
) -> CustomerService | None:
    """The service, built as soon as the database answers; None if `stop` is set first.

    Processes started before their database (a host's reboot, `compose up`) wait for it,
    saying so every `pause` seconds, instead of dying at start.
    """
    stop = stop or threading.Event()
    while True:
        try:
            return build_service(settings)
        except DATABASE_UNAVAILABLE as error:
            _log.warning("database_unavailable", error=str(error), retry_in=pause)
        if stop.wait(pause):
            return None


def build_service(settings: Settings, *, create_tables: bool = False) -> CustomerService:
    """The service on the configured database (which must be migrated unless create_tables)."""
    if settings.database_url is None:
        raise ValueError("CUSTOMERS_DATABASE_URL is not set (customers run sets it in local mode)")
    if settings.secret_key is None:
        raise ValueError("CUSTOMERS_SECRET_KEY is not set (customers run sets it in local mode)")
    if settings.key_encryption_key is None:
        raise ValueError(
            "CUSTOMERS_KEY_ENCRYPTION_KEY is not set (customers run sets it in local mode)"
        )
    env = postgres_env(
        settings.database_url,
        settings.db_schema,
        # One connection per thread of the gateway's pool, plus headroom for bursts.
        pool_size=settings.thread_pool_size,
        max_overflow=settings.thread_pool_size,
    )
    env["CREATE_TABLE"] = "y" if create_tables else "n"
    # Every write sends the audit key, with which a trigger chains the events (hash_chain).
    env["APPLICATION_RECORDER_TOPIC"] = get_topic(ChainedRecorder)
    # The pool's wait for a connection is also how long each of the recorder's ten retries
    # waits when the database is down: keep it short so an outage surfaces as a 503 soon.
    env["POSTGRES_CONNECT_TIMEOUT"] = "1"
    # No pre-ping (a round trip per checkout): a connection broken by a database restart
    # fails its statement, and the recorder's own retry takes a fresh one.
    previous = settings.previous_key_encryption_keys
    key_ring = PostgresKeyRing(
        settings.db_schema,
        decode_key_encryption_key(settings.key_encryption_key.get_secret_value()),
        previous_keys=[
            decode_key_encryption_key(key)
            for key in (previous.get_secret_value().split(",") if previous else ())
        ],
    )
    service = CustomerService(
        env,
        key_ring=key_ring,
        sealer=SecretSealer(settings.secret_key.get_secret_value()),
        phone_region=settings.default_phone_region,
        newsletter_default=settings.newsletter_default,
    )
    service.next_customer_number = NumberSequence(
        service, settings.db_schema, "customer_number_seq"
    )
    service.next_ticket_number = NumberSequence(service, settings.db_schema, "ticket_number_seq")
    service.existing_ids = ExistingIds(service, settings.db_schema)
    service.linked_records = LinkedRecords(service, settings.db_schema)
    recorder(service).chain_key = chain_key(settings.audit_key, settings.secret_key)
    # The keys live beside the events, on the same pool, which the service has just made.
    key_ring.bind(service.recorder.datastore)  # type: ignore[attr-defined]
    if not create_tables:
        try:
            key_ring.check_key_encryption_key()
        except LostKeyEncryptionKeyError:
            service.close()
            raise
        except Exception as error:  # the database is down: checked before the first key use
            _log.warning("key_encryption_key_not_checked", error=str(error))
    return service


def recorder(service: CustomerService) -> ChainedRecorder:
    """The service's event store recorder (on PostgreSQL, with the hash chain)."""
    chained = service.recorder
    assert isinstance(chained, ChainedRecorder)
    return chained


def migrate_event_store(settings: Settings) -> None:
    """Create the schema, the event tables, their hash chain, the number sequences, the
    imports' tables and the files' content store, if missing."""
    assert settings.database_url is not None
    ensure_schema(settings.database_url, settings.db_schema)
    service = build_service(settings, create_tables=True)
    try:
        assert isinstance(service.key_ring, PostgresKeyRing)
        service.key_ring.migrate()
        service.key_ring.check_key_encryption_key()
        with service.recorder.datastore.transaction(commit=True) as cursor:  # type: ignore[attr-defined]
            for sequence in _NUMBER_SEQUENCES:
                cursor.execute(
                    sql.SQL("CREATE SEQUENCE IF NOT EXISTS {}.{}").format(
                        sql.Identifier(settings.db_schema), sql.Identifier(sequence)
                    )
                )
            create_import_tables(cursor, settings.db_schema)
            create_linked_records_index(
                cursor,
                settings.db_schema,
                service.recorder.events_table_name,  # type: ignore[attr-defined]
            )
            create_file_tables(cursor, settings.db_schema)
        chained = recorder(service)
        assert chained.chain_key is not None
        install_chain(chained, chained.chain_key)
    finally:
        service.close()


def event_positions(service: CustomerService, aggregate_id: UUID) -> dict[int, int]:
    """Global position of each version of one aggregate's stream (for the audit view)."""
    recorder = service.recorder
    statement = sql.SQL(
        "SELECT originator_version, notification_id FROM {}.{} WHERE originator_id = %s"
    ).format(
        sql.Identifier(recorder.datastore.schema),  # type: ignore[attr-defined]
        sql.Identifier(recorder.events_table_name),  # type: ignore[attr-defined]
    )
    with recorder.datastore.transaction(commit=False) as cursor:  # type: ignore[attr-defined]
        cursor.execute(statement, (aggregate_id,))
        return {row["originator_version"]: row["notification_id"] for row in cursor.fetchall()}


def read_model_datastore(settings: Settings, schema: str, *, pool_size: int = 2) -> Any:
    """A connection pool of the event store's kind for one read model's schema."""
    assert settings.database_url is not None
    params = parse_database_url(settings.database_url)
    return PostgresDatastore(
        dbname=params["dbname"],
        host=params["host"],
        port=params.get("port") or "5432",
        user=params["user"],
        password=params.get("password", ""),
        schema=schema,
        pool_size=pool_size,
        max_overflow=pool_size,
        connect_timeout=5,
        lock_timeout=5,
    )
