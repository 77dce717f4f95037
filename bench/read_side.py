"""The read side's measurements: one function each, to be written as the parts land.

The search projection was being built when the bench was written, so each function
below is still a stub: it returns its keys as `None` with the reason (which it checks
against the running system, so it says when the part exists and only the measurement is
missing), and latest.json never holds a made-up number. Each docstring is the method to
implement; each receives the running system (`ctx.system`, whose processes are
`customers run`'s children) and the results so far (`ctx.values`, e.g. the peak register
rate). The lag keys are measured in `bench.lag`.
"""

from __future__ import annotations

import importlib.util

import aiohttp

from bench.context import Context, Outcome

__all__ = ["measure_rebuild", "measure_search"]


async def measure_rebuild(ctx: Context) -> Outcome:
    """rebuild_events_per_s: the search projection rebuilt from position 0 over 1,000,000 events.

    To implement: seed 1,000,000 events fast, not through HTTP (the write path does about
    1k/s): encode registrations with the service's mapper and COPY them into the events
    table, or save 500 new aggregates per `save()` (about 11k events/s, DESIGN.md). Then
    CHECKPOINT, reset the projection's tracking and tables, run its rebuild and divide
    the events by the seconds until its tracking position reaches the head.
    """
    return _missing(("rebuild_events_per_s",), _search_module())


async def measure_search(ctx: Context) -> Outcome:
    """search_p50_ms_1m / search_p99_ms_1m: search latency over 1,000,000 customers.

    To implement after `measure_rebuild` (which leaves 1M customers in the read model):
    a mix of queries as the list view sends them (a name prefix, an exact email, a phone
    number, a customer number, a city filter, the default 30-day list, the next page by
    cursor), closed-loop from 8 clients for the phase's duration; percentiles per query
    kind in the details, overall p50/p99 as the headline.
    """
    return _missing(("search_p50_ms_1m", "search_p99_ms_1m"), await _search_endpoint(ctx))


def _missing(keys: tuple[str, ...], reason: str) -> Outcome:
    return Outcome(values=dict.fromkeys(keys), not_measured=dict.fromkeys(keys, reason))


_STUB = "bench/read_side.py does not measure it yet"


async def _search_endpoint(ctx: Context) -> str:
    """Why not measured, from what `GET /v1/customers` answers now: the reason must not
    outlive the fact."""
    headers = {"Authorization": f"Bearer {ctx.system.token}"}
    try:
        async with (
            aiohttp.ClientSession(base_url=ctx.system.base_url, headers=headers) as session,
            session.get("/v1/customers", params={"q": "probe"}) as answer,
        ):
            status = answer.status
    except aiohttp.ClientError as error:
        return f"search not reachable (GET /v1/customers failed: {error})"
    if status in (404, 405):
        return f"search projection not built yet (GET /v1/customers answers {status})"
    return (
        f"{_STUB} (the search projection was still being built when it was written;"
        f" GET /v1/customers now answers {status})"
    )


def _search_module() -> str:
    if importlib.util.find_spec("projections.search") is None:
        return "search projection not built yet (no projections.search module)"
    return f"{_STUB} (projections.search exists now)"
