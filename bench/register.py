"""Registering customers over HTTP: throughput per concurrency, latency at half the peak.

Every request is a valid, new registration (unique email and mobile phone) with an
`Idempotency-Key`, as a calling service that retries safely sends it; one point at 32
clients is repeated without the key, to show what the key costs.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from bench.context import Context, Outcome
from bench.load import Operation, closed_loop, open_loop, sessions
from bench.stats import Window

__all__ = ["measure_half_peak", "measure_register", "register_operation"]

_PATH = "/v1/customers"
_JSON = {"Content-Type": "application/json"}
_KEYLESS_CLIENTS = 32


def register_operation(ctx: Context, *, idempotency_key: bool = True) -> Operation:
    """POST one new registration; its id joins `ctx.customer_ids` when it is created."""

    async def register(session: aiohttp.ClientSession, window: Window) -> tuple[int | str, bool]:
        key, body = ctx.registrations.next()
        headers = {**_JSON, "Idempotency-Key": key} if idempotency_key else _JSON
        async with session.post(_PATH, data=orjson.dumps(body), headers=headers) as answer:
            payload = await answer.read()
        if answer.status == 201:
            ctx.customer_ids.append(orjson.loads(payload)["id"])
            return 201, True
        window.note_unexpected(answer.status, payload.decode(errors="replace"))
        return answer.status, False

    return register


async def measure_register(ctx: Context) -> Outcome:
    """register_rate_{1,8,32,64}: registrations/s with that many closed-loop clients."""
    outcome = Outcome()
    points = [(n, True) for n in ctx.profile.register_clients] + [(_KEYLESS_CLIENTS, False)]
    for clients, keyed in points:
        label = f"register, {clients} clients" + ("" if keyed else ", no Idempotency-Key")
        window, details = await _closed_point(ctx, label, clients, keyed)
        name = f"register_{clients}" if keyed else f"register_{clients}_no_idempotency_key"
        outcome.details[name] = details
        if keyed:
            outcome.values[f"register_rate_{clients}"] = round(window.rate, 1)
        ctx.display.log(
            f"{label}: {window.rate:,.0f}/s, p50 {_fmt(window.ms(0.5))} ms,"
            f" p99 {_fmt(window.ms(0.99))} ms, {details['events_per_registration']} events each"
            + _errors(window)
        )
    return outcome


async def measure_half_peak(ctx: Context) -> Outcome:
    """register_p50/p99_ms_half_peak: open-loop arrivals at half the best closed-loop rate."""
    peak = max(
        (v for k, v in ctx.values.items() if k.startswith("register_rate_") and v is not None),
        default=0.0,
    )
    if peak <= 0:
        reason = "no successful registrations in the closed-loop phases"
        keys = ("register_p50_ms_half_peak", "register_p99_ms_half_peak")
        return Outcome(values=dict.fromkeys(keys), not_measured=dict.fromkeys(keys, reason))
    rate = peak / 2
    profile = ctx.profile
    seconds = profile.warmup + profile.half_peak_duration
    async with (
        ctx.phase(f"register, open loop at {rate:,.0f}/s (half peak)", seconds) as phase,
        sessions(ctx.system.base_url, ctx.system.token, profile.open_loop_connections) as pool,
    ):
        window, lateness = await open_loop(
            pool, register_operation(ctx), phase, rate, profile.warmup, profile.half_peak_duration
        )
    offered = sum(lateness.statuses.values()) / window.seconds
    ctx.display.log(
        f"half peak, {rate:,.0f}/s offered: p50 {_fmt(window.ms(0.5))} ms,"
        f" p99 {_fmt(window.ms(0.99))} ms" + _errors(window)
    )
    return Outcome(
        values={
            "register_p50_ms_half_peak": _round(window.ms(0.50)),
            "register_p99_ms_half_peak": _round(window.ms(0.99)),
        },
        details={
            "register_half_peak": {
                "peak_rate_per_s": peak,
                "target_rate_per_s": round(rate, 1),
                "offered_rate_per_s": round(offered, 1),
                "arrivals": "Poisson",
                "connections": profile.open_loop_connections,
                **window.summary(),
                "send_lateness_p50_ms": _round(lateness.ms(0.5)),
                "send_lateness_p99_ms": _round(lateness.ms(0.99)),
                **phase.cpu(window.completed),
                "checkpoint_before": phase.checkpointed,
            }
        },
    )


async def _closed_point(
    ctx: Context, label: str, clients: int, keyed: bool
) -> tuple[Window, dict[str, Any]]:
    profile = ctx.profile
    before_ids, before_position = len(ctx.customer_ids), ctx.system.max_position()
    async with (
        ctx.phase(label, profile.warmup + profile.duration) as phase,
        sessions(ctx.system.base_url, ctx.system.token, clients) as pool,
    ):
        window = await closed_loop(
            pool,
            register_operation(ctx, idempotency_key=keyed),
            phase,
            profile.warmup,
            profile.duration,
        )
    registered = len(ctx.customer_ids) - before_ids
    events = ctx.system.max_position() - before_position
    details = {
        **window.summary(),
        # What one registration writes: the customer, its reservations, the request record.
        "events_per_registration": round(events / registered, 2) if registered else None,
        **phase.cpu(window.completed),
        "checkpoint_before": phase.checkpointed,
    }
    return window, details


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _errors(window: Window) -> str:
    failed = {k: v for k, v in window.statuses.items() if k not in (200, 201)}
    return f", [red]not ok: {failed}[/red]" if failed else ""
