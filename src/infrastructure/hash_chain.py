"""Tamper evidence: every stored event carries keyed hashes linking it to what came before.

Two links per event, both HMAC-SHA256 under the audit key (configuration, never stored in
the database):

- `stream_hash` = HMAC("S" | previous stream_hash of the same stream | id | version |
  topic | state): edits of a topic or state, a changed id or version, a middle event
  deleted and two versions swapped all break a stream's chain.
- `log_hash` = HMAC("L" | log_hash of the previous event in the global log | position |
  stream_hash): deleting the LAST event of a stream breaks the link of the event that
  followed it in the log. Only the very last event of the whole log can go unnoticed,
  which is why a verification reports the head (position and hash) for an auditor to keep.

The hashes cover the STORED form (the bytes of `state`, as the mapper wrote them), never
the decoded event, so erasing a customer (destroying its key, rewriting no event) or a
change of the transcoding leaves the chain intact.

Where they are computed, and why there. The write path saves many aggregates' events in
one pipelined transaction under the writers' lock (`writers_lock_statements`: the
library's table lock, changed so that vacuum does not stall writes), so whatever the chain
costs is paid inside that lock. Three designs were weighed:

- a BEFORE INSERT trigger (no round trip; it sees rows inserted earlier by the same
  statement): a plain sha256 chain there can be recomputed by anyone with SQL access,
  and a keyed one needs the key sent to the server. Measured under load: about 60-70 us
  per event of server CPU inside the lock (two index lookups and four sha256 calls in
  plpgsql), against about 15 us for the insert itself: a grouped save of 160 events
  would hold the lock some 10 ms longer;
- a keyed HMAC in Python with the previous hashes carried in memory: wrong as soon as
  two processes write, and the previous event of the global log is only known under the
  lock;
- (chosen) a keyed HMAC in Python, fed by ONE query pipelined after the lock: the log's
  head hash, the previous hash of each stream the save touches, and the save's positions
  from the table's sequence. One extra round trip per save however many events it holds,
  a few microseconds of HMAC per event, and the key never leaves this process: an
  attacker with SQL access to the tables, or the server's logs, cannot forge a link.
  Registrations/s of each: docs/PERFORMANCE.md (`python -m bench.chain_cost`).

A row written around the service (plain SQL) gets no hashes, and verification reports it.
What the chain cannot see: a rewrite by someone holding the audit key (the service's own
configuration), and anything outside the events table (read models are rebuilt from it).

Events stored before the chain existed are back-filled by `install_chain` (the migrate
step) under the table lock, in log order, and the position it reached is recorded: the
chain vouches for those events as they were at the migration, not for their earlier past.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.persistence import ProgrammingError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg import Cursor, sql
from psycopg.abc import Query
from psycopg.rows import DictRow
from pydantic import SecretStr

__all__ = [
    "BACKFILL_TABLE",
    "ChainKey",
    "ChainedRecorder",
    "chain_key",
    "install_chain",
    "writers_lock_name",
    "writers_lock_statements",
]

BACKFILL_TABLE = "crm_chain_backfill"
"""One row per back-fill: up to which position events were chained after the fact."""
_ZERO = bytes(32)
_BACKFILL_PAGE = 2000


@dataclass(frozen=True)
class ChainKey:
    """The audit key, and the two links computed with it (written by the recorder and the
    back-fill, recomputed by verification)."""

    key: bytes

    def stream_hash(
        self, previous: bytes | None, originator_id: UUID, version: int, topic: str, state: bytes
    ) -> bytes:
        """The link of one event to the previous event of its stream (None for version 1)."""
        topic_bytes = topic.encode()
        message = b"".join(
            (
                b"S",
                previous or _ZERO,
                originator_id.bytes,
                version.to_bytes(8, "big", signed=True),
                len(topic_bytes).to_bytes(4, "big"),
                topic_bytes,
                state,
            )
        )
        return hmac.digest(self.key, message, "sha256")

    def log_hash(self, previous: bytes | None, position: int, stream_hash: bytes) -> bytes:
        """The link of one event to the previous event of the global log (None: the first)."""
        message = b"L" + (previous or _ZERO) + position.to_bytes(8, "big") + stream_hash
        return hmac.digest(self.key, message, "sha256")


def chain_key(audit_key: SecretStr | None, secret_key: SecretStr | None) -> ChainKey:
    """The configured audit key; without one, a key derived from the secret key."""
    if audit_key is not None:
        return ChainKey(audit_key.get_secret_value().encode())
    if secret_key is None:
        raise ValueError("CUSTOMERS_AUDIT_KEY or CUSTOMERS_SECRET_KEY is needed for the chain")
    # A derived key, so a deployment needs no new secret; the label keeps it distinct from
    # the secret key's own use (sealing equipment secrets).
    derived = hmac.digest(
        secret_key.get_secret_value().encode(), b"customers event chain", "sha256"
    )
    return ChainKey(derived)


class ChainedRecorder(PostgresApplicationRecorder):
    """The library's recorder, writing each event with its two chain hashes.

    Inside the library's pipelined insert transaction, after the writers' lock: one query
    fetches the log's head hash, the previous stream hash of each stream the save touches
    and the save's positions; the hashes are computed here and the rows inserted with
    them and their positions. One extra round trip per save, however many events."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.chain_key: ChainKey | None = None
        """Set by `build_service`; without it the recorder refuses to write."""
        table = sql.Identifier(self.datastore.schema, self.events_table_name)
        sequence = sql.Literal(
            f"{self.datastore.schema}.{self.events_table_name}_notification_id_seq"
        )
        self.lock_table_statements = writers_lock_statements(table, self.datastore.lock_timeout)
        self._composed: tuple[sql.Composable, ...] = (
            *map(_composed, self.lock_table_statements),
            sql.SQL("NOTIFY {0}").format(sql.Identifier(self.channel_name)),
            sql.SQL(_BEFORE_INSERT).format(table=table, sequence=sequence),
            sql.SQL(_INSERT).format(table=table),
        )
        self._rendered: tuple[bytes, ...] | None = None

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Any:
        if self.chain_key is None:
            # Written without the key, the events would carry no hashes: refuse instead.
            raise ProgrammingError("the recorder has no audit key; build it with build_service")
        return super().insert_events(stored_events, **kwargs)

    def _insert_stored_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **_: Any
    ) -> None:
        assert self.chain_key is not None
        *lock, notify, before_insert, insert = self._statements(curs)
        # The library's _lock_table and _notify_channel, with their statements as bytes.
        for statement in lock:
            curs.execute(statement, prepare=True)
        curs.execute(notify)
        # The previous version of each stream's first event in this save.
        firsts: dict[UUID, int] = {}
        for e in stored_events:
            firsts.setdefault(e.originator_id, e.originator_version)  # type: ignore[arg-type]
        wanted = [(i, v - 1) for i, v in firsts.items() if v > 1]
        with curs.connection.cursor() as lookup:
            lookup.execute(
                before_insert,
                ([i for i, _ in wanted], [v for _, v in wanted], len(stored_events)),
                prepare=True,
            )
            rows = lookup.fetchall()  # in pipeline mode: flushes, the one extra round trip
        head = next((bytes(r["hash"]) for r in rows if r["kind"] == "h" and r["hash"]), None)
        streams = {r["id"]: bytes(r["hash"]) for r in rows if r["kind"] == "s" and r["hash"]}
        positions = sorted(r["n"] for r in rows if r["kind"] == "n")
        stream_hashes, log_hashes = [], []
        for e, position in zip(stored_events, positions, strict=True):
            link = self.chain_key.stream_hash(
                streams.get(e.originator_id),
                e.originator_id,  # type: ignore[arg-type]
                e.originator_version,
                e.topic,
                e.state,
            )
            streams[e.originator_id] = link
            head = self.chain_key.log_hash(head, position, link)
            stream_hashes.append(link)
            log_hashes.append(head)
        curs.execute(
            insert,
            (
                positions,
                [e.originator_id for e in stored_events],
                [e.originator_version for e in stored_events],
                [e.topic for e in stored_events],
                [e.state for e in stored_events],
                stream_hashes,
                log_hashes,
            ),
            prepare=True,
        )

    def _statements(self, curs: Cursor[DictRow]) -> tuple[bytes, ...]:
        """The save's statements, composed once: psycopg composes a `sql.Composed` again at
        every execution (some 30 us for these), and these run inside the writers' lock."""
        if self._rendered is None:
            self._rendered = tuple(s.as_bytes(curs) for s in self._composed)
        return self._rendered


def _composed(statement: Query) -> sql.Composable:
    if not isinstance(statement, sql.Composable):
        raise TypeError(f"expected the library's lock statements as composed SQL: {statement!r}")
    return statement


def writers_lock_statements(table: sql.Identifier, lock_timeout: int) -> list[Query]:
    """What a save runs first, to be the only writer of the events table until it commits.

    The library takes the table in EXCLUSIVE mode, which also conflicts with the SHARE
    UPDATE EXCLUSIVE lock of VACUUM and ANALYZE. Autovacuum, which visits a growing
    events table about once a minute, then gets the table whenever no save holds it, and
    every save waits behind it until PostgreSQL cancels the autovacuum after
    `deadlock_timeout` (1 s): a one-second stall of all writes about once a minute, and
    an analyze or vacuum of the events table that never completes under steady writes
    (an anti-wraparound vacuum, which is not cancelled, would stop writes for its run).

    Writers take a transaction-level advisory lock of the table's name instead, which no
    vacuum takes. ROW EXCLUSIVE on the table, taken before the positions are drawn, keeps
    out anyone who still takes the table in EXCLUSIVE mode (a process of the previous
    release during a rolling upgrade, `install_chain`), and lets vacuum and analyze run
    beside the writers. `lock_timeout` bounds both waits.
    """
    return [
        sql.SQL("SET LOCAL lock_timeout = '{}s'").format(sql.Literal(lock_timeout)),
        sql.SQL("SELECT pg_advisory_xact_lock(hashtextextended({}, 0))").format(
            sql.Literal(writers_lock_name(table))
        ),
        sql.SQL("LOCK TABLE {} IN ROW EXCLUSIVE MODE").format(table),
    ]


def writers_lock_name(table: sql.Identifier) -> str:
    """The writers' advisory lock's name (its key is the name's 64-bit hash)."""
    return f"writers of {table.as_string()}"


# Under the writers' lock: the log's head hash (h), the previous stream hashes (s), and the
# save's positions drawn from the table's own sequence (n), in one statement.
_BEFORE_INSERT = """
(SELECT 'h' AS kind, NULL::uuid AS id, log_hash AS hash, NULL::bigint AS n FROM {table}
    ORDER BY notification_id DESC LIMIT 1)
UNION ALL
SELECT 's', e.originator_id, e.stream_hash, NULL FROM {table} e
    JOIN unnest(%s::uuid[], %s::bigint[]) AS w(id, version)
    ON e.originator_id = w.id AND e.originator_version = w.version
UNION ALL
SELECT 'n', NULL, NULL, nextval({sequence}::regclass) FROM generate_series(1, %s)
"""

_INSERT = """
INSERT INTO {table} (notification_id, originator_id, originator_version, topic, state,
    stream_hash, log_hash)
SELECT * FROM unnest(%s::bigint[], %s::uuid[], %s::bigint[], %s::text[], %s::bytea[],
    %s::bytea[], %s::bytea[])
RETURNING notification_id
"""


def install_chain(recorder: PostgresApplicationRecorder, key: ChainKey) -> int | None:
    """Add the hash columns if missing and back-fill unchained old events, in one
    transaction under the table lock; the last back-filled position, if any."""
    schema = recorder.datastore.schema
    table = sql.Identifier(schema, recorder.events_table_name)
    with recorder.datastore.transaction(commit=True) as cursor:
        cursor.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(table))
        cursor.execute(
            "SELECT count(*) AS n FROM information_schema.columns WHERE table_schema = %s"
            " AND table_name = %s AND column_name IN ('stream_hash', 'log_hash')",
            (schema, recorder.events_table_name),
        )
        found = cursor.fetchone()
        if found is None or found["n"] < 2:
            # ALTER TABLE takes an ACCESS EXCLUSIVE lock (readers wait) even when the
            # columns exist: only when they are missing, once per database.
            cursor.execute(
                sql.SQL(
                    "ALTER TABLE {} ADD COLUMN IF NOT EXISTS stream_hash bytea,"
                    " ADD COLUMN IF NOT EXISTS log_hash bytea"
                ).format(table)
            )
        record = sql.Identifier(schema, BACKFILL_TABLE)
        cursor.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (through_position bigint NOT NULL,"
                " at timestamptz NOT NULL DEFAULT now())"
            ).format(record)
        )
        return _backfill(cursor, table, record, key)


def _backfill(
    cursor: Cursor[DictRow], table: sql.Identifier, record: sql.Identifier, key: ChainKey
) -> int | None:
    """Chain the events stored before the chain existed: the unchained prefix of the log."""
    cursor.execute(
        sql.SQL("SELECT min(notification_id) AS n FROM {} WHERE log_hash IS NOT NULL").format(table)
    )
    row = cursor.fetchone()
    first_chained = row["n"] if row else None
    streams: dict[UUID, bytes] = {}
    previous_log: bytes | None = None
    after, last = 0, None
    select = sql.SQL(
        "SELECT notification_id, originator_id, originator_version, topic, state FROM {}"
        " WHERE notification_id > %s AND (%s::bigint IS NULL OR notification_id < %s)"
        " ORDER BY notification_id LIMIT %s"
    ).format(table)
    update = sql.SQL(
        "UPDATE {} SET stream_hash = %s, log_hash = %s WHERE notification_id = %s"
    ).format(table)
    while True:
        cursor.execute(select, (after, first_chained, first_chained, _BACKFILL_PAGE))
        rows = cursor.fetchall()
        if not rows:
            break
        updates = []
        for r in rows:
            stream = key.stream_hash(
                streams.get(r["originator_id"]),
                r["originator_id"],
                r["originator_version"],
                r["topic"],
                bytes(r["state"]),
            )
            streams[r["originator_id"]] = stream
            previous_log = key.log_hash(previous_log, r["notification_id"], stream)
            updates.append((stream, previous_log, r["notification_id"]))
        cursor.executemany(update, updates)
        after = last = rows[-1]["notification_id"]
    if last is not None:
        cursor.execute(
            sql.SQL("INSERT INTO {} (through_position) VALUES (%s)").format(record), (last,)
        )
    return last
