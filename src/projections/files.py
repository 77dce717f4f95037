"""The files read model: a customer's live files, as the files tab lists them.

One row per file: name, size, sniffed type, SHA-256, when and by whom it was uploaded, and
the file's version (what a delete's If-Match names). A deleted file's row goes; an erased
customer's rows all go (the names are personal data, and the content is destroyed).
Inserting is `ON CONFLICT DO NOTHING` and a file is deleted once, so applying an event
twice changes nothing. The content itself is never here (`infrastructure.file_contents`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import Cursor, sql

from domain.customers import Customer
from domain.files import CustomerFile
from projections.base import ReadModel
from projections.relinks import relink_row

__all__ = ["COLUMNS", "FilesModel", "files_statement"]

COLUMNS = (
    "id",
    "customer_id",
    "name",
    "size",
    "content_type",
    "sha256",
    "uploaded_at",
    "uploader",
    "version",
)


class FilesModel(ReadModel):
    """Customers' files as the files tab lists them."""

    name = "files"

    def wants(self, event_class: type[Any]) -> bool:
        return event_class in (
            CustomerFile.Uploaded,
            CustomerFile.Deleted,
            CustomerFile.Relinked,
            Customer.Erased,
        )

    def apply(self, cursor: Cursor[Any], event: Any, position: int) -> None:
        table = self.table("files")
        if isinstance(event, CustomerFile.Uploaded):
            cursor.execute(
                sql.SQL(
                    "INSERT INTO {} (id, customer_id, name, size, content_type, sha256,"
                    " uploaded_at, uploader, version) VALUES (%(id)s, %(customer_id)s,"
                    " %(name)s, %(size)s, %(content_type)s, %(sha256)s, %(at)s, %(uploader)s,"
                    " %(version)s) ON CONFLICT (id) DO NOTHING"
                ).format(table),
                {
                    "id": event.originator_id,
                    "customer_id": event.customer_id,
                    "name": event.name,
                    "size": event.size,
                    "content_type": event.content_type,
                    "sha256": event.sha256,
                    "at": event.timestamp,
                    "uploader": event.uploader,
                    "version": event.originator_version,
                },
            )
        elif isinstance(event, CustomerFile.Relinked):  # a merge of its customer (or undoing)
            relink_row(cursor, table, event, versioned=True)
        elif isinstance(event, CustomerFile.Deleted):
            cursor.execute(
                sql.SQL("DELETE FROM {} WHERE id = %s").format(table), (event.originator_id,)
            )
        elif isinstance(event, Customer.Erased):
            cursor.execute(
                sql.SQL("DELETE FROM {} WHERE customer_id = %s").format(table),
                (event.originator_id,),
            )


def files_statement(
    schema: str, customer_id: UUID, *, after: tuple[datetime, UUID] | None, limit: int
) -> tuple[sql.Composed, dict[str, Any]]:
    """The SELECT of one page of a customer's files, newest first."""
    params: dict[str, Any] = {"customer_id": customer_id, "limit": limit}
    where: sql.Composable = sql.SQL("customer_id = %(customer_id)s")
    if after is not None:
        params["after_at"], params["after_id"] = after
        where = sql.SQL("{} AND (uploaded_at, id) < (%(after_at)s, %(after_id)s)").format(where)
    statement = sql.SQL(
        "SELECT {columns} FROM {table} WHERE {where}"
        " ORDER BY uploaded_at DESC, id DESC LIMIT %(limit)s"
    ).format(
        columns=sql.SQL(", ").join(map(sql.Identifier, COLUMNS)),
        table=sql.Identifier(schema, "files"),
        where=where,
    )
    return statement, params
