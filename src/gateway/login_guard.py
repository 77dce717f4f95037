"""Repeated failed logins lock the login for a while, in PostgreSQL where every gateway
process sees the same count.

Each attempt is counted BEFORE the password is checked, in one atomic upsert, so parallel
guesses against one login cannot slip past the limit between a check and a count: after
`max_attempts` attempts within `window` without a success, the next attempt locks the
login for `lock_for`, and attempts while locked are refused without being counted (so
they do not extend the lock). A success clears the count. Logins are stored as a SHA-256
of their normalised form, never in clear: the table holds no personal data to erase.

The table is created on first use by each process (`CREATE TABLE IF NOT EXISTS`); it
lives in the service's schema beside the event store.

Locking by login lets someone who knows a customer's email lock them out for a while;
that is the usual price of stopping password guessing per account. A limit per client
address belongs in front of the gateways (the proxy knows the real address).
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

__all__ = ["LoginGuard", "login_key"]

TABLE = "portal_login_attempts"

_CREATE = """
CREATE TABLE IF NOT EXISTS {table} (
    login_key bytea PRIMARY KEY,
    attempts integer NOT NULL,
    window_started_at timestamptz NOT NULL,
    locked_until timestamptz
)
"""

# `fresh`: the previous window is over (or the lock has run out), so counting starts again.
_ATTEMPT = """
INSERT INTO {table} AS t (login_key, attempts, window_started_at) VALUES (%(key)s, 1, now())
ON CONFLICT (login_key) DO UPDATE SET
    attempts = CASE
        WHEN t.locked_until > now() THEN t.attempts
        WHEN t.window_started_at <= now() - %(window)s OR t.locked_until <= now() THEN 1
        ELSE t.attempts + 1 END,
    window_started_at = CASE
        WHEN t.locked_until > now() THEN t.window_started_at
        WHEN t.window_started_at <= now() - %(window)s OR t.locked_until <= now() THEN now()
        ELSE t.window_started_at END,
    locked_until = CASE
        WHEN t.locked_until > now() THEN t.locked_until
        WHEN t.window_started_at <= now() - %(window)s OR t.locked_until <= now() THEN NULL
        WHEN t.attempts + 1 > %(max)s THEN now() + %(lock)s
        ELSE NULL END
RETURNING ceil(extract(epoch FROM t.locked_until - now()))::bigint AS retry_after
"""


def login_key(login: str) -> bytes:
    """The stored form of a login: a hash of it, trimmed and case-folded."""
    return hashlib.sha256(login.strip().casefold().encode()).digest()


@dataclass
class LoginGuard:
    """Counts login attempts per login in `schema`.`portal_login_attempts`."""

    schema: str
    max_attempts: int = 5
    window: timedelta = timedelta(minutes=15)
    lock_for: timedelta = timedelta(minutes=15)
    _ready: bool = field(default=False, init=False)

    async def attempt(self, pool: AsyncConnectionPool[Any], login: str) -> int | None:
        """Count an attempt: None if it may go ahead, else the seconds until the lock ends."""
        async with pool.connection() as connection:
            await self._create(connection)
            cursor = await connection.execute(
                sql.SQL(_ATTEMPT).format(table=self._table()),
                {
                    "key": login_key(login),
                    "window": self.window,
                    "max": self.max_attempts,
                    "lock": self.lock_for,
                },
            )
            row = await cursor.fetchone()
        retry_after = int(row["retry_after"]) if row and row["retry_after"] is not None else 0
        return retry_after if retry_after > 0 else None

    async def succeeded(self, pool: AsyncConnectionPool[Any], login: str) -> None:
        """Clear the login's count after a right password."""
        async with pool.connection() as connection:
            # Also reached by an erasure, perhaps before any login made the table.
            await self._create(connection)
            await connection.execute(
                sql.SQL("DELETE FROM {} WHERE login_key = %s").format(self._table()),
                (login_key(login),),
            )

    def _table(self) -> sql.Composable:
        return sql.Identifier(self.schema, TABLE)

    async def _create(self, connection: psycopg.AsyncConnection[Any]) -> None:
        if self._ready:
            return
        # Another process may create it at the same moment: that is as good.
        with contextlib.suppress(psycopg.errors.UniqueViolation, psycopg.errors.DuplicateTable):
            await connection.execute(sql.SQL(_CREATE).format(table=self._table()))
        self._ready = True
