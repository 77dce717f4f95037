"""Group commit: the changes of concurrent commands saved in one transaction.

The event store serialises writers with a lock held through each commit's flush, so
one save per command caps throughput at about one commit per millisecond, however many
threads wait. Commands that reach the save while another save is running queue up; the
thread whose save just finished takes everything queued and saves it as ONE save (one
lock, one flush). When that combined save is refused (two commands raced for the same
version or reservation), each command's events are saved alone, so only the loser sees
its conflict and retries; the others are not punished for sharing a transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.persistence import IntegrityError, Recording

__all__ = ["GroupCommit"]

Save = Callable[..., list[Recording[Any]]]


@dataclass
class _Pending:
    events: list[Any]
    done: threading.Event = field(default_factory=threading.Event)
    recordings: list[Recording[Any]] = field(default_factory=list)
    error: BaseException | None = None


class GroupCommit:
    """Saves domain events for many threads, grouping those that arrive together."""

    # Bounded: one save of ~1,000 events was seen to stall psycopg's pipeline on a unix
    # socket (both ends waiting mid-INSERT); 32 commands stay far below that.
    def __init__(self, save: Save, *, max_group: int = 32) -> None:
        self._save = save
        self._max_group = max_group
        self._lock = threading.Lock()
        self._queue: list[_Pending] = []
        self._committing = False
        self._leader: int | None = None

    def save(self, events: Sequence[Any]) -> list[Recording[Any]]:
        """Save `events` atomically (possibly with other commands'); their recordings."""
        if self._leader == threading.get_ident():
            # Re-entered from inside a save (a hook of the save itself): nothing to group.
            return self._save(*events)
        pending = _Pending(list(events))
        with self._lock:
            self._queue.append(pending)
            lead = not self._committing
            self._committing = True
        if lead:
            self._drain()
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        return pending.recordings

    def _drain(self) -> None:
        self._leader = threading.get_ident()
        try:
            while True:
                with self._lock:
                    group = self._queue[: self._max_group]
                    del self._queue[: self._max_group]
                    if not group:
                        self._committing = False
                        return
                self._commit(group)
        finally:
            self._leader = None

    def _commit(self, group: list[_Pending]) -> None:
        if len(group) > 1:
            try:
                recordings = self._save(*(e for p in group for e in p.events))
            except IntegrityError:
                pass  # someone in the group conflicts: find out who, one by one
            except BaseException as error:
                self._finish(group, error=error)
                return
            else:
                by_event = {id(r.domain_event): r for r in recordings}
                for p in group:
                    p.recordings = [by_event[id(e)] for e in p.events]
                self._finish(group)
                return
        for p in group:
            try:
                p.recordings = self._save(*p.events)
            except BaseException as error:
                p.error = error
            p.done.set()

    @staticmethod
    def _finish(group: list[_Pending], error: BaseException | None = None) -> None:
        for p in group:
            p.error = error
            p.done.set()
