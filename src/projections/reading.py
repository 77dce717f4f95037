"""Reading the log for one read model: every position, but only the events it wants.

A read model ignores most of the log (reservations, idempotency records, notes for the
search model...), and decoding an event is most of what reading it costs. So the reader
asks for each notification's position and topic, and for its state only when the topic
is not one the model is known to ignore; it decodes only the events whose class the model
`wants`. The class is found from the stored topic by the library's resolver, once per
topic; a topic that does not resolve is decoded anyway, so the mapper's error parks it.

Every position is still read (a `topics` filter in the query would hide the positions of
the events left out), so the model's tracking moves to the last position read and a
reader waiting for one of those positions is not kept waiting.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from eventsourcing.persistence import InterfaceError, Notification, OperationalError
from eventsourcing.utils import TopicError, resolve_topic, retry
from psycopg import sql
from psycopg.rows import tuple_row

from domain.service import CustomerService
from projections.base import Batch

__all__ = ["LogReader", "Row", "log_page_statement"]

_NO_STOP = 2**63 - 1

Row = tuple[int, str, bool, Any, Any, Any]
"""A stored record as read: position, topic, whether its topic was ignored (then the
originator's id, version and state are None), originator id, version, state."""


def log_page_statement(recorder: Any) -> sql.Composed:
    """The page of records after a position, up to a stop, with no state for the topics
    given (parameters: ignored topics, after, stop, limit)."""
    return sql.SQL(
        "SELECT notification_id, topic, ignored, CASE WHEN ignored THEN NULL ELSE"
        " originator_id END, CASE WHEN ignored THEN NULL ELSE originator_version END,"
        " CASE WHEN ignored THEN NULL ELSE state END"
        " FROM (SELECT *, topic = ANY(%s::text[]) AS ignored FROM {}.{}"
        " WHERE notification_id > %s AND notification_id <= %s"
        " ORDER BY notification_id LIMIT %s) AS page"
    ).format(sql.Identifier(recorder.datastore.schema), sql.Identifier(recorder.events_table_name))


class LogReader:
    """Batches of (position, event) for one read model, with the last position read."""

    def __init__(self, service: CustomerService, wants: Callable[[type[Any]], bool]) -> None:
        recorder: Any = service.recorder
        self._datastore = recorder.datastore
        self._decoded = service.decoded
        self._wants = wants
        self._decided: dict[str, bool] = {}
        self._ignored: list[str] = []
        """Topics the model ignores: only their positions are sent (a row's id and
        state would be loaded for nothing: UUIDs are made in Python)."""
        self._statement = log_page_statement(recorder)

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def read(self, after: int, limit: int, stop: int | None = None) -> tuple[int, Batch] | None:
        """The wanted events of the next `limit` notifications after `after` (up to `stop`),
        with the position of the last notification read; None when there is none."""
        with (
            self._datastore.get_connection() as connection,
            connection.cursor(row_factory=tuple_row) as cursor,
        ):
            cursor.execute(
                self._statement,
                (self._ignored, after, _NO_STOP if stop is None else stop, limit),
                prepare=True,
            )
            rows = cursor.fetchall()
        if not rows:
            return None
        batch = self.decode(rows)
        assert batch is not None  # this read sent the state of every topic not ignored
        return rows[-1][0], batch

    def ignored_topics(self) -> tuple[str, ...]:
        """The topics this model is known to ignore (it wants no state of them)."""
        return tuple(self._ignored)

    def decode(self, rows: Sequence[Row]) -> Batch | None:
        """The wanted events of these records (read here or by a shared read of the log);
        None if one it wants came without its state."""
        decided = self._decided
        wanted_rows = []
        for position, topic, _, originator_id, version, state in rows:
            wanted = decided.get(topic)
            if wanted is None:
                wanted = decided[topic] = self._decide(topic)
            if wanted:
                if state is None:
                    return None
                wanted_rows.append(
                    Notification(
                        id=position,
                        originator_id=originator_id,
                        originator_version=version,
                        topic=topic,
                        state=bytes(state),
                    )
                )
        # Decoded together: one look-up of the page's customers' data keys.
        return self._decoded(wanted_rows) if wanted_rows else []

    def _decide(self, topic: str) -> bool:
        try:
            wanted = self._wants(resolve_topic(topic))
        except TopicError:
            return True
        if not wanted:
            self._ignored.append(topic)
        return wanted
