"""Where customer imports live: the uploaded rows, their outcomes and each import's progress.

An upload is saved whole in ONE transaction (the import's record, every parsed row, and a
NOTIFY that wakes an import worker), so a crash during an upload leaves nothing behind
and a second upload of the same file finds the first. The import's id is derived from the
file's SHA-256, which is what makes "the same file twice" one import.

A worker takes pending rows in row order, registers them, and records their outcomes and
the counts in one transaction per batch. A row's registration and its outcome are two
transactions, so a crash between them leaves the row pending although its customer
exists: each row's customer id is therefore derived from the import and the row
(`row_customer_id`), and the re-run finds that customer instead of registering a second.

A pending row holds its validated registration fields, encoded by the event store's own
transcoder (dates, UUIDs and decimals keep their types). They are personal data, so they
are cleared as soon as the row has its outcome: a finished import keeps only the report.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID, uuid5

import orjson
from psycopg import Cursor, sql

__all__ = [
    "IMPORTS_CHANNEL",
    "ImportStore",
    "ImportSummary",
    "NewImport",
    "RowOutcome",
    "create_import_tables",
    "import_id_of",
    "row_customer_id",
]

IMPORTS_CHANNEL = "customer_imports"
"""NOTIFY channel: payload `<schema>:<import id>` when an upload commits."""

_NAMESPACE = UUID("3d6f9a2e-8c41-4b7d-a5e0-9f1b2c3d4e5f")

_TABLES = """
CREATE TABLE IF NOT EXISTS {schema}.customer_imports (
    import_id uuid PRIMARY KEY,
    sha256 text NOT NULL,
    status text NOT NULL CHECK (status IN ('running', 'done', 'failed')),
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    file_name text,
    encoding text NOT NULL,
    delimiter text NOT NULL,
    columns jsonb NOT NULL,
    send_registration_email boolean NOT NULL,
    total_rows integer NOT NULL DEFAULT 0,
    created integer NOT NULL DEFAULT 0,
    duplicate integer NOT NULL DEFAULT 0,
    invalid integer NOT NULL DEFAULT 0,
    failures integer NOT NULL DEFAULT 0,
    error text
);
CREATE TABLE IF NOT EXISTS {schema}.customer_import_rows (
    import_id uuid NOT NULL REFERENCES {schema}.customer_imports ON DELETE CASCADE,
    row_number integer NOT NULL,
    status text NOT NULL CHECK (status IN ('pending', 'created', 'duplicate', 'invalid')),
    fields bytea,
    attempted boolean NOT NULL DEFAULT false,
    customer_id uuid,
    errors jsonb,
    PRIMARY KEY (import_id, row_number)
);
-- Added with the duplicates read model: a created row's likely duplicates.
ALTER TABLE {schema}.customer_import_rows ADD COLUMN IF NOT EXISTS likely_duplicates jsonb;
CREATE INDEX IF NOT EXISTS customer_import_rows_pending_idx
    ON {schema}.customer_import_rows (import_id, row_number) WHERE status = 'pending';
"""


def create_import_tables(cursor: Cursor[Any], schema: str) -> None:
    """The imports' tables in the service's schema (the migrate step runs this)."""
    cursor.execute(_TABLES.replace("{schema}", sql.Identifier(schema).as_string(cursor)))


def import_id_of(sha256: str) -> UUID:
    """One file, one import: the id is derived from the file's content hash."""
    return uuid5(_NAMESPACE, sha256)


def row_customer_id(import_id: UUID, row: int) -> UUID:
    """The id the row's customer gets: the same on every run of the import, so a run after
    a crash finds the customer an earlier run saved (a second registration under an
    existing id is refused by the event store)."""
    return uuid5(import_id, f"row {row}")


@dataclass(frozen=True)
class NewImport:
    """What an upload knows about its file before the rows are saved."""

    import_id: UUID
    sha256: str
    created_by: str
    file_name: str | None
    encoding: str
    delimiter: str
    columns: list[dict[str, str]]
    """The header as understood: which column went to which field, which became custom."""
    send_registration_email: bool


@dataclass(frozen=True)
class RowOutcome:
    """A row of the report: created, duplicate or invalid (pending until processed)."""

    row: int
    status: str
    customer_id: UUID | None = None
    errors: list[dict[str, str | None]] | None = None
    fields: bytes | None = None
    """The row's encoded registration fields while it is pending."""
    attempted: bool = False
    """A worker started registering it before (and may have, before a crash)."""
    likely_duplicates: list[dict[str, Any]] | None = None
    """A created row's likely duplicates among the customers known when it was registered."""


@dataclass(frozen=True)
class ImportSummary:
    import_id: UUID
    status: str
    created_by: str
    created_at: datetime
    finished_at: datetime | None
    file_name: str | None
    encoding: str
    delimiter: str
    columns: list[dict[str, str]]
    send_registration_email: bool
    total_rows: int
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    @property
    def pending(self) -> int:
        return self.total_rows - sum(self.counts.values())


_SUMMARY = (
    "import_id, status, created_by, created_at, finished_at, file_name, encoding, delimiter,"
    " columns, send_registration_email, total_rows, created, duplicate, invalid, error"
)


class ImportStore:
    """The imports' SQL, on a datastore of the event store's kind (sync, pooled)."""

    def __init__(self, datastore: Any, schema: str) -> None:
        self.datastore = datastore
        self.schema = schema
        self._imports = sql.Identifier(schema, "customer_imports")
        self._rows = sql.Identifier(schema, "customer_import_rows")

    # ---- uploads --------------------------------------------------------------------------

    def create(self, new: NewImport, rows: Iterable[RowOutcome]) -> bool:
        """Save the import and all its rows at once; False if this file was imported before.

        `rows` is consumed while it is copied in, so a large file is never held in memory.
        """
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                sql.SQL(
                    "INSERT INTO {} (import_id, sha256, status, created_by, file_name, encoding,"
                    " delimiter, columns, send_registration_email)"
                    " VALUES (%s, %s, 'running', %s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (import_id) DO NOTHING RETURNING import_id"
                ).format(self._imports),
                (
                    new.import_id,
                    new.sha256,
                    new.created_by,
                    new.file_name,
                    new.encoding,
                    new.delimiter,
                    orjson.dumps(new.columns).decode(),
                    new.send_registration_email,
                ),
            )
            if cursor.fetchone() is None:
                return False
            total = invalid = 0
            columns = "(import_id, row_number, status, fields, errors)"
            with cursor.copy(
                sql.SQL("COPY {} " + columns + " FROM STDIN").format(self._rows)
            ) as copy:
                copy.set_types(["uuid", "int4", "text", "bytea", "jsonb"])
                for row in rows:
                    total += 1
                    invalid += row.status == "invalid"
                    copy.write_row((new.import_id, row.row, row.status, row.fields, row.errors))
            cursor.execute(
                sql.SQL("UPDATE {} SET total_rows = %s, invalid = %s WHERE import_id = %s").format(
                    self._imports
                ),
                (total, invalid, new.import_id),
            )
            self._finish_if_nothing_pending(cursor, new.import_id)
            cursor.execute(
                "SELECT pg_notify(%s, %s)", (IMPORTS_CHANNEL, f"{self.schema}:{new.import_id}")
            )
            return True

    def restart(self, import_id: UUID) -> None:
        """A failed import uploaded again goes on where it stopped."""
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                sql.SQL(
                    "UPDATE {} SET status = 'running', failures = 0, error = NULL"
                    " WHERE import_id = %s AND status = 'failed'"
                ).format(self._imports),
                (import_id,),
            )
            cursor.execute(
                "SELECT pg_notify(%s, %s)", (IMPORTS_CHANNEL, f"{self.schema}:{import_id}")
            )

    # ---- the report -----------------------------------------------------------------------

    def summary(self, import_id: UUID) -> ImportSummary | None:
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                sql.SQL("SELECT " + _SUMMARY + " FROM {} WHERE import_id = %s").format(
                    self._imports
                ),
                (import_id,),
            )
            row = cursor.fetchone()
        if row is None:
            return None
        counts = {name: row.pop(name) for name in ("created", "duplicate", "invalid")}
        return ImportSummary(**row, counts=counts)

    def rows(
        self, import_id: UUID, *, after: int, limit: int, status: str | None = None
    ) -> list[RowOutcome]:
        """Processed rows after row number `after`, in row order (pending ones are left out)."""
        condition = sql.SQL("status = %s") if status else sql.SQL("status <> 'pending'")
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                sql.SQL(
                    "SELECT row_number AS row, status, customer_id, errors, likely_duplicates"
                    " FROM {}"
                    " WHERE import_id = %s AND row_number > %s AND {}"
                    " ORDER BY row_number LIMIT %s"
                ).format(self._rows, condition),
                (import_id, after, *([status] if status else []), limit),
            )
            return [RowOutcome(**row) for row in cursor.fetchall()]

    # ---- processing -----------------------------------------------------------------------

    def running(self) -> list[UUID]:
        """Imports with rows left to register, oldest first."""
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                sql.SQL(
                    "SELECT import_id FROM {} WHERE status = 'running' ORDER BY created_at"
                ).format(self._imports)
            )
            return [row["import_id"] for row in cursor.fetchall()]

    def pending(self, import_id: UUID, *, limit: int) -> list[RowOutcome]:
        """The next pending rows, marked attempted (committed) before they are handed out.

        Each comes with whether it was attempted before this call: only those may have
        been registered by a run that crashed before recording their outcome.
        """
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                sql.SQL(
                    "WITH next AS (SELECT row_number, attempted FROM {rows}"
                    " WHERE import_id = %s AND status = 'pending' ORDER BY row_number LIMIT %s)"
                    " UPDATE {rows} r SET attempted = true FROM next"
                    " WHERE r.import_id = %s AND r.row_number = next.row_number"
                    " RETURNING r.row_number AS row, r.status, r.fields,"
                    " next.attempted AS attempted"
                ).format(rows=self._rows),
                (import_id, limit, import_id),
            )
            return sorted((RowOutcome(**row) for row in cursor.fetchall()), key=lambda r: r.row)

    def record(self, import_id: UUID, outcomes: list[RowOutcome]) -> None:
        """Save a batch's outcomes and counts together; the rows' fields are dropped."""
        if not outcomes:
            return
        records = [
            {
                "row": o.row,
                "status": o.status,
                "customer_id": str(o.customer_id) if o.customer_id else None,
                "errors": o.errors,
                "likely_duplicates": o.likely_duplicates,
            }
            for o in outcomes
        ]
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                sql.SQL(
                    "UPDATE {rows} r SET status = o.status, customer_id = o.customer_id,"
                    " errors = o.errors, likely_duplicates = o.likely_duplicates, fields = NULL"
                    " FROM jsonb_to_recordset(%s::jsonb)"
                    " AS o(row integer, status text, customer_id uuid, errors jsonb,"
                    " likely_duplicates jsonb)"
                    " WHERE r.import_id = %s AND r.row_number = o.row AND r.status = 'pending'"
                    " RETURNING o.status"
                ).format(rows=self._rows),
                (orjson.dumps(records).decode(), import_id),
            )
            # Only rows that were still pending count: a batch recorded twice counts once.
            changed = [row["status"] for row in cursor.fetchall()]
            cursor.execute(
                sql.SQL(
                    "UPDATE {} SET created = created + %s, duplicate = duplicate + %s,"
                    " invalid = invalid + %s WHERE import_id = %s"
                ).format(self._imports),
                (
                    changed.count("created"),
                    changed.count("duplicate"),
                    changed.count("invalid"),
                    import_id,
                ),
            )
            self._finish_if_nothing_pending(cursor, import_id)

    def fail(self, import_id: UUID, error: str, *, give_up_after: int) -> bool:
        """Count a failed attempt; the import fails once there were `give_up_after`."""
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                sql.SQL(
                    "UPDATE {} SET failures = failures + 1, error = %s,"
                    " status = CASE WHEN failures + 1 >= %s THEN 'failed' ELSE status END,"
                    " finished_at = CASE WHEN failures + 1 >= %s THEN now() END"
                    " WHERE import_id = %s RETURNING status"
                ).format(self._imports),
                (error, give_up_after, give_up_after, import_id),
            )
            row = cursor.fetchone()
            return row is not None and row["status"] == "failed"

    def _finish_if_nothing_pending(self, cursor: Cursor[Any], import_id: UUID) -> None:
        cursor.execute(
            sql.SQL(
                "UPDATE {} i SET status = 'done', finished_at = now(), error = NULL"
                " WHERE i.import_id = %s AND i.status = 'running' AND NOT EXISTS"
                " (SELECT 1 FROM {} r WHERE r.import_id = i.import_id AND r.status = 'pending')"
            ).format(self._imports, self._rows),
            (import_id,),
        )
