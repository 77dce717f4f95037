"""The bounded thread pool that synchronous calls (the eventsourcing library) run in.

The library has no async API, so each command or query runs in a worker thread. The pool
is the app's own, sized by `settings.thread_pool_size` to match the database connection
pool: more threads would only queue on connections while holding memory. `run_sync`
copies the caller's context variables into the thread, so the actor and correlation id
bound by the auth middleware reach the events created there.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from aiohttp import web

from gateway.keys import EXECUTOR_KEY, SETTINGS_KEY

__all__ = ["executor_context", "run_sync"]

P = ParamSpec("P")
T = TypeVar("T")


async def executor_context(app: web.Application) -> AsyncIterator[None]:
    """`cleanup_ctx`: create the pool at startup, and drain and close it at cleanup."""
    executor = ThreadPoolExecutor(
        max_workers=app[SETTINGS_KEY].thread_pool_size, thread_name_prefix="gateway-sync"
    )
    app[EXECUTOR_KEY] = executor
    try:
        yield
    finally:
        # Waiting for running calls blocks, so it happens off the event loop; calls still
        # queued are dropped: their requests are gone by the time cleanup runs.
        shutdown = functools.partial(executor.shutdown, wait=True, cancel_futures=True)
        await asyncio.get_running_loop().run_in_executor(None, shutdown)


async def run_sync(
    owner: web.Request | web.Application,
    fn: Callable[P, T],
    /,
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    """Run `fn(*args, **kwargs)` in the app's pool with the current context variables.

    A call already running is not interrupted if the client disconnects: a command either
    commits or not, and idempotency keys make a retry harmless.
    """
    app = owner.config_dict if isinstance(owner, web.BaseRequest) else owner
    executor = app.get(EXECUTOR_KEY)
    if executor is None:
        raise RuntimeError("the thread pool is not running: run_sync needs a started app")
    context = contextvars.copy_context()

    def call() -> T:
        return context.run(fn, *args, **kwargs)

    return await asyncio.get_running_loop().run_in_executor(executor, call)
