"""The records that ever named a customer (`domain.merge_commands.LINKED_KINDS`): what a
merge moves.

Found in the events themselves, not in a read model: a merge must not miss a record a
projection has not seen yet. The customer id sits in the JSON of each creating and
relinking event (personal fields are encrypted beside it, ids are not); a partial
expression index over those events alone makes the look-up an index scan instead of a
scan of the log. `convert_from` is only STABLE (an encoding could change), so the
expression is wrapped in a function declared IMMUTABLE: the events are always UTF-8 JSON.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic
from psycopg import Cursor, sql

from domain.merge_commands import linking_events
from domain.service import CustomerService

__all__ = ["LinkedRecords", "create_linked_records_index"]

_TOPICS = tuple(get_topic(event) for event in linking_events())
_FUNCTION = "event_customer_id"
_INDEX = "events_linked_records_v2_idx"
"""Named for its topics: a new set of linked kinds is a new index (the migrate step drops
the ones before it, `_OLD_INDEXES`)."""
_OLD_INDEXES = ("events_linked_records_idx",)


def _predicate() -> sql.Composable:
    # Literal topics, not a parameter: the planner uses a partial index only for a query
    # whose condition it can see implies the index's.
    return sql.SQL("topic IN ({})").format(sql.SQL(", ").join(map(sql.Literal, _TOPICS)))


def create_linked_records_index(cursor: Cursor[Any], schema: str, events_table: str) -> None:
    """The function and the partial index the look-up uses (the migrate step runs this)."""
    cursor.execute(
        sql.SQL(
            "CREATE OR REPLACE FUNCTION {}(state bytea) RETURNS text"
            " LANGUAGE sql IMMUTABLE PARALLEL SAFE"
            " AS $$ SELECT convert_from(state, 'UTF8')::jsonb #>> '{{customer_id,_data_}}' $$"
        ).format(sql.Identifier(schema, _FUNCTION))
    )
    for old in _OLD_INDEXES:
        cursor.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(schema, old)))
    cursor.execute(
        sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({}(state)) WHERE {}").format(
            sql.Identifier(_INDEX),
            sql.Identifier(schema, events_table),
            sql.Identifier(schema, _FUNCTION),
            _predicate(),
        )
    )


class LinkedRecords:
    """Ids of the records whose events ever named the customer (a superset of its records
    now: the merge loads each and checks)."""

    def __init__(self, service: CustomerService, schema: str) -> None:
        self._datastore = service.recorder.datastore  # type: ignore[attr-defined]
        table = sql.Identifier(schema, service.recorder.events_table_name)  # type: ignore[attr-defined]
        self._statement = sql.SQL(
            "SELECT DISTINCT originator_id FROM {} WHERE {} AND {}(state) = %s"
        ).format(table, _predicate(), sql.Identifier(schema, _FUNCTION))

    def __call__(self, customer_id: UUID) -> set[UUID]:
        with self._datastore.transaction(commit=False) as cursor:
            cursor.execute(self._statement, (customer_id.hex,))
            return {row["originator_id"] for row in cursor.fetchall()}
