"""Erasure on NATS: the relay deletes an erased customer's messages from the CRM stream.

JetStream keeps what the relay published (for a week, `MAX_AGE_SECONDS`), and the
CloudEvents and notification requests about a customer carry its personal data in clear.
So the relay records, for each message about a customer, the stream sequence JetStream
acknowledged it with, in `<schema>.relay_customer_messages`, in the same transaction as
its position. When a batch holds a `Customer.Erased`, the same transaction records a
pending erasure; after the commit the relay deletes that customer's messages from the
stream (JetStream's message delete, which overwrites the stored message) and then forgets
them and the pending erasure. A crash in between leaves the pending row, done again by
the next relay (deleting a deleted message is harmless).

The erasure's own message stays: it holds no personal data, and it tells consumers to
forget the customer in their own stores.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

import structlog
from psycopg import Cursor, sql

from domain.customers import Customer
from domain.personal_data import subject_of
from workers.jetstream import MAX_AGE_SECONDS

__all__ = ["StreamErasure", "customer_of"]

_log = structlog.get_logger("workers.stream_erasure")
_PRUNE_EVERY = 1000
"""Batches between two prunings of records older than the stream keeps messages."""


def customer_of(event: Any) -> UUID | None:
    """The customer a message about `event` concerns (None: nobody's, or the erasure itself)."""
    if isinstance(event, Customer.Erased):
        return None
    return subject_of(type(event), vars(event), event.originator_id)


class StreamErasure:
    """Records which stream messages concern which customer; deletes them on erasure."""

    def __init__(
        self, datastore: Any, schema: str, delete_messages: Callable[[Sequence[int]], None]
    ) -> None:
        self._datastore = datastore
        self._schema = schema
        self._messages = sql.Identifier(schema, "relay_customer_messages")
        self._pending = sql.Identifier(schema, "relay_pending_erasures")
        self._delete_messages = delete_messages
        self._batches = itertools.count()

    def create_tables(self) -> None:
        with self._datastore.transaction(commit=True) as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"migrate:{self._schema}",)
            )
            cursor.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (customer_id uuid NOT NULL,"
                    " stream_seq bigint NOT NULL, recorded_at timestamptz NOT NULL DEFAULT now(),"
                    " PRIMARY KEY (customer_id, stream_seq))"
                ).format(self._messages)
            )
            cursor.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (customer_id uuid PRIMARY KEY,"
                    " position bigint NOT NULL)"
                ).format(self._pending)
            )

    def record(
        self,
        cursor: Cursor[Any],
        sequences: Sequence[tuple[UUID, int]],
        erased: Sequence[tuple[UUID, int]],
    ) -> None:
        """In the relay's position transaction: the batch's messages and its erasures."""
        if sequences:
            cursor.execute(
                sql.SQL(
                    "INSERT INTO {} (customer_id, stream_seq)"
                    " SELECT * FROM unnest(%s::uuid[], %s::bigint[]) ON CONFLICT DO NOTHING"
                ).format(self._messages),
                ([c for c, _ in sequences], [s for _, s in sequences]),
            )
        if erased:
            cursor.execute(
                sql.SQL(
                    "INSERT INTO {} (customer_id, position)"
                    " SELECT * FROM unnest(%s::uuid[], %s::bigint[]) ON CONFLICT DO NOTHING"
                ).format(self._pending),
                ([c for c, _ in erased], [p for _, p in erased]),
            )
        if next(self._batches) % _PRUNE_EVERY == 0:
            # The stream has dropped these messages by age already: nothing left to delete.
            cursor.execute(
                sql.SQL(
                    "DELETE FROM {} WHERE recorded_at < now() - %s * interval '1 second'"
                ).format(self._messages),
                (MAX_AGE_SECONDS + 3600,),
            )

    def purge_pending(self) -> int:
        """Delete the messages of every pending erasure from the stream; how many customers."""
        with self._datastore.transaction(commit=False) as cursor:
            cursor.execute(sql.SQL("SELECT customer_id FROM {}").format(self._pending))
            pending = [row["customer_id"] for row in cursor.fetchall()]
        for customer_id in pending:
            with self._datastore.transaction(commit=False) as cursor:
                cursor.execute(
                    sql.SQL(
                        "SELECT stream_seq FROM {} WHERE customer_id = %s ORDER BY stream_seq"
                    ).format(self._messages),
                    (customer_id,),
                )
                sequences = [int(row["stream_seq"]) for row in cursor.fetchall()]
            self._delete_messages(sequences)
            with self._datastore.transaction(commit=True) as cursor:
                cursor.execute(
                    sql.SQL("DELETE FROM {} WHERE customer_id = %s").format(self._messages),
                    (customer_id,),
                )
                cursor.execute(
                    sql.SQL("DELETE FROM {} WHERE customer_id = %s").format(self._pending),
                    (customer_id,),
                )
            _log.info(
                "stream_messages_erased", customer_id=str(customer_id), messages=len(sequences)
            )
        return len(pending)
