"""The read side's plumbing: an async pool for read-model queries, and read-your-writes.

Read models are queried with psycopg's async pool, on the event loop, with no thread hop.
A GET with `min_position=n` first waits until that read model has processed position n:
the projection workers NOTIFY each batch's position (`projections.base.PROGRESS_CHANNEL`),
one LISTEN connection per gateway wakes the waiters, and a waiter gives up with 503 after
`wait_ms`. A short re-check interval covers a notification lost to a reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import psycopg
import structlog
from aiohttp import web
from prometheus_client import Gauge
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict, Field

from gateway.keys import PROGRESS_KEY, READ_POOL_KEY, REGISTRY_KEY, SCRAPE_HOOKS_KEY, SETTINGS_KEY
from gateway.problems import RETRY_AFTER_SECONDS, Problem
from gateway.relay_metrics import RelayProgress
from projections.base import PROGRESS_CHANNEL, UPSTREAM, read_model_schema
from projections.catalog import READ_MODELS

__all__ = ["ProgressWatcher", "ReadQuery", "read_pool", "reads_context", "wait_for_position"]

_log = structlog.get_logger("gateway.reads")
_RECHECK_SECONDS = 0.5


class ReadQuery(BaseModel):
    """Query parameters every read-model GET accepts (API.md, read-your-writes)."""

    model_config = ConfigDict(extra="forbid")
    min_position: int | None = Field(default=None, ge=0)
    """Wait until the read model has processed this global position (X-Event-Position)."""
    wait_ms: int = Field(default=2000, ge=0, le=30_000)
    """How long to wait for `min_position` before answering 503."""


class ProgressWatcher:
    """Each read model's processed position, kept fresh by LISTEN, with waiters to wake.

    A notification wakes only the waiters of its read model whose position it reached:
    every follower notifies every batch, and waking every waiter on each one (each then
    asking the database again) cost the gateway more than the searches the waiters made.
    The database is asked when a wait begins and after each quiet `_RECHECK_SECONDS`,
    which covers a notification lost to a reconnect.
    """

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool
        self._positions: dict[str, int] = defaultdict(int)
        self._waiters: dict[str, list[tuple[int, asyncio.Future[None]]]] = defaultdict(list)
        self._task: asyncio.Task[None] | None = None

    def start(self, database_url: str) -> None:
        self._task = asyncio.create_task(self._listen(database_url))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def wait(self, schema: str, position: int, within_seconds: float) -> bool:
        """Whether the read model in `schema` reached `position` within that many seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_seconds
        if self._positions[schema] >= position or await self._refresh(schema) >= position:
            return True
        while (remaining := deadline - loop.time()) > 0:
            reached: asyncio.Future[None] = loop.create_future()
            entry = (position, reached)
            self._waiters[schema].append(entry)
            try:
                await asyncio.wait_for(reached, min(remaining, _RECHECK_SECONDS))
                return True
            except TimeoutError:
                if await self._refresh(schema) >= position:
                    return True
            finally:
                # Timed out (wait_for cancelled it) or woken: either way no longer waiting.
                with contextlib.suppress(ValueError):
                    self._waiters[schema].remove(entry)
        return False

    def _advance(self, schema: str, position: int) -> None:
        if position <= self._positions[schema]:
            return
        self._positions[schema] = position
        waiting = self._waiters.get(schema)
        if not waiting:
            return
        still = []
        for entry in waiting:
            if entry[0] <= position:
                if not entry[1].done():
                    entry[1].set_result(None)
            else:
                still.append(entry)
        waiting[:] = still

    async def _refresh(self, schema: str) -> int:
        async with self._pool.connection() as connection:
            try:
                cursor = await connection.execute(
                    sql.SQL("SELECT notification_id FROM {} WHERE application_name = %s").format(
                        sql.Identifier(schema, "tracking")
                    ),
                    (UPSTREAM,),
                )
            except psycopg.errors.UndefinedTable:
                return 0
            row = await cursor.fetchone()
        self._advance(schema, int(row["notification_id"]) if row else 0)
        return self._positions[schema]

    async def _listen(self, database_url: str) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    database_url, autocommit=True
                ) as connection:
                    await connection.execute(
                        sql.SQL("LISTEN {}").format(sql.Identifier(PROGRESS_CHANNEL))
                    )
                    async for notice in connection.notifies():
                        schema, _, position = notice.payload.rpartition(":")
                        self._advance(schema, int(position))
            except (psycopg.Error, OSError) as error:
                _log.warning("progress_listener_reconnecting", error=repr(error))
                await asyncio.sleep(1.0)


class ReadModelLag:
    """Gauges of each read model's position and lag behind the log, read at scrape time.

    The workers are other processes; reading their tracking rows here lets the gateway's
    /metrics show every read model's lag wherever its runner is.
    """

    def __init__(self, app: web.Application, pool: AsyncConnectionPool[Any]) -> None:
        settings = app[SETTINGS_KEY]
        self._pool = pool
        self._service_schema = settings.db_schema
        registry = app[REGISTRY_KEY]
        self._head = Gauge("event_log_head", "Position of the newest event", registry=registry)
        self._position = Gauge(
            "read_model_position", "Last position processed", ["read_model"], registry=registry
        )
        self._lag = Gauge(
            "read_model_lag_events", "Positions behind the head", ["read_model"], registry=registry
        )

    async def refresh(self) -> None:
        with contextlib.suppress(psycopg.Error):
            async with self._pool.connection() as connection:
                cursor = await connection.execute(
                    sql.SQL("SELECT max(notification_id) AS head FROM {}").format(
                        sql.Identifier(self._service_schema, f"{UPSTREAM}_events")
                    )
                )
                row = await cursor.fetchone()
                head = int(row["head"] or 0) if row else 0
                self._head.set(head)
                for name in READ_MODELS:
                    schema = read_model_schema(self._service_schema, name)
                    try:
                        cursor = await connection.execute(
                            sql.SQL("SELECT notification_id FROM {}").format(
                                sql.Identifier(schema, "tracking")
                            )
                        )
                    except psycopg.errors.UndefinedTable:
                        continue
                    tracked = await cursor.fetchone()
                    position = int(tracked["notification_id"]) if tracked else 0
                    self._position.labels(name).set(position)
                    self._lag.labels(name).set(max(0, head - position))


async def reads_context(app: web.Application) -> AsyncIterator[None]:
    """`cleanup_ctx`: the read pool and the progress listener (only with a database)."""
    database_url = app[SETTINGS_KEY].database_url
    if database_url is None:
        yield
        return
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        database_url,
        min_size=1,
        max_size=10,
        open=False,
        timeout=5,
        kwargs={"autocommit": True, "row_factory": dict_row},
    )
    await pool.open(wait=False)
    watcher = ProgressWatcher(pool)
    watcher.start(database_url)
    app[READ_POOL_KEY] = pool
    app[PROGRESS_KEY] = watcher
    hooks: list[Callable[[], Awaitable[None]]] = [
        ReadModelLag(app, pool).refresh,
        RelayProgress(app, pool).refresh,
    ]
    app[SCRAPE_HOOKS_KEY] = hooks
    yield
    await watcher.stop()
    await pool.close()


def read_pool(request: web.Request) -> AsyncConnectionPool[Any]:
    return request.app[READ_POOL_KEY]


async def wait_for_position(request: web.Request, read_model: str, query: ReadQuery) -> None:
    """Return once `read_model` has processed `query.min_position`; else 503 + Retry-After."""
    if query.min_position is None:
        return
    schema = read_model_schema(request.app[SETTINGS_KEY].db_schema, read_model)
    if not await request.app[PROGRESS_KEY].wait(schema, query.min_position, query.wait_ms / 1000):
        raise Problem(
            503,
            f"The {read_model} view has not reached position {query.min_position} yet.",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
