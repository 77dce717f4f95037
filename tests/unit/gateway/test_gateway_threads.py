"""Synchronous calls run in the app's bounded pool with the caller's context variables."""

from __future__ import annotations

import contextvars
import threading
from typing import Any

import pytest
from aiohttp import web

from gateway.app import create_app
from gateway.keys import EXECUTOR_KEY
from gateway.threads import run_sync

marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="unset")


def read_marker(suffix: str, *, times: int = 1) -> tuple[str, str]:
    """The marker seen in the thread, and the thread's name."""
    return marker.get() + suffix * times, threading.current_thread().name


async def test_run_sync_copies_context_into_the_pool(make_client: Any) -> None:
    """run_sync passes arguments and the caller's context variables to a pool thread."""
    client = await make_client()
    app = client.app
    marker.set("bound")
    value, thread = await run_sync(app, read_marker, "!", times=2)
    assert value == "bound!!"
    assert thread.startswith("gateway-sync")


async def test_pool_is_sized_by_settings(make_client: Any) -> None:
    """The pool has settings.thread_pool_size workers."""
    client = await make_client(thread_pool_size=3)
    assert client.app[EXECUTOR_KEY]._max_workers == 3


async def test_pool_is_shut_down_at_cleanup(make_client: Any) -> None:
    """Closing the app shuts its pool down."""
    client = await make_client()
    executor = client.app[EXECUTOR_KEY]
    await client.close()
    with pytest.raises(RuntimeError):
        executor.submit(print)


async def test_run_sync_needs_a_started_app(make_settings: Any) -> None:
    """run_sync on an app that has not started says so instead of using another pool."""
    app: web.Application = create_app(make_settings())
    with pytest.raises(RuntimeError, match="started app"):
        await run_sync(app, read_marker, "")
