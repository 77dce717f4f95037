"""HTTP load: closed-loop clients, and an open-loop arrival schedule.

Every simulated client is an aiohttp session with ONE connection (keep-alive), like a
separate caller. Closed loop: each client sends its next request when the previous one
answers, so the rate found is the most the service sustains at that concurrency.
Open loop: requests are due at Poisson arrival times whatever the answers, and latency
counts from when a request was due, not when it was sent; a slow answer then shows in
the percentiles instead of silently delaying later requests (coordinated omission).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import NamedTuple

import aiohttp

from bench.context import Phase
from bench.stats import Window

__all__ = ["Arrival", "Operation", "closed_loop", "open_loop", "sessions"]

Operation = Callable[[aiohttp.ClientSession, Window], Awaitable[tuple[int | str, bool]]]
"""One request (or request cycle) on a session: its status and whether it succeeded."""

_TIMEOUT = aiohttp.ClientTimeout(total=60)


class Arrival(NamedTuple):
    """One open-loop request: seconds into the window it was due, then (from that due
    time) how late it was sent and when it was answered."""

    due: float
    lateness: float
    latency: float
    status: int | str


@asynccontextmanager
async def sessions(
    base_url: str, token: str, count: int
) -> AsyncIterator[list[aiohttp.ClientSession]]:
    """`count` sessions, each limited to one connection, authenticated with `token`."""
    async with AsyncExitStack() as stack:
        opened = [
            await stack.enter_async_context(
                aiohttp.ClientSession(
                    base_url=base_url,
                    connector=aiohttp.TCPConnector(limit=1),
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=_TIMEOUT,
                )
            )
            for _ in range(count)
        ]
        yield opened


async def closed_loop(
    clients: list[aiohttp.ClientSession],
    operation: Operation,
    phase: Phase,
    warmup: float,
    duration: float,
) -> Window:
    """Each client repeats `operation` until the end; what completed in the window."""
    start = time.perf_counter() + warmup
    end = start + duration
    window = Window(start, end)

    async def client(session: aiohttp.ClientSession) -> None:
        while (began := time.perf_counter()) < end:
            status, ok = await _safely(operation, session, window)
            finished = time.perf_counter()
            window.record(finished, finished - began, status, ok)
            if ok and window.inside(finished):
                phase.handle.done()

    await asyncio.gather(phase.meter_window(start, end), *(client(s) for s in clients))
    return window


async def open_loop(
    pool: list[aiohttp.ClientSession],
    operation: Operation,
    phase: Phase,
    rate: float,
    warmup: float,
    duration: float,
    seed: int = 11,
    trace: list[Arrival] | None = None,
) -> tuple[Window, Window]:
    """Poisson arrivals at `rate`/s; (latency from due time, lateness of sending).

    Arrivals due inside the window are all counted, however late they finish: the tail
    is the point. A request waits for a free connection of `pool` if all are busy; that
    wait is part of its latency, as it would be for a real caller. `trace`, if given,
    receives every arrival of the window (when each slow one happened: `bench.half_peak`).
    """
    free: asyncio.Queue[aiohttp.ClientSession] = asyncio.Queue()
    for session in pool:
        free.put_nowait(session)
    began = time.perf_counter() + 0.05
    start, end = began + warmup, began + warmup + duration
    window, lateness = Window(start, end), Window(start, end)
    arrivals = random.Random(seed)

    async def fire(due: float) -> None:
        session = await free.get()
        try:
            sent = time.perf_counter()
            status, ok = await _safely(operation, session, window)
        finally:
            free.put_nowait(session)
        finished = time.perf_counter()
        # Recorded by due time: an arrival of the window counts even if it ends after it.
        window.record(due, finished - due, status, ok)
        lateness.record(due, sent - due, "sent", ok=True)
        if trace is not None and window.inside(due):
            trace.append(Arrival(due - start, sent - due, finished - due, status))
        if ok and window.inside(due):
            phase.handle.done()

    metering = asyncio.create_task(phase.meter_window(start, end))
    in_flight: set[asyncio.Task[None]] = set()
    due = began
    while (due := due + arrivals.expovariate(rate)) <= end:
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        task = asyncio.create_task(fire(due))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    await asyncio.gather(metering, *in_flight)
    return window, lateness


async def _safely(
    operation: Operation, session: aiohttp.ClientSession, window: Window
) -> tuple[int | str, bool]:
    """The operation's outcome; a transport failure is an outcome too, named by its type."""
    try:
        return await operation(session, window)
    except (aiohttp.ClientError, TimeoutError) as error:
        window.note_unexpected(type(error).__name__, str(error))
        return type(error).__name__, False
