"""The log's recent tail, read once per wake-up for every follower of one process.

A commit wakes every follower of the workers process (ten read models and the relay), and
each used to read the log after its own position: eleven statements for the same few
new records. Here the first follower to ask after a wake-up reads the new records once
into a bounded window of stored records (position, topic, originator, version, state: as
stored, encrypted, never decoded), and each follower's "after my position" is served
from the window when its position lies inside it. Decoding stays per follower (its own
classes, its own data-key look-up at decode time), so crypto-shredding works as before.
A follower behind the window (catching up, after a rebuild, far behind) or one that
wants a record the window holds without its state gets `None` and reads the database as
it did before.

Why a record served from the window is the record a database read would return:

- Complete ranges. The window covers (`start`, `through`]: every position in it that
  will ever be committed is in the window, the rest are gaps. Writers draw positions from
  the table's sequence while holding the writers' advisory lock, and hold it until they
  commit (`infrastructure.hash_chain`); a writer still on the library's table lock (a
  rolling upgrade, `install_chain`) takes EXCLUSIVE mode, which conflicts with the ROW
  EXCLUSIVE the others take before drawing. So commit order is position order: when one
  read after A sees B, every position below B was committed (visible to that read) or
  will never be (its transaction rolled back, or the sequence skipped it). A group
  commit is one transaction with one insert: its positions appear together. Gaps are
  never filled later, so a gap in the window is a gap in the log.
- Nothing stored changes. No code path updates the topic or state of a stored event or
  deletes one: erasing a customer destroys its data key (the stored bytes stay, and
  decode to shredded values), `install_chain` only fills the hash columns (not held
  here), and stream erasure deletes NATS messages, not events. So serving bytes read a
  second ago is the same as reading them again; the decoding, which does change with an
  erasure, happens when the follower is served, exactly as after its own read. Should
  anything ever rewrite or remove stored events under running workers (a restore of the
  events table, say), it must call `forget()`, or the workers be restarted.
- Fresh enough. A follower notes the wake-ups' generation before it reads and, after a
  read that reached the end of the log, waits for the generation to move on
  (`workers.wakeups`). The window notes the generation before each of its reads and
  answers "nothing more" only if its last read reached the end of the log and was begun
  at or after the follower's generation: a commit that read missed was committed after
  it began, so notified after the generation the follower noted, and it wakes.

Topics: a read model is sent only the position and topic of events it ignores
(`projections.reading`); the window reads states for every topic except those ignored by
every follower that uses it (none when the relay is among them), and a follower that
wants a record held without its state reads the database instead.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Collection, Sequence
from typing import Any

from eventsourcing.persistence import InterfaceError, Notification, OperationalError
from eventsourcing.utils import retry
from psycopg.rows import tuple_row

from domain.service import CustomerService
from projections.reading import Row, log_page_statement
from workers.wakeups import LogWakeups

__all__ = ["LogTail", "notifications"]

MAX_RECORDS = 5000
"""Records kept: some seconds of writes at the peak; a follower further behind reads the
database (states are a few hundred bytes: a few MB)."""
PAGE = 1000
"""Records read at once (at least a follower's batch: one read serves a full batch)."""


class LogTail:
    """A window of the log's newest stored records, shared by one process's followers."""

    def __init__(
        self,
        service: CustomerService,
        wakeups: LogWakeups,
        *,
        max_records: int = MAX_RECORDS,
        page: int = PAGE,
    ) -> None:
        recorder: Any = service.recorder
        self.wakeups = wakeups
        self._datastore = recorder.datastore
        self._statement = log_page_statement(recorder)
        self._max_records = max_records
        self._page = page
        self._lock = threading.Lock()
        self._followers: dict[int, Callable[[], Collection[str]]] = {}
        self._start = self._through = -1
        """The window covers (start, through]; -1: nothing yet."""
        self._positions: list[int] = []
        self._rows: list[Row] = []
        self._at_end = False
        """Whether the last read found fewer records than a page: it reached the end."""
        self._generation = -1
        """The wake-ups' generation noted before the last read."""

    def join(self, ignored: Callable[[], Collection[str]]) -> int:
        """A follower starts reading here; `ignored`: the topics it wants no state of
        (the relay: none). Returns the handle to `leave` with."""
        with self._lock:
            handle = max(self._followers, default=0) + 1
            self._followers[handle] = ignored
            return handle

    def leave(self, handle: int) -> None:
        with self._lock:
            self._followers.pop(handle, None)

    def forget(self) -> None:
        """Drop the window (the next read starts a new one)."""
        with self._lock:
            self._reset(-1)

    def read(self, after: int, limit: int, generation: int) -> list[Row] | None:
        """The stored records of the next `limit` positions after `after`, as a read of
        the log begun after the follower noted `generation` would find them ([] at the
        end of the log); None when the window cannot say (read the database)."""
        with self._lock:
            # A new window, or a follower that read past it on its own: extend it by a
            # page if that reaches the follower, else start again from it.
            if self._through < 0 or (
                after > self._through and not self._extend_to(after, generation)
            ):
                self._reset(after)
            if after < self._start:
                return None  # behind the window
            served = self._after(after, limit)
            while len(served) < limit and not (self._at_end and self._generation >= generation):
                self._fetch(generation)
                if after < self._start:
                    return None  # the window moved on past it while filling a batch
                served = self._after(after, limit)
            return served

    def _after(self, after: int, limit: int) -> list[Row]:
        first = bisect.bisect_right(self._positions, after)
        return self._rows[first : first + limit]

    def _extend_to(self, after: int, generation: int) -> bool:
        self._fetch(generation)
        return self._through >= after

    def _reset(self, start: int) -> None:
        self._start = self._through = start
        self._positions, self._rows = [], []
        self._at_end = False

    def _fetch(self, generation: int) -> None:
        """Read the next page after the window into it (under the lock)."""
        noted = self.wakeups.generation()
        rows = self._select(self._ignored_by_all(), self._through, self._page)
        self._generation = max(noted, generation)
        self._at_end = len(rows) < self._page
        if rows:
            self._rows.extend(rows)
            self._positions.extend(r[0] for r in rows)
            self._through = rows[-1][0]
        excess = len(self._rows) - self._max_records
        if excess > 0:
            self._start = self._positions[excess - 1]
            del self._rows[:excess], self._positions[:excess]

    def _ignored_by_all(self) -> list[str]:
        sets = [set(ignored()) for ignored in self._followers.values()]
        return sorted(set.intersection(*sets)) if sets else []

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def _select(self, ignored: list[str], after: int, limit: int) -> list[Row]:
        with (
            self._datastore.get_connection() as connection,
            connection.cursor(row_factory=tuple_row) as cursor,
        ):
            cursor.execute(self._statement, (ignored, after, 2**63 - 1, limit), prepare=True)
            rows: list[Row] = cursor.fetchall()
            return rows


def notifications(rows: Sequence[Row]) -> list[Notification] | None:
    """Every record as a notification (the relay's read); None if one lacks its state."""
    if any(state is None for *_, state in rows):
        return None
    return [
        Notification(
            id=position,
            originator_id=originator_id,
            originator_version=version,
            topic=topic,
            state=bytes(state),
        )
        for position, topic, _, originator_id, version, state in rows
    ]
