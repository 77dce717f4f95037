"""One LISTEN connection per process for the writers' NOTIFY, shared by its followers.

Every commit to the events table sends a NOTIFY on the log's channel. Each follower
listening on a connection of its own meant one LISTEN connection per follower and, after
every wake-up, a read that found nothing more. Here one thread listens for the whole
process and counts the notifications it received (a generation number); a follower notes
the generation BEFORE it reads the log, and after a read that reached the end of the log
it waits only until the generation moves on. No wake-up is missed: a commit the read did
not see was notified after the read began, so after the generation was noted.

The count is a hint, never the only way forward: a follower whose wait times out
(`poll_seconds`) reads the log anyway, so a lost notification (the listening connection
dropped, the thread failed) costs at most that interval, and the listener counts a
reconnection as a wake-up because notifications sent while it was away are gone.
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import structlog
from psycopg import sql

__all__ = ["LogWakeups"]

_log = structlog.get_logger("workers.wakeups")
_RECONNECT_PAUSE_SECONDS = 1.0
_STOP_CHECK_SECONDS = 0.5


class LogWakeups:
    """Counts the log channel's notifications for every follower of one process."""

    def __init__(self, database_url: str, channel: str) -> None:
        self._database_url = database_url
        self._channel = channel
        self._changed = threading.Condition()
        self._generation = 0
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def start(self) -> None:
        """Start listening (once; later calls do nothing)."""
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._listen, name=f"wakeups:{self._channel}", daemon=True
                )
                self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self.wake()
        if self._thread is not None:
            self._thread.join(_STOP_CHECK_SECONDS * 4)

    def generation(self) -> int:
        """Note this before reading the log, and pass it to `wait_after`."""
        with self._changed:
            return self._generation

    def wait_after(self, generation: int, timeout: float) -> bool:
        """Wait until a notification arrives after `generation` was noted, or `timeout`
        seconds; returns whether one did (False: time to read anyway)."""
        with self._changed:
            return self._changed.wait_for(lambda: self._generation != generation, timeout)

    def wake(self) -> None:
        """Wake every waiting follower (a notification, a reconnection, a stop)."""
        with self._changed:
            self._generation += 1
            self._changed.notify_all()

    def _listen(self) -> None:
        while not self._stopped.is_set():
            try:
                with psycopg.connect(self._database_url, autocommit=True) as connection:
                    self._listen_on(connection)
            except psycopg.Error as error:
                _log.warning("wakeups_listener_failed", channel=self._channel, error=str(error))
                self._stopped.wait(_RECONNECT_PAUSE_SECONDS)

    def _listen_on(self, connection: psycopg.Connection[Any]) -> None:
        connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
        # Whatever was notified while nobody listened is lost: let the followers look.
        self.wake()
        while not self._stopped.is_set():
            for _ in connection.notifies(timeout=_STOP_CHECK_SECONDS):
                self.wake()
                if self._stopped.is_set():
                    return
