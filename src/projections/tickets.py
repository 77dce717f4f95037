"""The tickets read model: one row per repair ticket, and the query of its list views.

Lists by status and customer, newest first, one keyset page at a time: `GET /v1/tickets`
and a customer's tickets (the portal's "follow my repairs"). Every update is guarded by
the aggregate version, so applying an event twice changes nothing. Comment texts stay in
the event store (internal ones must never reach a list a customer reads); the row only
counts the public ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import Cursor, sql

from domain.customers import Customer
from domain.tickets import Ticket
from projections.base import ReadModel

__all__ = ["COLUMNS", "TicketCriteria", "TicketsModel", "tickets_statement"]

COLUMNS = (
    "id",
    "number",
    "customer_id",
    "subject",
    "status",
    "device_type",
    "device_make",
    "device_model",
    "device_serial",
    "public_comments",
    "opened_at",
    "status_changed_at",
    "updated_at",
    "version",
)


class TicketsModel(ReadModel):
    """Repair tickets as the list views show them."""

    name = "tickets"

    def wants(self, event_class: type[Any]) -> bool:
        return event_class is Customer.Erased or issubclass(
            event_class, (Ticket.Opened, Ticket.StatusChanged, Ticket.Commented, Ticket.Relinked)
        )

    def apply(self, cursor: Cursor[Any], event: Any, position: int) -> None:
        if isinstance(event, Customer.Erased):
            # The device's serial is the customer's personal data; subject and status are not.
            cursor.execute(
                sql.SQL("UPDATE {} SET device_serial = NULL WHERE customer_id = %s").format(
                    self.table("tickets")
                ),
                (event.originator_id,),
            )
            return
        values = {"id": event.originator_id, "at": event.timestamp}
        values["version"] = event.originator_version
        if isinstance(event, Ticket.Opened):
            device = event.device
            cursor.execute(
                sql.SQL(
                    "INSERT INTO {} (id, number, customer_id, subject, status, device_type,"
                    " device_make, device_model, device_serial, opened_at, status_changed_at,"
                    " updated_at, version) VALUES (%(id)s, %(number)s, %(customer_id)s,"
                    " %(subject)s, 'new', %(type)s, %(make)s, %(model)s, %(serial)s, %(at)s,"
                    " %(at)s, %(at)s, %(version)s)"
                    " ON CONFLICT (id) DO NOTHING"
                ).format(self.table("tickets")),
                {
                    **values,
                    "customer_id": event.customer_id,
                    "number": event.number,
                    "subject": event.subject,
                    "type": device.type,
                    "make": device.make,
                    "model": device.model,
                    "serial": device.serial,
                },
            )
            return
        if isinstance(event, Ticket.StatusChanged):
            assignments = "status = %(status)s, status_changed_at = %(at)s"
            values["status"] = event.status
        elif isinstance(event, Ticket.Commented):
            assignments = "public_comments = public_comments + %(public)s"
            values["public"] = 1 if event.public else 0
        elif isinstance(event, Ticket.Relinked):  # a merge of its customer (or its undoing)
            assignments = "customer_id = %(customer_id)s"
            values["customer_id"] = event.customer_id
        else:
            return
        cursor.execute(
            sql.SQL(
                "UPDATE {} SET {}, updated_at = %(at)s, version = %(version)s"
                " WHERE id = %(id)s AND version < %(version)s"
            ).format(self.table("tickets"), sql.SQL(assignments)),
            values,
        )


@dataclass(frozen=True)
class TicketCriteria:
    """Which tickets a list shows; every given filter applies."""

    customer_id: UUID | None = None
    statuses: tuple[str, ...] = ()


def tickets_statement(
    schema: str,
    criteria: TicketCriteria,
    *,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> tuple[sql.Composed, dict[str, Any]]:
    """The SELECT of one page, newest first, after the previous page's last key."""
    where: list[sql.Composable] = []
    params: dict[str, Any] = {"limit": limit}
    if criteria.customer_id is not None:
        params["customer_id"] = criteria.customer_id
        where.append(sql.SQL("customer_id = %(customer_id)s"))
    if criteria.statuses:
        params["statuses"] = list(criteria.statuses)
        where.append(sql.SQL("status = ANY(%(statuses)s)"))
    if after is not None:
        params["after_at"], params["after_id"] = after
        where.append(sql.SQL("(opened_at, id) < (%(after_at)s, %(after_id)s)"))
    statement = sql.SQL(
        "SELECT {columns} FROM {table} WHERE {where}"
        " ORDER BY opened_at DESC, id DESC LIMIT %(limit)s"
    ).format(
        columns=sql.SQL(", ").join(map(sql.Identifier, COLUMNS)),
        table=sql.Identifier(schema, "tickets"),
        where=sql.SQL(" AND ").join(where) if where else sql.SQL("true"),
    )
    return statement, params
