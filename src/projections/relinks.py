"""A record's row follows it to the customer a merge (or its undoing) relinked it to.

Every customer-owned record's read table keys its rows by the record's id and carries the
customer's id: the row's `customer_id` is set to the event's, and, where the table keeps
the record's version (an If-Match for its next change), the version too, only forward so
a replay changes nothing.
"""

from __future__ import annotations

from typing import Any

from psycopg import Cursor, sql

from domain.relinking import Relinkable

__all__ = ["relink_row"]


def relink_row(
    cursor: Cursor[Any], table: sql.Composable, event: Relinkable.Relinked, *, versioned: bool
) -> None:
    """Set the row of the event's record to the event's customer."""
    values = {
        "id": event.originator_id,
        "customer_id": event.customer_id,
        "version": event.originator_version,
    }
    statement = (
        "UPDATE {} SET customer_id = %(customer_id)s, version = %(version)s"
        " WHERE id = %(id)s AND version < %(version)s"
        if versioned
        else "UPDATE {} SET customer_id = %(customer_id)s WHERE id = %(id)s"
    )
    cursor.execute(sql.SQL(statement).format(table), values)
