"""The gateway's read-your-writes waits: woken by their own read model's progress only."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from gateway.reads import ProgressWatcher
from projections.base import PROGRESS_CHANNEL


class CountingWatcher(ProgressWatcher):
    """Counts how often the watcher asks the database for a position."""

    refreshes = 0

    async def _refresh(self, schema: str) -> int:
        self.refreshes += 1
        return await super()._refresh(schema)


async def _notify(database_url: str, payloads: list[str]) -> None:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as connection:
        for payload in payloads:
            await connection.execute("SELECT pg_notify(%s, %s)", (PROGRESS_CHANNEL, payload))


async def test_waiters_wake_on_their_models_progress_without_asking_the_database_again(
    database_url: str,
) -> None:
    """Other read models' notifications leave the waiters be (they used to wake every one
    and have each query the database); their own model reaching the position ends them."""
    waited, other = f"w_{secrets.token_hex(4)}", f"o_{secrets.token_hex(4)}"
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        database_url,
        min_size=1,
        max_size=4,
        open=False,
        kwargs={"autocommit": True, "row_factory": dict_row},
    )
    await pool.open()
    watcher = CountingWatcher(pool)
    watcher.start(database_url)
    try:
        await asyncio.sleep(0.3)  # the listener is listening
        waits = [asyncio.create_task(watcher.wait(waited, 100, 10.0)) for _ in range(20)]
        async with asyncio.timeout(10):
            while watcher.refreshes < 20:  # noqa: ASYNC110 (one look each as the wait begins)
                await asyncio.sleep(0.05)
        await _notify(database_url, [f"{other}:{n}" for n in range(1, 51)])
        await _notify(database_url, [f"{waited}:99"])
        await asyncio.sleep(0.2)
        assert not any(wait.done() for wait in waits)
        await _notify(database_url, [f"{waited}:100"])
        assert all(await asyncio.wait_for(asyncio.gather(*waits), 5.0))
        # A slow machine may add a re-check or two per waiter (every quiet 0.5 s); waking
        # all of them for each of the 51 notifications made it over a thousand.
        assert watcher.refreshes <= 20 * 4
    finally:
        await watcher.stop()
        await pool.close()


async def test_a_wait_that_is_never_notified_looks_again_and_gives_up_at_its_deadline(
    database_url: str,
) -> None:
    """No tracking table, no notification: the wait re-checks the database and says False."""
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        database_url,
        min_size=1,
        max_size=2,
        open=False,
        kwargs={"autocommit": True, "row_factory": dict_row},
    )
    await pool.open()
    watcher = CountingWatcher(pool)
    watcher.start(database_url)
    try:
        assert not await watcher.wait(f"n_{secrets.token_hex(4)}", 1, 1.2)
        assert watcher.refreshes >= 3  # at the start, then after each quiet half second
    finally:
        await watcher.stop()
        await pool.close()
