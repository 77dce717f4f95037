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
one pipelined transaction under the library's table lock; a round trip per save to fetch
the previous hashes would cost throughput, and the previous event in the global log is
only known once the lock is held. So a BEFORE INSERT trigger computes both links in the
server: it sees the rows inserted earlier by the same statement, and the lock makes
"the previous event in the log" exact. A plain sha256 chain in a trigger could be
recomputed by anyone with SQL access, though, so the trigger computes an HMAC (built from
the server's `sha256()`, RFC 2104, no extension needed) with the key the recorder sends in
a transaction-local setting, pipelined with the insert: no extra round trip. The key
crosses the connection with each write and lives only for that transaction; an attacker
who can read the server's statement logs or this process's configuration can forge
hashes, one with SQL access to the tables alone cannot. A row written without the key
(around the service) gets no hashes, and verification reports it.

Events stored before the chain existed are back-filled by `install_chain` (the migrate
step) under the table lock, in log order, and the position it reached is recorded: the
chain vouches for those events as they were at the migration, not for their earlier past.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.persistence import ProgrammingError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg import Cursor, sql
from psycopg.rows import DictRow
from pydantic import SecretStr

__all__ = ["BACKFILL_TABLE", "ChainKey", "ChainedRecorder", "chain_key", "install_chain"]

BACKFILL_TABLE = "crm_chain_backfill"
"""One row per back-fill: up to which position events were chained after the fact."""
_SETTING = "customers.audit_key"
_ZERO = bytes(32)
_BLOCK = 64  # SHA-256's block size: the HMAC pads its key to it
_BACKFILL_PAGE = 2000


@dataclass(frozen=True)
class ChainKey:
    """The audit key, and the two links computed with it exactly as the trigger does."""

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

    def setting(self) -> str:
        """The key as the trigger takes it: the inner and outer padded keys, in hex."""
        padded = (hashlib.sha256(self.key).digest() if len(self.key) > _BLOCK else self.key).ljust(
            _BLOCK, b"\0"
        )
        inner = bytes(b ^ 0x36 for b in padded)
        outer = bytes(b ^ 0x5C for b in padded)
        return inner.hex() + outer.hex()


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
    """The library's recorder, sending the audit key with every insert for the trigger."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.chain_key: ChainKey | None = None
        """Set by `build_service`; without it the recorder refuses to write."""
        self._set_key = sql.SQL("SELECT set_config({}, %s, true)").format(sql.Literal(_SETTING))

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Any:
        if self.chain_key is None:
            # Written without the key, the events would carry no hashes: refuse instead.
            raise ProgrammingError("the recorder has no audit key; build it with build_service")
        return super().insert_events(stored_events, **kwargs)

    def _insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **_: Any
    ) -> None:
        # Runs inside the insert's transaction and pipeline, before the lock and the INSERT.
        assert self.chain_key is not None
        curs.execute(self._set_key, (self.chain_key.setting(),), prepare=True)


def install_chain(recorder: PostgresApplicationRecorder, key: ChainKey) -> int | None:
    """Add the hash columns and trigger if missing and back-fill unchained old events, in one
    transaction under the table lock; the last back-filled position, if any."""
    schema = recorder.datastore.schema
    table = sql.Identifier(schema, recorder.events_table_name)
    with recorder.datastore.transaction(commit=True) as cursor:
        cursor.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(table))
        for statement in _ddl(schema, recorder.events_table_name):
            cursor.execute(statement)
        return _backfill(cursor, table, sql.Identifier(schema, BACKFILL_TABLE), key)


def _ddl(schema: str, table_name: str) -> list[sql.Composed]:
    table = sql.Identifier(schema, table_name)
    function = sql.Identifier(schema, f"{table_name}_chain")
    return [
        sql.SQL(
            "ALTER TABLE {} ADD COLUMN IF NOT EXISTS stream_hash bytea,"
            " ADD COLUMN IF NOT EXISTS log_hash bytea"
        ).format(table),
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (through_position bigint NOT NULL,"
            " at timestamptz NOT NULL DEFAULT now())"
        ).format(sql.Identifier(schema, BACKFILL_TABLE)),
        sql.SQL(_TRIGGER_FUNCTION).format(
            function=function, table=table, setting=sql.Literal(_SETTING)
        ),
        sql.SQL(
            "CREATE OR REPLACE TRIGGER {} BEFORE INSERT ON {} FOR EACH ROW EXECUTE FUNCTION {}()"
        ).format(sql.Identifier(f"{table_name}_chain"), table, function),
    ]


# HMAC-SHA256(K, m) = sha256(K_out || sha256(K_in || m)), the padded keys from the setting.
_TRIGGER_FUNCTION = """
CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $body$
DECLARE
    k text := current_setting({setting}, true);
    k_in bytea; k_out bytea; previous_stream bytea; previous_log bytea; topic_bytes bytea;
    zero bytea := decode(repeat('00', 32), 'hex');
BEGIN
    IF k IS NULL OR k = '' THEN
        NEW.stream_hash := NULL;
        NEW.log_hash := NULL;
        RETURN NEW;
    END IF;
    k_in := decode(substr(k, 1, 128), 'hex');
    k_out := decode(substr(k, 129, 128), 'hex');
    SELECT t.stream_hash INTO previous_stream FROM {table} t
        WHERE t.originator_id = NEW.originator_id
        AND t.originator_version = NEW.originator_version - 1;
    SELECT t.log_hash INTO previous_log FROM {table} t
        WHERE t.notification_id < NEW.notification_id
        ORDER BY t.notification_id DESC LIMIT 1;
    topic_bytes := convert_to(NEW.topic, 'UTF8');
    NEW.stream_hash := sha256(k_out || sha256(k_in || '\\x53'::bytea
        || coalesce(previous_stream, zero) || uuid_send(NEW.originator_id)
        || int8send(NEW.originator_version) || int4send(octet_length(topic_bytes))
        || topic_bytes || coalesce(NEW.state, ''::bytea)));
    NEW.log_hash := sha256(k_out || sha256(k_in || '\\x4c'::bytea
        || coalesce(previous_log, zero) || int8send(NEW.notification_id) || NEW.stream_hash));
    RETURN NEW;
END
$body$
"""


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
