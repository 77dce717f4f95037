"""The relay: every public event, in log order, to JetStream, once; then its position.

A follower sink (see `workers.follower`): for each batch it builds the CloudEvents and the
notification requests (`projections.cloudevents`, `projections.notifications`), publishes
them all and waits for every acknowledgement, and only then saves the batch's last
position in `<schema>.relay_positions`. A crash before that save republishes the batch
with the same `Nats-Msg-Id`s and JetStream drops what it already has. Internal events
(reservations, idempotency records) publish nothing but are stepped over.

While NATS is down or refuses a message, `process` retries the whole batch with backoff,
logging every failure, and after `give_up_after` seconds raises: the runner restarts the
follower from the saved position after its pause. Nothing is skipped; the write side
never waits for NATS, so the backlog grows and drains when NATS is back.
"""

from __future__ import annotations

import contextlib
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import structlog
from prometheus_client import Counter, Gauge, Histogram
from psycopg import sql

from domain.customers import Customer
from domain.service import CustomerService
from infrastructure.settings import ENV_PREFIX, Settings, SettingsError
from projections.cloudevents import Outgoing, event_message
from projections.notifications import Lookups, notification_messages
from workers.follower import LAG_REFRESH_SECONDS
from workers.jetstream import JetStreamPublisher
from workers.relay_lookups import service_lookups
from workers.stream_erasure import StreamErasure, customer_of

__all__ = [
    "Publisher",
    "Relay",
    "RelayPositions",
    "RelayStalledError",
    "RetryPolicy",
    "check_relay_settings",
    "open_relay",
]

_log = structlog.get_logger("workers.relay")

LAG = Histogram(
    "relay_lag_seconds",
    "From an event's commit to JetStream's acknowledgement of its message",
    ["relay"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800),
)
BACKLOG = Gauge("relay_backlog_events", "Events in the log not yet published", ["relay"])
OLDEST_UNPUBLISHED = Gauge(
    "relay_oldest_unpublished_seconds",
    "Age of the oldest event waiting for JetStream (0 once its batch is acknowledged)",
    ["relay"],
)
MESSAGES = Counter(
    "relay_messages", "Messages acknowledged by JetStream", ["relay", "kind", "outcome"]
)
FAILURES = Counter(
    "relay_publish_failures", "Batches JetStream did not fully acknowledge", ["relay"]
)


class RelayStalledError(Exception):
    """A batch could not be published for longer than the retry policy allows."""


class Publisher(Protocol):
    """Publishes messages and returns only when each is acknowledged (else raises)."""

    def publish(self, messages: Sequence[Outgoing]) -> Sequence[Any]: ...

    def wait_connected(self, timeout: float) -> None:
        """The pause between attempts: up to `timeout`, shorter when the server is back."""

    def close(self) -> None: ...


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff between attempts at one batch, and when to hand over to the runner."""

    first_delay: float = 0.2
    max_delay: float = 5.0
    give_up_after: float = 15.0

    def delay(self, attempt: int) -> float:
        return float(min(self.max_delay, self.first_delay * 2 ** (attempt - 1)))


class RelayPositions:
    """How far each relay has published, in a small table of the service schema."""

    def __init__(self, datastore: Any, schema: str) -> None:
        self._datastore = datastore
        self._table = sql.Identifier(schema, "relay_positions")
        self._schema = schema

    def create_table(self) -> None:
        with self._datastore.transaction(commit=True) as cursor:
            # Several workers may start at once: one creates, the others wait and see it.
            cursor.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"migrate:{self._schema}",)
            )
            cursor.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (relay text PRIMARY KEY,"
                    " position bigint NOT NULL, last_event_at timestamptz,"
                    " updated_at timestamptz NOT NULL DEFAULT now())"
                ).format(self._table)
            )

    def load(self, relay: str) -> int:
        # One autocommit statement: in a transaction it was BEGIN and ROLLBACK around it,
        # and psycopg follows a ROLLBACK with DEALLOCATE ALL, dropping the connection's
        # prepared statements, before every batch.
        with self._datastore.get_connection() as connection, connection.cursor() as cursor:
            cursor.execute(
                sql.SQL("SELECT position FROM {} WHERE relay = %s").format(self._table), (relay,)
            )
            row = cursor.fetchone()
        return int(row["position"]) if row else 0

    def save(
        self,
        relay: str,
        position: int,
        last_event_at: datetime | None = None,
        *,
        also: Callable[[Any], None] | None = None,
    ) -> None:
        """Record a published batch: its last position and when its newest event happened
        (and whatever `also` writes, in the same transaction)."""
        with self._datastore.transaction(commit=True) as cursor:
            if also is not None:
                also(cursor)
            cursor.execute(
                sql.SQL(
                    "INSERT INTO {0} (relay, position, last_event_at) VALUES (%s, %s, %s)"
                    " ON CONFLICT (relay) DO UPDATE SET position = EXCLUDED.position,"
                    " last_event_at = EXCLUDED.last_event_at, updated_at = now()"
                    " WHERE {0}.position < EXCLUDED.position"
                ).format(self._table),
                (relay, position, last_event_at),
            )


@dataclass
class Relay:
    """The follower sink that publishes each batch and then records its position."""

    name: str
    publisher: Publisher
    positions: RelayPositions
    head: Callable[[], int]
    """The log's last position (for the backlog gauge)."""
    lookups: Lookups
    """What notification requests read besides the event (profiles, zone, link sealing)."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    erasure: StreamErasure | None = None
    """Deletes an erased customer's messages from the stream (`workers.stream_erasure`)."""
    _backlog_checked_at: float = field(default=float("-inf"), init=False)
    _head_seen: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        # The runner drops a failed sink and opens a new one without closing the old:
        # the connection and its loop thread go with the object.
        weakref.finalize(self, self.publisher.close)

    def position(self) -> int:
        return self.positions.load(self.name)

    def process(self, batch: Sequence[tuple[int, Any]]) -> None:
        """Publish the batch's messages, wait for every ack, then save its last position."""
        messages: list[Outgoing] = []
        owners: list[UUID | None] = []  # the customer each message is about
        for position, event in batch:
            message = event_message(position, event)
            if message is not None:
                messages.append(message)
            messages.extend(notification_messages(position, event, self.lookups))
            owners.extend([customer_of(event)] * (len(messages) - len(owners)))
        acks = self._publish(messages, batch) if messages else []
        last, last_time = batch[-1][0], batch[-1][1].timestamp
        erasure = self.erasure
        if erasure is None:
            self.positions.save(self.name, last, last_time)
        else:
            erased = [(e.originator_id, p) for p, e in batch if isinstance(e, Customer.Erased)]
            sequences = [(o, int(a.seq)) for o, a in zip(owners, acks, strict=True) if o]

            def record(cursor: Any) -> None:
                erasure.record(cursor, sequences, erased)

            self.positions.save(self.name, last, last_time, also=record)
            if erased:
                erasure.purge_pending()
        # The head costs a query: ask at most every LAG_REFRESH_SECONDS, not per batch;
        # in between, the backlog behind the head last seen.
        now = time.monotonic()
        if now - self._backlog_checked_at >= LAG_REFRESH_SECONDS:
            self._backlog_checked_at, self._head_seen = now, self.head()
        BACKLOG.labels(self.name).set(max(0, self._head_seen - last))
        OLDEST_UNPUBLISHED.labels(self.name).set(0)

    def close(self) -> None:
        self.publisher.close()

    def _publish(self, messages: list[Outgoing], batch: Sequence[tuple[int, Any]]) -> Sequence[Any]:
        first, last = batch[0][0], batch[-1][0]
        started = time.monotonic()
        attempt = 0
        while True:
            try:
                acks = self.publisher.publish(messages)
                break
            except Exception as error:
                attempt += 1
                FAILURES.labels(self.name).inc()
                waited = time.monotonic() - started
                delay = self.retry.delay(attempt)
                self._record_stall(first, messages[0].event_time)
                if waited + delay > self.retry.give_up_after:
                    _log.error(
                        "relay_stalled",
                        relay=self.name,
                        positions=f"{first}-{last}",
                        attempts=attempt,
                        error=str(error),
                    )
                    raise RelayStalledError(
                        f"{self.name}: positions {first}-{last} unpublished after {attempt}"
                        f" attempts in {waited:.1f} s: {error}"
                    ) from error
                _log.warning(
                    "relay_publish_failed",
                    relay=self.name,
                    positions=f"{first}-{last}",
                    messages=len(messages),
                    attempt=attempt,
                    retry_in=delay,
                    error=str(error),
                )
                self.publisher.wait_connected(delay)
        acked_at = time.time()
        duplicates = 0
        for message, ack in zip(messages, acks, strict=True):
            duplicate = bool(getattr(ack, "duplicate", False))
            duplicates += duplicate
            outcome = "duplicate" if duplicate else "stored"
            MESSAGES.labels(self.name, message.kind, outcome).inc()
            if message.kind == "event":
                LAG.labels(self.name).observe(max(0.0, acked_at - message.event_time.timestamp()))
        if duplicates:
            # A republish after a crash: JetStream recognised the ids and kept one copy.
            _log.info(
                "relay_duplicates_dropped",
                relay=self.name,
                positions=f"{first}-{last}",
                duplicates=duplicates,
            )
        return acks

    def _record_stall(self, first: int, first_time: datetime) -> None:
        with contextlib.suppress(Exception):  # the database may be down too: it can wait
            BACKLOG.labels(self.name).set(max(0, self.head() - first + 1))
        OLDEST_UNPUBLISHED.labels(self.name).set(max(0.0, time.time() - first_time.timestamp()))


def check_relay_settings(settings: Settings) -> str:
    """The notification key; SettingsError naming the variable when it is not set.

    Called before the follower threads start too: raised in a thread, it would end only
    that thread and leave a process running without its relay."""
    if settings.notification_key is None:
        raise SettingsError(
            f"{ENV_PREFIX}NOTIFICATION_KEY: required by the relay (a Fernet key, shared with"
            " the notification consumer, that seals the portal links' tokens)"
        )
    return settings.notification_key.get_secret_value()


def open_relay(settings: Settings, service: CustomerService) -> Relay:
    """The relay sink on the service's database and the configured NATS (the runner's factory)."""
    if settings.nats_url is None:
        raise RuntimeError("CUSTOMERS_NATS_URL is not set (customers run sets it in local mode)")
    notification_key = check_relay_settings(settings)
    datastore = service.recorder.datastore  # type: ignore[attr-defined]
    positions = RelayPositions(datastore, settings.db_schema)
    positions.create_table()
    publisher = JetStreamPublisher(settings.nats_url)
    erasure = StreamErasure(datastore, settings.db_schema, publisher.delete)
    erasure.create_tables()
    erasure.purge_pending()  # an erasure a crash interrupted, done before anything else
    return Relay(
        name="relay",
        publisher=publisher,
        positions=positions,
        head=lambda: service.recorder.max_notification_id() or 0,
        lookups=service_lookups(service, settings.business_time_zone, notification_key),
        erasure=erasure,
    )
