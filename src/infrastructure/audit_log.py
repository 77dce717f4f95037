"""Reading the event store as an auditor does: verifying its hash chain, paging its log.

`verify_chain` recomputes every event's two links (`hash_chain`) from the stored rows and
reports the first break: in log order for the whole store, in version order for one
stream. It checks, per event, in this order: that it has hashes at all (a row written
around the service has none), that its version follows the previous one of its stream
(a deleted or swapped version), that its stream hash matches its stored topic, state, id
and version (an edit, or an event moved to another stream), and that its log hash follows
the previous event of the log (an event deleted just before it, such as the last event of
another stream). Verification stops at the first break; the counts say how far it got.

Events stored before the chain existed were chained by the migration as it found them
(`backfilled_through`): tampering with them before that moment cannot be seen. The very
last event of the log has no successor to vouch for it; keep the reported `head` and
compare it with a later verification's to see it deleted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from psycopg import sql

from infrastructure.hash_chain import BACKFILL_TABLE, ChainedRecorder, ChainKey

__all__ = [
    "MASK",
    "ChainBreak",
    "Head",
    "Verification",
    "event_payload",
    "iter_log",
    "log_rows",
    "masked",
    "verify_chain",
]

_PAGE = 5000
_ENVELOPE = frozenset(
    {"originator_id", "originator_version", "timestamp", "originator_topic"}
    | {"actor", "correlation_id"}
)
MASK = "***"
# Sealed secrets and credentials' hashes: an audit view says they were set, never shows them.
_MASKED_FIELDS = frozenset({"sealed_secret", "sealed_token", "token_hash", "password_hash"})


def event_payload(event: Any) -> dict[str, Any]:
    """What an audit view shows of an event beyond its envelope: its fields, secrets masked."""
    shown: dict[str, Any] = masked({k: v for k, v in vars(event).items() if k not in _ENVELOPE})
    return shown


def masked(value: Any) -> Any:
    """Plain data (dataclasses as dicts) with every sealed secret or hash replaced by a mask."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {
            k: (MASK if k in _MASKED_FIELDS and v is not None else masked(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [masked(v) for v in value]
    return value


@dataclass(frozen=True)
class ChainBreak:
    """Where the chain first fails, and why."""

    stream_id: UUID
    version: int
    reason: str


@dataclass(frozen=True)
class Head:
    """The last event of the log as verified: keep it to see that event deleted later."""

    position: int
    log_hash: str


@dataclass
class Verification:
    """The outcome of checking the chain (API.md's audit verify answer, and a little more)."""

    streams_checked: int = 0
    events_checked: int = 0
    first_break: ChainBreak | None = None
    backfilled_through: int | None = None
    head: Head | None = None
    _streams: set[UUID] = field(default_factory=set, repr=False)

    @property
    def ok(self) -> bool:
        return self.first_break is None

    def count(self, stream_id: UUID) -> None:
        self.events_checked += 1
        if stream_id not in self._streams:
            self._streams.add(stream_id)
            self.streams_checked += 1


def verify_chain(
    recorder: ChainedRecorder,
    key: ChainKey,
    stream_id: UUID | None = None,
    *,
    progress: Callable[[int], None] | None = None,
) -> Verification:
    """Check every stream (or one) and report the first break; `progress(position)` per page."""
    result = Verification(backfilled_through=_backfilled_through(recorder))
    if stream_id is None:
        _verify_log(recorder, key, result, progress)
    else:
        _verify_stream(recorder, key, stream_id, result)
    return result


def _verify_log(
    recorder: ChainedRecorder,
    key: ChainKey,
    result: Verification,
    progress: Callable[[int], None] | None,
) -> None:
    versions: dict[UUID, tuple[int, bytes]] = {}
    previous: tuple[int, bytes | None] | None = None
    after = 0
    while rows := log_rows(recorder, after, _PAGE, hashes=True):
        for row in rows:
            stream, version = row["originator_id"], row["originator_version"]
            last_version, last_hash = versions.get(stream, (0, None))
            reason = _check(key, row, last_version, last_hash, previous)
            if reason is not None:
                result.first_break = ChainBreak(stream, min(version, last_version + 1), reason)
                return
            versions[stream] = (version, bytes(row["stream_hash"]))
            previous = (row["notification_id"], bytes(row["log_hash"]))
            result.count(stream)
        after = rows[-1]["notification_id"]
        if progress is not None:
            progress(after)
    if previous is not None:
        assert previous[1] is not None
        result.head = Head(previous[0], previous[1].hex())


def _verify_stream(
    recorder: ChainedRecorder, key: ChainKey, stream_id: UUID, result: Verification
) -> None:
    table = _events_table(recorder)
    # Each event with the log hash of the event just before it in the log (whichever stream).
    statement = sql.SQL(
        "SELECT e.notification_id, e.originator_id, e.originator_version, e.topic, e.state,"
        " e.stream_hash, e.log_hash, p.notification_id AS previous_position,"
        " p.log_hash AS previous_log_hash"
        " FROM {table} e LEFT JOIN LATERAL (SELECT notification_id, log_hash FROM {table}"
        "  WHERE notification_id < e.notification_id ORDER BY notification_id DESC LIMIT 1) p"
        " ON true WHERE e.originator_id = %s ORDER BY e.originator_version"
    ).format(table=table)
    with recorder.datastore.transaction(commit=False) as cursor:
        cursor.execute(statement, (stream_id,))
        rows = cursor.fetchall()
    last_version, last_hash = 0, None
    for row in rows:
        previous = None
        if row["previous_position"] is not None:
            previous = (row["previous_position"], _bytes(row["previous_log_hash"]))
        reason = _check(key, row, last_version, last_hash, previous)
        if reason is not None:
            version = min(row["originator_version"], last_version + 1)
            result.first_break = ChainBreak(stream_id, version, reason)
            return
        last_version, last_hash = row["originator_version"], bytes(row["stream_hash"])
        result.count(stream_id)


def _check(
    key: ChainKey,
    row: dict[str, Any],
    last_version: int,
    last_hash: bytes | None,
    previous: tuple[int, bytes | None] | None,
) -> str | None:
    """Why this event breaks the chain, or None when it links correctly."""
    version, position = row["originator_version"], row["notification_id"]
    if row["stream_hash"] is None or row["log_hash"] is None:
        return (
            "the event has no hash: it was written around the service (without the audit"
            " key), or after the migration that chained the older events"
        )
    if version != last_version + 1:
        if version <= last_version:
            return f"version {version} appears again after version {last_version}"
        return (
            f"version {last_version + 1} is missing or out of order: the stream goes from"
            f" version {last_version} to {version} (an event deleted or versions swapped)"
        )
    expected = key.stream_hash(
        last_hash, row["originator_id"], version, row["topic"], bytes(row["state"])
    )
    if expected != bytes(row["stream_hash"]):
        return (
            "the stored event is not what was written: its topic, state, stream or version"
            " changed since"
        )
    previous_position, previous_hash = previous if previous else (None, None)
    if key.log_hash(previous_hash, position, expected) != bytes(row["log_hash"]):
        since = f"after position {previous_position}" if previous_position else "at the start"
        return (
            f"the log before this event changed: an event committed just before position"
            f" {position} ({since}) is missing, or this event's position changed"
        )
    return None


def log_rows(
    recorder: ChainedRecorder, after: int, limit: int, *, hashes: bool = False
) -> list[dict[str, Any]]:
    """Up to `limit` stored rows after position `after`, in log order."""
    columns = "notification_id, originator_id, originator_version, topic, state"
    if hashes:
        columns += ", stream_hash, log_hash"
    statement = sql.SQL(
        "SELECT {} FROM {} WHERE notification_id > %s ORDER BY notification_id LIMIT %s"
    ).format(sql.SQL(columns), _events_table(recorder))
    with recorder.datastore.transaction(commit=False) as cursor:
        cursor.execute(statement, (after, limit))
        return list(cursor.fetchall())


def iter_log(
    recorder: ChainedRecorder, after: int, *, hashes: bool = False, page: int = _PAGE
) -> Iterator[dict[str, Any]]:
    """Every stored row after position `after`, in log order, a page at a time."""
    while rows := log_rows(recorder, after, page, hashes=hashes):
        yield from rows
        after = rows[-1]["notification_id"]


def _backfilled_through(recorder: ChainedRecorder) -> int | None:
    statement = sql.SQL("SELECT max(through_position) AS n FROM {}").format(
        sql.Identifier(recorder.datastore.schema, BACKFILL_TABLE)
    )
    with recorder.datastore.transaction(commit=False) as cursor:
        cursor.execute(statement)
        row = cursor.fetchone()
    return row["n"] if row else None


def _events_table(recorder: ChainedRecorder) -> sql.Identifier:
    return sql.Identifier(recorder.datastore.schema, recorder.events_table_name)


def _bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)
