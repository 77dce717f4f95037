"""Follow the global event log into a sink, as the one active runner of its name.

Read models and the NATS relay are both followers: they read the log from their own
saved position in batches, hand each batch to their sink, and the sink saves its new
position together with its effect (in the read model's transaction, or after JetStream's
acknowledgement). Commit order equals position order in this event store (its writers
take a table lock), so reading "after my position" never skips a late commit.

One runner per name is active: it holds a PostgreSQL advisory lock on a connection of its
own. Standbys try for the lock every second and take over within seconds when the active
runner dies (its connection closes, the lock goes with it). New events wake the follower
through LISTEN/NOTIFY, on one listening connection per process (`LogWakeups`): a follower
that read to the end of the log waits for the next notification, and reads anyway after
`poll_seconds`, which bounds what a lost notification costs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast, runtime_checkable

import psycopg
import structlog
from prometheus_client import Gauge

from domain.service import CustomerService
from projections.base import Batch, PositionMovedError
from projections.reading import LogReader
from workers.wakeups import LogWakeups

__all__ = ["Follower", "LeaderLock", "SelectiveSink", "Sink", "leader_lock_key"]

_log = structlog.get_logger("workers.follower")

LAG_EVENTS = Gauge("follower_lag_events", "Positions behind the head of the log", ["follower"])
LAG_SECONDS = Gauge(
    "follower_lag_seconds", "Age of the newest event processed when it was processed", ["follower"]
)
POSITION = Gauge("follower_position", "Last position processed", ["follower"])
LAG_REFRESH_SECONDS = 2.0
ACTIVE = Gauge("follower_active", "1 while this process is the active runner", ["follower"])


class Sink(Protocol):
    """Where a follower puts events: it saves its position with their effect."""

    def position(self) -> int: ...

    def process(self, batch: Sequence[tuple[int, Any]]) -> None: ...


@runtime_checkable
class SelectiveSink(Sink, Protocol):
    """A sink that wants only some event classes (a read model): the follower decodes
    only those and tells it how far it read, past the last one it was given."""

    def wants(self, event_class: type[Any]) -> bool: ...

    def process(self, batch: Sequence[tuple[int, Any]], *, through: int | None = None) -> None: ...


def leader_lock_key(service: CustomerService, name: str) -> str:
    """The advisory lock's key: per schema, so two services in one database do not compete."""
    schema = service.recorder.datastore.schema  # type: ignore[attr-defined]
    return f"follower:{schema}:{name}"


class LeaderLock:
    """A session-level advisory lock on a dedicated connection: held while it is open."""

    def __init__(self, database_url: str, key: str) -> None:
        self._database_url = database_url
        self._key = key
        self._connection: psycopg.Connection[Any] | None = None

    def try_acquire(self) -> bool:
        if self._connection is None or self._connection.closed:
            self._connection = psycopg.connect(self._database_url, autocommit=True)
        row = self._connection.execute(
            "SELECT pg_try_advisory_lock(hashtext(%s))", (self._key,)
        ).fetchone()
        return bool(row and row[0])

    def still_held(self) -> bool:
        """Whether the lock's connection is alive (a dead one released the lock)."""
        if self._connection is None or self._connection.closed:
            return False
        try:
            self._connection.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    def release(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


@dataclass
class Follower:
    """Runs one sink from its position to the head of the log and on, while it leads."""

    name: str
    service: CustomerService
    sink: Sink
    database_url: str
    batch_size: int = 500
    standby_poll_seconds: float = 1.0
    poll_seconds: float = 1.0
    """The longest wait for a notification before reading the log anyway (the safety net)."""
    wakeups: LogWakeups | None = None
    """The process's shared listener (`run_followers` passes one); None: one of its own."""
    stop_event: threading.Event = field(default_factory=threading.Event)
    on_batch: Callable[[int], None] | None = None
    """Called with the new position after each batch (tests, progress bars)."""
    _lag_checked_at: float = field(default=0.0, init=False)

    def run(self) -> None:
        """Wait to lead, then follow until `stop()`; raises what the sink raises."""
        lock = LeaderLock(self.database_url, leader_lock_key(self.service, self.name))
        try:
            while not self.stop_event.is_set():
                if lock.try_acquire():
                    ACTIVE.labels(self.name).set(1)
                    _log.info("follower_leading", follower=self.name)
                    try:
                        self._follow(lock)
                    finally:
                        ACTIVE.labels(self.name).set(0)
                    return
                self.stop_event.wait(self.standby_poll_seconds)
        finally:
            lock.release()

    def stop(self) -> None:
        self.stop_event.set()
        if self.wakeups is not None:
            self.wakeups.wake()

    def _follow(self, lock: LeaderLock) -> None:
        recorder: Any = self.service.recorder
        sink = self.sink
        reader = LogReader(self.service, sink.wants) if isinstance(sink, SelectiveSink) else None
        own = self.wakeups is None
        if self.wakeups is None:
            self.wakeups = LogWakeups(self.database_url, recorder.channel_name)
        wakeups = self.wakeups
        wakeups.start()
        try:
            last_check = time.monotonic()
            while not self.stop_event.is_set():
                # Noted before the read: a commit the read misses is notified after this.
                seen = wakeups.generation()
                # The saved position, not a remembered one: a rebuild swapped in under a
                # batch in flight may have taken that batch's commit with the old tables.
                position = self.sink.position()
                try:
                    found = self._step(position, reader)
                except PositionMovedError:
                    _log.info("follower_position_moved", follower=self.name)
                    continue
                if found is None:
                    self._record_lag(position, None)
                    wakeups.wait_after(seen, self.poll_seconds)
                else:
                    read_to, batch = found
                    self._record_lag(read_to, batch[-1][1] if batch else None)
                    if self.on_batch is not None:
                        self.on_batch(read_to)
                    # Fewer positions than a batch: the read reached the end of the log,
                    # so read again only when something new is notified (positions have
                    # gaps, so a wide span may still be the end: then one more read).
                    if read_to - position < self.batch_size:
                        wakeups.wait_after(seen, self.poll_seconds)
                if time.monotonic() - last_check > 5:
                    last_check = time.monotonic()
                    if not lock.still_held():
                        _log.warning("follower_lost_lock", follower=self.name)
                        return
        finally:
            if own:
                wakeups.stop()
                self.wakeups = None

    def _step(self, position: int, reader: LogReader | None) -> tuple[int, Batch] | None:
        """Hand the sink the batch after `position`: (the last position read, its events),
        or None when the log has nothing more. A read model is given only the events it
        wants and how far the log was read (`LogReader`); the relay is given every event."""
        if reader is not None:
            found: tuple[int, Batch] | None = reader.read(position, self.batch_size)
            if found is not None:
                cast(SelectiveSink, self.sink).process(found[1], through=found[0])
            return found
        notifications = self.service.recorder.select_notifications(
            start=position, limit=self.batch_size, inclusive_of_start=False
        )
        if not notifications:
            return None
        batch = self.service.decoded(notifications)
        self.sink.process(batch)
        return notifications[-1].id, batch

    def _record_lag(self, position: int, last_event: Any) -> None:
        # The head costs a query: ask at most every LAG_REFRESH_SECONDS, not per batch.
        now = time.monotonic()
        if now - self._lag_checked_at < LAG_REFRESH_SECONDS:
            return
        self._lag_checked_at = now
        head = self.service.recorder.max_notification_id() or 0
        POSITION.labels(self.name).set(position)
        LAG_EVENTS.labels(self.name).set(max(0, head - position))
        if last_event is not None:
            LAG_SECONDS.labels(self.name).set(
                max(0.0, time.time() - last_event.timestamp.timestamp())
            )
        elif head <= position:
            LAG_SECONDS.labels(self.name).set(0)
