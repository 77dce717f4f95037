"""Profile updates over HTTP: spread over many customers, and concentrated on 10 hot ones.

One update is a cycle as a careful client does it: GET the customer (its ETag), then
PATCH with `If-Match`. A 412 means another client changed it in between: the cycle is
counted as a conflict and retried from the GET until accepted. The rate reported is
accepted updates per second; the latency is that of the whole cycle, retries included.
"""

from __future__ import annotations

import itertools
import random
import time

import aiohttp
import orjson

from bench.context import Context, Outcome
from bench.load import closed_loop, sessions
from bench.stats import Window

__all__ = ["measure_updates"]

_JSON = {"Content-Type": "application/json"}
# Seconds past the window after which a cycle stops retrying, so the phase ends.
_GIVE_UP_AFTER = 10.0


async def measure_updates(ctx: Context) -> Outcome:
    """update_rate_spread, update_rate_hot, update_conflicts_hot."""
    if len(ctx.customer_ids) < ctx.profile.hot_customers:
        reason = "too few customers registered to update"
        keys = ("update_rate_spread", "update_rate_hot", "update_conflicts_hot")
        return Outcome(values=dict.fromkeys(keys), not_measured=dict.fromkeys(keys, reason))
    outcome = Outcome()
    population = list(ctx.customer_ids)
    hot = population[: ctx.profile.hot_customers]
    for name, customers in (("spread", population), ("hot", hot)):
        window, details = await _point(ctx, name, customers)
        outcome.values[f"update_rate_{name}"] = round(window.rate, 1)
        outcome.details[f"update_{name}"] = details
        if name == "hot":
            outcome.values["update_conflicts_hot"] = window.counters["conflicts_412"]
        ctx.display.log(
            f"updates {name} over {len(customers):,} customers: {window.rate:,.0f}/s,"
            f" cycle p50 {window.ms(0.5) or 0:.1f} ms, p99 {window.ms(0.99) or 0:.1f} ms,"
            f" {window.counters['conflicts_412']:,} conflicts (412)"
        )
    return outcome


async def _point(ctx: Context, name: str, customers: list[str]) -> tuple[Window, dict[str, object]]:
    profile = ctx.profile
    chooser = random.Random(f"updates-{name}")
    values = itertools.count()

    async def update(session: aiohttp.ClientSession, window: Window) -> tuple[int | str, bool]:
        customer = f"/v1/customers/{chooser.choice(customers)}"
        while True:
            async with session.get(customer) as answer:
                payload = await answer.read()
                etag = answer.headers.get("ETag", "")
            if answer.status != 200:
                window.note_unexpected(f"GET {answer.status}", payload.decode(errors="replace"))
                return f"GET {answer.status}", False
            # A new value each time, so every accepted PATCH is a real change (an event).
            body = orjson.dumps({"group": f"bench-{next(values)}"})
            headers = {**_JSON, "If-Match": etag}
            async with session.patch(customer, data=body, headers=headers) as answer:
                payload = await answer.read()
            if answer.status == 200:
                return 200, True
            # 412: changed since our GET. 409: changed during our own command's retries.
            if answer.status in (412, 409):
                now = time.perf_counter()
                if window.inside(now):
                    window.counters[f"conflicts_{answer.status}"] += 1
                if now > window.end + _GIVE_UP_AFTER:
                    return "gave up", False
                continue
            window.note_unexpected(answer.status, payload.decode(errors="replace"))
            return answer.status, False

    label = f"update, {profile.update_clients} clients, {name}"
    async with (
        ctx.phase(label, profile.warmup + profile.duration) as phase,
        sessions(ctx.system.base_url, ctx.system.token, profile.update_clients) as pool,
    ):
        window = await closed_loop(pool, update, phase, profile.warmup, profile.duration)
    window.counters.setdefault("conflicts_412", 0)
    return window, {
        "customers": len(customers),
        "clients": profile.update_clients,
        **window.summary(),
        **phase.cpu(window.completed),
        "checkpoint_before": phase.checkpointed,
    }
