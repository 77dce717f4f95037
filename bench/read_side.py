"""The read side's measurements: one function each, to be written as the parts land.

The search projection and the NATS relay are being built; until they exist each function
below returns its keys as `None` and says why, so latest.json never holds a made-up
number. Each docstring is the method to implement; each receives the running system
(`ctx.system`, whose processes are `customers run`'s children, workers included once
they are listed there) and the results so far (`ctx.values`, e.g. the peak register rate).
"""

from __future__ import annotations

import importlib.util

import aiohttp

from bench.context import Context, Outcome

__all__ = ["measure_projection_lag", "measure_rebuild", "measure_relay_lag", "measure_search"]


async def measure_projection_lag(ctx: Context) -> Outcome:
    """projection_lag_p50_ms / _p99_ms: commit to visible in search, at half the peak rate.

    To implement: register open-loop at `ctx.values` peak / 2 (as `register.measure_half_peak`);
    for each 201, note its `X-Event-Position` and the time the answer arrived (the commit
    is before it), then `GET /v1/customers?q=<its email>&min_position=<n>&wait_ms=2000`
    and take the time until that answer lists it. Report the percentiles of that lag.
    """
    return _missing(
        ("projection_lag_p50_ms", "projection_lag_p99_ms"),
        f"search projection not built yet ({await _search_endpoint(ctx)})",
    )


async def measure_relay_lag(ctx: Context) -> Outcome:
    """relay_lag_p50_ms / _p99_ms: commit to JetStream ack, at half the peak rate.

    To implement: subscribe to the relay's subjects with nats-py (an ordered push consumer
    on the stream, started before the load); register open-loop at peak / 2; match each
    message to its registration by the CloudEvents id / event position and take the time
    from the HTTP answer to the message's arrival (the ack precedes delivery, so this is
    an upper bound; JetStream's own timestamp gives the ack time on the server's clock).
    """
    return _missing(
        ("relay_lag_p50_ms", "relay_lag_p99_ms"),
        f"NATS relay not built yet ({_processes(ctx)})",
    )


async def measure_rebuild(ctx: Context) -> Outcome:
    """rebuild_events_per_s: the search projection rebuilt from position 0 over 1,000,000 events.

    To implement: seed 1,000,000 events fast, not through HTTP (the write path does about
    1k/s): encode registrations with the service's mapper and COPY them into the events
    table, or save 500 new aggregates per `save()` (about 11k events/s, DESIGN.md). Then
    CHECKPOINT, reset the projection's tracking and tables, run its rebuild and divide
    the events by the seconds until its tracking position reaches the head.
    """
    return _missing(
        ("rebuild_events_per_s",), f"search projection not built yet ({_search_module()})"
    )


async def measure_search(ctx: Context) -> Outcome:
    """search_p50_ms_1m / search_p99_ms_1m: search latency over 1,000,000 customers.

    To implement after `measure_rebuild` (which leaves 1M customers in the read model):
    a mix of queries as the list view sends them (a name prefix, an exact email, a phone
    number, a customer number, a city filter, the default 30-day list, the next page by
    cursor), closed-loop from 8 clients for the phase's duration; percentiles per query
    kind in the details, overall p50/p99 as the headline.
    """
    return _missing(
        ("search_p50_ms_1m", "search_p99_ms_1m"),
        f"search projection not built yet ({await _search_endpoint(ctx)})",
    )


def _missing(keys: tuple[str, ...], reason: str) -> Outcome:
    return Outcome(values=dict.fromkeys(keys), not_measured=dict.fromkeys(keys, reason))


async def _search_endpoint(ctx: Context) -> str:
    """What `GET /v1/customers` answers now, so the reason cannot outlive the fact."""
    headers = {"Authorization": f"Bearer {ctx.system.token}"}
    try:
        async with (
            aiohttp.ClientSession(base_url=ctx.system.base_url, headers=headers) as session,
            session.get("/v1/customers", params={"q": "probe"}) as answer,
        ):
            status = answer.status
    except aiohttp.ClientError as error:
        return f"GET /v1/customers failed: {error}"
    if status in (404, 405):
        return f"GET /v1/customers answers {status}"
    return f"GET /v1/customers answers {status}, but bench/read_side.py does not measure it yet"


def _search_module() -> str:
    if importlib.util.find_spec("projections.search") is None:
        return "no projections.search module"
    return "projections.search exists, but bench/read_side.py does not measure it yet"


def _processes(ctx: Context) -> str:
    names = sorted(ctx.system.processes)
    relays = [name for name in names if "relay" in name]
    if not relays:
        return f"customers run starts only: {', '.join(names)}"
    return f"{', '.join(relays)} runs, but bench/read_side.py does not measure it yet"
