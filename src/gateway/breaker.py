"""Fail fast while the database is down, and notice by itself when it is back.

Without this, every request during an outage would wait out the event store's own
retries (ten attempts, each waiting for a pool connection) before its 503. The first
request to meet the outage pays that wait and trips the breaker; from then on API
requests answer 503 at once, while one background probe asks the database every
second and closes the breaker when it answers. Health, metrics and docs never go
through it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import structlog
from aiohttp import web

from gateway.keys import BREAKER_KEY
from gateway.problems import RETRY_AFTER_SECONDS, Problem, is_unavailable

__all__ = ["DatabaseBreaker", "breaker_context", "breaker_middleware"]

_log = structlog.get_logger("gateway.breaker")
PROBE_INTERVAL_SECONDS = 1.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class DatabaseBreaker:
    """Open while the database is known to be unreachable."""

    def __init__(self, probe: Callable[[], Awaitable[bool]]) -> None:
        self._probe = probe
        self._task: asyncio.Task[None] | None = None

    @property
    def is_open(self) -> bool:
        return self._task is not None and not self._task.done()

    def trip(self) -> None:
        if not self.is_open:
            _log.warning("database_breaker_open")
            self._task = asyncio.create_task(self._probe_until_up())

    async def _probe_until_up(self) -> None:
        # Polling is the point: nothing else can tell us the database is back.
        while not await self._probe():  # noqa: ASYNC110
            await asyncio.sleep(PROBE_INTERVAL_SECONDS)
        _log.info("database_breaker_closed")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def breaker_context(
    probe: Callable[[], Awaitable[bool]],
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(app: web.Application) -> AsyncIterator[None]:
        breaker = DatabaseBreaker(probe)
        app[BREAKER_KEY] = breaker
        yield
        await breaker.close()

    return context


@web.middleware
async def breaker_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    breaker = request.app.get(BREAKER_KEY)
    if breaker is None or not request.path.startswith("/v1/"):
        return await handler(request)
    if breaker.is_open:
        raise Problem(
            503,
            "The database is unavailable; retry shortly.",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    try:
        return await handler(request)
    except Exception as exc:
        if is_unavailable(exc):
            breaker.trip()
        raise
