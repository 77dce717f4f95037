"""How far behind the write side the read side runs: search visibility and the NATS relay.

One open-loop phase at half the peak register rate (Poisson arrivals, as
`register.measure_half_peak`) measures both:

- `projection_lag_p50_ms` / `_p99_ms`, commit to visible in search: after each 201, the
  same client asks `GET /v1/customers?q=<email>&min_position=<its X-Event-Position>`,
  which answers once the search model has committed that position (the gateway wakes on
  the workers' NOTIFY); the lag runs from the 201's arrival (the commit is just before
  it) to the arrival of the answer that lists the customer. The GETs are load on top of
  the registrations: the phase offers half the peak rate of registrations plus as many
  searches, as a caller that reads its own writes would.
- `relay_lag_p50_ms` / `_p99_ms`, commit to JetStream ack: for each registration of the
  window, JetStream's own store time of its `crm.customer.registered` message minus the
  event's time in the message (set in the command, just before its commit). The relay's
  `relay_lag_seconds` histogram measures the same interval, in buckets; this reads every
  message's exact times. Both clocks are this machine's.

Before the phase, search and the relay are let catch up with the earlier phases' backlog
(the seconds it took are in the details); only registrations sent inside the measured
window count (the warm-up's do not).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
import nats
import orjson
from nats.js.api import ConsumerConfig, DeliverPolicy
from psycopg import sql

from bench.context import Context, Outcome
from bench.load import open_loop, sessions
from bench.stats import Window, percentile

__all__ = ["measure_lag"]

_KEYS = ("projection_lag_p50_ms", "projection_lag_p99_ms", "relay_lag_p50_ms", "relay_lag_p99_ms")
_WAIT_MS = 10_000
"""How long a search waits for its position before the gateway answers 503 (a miss)."""
_DRAIN_TIMEOUT = 60.0


@dataclass
class _Samples:
    window: Window | None = None
    projection: list[float] = field(default_factory=list)
    """Seconds from a 201 to the search answer that lists the customer."""
    customers: set[str] = field(default_factory=set)
    """Customers registered by arrivals due inside the measured window."""
    misses: dict[str, int] = field(default_factory=dict)


async def measure_lag(ctx: Context) -> Outcome:
    """The four lag keys, from one open-loop phase at half the peak register rate."""
    peak = max(
        (v for k, v in ctx.values.items() if k.startswith("register_rate_") and v is not None),
        default=0.0,
    )
    if peak <= 0:
        reason = "no successful registrations in the closed-loop phases"
        return Outcome(values=dict.fromkeys(_KEYS), not_measured=dict.fromkeys(_KEYS, reason))
    rate, profile = peak / 2, ctx.profile
    samples = _Samples()
    caught_up_after = await asyncio.to_thread(_wait_caught_up, ctx)
    seconds = profile.warmup + profile.half_peak_duration
    async with (
        ctx.phase(f"lag: register + search, open loop at {rate:,.0f}/s", seconds) as phase,
        sessions(ctx.system.base_url, ctx.system.token, profile.open_loop_connections) as pool,
    ):
        window, _ = await open_loop(
            pool, _register_then_search(ctx, samples), phase, rate, profile.warmup,
            profile.half_peak_duration,
        )  # fmt: skip
    samples.window = window
    drained = await asyncio.to_thread(_wait_for_relay, ctx)
    relay = await _relay_lags(ctx, samples.customers) if drained else []
    outcome = _outcome(samples, relay, rate)
    outcome.details["lag"].update(
        {
            **phase.cpu(window.completed),
            "caught_up_before_s": caught_up_after,
            "relay_drained_after": drained,
        }
    )
    if not drained:
        reason = f"the relay did not reach the log's head within {_DRAIN_TIMEOUT:.0f} s"
        for key in ("relay_lag_p50_ms", "relay_lag_p99_ms"):
            outcome.values[key] = None
            outcome.not_measured[key] = reason
    ctx.display.log(
        f"lag at {rate:,.0f}/s: search p50 {_fmt(outcome.values['projection_lag_p50_ms'])} ms,"
        f" p99 {_fmt(outcome.values['projection_lag_p99_ms'])} ms; relay p50"
        f" {_fmt(outcome.values['relay_lag_p50_ms'])} ms,"
        f" p99 {_fmt(outcome.values['relay_lag_p99_ms'])} ms"
    )
    return outcome


def _register_then_search(ctx: Context, samples: _Samples) -> Any:
    async def operation(session: aiohttp.ClientSession, window: Window) -> tuple[int | str, bool]:
        due_inside = window.inside(time.perf_counter())
        key, body = ctx.registrations.next()
        headers = {"Content-Type": "application/json", "Idempotency-Key": key}
        async with session.post(
            "/v1/customers", data=orjson.dumps(body), headers=headers
        ) as answer:
            payload = await answer.read()
            position = answer.headers.get("X-Event-Position")
        if answer.status != 201 or position is None:
            window.note_unexpected(answer.status, payload.decode(errors="replace"))
            return answer.status, False
        committed = time.perf_counter()
        customer_id = orjson.loads(payload)["id"]
        ctx.customer_ids.append(customer_id)
        params = {"q": body["email"].lower(), "min_position": position, "wait_ms": str(_WAIT_MS)}
        async with session.get("/v1/customers", params=params) as found:
            listed = await found.read()
        visible = time.perf_counter()
        if not due_inside:
            return 201, True
        samples.customers.add(customer_id)
        ids = {item["id"] for item in orjson.loads(listed).get("items", [])} if found.ok else set()
        if customer_id not in ids:
            miss = f"search {found.status}" + ("" if found.status != 200 else ", not listed")
            samples.misses[miss] = samples.misses.get(miss, 0) + 1
            return found.status, False
        samples.projection.append(visible - committed)
        return 201, True

    return operation


def _wait_for_relay(ctx: Context) -> bool:
    """Whether the relay's saved position reached the log's head (its messages are acked)."""
    return _wait_for(ctx, [_RELAY_POSITION])


def _wait_caught_up(ctx: Context) -> float | None:
    """Seconds until search and relay reached the head (None: not within the timeout).

    The earlier phases register faster than half the peak: without this, the phase would
    measure how fast their backlog drains, not the lag at a steady half-peak rate."""
    began = time.monotonic()
    caught_up = _wait_for(ctx, [_SEARCH_POSITION, _RELAY_POSITION])
    return round(time.monotonic() - began, 2) if caught_up else None


_RELAY_POSITION = ("{schema}", "relay_positions", "position")
_SEARCH_POSITION = ("{schema}_search", "tracking", "notification_id")


def _wait_for(ctx: Context, positions: list[tuple[str, str, str]]) -> bool:
    head = ctx.system.max_position()
    statements = [
        sql.SQL("SELECT coalesce(max({}), 0) FROM {}").format(
            sql.Identifier(column), sql.Identifier(schema.format(schema=ctx.system.schema), table)
        )
        for schema, table, column in positions
    ]
    deadline = time.monotonic() + _DRAIN_TIMEOUT
    with ctx.system.connect() as connection:
        while time.monotonic() < deadline:
            reached = [connection.execute(s).fetchone() for s in statements]
            if all(row is not None and int(str(row[0])) >= head for row in reached):
                return True
            time.sleep(0.2)
    return False


async def _relay_lags(ctx: Context, customers: set[str]) -> list[float]:
    """Seconds from each registration's event time to JetStream's store time of its message."""
    url = ctx.system.settings.nats_url or ""
    client = await nats.connect(url.split(","), connect_timeout=5)
    lags: list[float] = []
    try:
        js = client.jetstream()
        config = ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
        subscription = await js.pull_subscribe(
            "crm.customer.registered", stream="CRM", config=config
        )
        seen: set[str] = set()
        while len(seen) < len(customers):
            try:
                batch = await subscription.fetch(500, timeout=5)
            except nats.errors.TimeoutError:
                break
            for message in batch:
                body = orjson.loads(message.data)
                if body["subject"] in customers and body["subject"] not in seen:
                    seen.add(body["subject"])
                    happened = datetime.fromisoformat(body["time"])
                    lags.append((message.metadata.timestamp - happened).total_seconds())
                await message.ack()
    finally:
        await client.close()
    return lags


def _outcome(samples: _Samples, relay: list[float], rate: float) -> Outcome:
    window = samples.window
    assert window is not None
    values: dict[str, float | None] = {
        "projection_lag_p50_ms": _ms(percentile(samples.projection, 0.50)),
        "projection_lag_p99_ms": _ms(percentile(samples.projection, 0.99)),
        "relay_lag_p50_ms": _ms(percentile(relay, 0.50)),
        "relay_lag_p99_ms": _ms(percentile(relay, 0.99)),
    }
    not_measured = {
        key: "no registration of the window was seen " + where
        for key, where in (
            ("projection_lag_p50_ms", "in search"),
            ("projection_lag_p99_ms", "in search"),
            ("relay_lag_p50_ms", "on JetStream"),
            ("relay_lag_p99_ms", "on JetStream"),
        )
        if values[key] is None
    }
    details = {
        "target_rate_per_s": round(rate, 1),
        "registrations_in_window": len(samples.customers),
        "projection_samples": len(samples.projection),
        "projection_misses": samples.misses,
        "projection_max_ms": _ms(max(samples.projection, default=None)),
        "relay_samples": len(relay),
        "relay_max_ms": _ms(max(relay, default=None)),
        "register_and_search": window.summary(),
    }
    return Outcome(values=values, not_measured=not_measured, details={"lag": details})


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
