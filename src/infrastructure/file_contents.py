"""Where customer files' bytes live: PostgreSQL, once per SHA-256, in chunks of 1 MB.

    file_contents    one row per distinct content (sha256, size, chunk count)
    file_chunks      its bytes, `CHUNK_BYTES` per row, so a download reads (and holds) one
                     chunk at a time and a 25 MB file is never one value in memory
    file_references  which file (an aggregate id) uses which content, and whose it is

The content and the upload's reference are written in ONE transaction, BEFORE the upload's
event is saved. A live file's content therefore always exists; but an upload whose event
save then fails (the customer was erased meanwhile, the database went away) leaves a
reference to a file that never came to be. Those, and references a crash kept after a
delete or an erasure, are collected by `sweep`: a reference older than a grace period whose
file the event store does not know as live (no `Uploaded`, or a `Deleted`, or its customer
`Erased`) goes, and with it any content no reference names any more.

Content goes as soon as no reference names it (`release`, `forget_customer`): the same
bytes uploaded for another customer stay. Each content's writers and collectors take
turns on a transaction-scoped advisory lock of its hash, so an upload can never see
content that a concurrent collection is deleting.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import IO, Any
from uuid import UUID

from eventsourcing.utils import get_topic
from psycopg import Cursor, sql

from domain.customers import Customer
from domain.files import CustomerFile

__all__ = [
    "CHUNK_BYTES",
    "FileContents",
    "StoredContent",
    "SweepResult",
    "chunk_statement",
    "content_statement",
    "create_file_tables",
]

CHUNK_BYTES = 1 << 20

_TABLES = """
CREATE TABLE IF NOT EXISTS {schema}.file_contents (
    sha256 text PRIMARY KEY,
    size bigint NOT NULL,
    chunks integer NOT NULL,
    stored_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {schema}.file_chunks (
    sha256 text NOT NULL REFERENCES {schema}.file_contents ON DELETE CASCADE,
    seq integer NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (sha256, seq)
);
-- Out of line and not compressed: most uploads (zips, images, PDFs) are compressed already.
ALTER TABLE {schema}.file_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE TABLE IF NOT EXISTS {schema}.file_references (
    file_id uuid PRIMARY KEY,
    customer_id uuid NOT NULL,
    sha256 text NOT NULL REFERENCES {schema}.file_contents,
    referenced_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS file_references_sha256_idx ON {schema}.file_references (sha256);
CREATE INDEX IF NOT EXISTS file_references_customer_idx
    ON {schema}.file_references (customer_id);
"""


def create_file_tables(cursor: Cursor[Any], schema: str) -> None:
    cursor.execute(_TABLES.format(schema=sql.Identifier(schema).as_string(cursor)))


@dataclass(frozen=True)
class StoredContent:
    sha256: str
    size: int
    chunks: int


@dataclass(frozen=True)
class SweepResult:
    references: int
    """References dropped: files that never came to be, or are deleted or erased."""
    contents: int
    """Contents deleted because no reference names them any more."""


def content_statement(schema: str) -> sql.Composed:
    """SELECT a content's size and chunk count by `%(sha256)s` (for the async read pool)."""
    return sql.SQL("SELECT sha256, size, chunks FROM {} WHERE sha256 = %(sha256)s").format(
        sql.Identifier(schema, "file_contents")
    )


def chunk_statement(schema: str) -> sql.Composed:
    """SELECT one chunk's bytes by `%(sha256)s` and `%(seq)s`."""
    return sql.SQL("SELECT data FROM {} WHERE sha256 = %(sha256)s AND seq = %(seq)s").format(
        sql.Identifier(schema, "file_chunks")
    )


class FileContents:
    """The content store on the event store's own connection pool (synchronous: call it
    from a worker thread)."""

    def __init__(self, datastore: Any, schema: str, events_table: str) -> None:
        self._datastore = datastore
        self._contents = sql.Identifier(schema, "file_contents")
        self._chunks = sql.Identifier(schema, "file_chunks")
        self._references = sql.Identifier(schema, "file_references")
        self._events = sql.Identifier(schema, events_table)

    def put(
        self, file_id: UUID, customer_id: UUID, sha256: str, size: int, content: IO[bytes]
    ) -> bool:
        """Store `content` (read from its start) under its hash unless stored already, and
        reference it from the file; True when the bytes were new."""
        with self._datastore.transaction(commit=True) as cursor:
            self._lock(cursor, sha256)
            chunks = -(-size // CHUNK_BYTES)
            cursor.execute(
                sql.SQL(
                    "INSERT INTO {} (sha256, size, chunks) VALUES (%s, %s, %s)"
                    " ON CONFLICT (sha256) DO NOTHING RETURNING sha256"
                ).format(self._contents),
                (sha256, size, chunks),
            )
            new = cursor.fetchone() is not None
            if new:
                content.seek(0)
                insert = sql.SQL("INSERT INTO {} (sha256, seq, data) VALUES (%s, %s, %s)").format(
                    self._chunks
                )
                for seq in range(chunks):
                    cursor.execute(insert, (sha256, seq, content.read(CHUNK_BYTES)))
            cursor.execute(
                sql.SQL(
                    "INSERT INTO {} (file_id, customer_id, sha256) VALUES (%s, %s, %s)"
                    " ON CONFLICT (file_id) DO NOTHING"
                ).format(self._references),
                (file_id, customer_id, sha256),
            )
            return new

    def stored(self, sha256: str) -> StoredContent | None:
        with self._datastore.transaction(commit=False) as cursor:
            cursor.execute(
                sql.SQL("SELECT sha256, size, chunks FROM {} WHERE sha256 = %s").format(
                    self._contents
                ),
                (sha256,),
            )
            row = cursor.fetchone()
            return StoredContent(**row) if row else None

    def release(self, file_ids: Iterable[UUID]) -> int:
        """Drop these files' references; delete each content no reference names any more.
        The number of contents deleted."""
        with self._datastore.transaction(commit=True) as cursor:
            cursor.execute(
                sql.SQL("DELETE FROM {} WHERE file_id = ANY(%s) RETURNING sha256").format(
                    self._references
                ),
                (list(file_ids),),
            )
            hashes = {row["sha256"] for row in cursor.fetchall()}
        return self._collect(hashes)

    def forget_customer(self, customer_id: UUID) -> int:
        """An erased customer's files: every reference dropped, and each content that no
        other customer's file uses deleted. The number of contents deleted."""
        with self._datastore.transaction(commit=True) as cursor:
            cursor.execute(
                sql.SQL("DELETE FROM {} WHERE customer_id = %s RETURNING sha256").format(
                    self._references
                ),
                (customer_id,),
            )
            hashes = {row["sha256"] for row in cursor.fetchall()}
        return self._collect(hashes)

    def sweep(self, grace: timedelta) -> SweepResult:
        """Collect what failed uploads and interrupted deletes or erasures left: references
        older than `grace` to files that are not live in the event store, then contents
        older than `grace` that nothing references."""
        with self._datastore.transaction(commit=False) as cursor:
            cursor.execute(
                sql.SQL(
                    "SELECT r.file_id FROM {refs} r WHERE r.referenced_at < now() - %(grace)s"
                    " AND NOT (EXISTS (SELECT 1 FROM {events} WHERE originator_id = r.file_id"
                    "                  AND topic = %(uploaded)s)"
                    "  AND NOT EXISTS (SELECT 1 FROM {events} WHERE originator_id = r.file_id"
                    "                  AND topic = %(deleted)s)"
                    "  AND NOT EXISTS (SELECT 1 FROM {events} WHERE originator_id = r.customer_id"
                    "                  AND topic = %(erased)s))"
                ).format(refs=self._references, events=self._events),
                {
                    "grace": grace,
                    "uploaded": get_topic(CustomerFile.Uploaded),
                    "deleted": get_topic(CustomerFile.Deleted),
                    "erased": get_topic(Customer.Erased),
                },
            )
            dead = [row["file_id"] for row in cursor.fetchall()]
            cursor.execute(
                sql.SQL(
                    "SELECT sha256 FROM {contents} c WHERE stored_at < now() - %s"
                    " AND NOT EXISTS (SELECT 1 FROM {refs} r WHERE r.sha256 = c.sha256)"
                ).format(contents=self._contents, refs=self._references),
                (grace,),
            )
            unreferenced = {row["sha256"] for row in cursor.fetchall()}
        deleted = self.release(dead) if dead else 0
        return SweepResult(len(dead), deleted + self._collect(unreferenced))

    def _collect(self, hashes: Iterable[str]) -> int:
        deleted = 0
        for sha256 in sorted(hashes):
            with self._datastore.transaction(commit=True) as cursor:
                self._lock(cursor, sha256)
                cursor.execute(
                    sql.SQL(
                        "DELETE FROM {contents} c WHERE sha256 = %(sha256)s"
                        " AND NOT EXISTS (SELECT 1 FROM {refs} WHERE sha256 = %(sha256)s)"
                        " RETURNING sha256"
                    ).format(contents=self._contents, refs=self._references),
                    {"sha256": sha256},
                )
                deleted += cursor.fetchone() is not None
        return deleted

    @staticmethod
    def _lock(cursor: Cursor[Any], sha256: str) -> None:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 7))", (sha256,))
