"""The search read model under size: its rebuild rate, and search latency over many customers.

Rebuild (`rebuild_events_per_s`): a log of customers is written through the service in
large saves (`bench.synthetic.write_log`: what a registration over HTTP saves, plus one
change each) into an event store schema of its own in the run's database, which no worker
follows, so the rebuild is measured alone. Then `projections.rebuild.rebuild`, what
`customers projections rebuild search` runs, builds the search model from position 0:
reading, applying, the index builds, ANALYZE and the swap are all in the seconds.

Search (`search_p50_ms_1m`, `search_p99_ms_1m`): the running service's search read model
is filled with customers' rows written directly, by the model's own `apply_events` on
registration and equipment events that are not in the event store (seeding a million
customers through HTTP would take hours), registered over the last two years; then
ANALYZE, and closed-loop `GET /v1/customers` over HTTP, one query kind after another:
name prefix, full name, a typo, company, email, phone as people type it, customer
number, city, system type, group, the default 30-day list, a registration window and
the next page of a name search.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from bench.context import Context, Outcome
from bench.load import closed_loop, sessions
from bench.stats import Window, percentile
from bench.synthetic import GROUPS, SYSTEM_TYPES, Person, customer_events, people, write_log
from domain.customers import Customer
from infrastructure.eventstore import build_service, migrate_event_store, read_model_datastore
from projections.base import read_model_schema
from projections.catalog import open_read_model
from projections.rebuild import analyze_schema, create_indexes, drop_query_indexes, rebuild
from projections.search import SearchModel

__all__ = ["measure_rebuild", "measure_search"]


@dataclass(frozen=True)
class Size:
    events: int
    """Events in the log the search model is rebuilt from."""
    customers: int
    """Customers in the search read model when searching."""
    clients: int = 2
    """Concurrent HTTP clients searching: one per core, so latency is not queueing."""


SIZES = {
    "full": Size(events=1_000_000, customers=1_000_000),
    "quick": Size(events=10_000, customers=20_000),
}
_FIRST_DIRECT_NUMBER = 10_000_000
"""Customer numbers of the rows written directly: clear of those the service allocates."""
_WRITE_BATCH = 2000
_SAMPLE = 2000


async def measure_rebuild(ctx: Context) -> Outcome:
    """rebuild_events_per_s: the search model rebuilt from position 0 over the size's log."""
    size = SIZES[ctx.profile.name]
    settings = ctx.system.settings.model_copy(update={"db_schema": f"{ctx.system.schema}_rb"})
    await asyncio.to_thread(migrate_event_store, settings)
    service = build_service(settings)
    try:
        with ctx.display.phase(f"seed a log of {size.events:,} events", 0.0) as handle:
            seed_started = time.perf_counter()
            written = await asyncio.to_thread(
                write_log, service, size.events, progress=lambda n: setattr(handle, "operations", n)
            )
            seed_seconds = time.perf_counter() - seed_started
        async with ctx.phase(f"rebuild search over {written:,} events", 0.0) as phase:
            started, cpu = time.perf_counter(), ctx.meter.snapshot()
            position = await asyncio.to_thread(
                rebuild,
                service,
                lambda schema: open_read_model(settings, "search", schema=schema),
                read_model_schema(settings.db_schema, "search"),
                progress=lambda n: setattr(phase.handle, "operations", n),
            )
            seconds = time.perf_counter() - started
            used = ctx.meter.delta(cpu, ctx.meter.snapshot(), position)
    finally:
        service.close()
    rate = position / seconds
    ctx.display.log(
        f"rebuild of search: {position:,} events in {seconds:.1f} s = {rate:,.0f} events/s"
        f" (the log was seeded at {written / seed_seconds:,.0f} events/s)"
    )
    return Outcome(
        values={"rebuild_events_per_s": round(rate)},
        details={
            "rebuild": {
                "events": position,
                "seconds": round(seconds, 2),
                "log": "customers as registration over HTTP saves them (customer, email,"
                " phone and number reservations) plus one change each (group, note,"
                " equipment or credit), written through the service 200 events a save",
                "seed_events_per_s": round(written / seed_seconds),
                "cpu": used,
            }
        },
    )


async def measure_search(ctx: Context) -> Outcome:
    """search_p50_ms_1m / _p99_ms_1m over the size's customers, every query kind of API.md."""
    size = SIZES[ctx.profile.name]
    with ctx.display.phase(f"write {size.customers:,} customers' search rows", 0.0) as handle:
        started = time.perf_counter()
        sample = await asyncio.to_thread(_fill_search, ctx, size.customers, handle)
        fill_seconds = time.perf_counter() - started
    kinds = _query_kinds(sample, await _next_pages(ctx, sample))
    windows: dict[str, Window] = {}
    overall: list[float] = []
    async with (
        sessions(ctx.system.base_url, ctx.system.token, size.clients) as clients,
        ctx.phase(f"search over {size.customers:,} customers", ctx.profile.duration) as phase,
    ):
        order = itertools.cycle(kinds)

        async def search(session: aiohttp.ClientSession, window: Window) -> tuple[int | str, bool]:
            name, make = next(order)
            kind = windows.setdefault(name, Window(window.start, window.end))
            began = time.perf_counter()
            status, ok = await _run(session, make())
            finished = time.perf_counter()
            kind.record(finished, finished - began, status, ok)
            if ok and kind.inside(finished):
                overall.append(finished - began)
            return status, ok

        window = await closed_loop(clients, search, phase, ctx.profile.warmup, ctx.profile.duration)
    p50, p99 = percentile(overall, 0.5), percentile(overall, 0.99)
    ctx.display.log(
        f"search over {size.customers:,} customers: p50 {1000 * (p50 or 0):.1f} ms,"
        f" p99 {1000 * (p99 or 0):.1f} ms ({window.completed:,} searches,"
        f" {size.clients} clients)"
    )
    details: dict[str, Any] = {
        "customers_written": size.customers,
        "rows": "written directly into the search read model by SearchModel.apply_events"
        f" ({fill_seconds:.0f} s), not through the event store; plus the run's own customers",
        "clients": size.clients,
        "overall": window.summary(),
        "kinds": {name: w.summary() for name, w in sorted(windows.items())},
    }
    if size.customers != 1_000_000:
        details["note"] = (
            f"{ctx.profile.name} mode: over {size.customers:,} customers, not 1,000,000"
        )
    values = {
        "search_p50_ms_1m": None if p50 is None else round(p50 * 1000, 2),
        "search_p99_ms_1m": None if p99 is None else round(p99 * 1000, 2),
    }
    missing = {k: "no successful search in the window" for k, v in values.items() if v is None}
    return Outcome(values=values, not_measured=missing, details={"search": details})


def _fill_search(ctx: Context, customers: int, handle: Any) -> list[Person]:
    """Write `customers` rows into the live search model; a sample of them to search for."""
    settings = ctx.system.settings
    schema = read_model_schema(settings.db_schema, "search")
    model = SearchModel(read_model_datastore(settings, schema))
    chooser = random.Random(7)
    sample: list[Person] = []
    try:
        # As a rebuild does: the query indexes are built once, after the rows are in (no
        # search runs meanwhile; the live worker's own writes use the primary key).
        deferred = drop_query_indexes(model)
        try:
            events = customer_events(_FIRST_DIRECT_NUMBER, customers)
            while batch := list(itertools.islice(events, _WRITE_BATCH)):
                with model.datastore.transaction(commit=True) as cursor:
                    model.apply_events(cursor, [(0, event) for event in batch])
                handle.operations += sum(type(e) is Customer.Registered for e in batch)
        finally:
            create_indexes(model, deferred)
        analyze_schema(model)
    finally:
        model.datastore.close()
    for person in people(_FIRST_DIRECT_NUMBER, customers):
        if len(sample) < _SAMPLE or chooser.random() < _SAMPLE / customers:
            sample.append(person)
    return sample[-_SAMPLE:]


Query = Callable[[], dict[str, str]]


def _query_kinds(sample: list[Person], cursors: list[dict[str, str]]) -> list[tuple[str, Query]]:
    """Each query kind of API.md with a generator of its parameters, drawn from `sample`;
    `next_page` asks for the second page of name searches (`cursors`: their parameters)."""
    chooser = random.Random(3)
    companies = [p.company_name for p in sample if p.company_name]

    def pick() -> Person:
        return chooser.choice(sample)

    def typo(word: str) -> str:
        i = chooser.randrange(1, len(word) - 1)
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]

    def phone(person: Person) -> str:
        d = person.mobile_phone.removeprefix("+1")
        return f"({d[:3]}) {d[3:6]}-{d[6:]}" if len(d) == 10 else person.mobile_phone

    kinds: list[tuple[str, Query]] = [
        ("name_prefix", lambda: {"q": pick().last_name[:5]}),
        ("full_name", lambda: {"q": f"{(p := pick()).first_name} {p.last_name}"}),
        ("typo", lambda: {"q": typo(pick().last_name)}),
        ("company", lambda: {"q": chooser.choice(companies)}),
        ("email", lambda: {"q": pick().email}),
        ("phone", lambda: {"q": phone(pick())}),
        ("customer_number", lambda: {"q": str(pick().number)}),
        ("city", lambda: {"city": pick().city, "registered_after": "2000-01-01"}),
        ("system_type", lambda: {"system_type": chooser.choice(SYSTEM_TYPES)}),
        ("group", lambda: {"group": chooser.choice(GROUPS), "registered_within_days": "365"}),
        ("default_list", dict),
        ("window", lambda: {"registered_after": "2025-06-01", "registered_before": "2025-07-01"}),
    ]
    if cursors:
        kinds.append(("next_page", lambda: chooser.choice(cursors)))
    return kinds


async def _next_pages(ctx: Context, sample: list[Person]) -> list[dict[str, str]]:
    """The parameters of second pages: first names searched, with their next_cursor."""
    found = []
    async with sessions(ctx.system.base_url, ctx.system.token, 1) as (session,):
        for person in sample[:40]:
            params = {"q": person.first_name}
            async with session.get("/v1/customers", params=params) as answer:
                if answer.status != 200:
                    continue
                cursor = (await answer.json()).get("next_cursor")
            if cursor:
                found.append({**params, "cursor": cursor})
    return found


async def _run(session: aiohttp.ClientSession, params: dict[str, str]) -> tuple[int | str, bool]:
    async with session.get("/v1/customers", params=params) as answer:
        await answer.read()
        return answer.status, answer.status == 200
