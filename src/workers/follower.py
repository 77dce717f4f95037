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
`poll_seconds`, which bounds what a lost notification costs. After a wake-up the
followers of a process read the new records once, together (`LogTail`): each is served
from that shared read when its position lies inside it, and reads the log itself when not.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast, runtime_checkable

import psycopg
import structlog
from prometheus_client import Gauge

from domain.service import CustomerService
from projections.base import Batch, PositionMovedError
from projections.reading import LogReader
from workers.log_tail import LogTail, notifications
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


@dataclass
class _Unsaved:
    """Positions read after the saved one that held no event the model wants."""

    after: int
    """The saved position they follow: if it moves, they are forgotten."""
    since: float
    """When the first of them was read (monotonic)."""
    through: int = 0
    """The last of them."""


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
    tail: LogTail | None = None
    """The process's shared read of the log's new records (`run_followers` passes one,
    with `wakeups` its own); None: every read goes to the database."""
    save_skipped_after: float = 0.05
    """How long a read model may leave unsaved the position of events it does not want.

    Most commits concern a few read models only; saving every model's position after
    every commit cost each of the others a transaction (and the gateway a notification)
    per write. Such a position is saved with the model's next batch, or after this many
    seconds: a reader waiting for it (`min_position`) waits at most this much longer."""
    _lag_checked_at: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        if self.tail is not None and self.tail.wakeups is not self.wakeups:
            # The tail's freshness is judged by the generation the follower noted.
            raise ValueError("a follower and its log tail must share one LogWakeups")

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
        unsaved: _Unsaved | None = None
        tail = self.tail
        joined = None
        if tail is not None:
            joined = tail.join(reader.ignored_topics if reader is not None else tuple)
        try:
            last_check = time.monotonic()
            while not self.stop_event.is_set():
                # Noted before the read: a commit the read misses is notified after this.
                seen = wakeups.generation()
                # The saved position, not a remembered one: a rebuild swapped in under a
                # batch in flight may have taken that batch's commit with the old tables.
                saved = self.sink.position()
                if unsaved is not None and unsaved.after != saved:
                    unsaved = None  # the saved position moved (a swap): go on from it
                position = saved if unsaved is None else unsaved.through
                try:
                    found = self._step(position, reader, seen)
                    if found is not None and reader is not None and not found[1]:
                        # Nothing this model wants: its position is saved later, with its
                        # next batch or once `save_skipped_after` has passed.
                        unsaved = unsaved or _Unsaved(saved, time.monotonic())
                        unsaved.through = found[0]
                    elif found is not None:
                        unsaved = None
                    if unsaved is not None and time.monotonic() >= self._due(unsaved):
                        self._save(unsaved)
                        unsaved = None
                except PositionMovedError:
                    _log.info("follower_position_moved", follower=self.name)
                    unsaved = None
                    continue
                if found is None:
                    self._record_lag(position, None)
                else:
                    read_to, batch = found
                    self._record_lag(read_to, batch[-1][1] if batch else None)
                # No batch, or fewer positions than a batch: the read reached the end of
                # the log, so read again only when something new is notified (positions
                # have gaps, so a wide span may still be the end: then one more read).
                if found is None or found[0] - position < self.batch_size:
                    unsaved = self._wait(wakeups, seen, unsaved)
                if time.monotonic() - last_check > 5:
                    last_check = time.monotonic()
                    if not lock.still_held():
                        _log.warning("follower_lost_lock", follower=self.name)
                        return
        finally:
            if tail is not None and joined is not None:
                tail.leave(joined)
            if own:
                wakeups.stop()
                self.wakeups = None

    def _wait(self, wakeups: LogWakeups, seen: int, unsaved: _Unsaved | None) -> _Unsaved | None:
        """Wait for the next commit; save the skipped positions if none comes before they
        are due. Returns what is still unsaved."""
        if unsaved is not None:
            if wakeups.wait_after(seen, self._due(unsaved) - time.monotonic()):
                return unsaved  # read on: saved with the next batch, or when due
            try:
                self._save(unsaved)
            except PositionMovedError:
                return None  # the next read starts from the moved position
        wakeups.wait_after(seen, self.poll_seconds)
        return None

    def _due(self, unsaved: _Unsaved) -> float:
        return unsaved.since + self.save_skipped_after

    def _save(self, unsaved: _Unsaved) -> None:
        """Save the position of events the model did not want (no rows, the tracking only)."""
        cast(SelectiveSink, self.sink).process([], through=unsaved.through)

    def _step(self, position: int, reader: LogReader | None, seen: int) -> tuple[int, Batch] | None:
        """Hand the sink the batch after `position`: (the last position read, its events),
        or None when the log has nothing more. A read model is given only the events it
        wants and how far the log was read (`LogReader`), and nothing when it wants none
        of them (the caller saves that position later); the relay is given every event.
        Served from the process's shared read when it holds them (`seen`: the wake-ups'
        generation noted before this read), else read from the database."""
        found = self._served(position, reader, seen)
        if found is None:
            found = self._read(position, reader)
        if found is None or found == (position, []):
            return None
        if reader is not None:
            if found[1]:
                cast(SelectiveSink, self.sink).process(found[1], through=found[0])
        else:
            self.sink.process(found[1])
        return found

    def _served(
        self, position: int, reader: LogReader | None, seen: int
    ) -> tuple[int, Batch] | None:
        """The batch from the shared read; (position, []) at the end of the log; None
        when it cannot serve this follower."""
        if self.tail is None:
            return None
        rows = self.tail.read(position, self.batch_size, seen)
        if rows is None:
            return None
        if not rows:
            return position, []
        if reader is not None:
            batch = reader.decode(rows)
        else:
            stored = notifications(rows)
            batch = None if stored is None else self.service.decoded(stored)
        return None if batch is None else (rows[-1][0], batch)

    def _read(self, position: int, reader: LogReader | None) -> tuple[int, Batch] | None:
        if reader is not None:
            found: tuple[int, Batch] | None = reader.read(position, self.batch_size)
            return found
        stored = self.service.recorder.select_notifications(
            start=position, limit=self.batch_size, inclusive_of_start=False
        )
        return (stored[-1].id, self.service.decoded(stored)) if stored else None

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
