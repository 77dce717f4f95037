"""The customers' data keys in PostgreSQL, each wrapped by the key-encryption key.

`<schema>.data_keys` holds one row per customer: its data key encrypted (AES-256-GCM, the
customer's id bound in) with the key-encryption key of `CUSTOMERS_KEY_ENCRYPTION_KEY`,
which is never stored in the database. Erasing a customer sets its row's key to NULL: the
row stays as a tombstone, so no later event can create a new key for an erased customer.
A backup of the database alone reads nothing personal; one taken before an erasure still
holds the key until it expires (keep backups' retention within what the law allows).

A check row (the nil subject) holds a known value wrapped with the key-encryption key the
table was created with: `check_key_encryption_key` refuses to start a process with
another one, which would otherwise write events that no one could read together with the
old ones.

Rotating the key-encryption key: configure the new one as `CUSTOMERS_KEY_ENCRYPTION_KEY`
and the old one in `CUSTOMERS_PREVIOUS_KEY_ENCRYPTION_KEYS` (comma-separated) on every
process; they open keys wrapped with either and wrap new ones with the new key. Then
`customers keys rewrap` wraps every stored key with the new one (in batches, resumable),
after which the old key can be removed from the settings and destroyed. A backup taken
before the rewrap still needs the old key.

Unwrapped keys are cached per process for `cache_seconds` (so another process's erasure
is seen within that time), then dropped, so the cache holds only recently used keys.
Reads of the past (a customer's earlier version, its raw events) `forget` the cached key
first: those are what an erasure must hide at once, and they are rare enough to pay a look-up.
`prepare` fetches (or creates) every missing key of a save or a page of the log in ONE statement.
"""

from __future__ import annotations

import base64
import contextlib
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID, uuid4

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from psycopg import sql
from psycopg.rows import tuple_row

from domain.key_ring import DataKey, KeyRing
from infrastructure.settings import SettingsError

__all__ = [
    "KEY_ENCRYPTION_KEY_BYTES",
    "LostKeyEncryptionKeyError",
    "PostgresKeyRing",
    "decode_key_encryption_key",
]

KEY_ENCRYPTION_KEY_BYTES = 32
TABLE = "data_keys"
_CHECK_SUBJECT = UUID(int=0)
_CHECK_VALUE = b"customers data keys"
_NONCE_BYTES = 12
_VARIABLE = "CUSTOMERS_KEY_ENCRYPTION_KEY"
_PREVIOUS_VARIABLE = "CUSTOMERS_PREVIOUS_KEY_ENCRYPTION_KEYS"
_BLOCK = 50
"""New customers' keys created ahead in one statement."""


class LostKeyEncryptionKeyError(SettingsError):
    """The configured key-encryption key does not open the stored data keys."""


def decode_key_encryption_key(text: str) -> bytes:
    """The key from its setting: 32 bytes in (url-safe) base64; ValueError otherwise."""
    try:
        key = base64.urlsafe_b64decode(text.strip().encode())
    except ValueError:
        raise ValueError("should be 32 bytes in url-safe base64") from None
    if len(key) != KEY_ENCRYPTION_KEY_BYTES:
        raise ValueError(f"should be {KEY_ENCRYPTION_KEY_BYTES} bytes in url-safe base64")
    return key


class PostgresKeyRing(KeyRing):
    """Data keys in `<schema>.data_keys`, wrapped by the key-encryption key."""

    def __init__(
        self,
        schema: str,
        key_encryption_key: bytes,
        *,
        previous_keys: Sequence[bytes] = (),
        datastore: Any = None,
        cache_seconds: float = 60.0,
        cache_size: int = 100_000,
    ) -> None:
        self._datastore = datastore
        self._schema = schema
        self._table = sql.Identifier(schema, TABLE)
        self._kek = AESGCM(key_encryption_key)
        self._previous = [AESGCM(key) for key in previous_keys]
        """Keys that may still wrap some data keys during a rotation: tried after the current."""
        self._cache_seconds = cache_seconds
        self._cache_size = cache_size
        self._cache: OrderedDict[UUID, tuple[DataKey | None, float]] = OrderedDict()
        self._lock = threading.Lock()
        self._checked = False
        self._fresh: list[UUID] = []

    # ---- set-up ------------------------------------------------------------------------

    def bind(self, datastore: Any) -> None:
        """Use this connection pool (the event store's, made after the mapper needs the ring)."""
        self._datastore = datastore

    def migrate(self) -> None:
        """Create the table and its check row (the migrate step)."""
        with self._datastore.transaction(commit=True) as cursor:
            cursor.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (subject_id uuid PRIMARY KEY,"
                    " wrapped_key bytea, created_at timestamptz NOT NULL DEFAULT now(),"
                    " destroyed_at timestamptz)"
                ).format(self._table)
            )
            cursor.execute(
                sql.SQL(
                    "INSERT INTO {} (subject_id, wrapped_key) VALUES (%s, %s)"
                    " ON CONFLICT (subject_id) DO NOTHING"
                ).format(self._table),
                (_CHECK_SUBJECT, self._wrap(_CHECK_SUBJECT, _CHECK_VALUE)),
            )

    def check_key_encryption_key(self) -> None:
        """Raise LostKeyEncryptionKeyError unless the configured key opens the table's keys."""
        with self._datastore.transaction(commit=False) as cursor:
            cursor.execute(
                sql.SQL("SELECT wrapped_key FROM {} WHERE subject_id = %s").format(self._table),
                (_CHECK_SUBJECT,),
            )
            row = cursor.fetchone()
        if row is None:
            return  # not migrated yet: the migrate step wraps the check with this key
        try:
            ok = self._unwrap(_CHECK_SUBJECT, bytes(row["wrapped_key"])) == _CHECK_VALUE
        except InvalidTag:
            ok = False
        if not ok:
            also = f" nor {_PREVIOUS_VARIABLE}" if self._previous else ""
            raise LostKeyEncryptionKeyError(
                f"{_VARIABLE}{also}: does not open the data keys in {self._schema}.{TABLE} (they"
                " were wrapped with another key); restore that key: starting with this one would"
                " write personal data no one could read with the data already stored"
            )
        self._checked = True

    # ---- KeyRing -----------------------------------------------------------------------

    def data_key(self, subject_id: UUID, *, create: bool = False) -> DataKey | None:
        found, key = self._cached(subject_id)
        if found:
            return key
        if create:
            self.prepare([subject_id])
        else:
            self._fetch([subject_id], create=False)
        return self._cached(subject_id)[1]

    def prepare(self, subject_ids: Iterable[UUID], *, create: bool = True) -> None:
        missing = [s for s in set(subject_ids) if not self._cached(s)[0]]
        if missing:
            self._fetch(missing, create=create)

    def new_subject(self) -> UUID:
        """A subject id from a block created ahead: one statement per `_BLOCK` new customers.
        A block's unused rest, when the process stops, stays as keys nobody uses."""
        with self._lock:
            if self._fresh:
                return self._fresh.pop()
        fresh = [uuid4() for _ in range(_BLOCK)]
        self._fetch(fresh, create=True)
        with self._lock:
            self._fresh.extend(fresh[1:])
        return fresh[0]

    def destroy(self, subject_id: UUID) -> None:
        with self._datastore.transaction(commit=True) as cursor:
            cursor.execute(
                sql.SQL(
                    "INSERT INTO {0} (subject_id, wrapped_key, destroyed_at)"
                    " VALUES (%s, NULL, now())"
                    " ON CONFLICT (subject_id) DO UPDATE SET wrapped_key = NULL,"
                    " destroyed_at = coalesce({0}.destroyed_at, now())"
                ).format(self._table),
                (subject_id,),
            )
        self._remember(subject_id, None)

    def forget(self, subject_id: UUID) -> None:
        with self._lock:
            entry = self._cache.get(subject_id)
            if entry is not None and entry[0] is not None:  # a destroyed key stays destroyed
                del self._cache[subject_id]

    # ---- rotation -----------------------------------------------------------------------

    def rewrap(self, *, batch: int = 1000) -> int:
        """Wrap every stored key (and the check row) with the current key-encryption key;
        how many were wrapped with a previous one. One transaction per batch, so it can be
        stopped and run again; processes reading meanwhile open either wrapping."""
        self.check_key_encryption_key()
        rewrapped, after = 0, None
        select = sql.SQL(
            "SELECT subject_id, wrapped_key FROM {} WHERE (%s::uuid IS NULL OR subject_id > %s)"
            " AND wrapped_key IS NOT NULL ORDER BY subject_id LIMIT %s FOR UPDATE"
        ).format(self._table)
        update = sql.SQL("UPDATE {} SET wrapped_key = %s WHERE subject_id = %s").format(self._table)
        while True:
            with self._datastore.transaction(commit=True) as cursor:
                cursor.execute(select, (after, after, batch))
                rows = cursor.fetchall()
                changed = []
                for row in rows:
                    subject, wrapped = row["subject_id"], bytes(row["wrapped_key"])
                    if not self._opens_with_current(subject, wrapped):
                        changed.append(
                            (self._wrap(subject, self._unwrap(subject, wrapped)), subject)
                        )
                if changed:
                    cursor.executemany(update, changed)
            rewrapped += len(changed)
            if len(rows) < batch:
                return rewrapped
            after = rows[-1]["subject_id"]

    def _opens_with_current(self, subject_id: UUID, wrapped: bytes) -> bool:
        try:
            self._kek.decrypt(wrapped[:_NONCE_BYTES], wrapped[_NONCE_BYTES:], subject_id.bytes)
        except InvalidTag:
            return False
        return True

    # ---- storage and cache --------------------------------------------------------------

    def _fetch(self, subject_ids: list[UUID], *, create: bool) -> None:
        """One statement: insert new keys for those without a row (if `create`), read all."""
        if not self._checked:  # the start-up check could not reach the database
            self.check_key_encryption_key()
        if create:
            new = {s: self._wrap(s, DataKey.generate()) for s in subject_ids}
            # One autocommit statement, one round trip. No flush of its own (`conf`): the
            # events that use these keys commit after it, and their flush makes everything
            # before them in the WAL durable too, so a crash can lose new keys only together
            # with the events that needed them.
            statement = sql.SQL(
                "WITH conf AS (SELECT set_config('synchronous_commit', 'off', true)),"
                " new AS (INSERT INTO {0} (subject_id, wrapped_key)"
                " SELECT * FROM unnest(%b::uuid[], %b::bytea[])"
                " ON CONFLICT (subject_id) DO NOTHING RETURNING subject_id, wrapped_key)"
                " SELECT n.subject_id, n.wrapped_key FROM new AS n, conf UNION ALL"
                " SELECT k.subject_id, k.wrapped_key FROM {0} AS k, conf"
                " WHERE k.subject_id = ANY(%b::uuid[])"
            ).format(self._table)
            parameters: tuple[Any, ...] = (list(new), list(new.values()), subject_ids)
        else:
            statement = sql.SQL(
                "SELECT subject_id, wrapped_key FROM {} WHERE subject_id = ANY(%b::uuid[])"
            ).format(self._table)
            parameters = (subject_ids,)
        with (
            self._datastore.get_connection() as connection,  # autocommit
            connection.cursor(row_factory=tuple_row) as cursor,
        ):
            rows = cursor.execute(statement, parameters).fetchall()
        # A rebuild fetches every customer's key once: one lock and one expiry sweep a page.
        self._remember_all(
            [
                (
                    subject,
                    None
                    if wrapped is None
                    else DataKey(subject, self._unwrap(subject, bytes(wrapped))),
                )
                for subject, wrapped in rows
            ]
        )

    def _cached(self, subject_id: UUID) -> tuple[bool, DataKey | None]:
        with self._lock:
            entry = self._cache.get(subject_id)
            if entry is None:
                return False, None
            key, expires = entry
            if key is not None and expires < time.monotonic():
                del self._cache[subject_id]
                return False, None
            return True, key

    def _remember(self, subject_id: UUID, key: DataKey | None) -> None:
        self._remember_all([(subject_id, key)])

    def _remember_all(self, keys: list[tuple[UUID, DataKey | None]]) -> None:
        with self._lock:
            now = time.monotonic()
            expires = now + self._cache_seconds
            for subject_id, key in keys:
                self._cache[subject_id] = (key, expires)
                self._cache.move_to_end(subject_id)
            # Entries stand in the order of their expiry (a hit does not move one), so the
            # expired ones are at the front: drop them here, or every customer ever read
            # would stay (a soak saw 30% RSS growth in 10 minutes). A destroyed key
            # dropped this way is read again as destroyed: its row is kept for good.
            while self._cache and (
                len(self._cache) > self._cache_size or next(iter(self._cache.values()))[1] < now
            ):
                self._cache.popitem(last=False)

    def _wrap(self, subject_id: UUID, key: bytes) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._kek.encrypt(nonce, key, subject_id.bytes)

    def _unwrap(self, subject_id: UUID, wrapped: bytes) -> bytes:
        nonce, sealed = wrapped[:_NONCE_BYTES], wrapped[_NONCE_BYTES:]
        keys = (self._kek, *self._previous)  # previous ones only during a rotation
        for key in keys[:-1]:
            with contextlib.suppress(InvalidTag):
                return key.decrypt(nonce, sealed, subject_id.bytes)
        return keys[-1].decrypt(nonce, sealed, subject_id.bytes)  # InvalidTag if none opens it
