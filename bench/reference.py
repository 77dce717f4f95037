"""The reference: raw single-row INSERT transactions, what the disk and PostgreSQL allow.

Same method as the design memo's measurements (notes/eventsourcing-9.5.6.md, section 6):
a table with the event table's columns, key, index and storage options; one psycopg
autocommit connection per THREAD; each transaction one `INSERT ... RETURNING
notification_id` of a ~190-byte state. No table lock, no NOTIFY: the ceiling the event
store's own write path is compared against. Threads share the bench's GIL, as the
gateway's threads share its own; the client's CPU is part of what is measured.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid

import psycopg
from psycopg import sql

from bench.context import Context, Outcome, Phase
from bench.stats import Window

__all__ = ["measure_reference"]

_TABLE = "bench_reference"
_STATE_BYTES = 190
# A topic as long as the service's own (module path, class and event name).
_TOPIC = "domain.customers:Customer.Registered"


async def measure_reference(ctx: Context) -> Outcome:
    """reference_insert_rate_{1,8,32}: inserts/s at each number of connections."""
    await asyncio.to_thread(_create_table, ctx)
    outcome = Outcome()
    for connections in ctx.profile.reference_connections:
        await asyncio.to_thread(_truncate, ctx)
        seconds = ctx.profile.warmup + ctx.profile.duration
        async with ctx.phase(f"reference INSERT, {connections} connections", seconds) as phase:
            start = time.perf_counter() + ctx.profile.warmup + 0.2
            end = start + ctx.profile.duration
            window = await asyncio.to_thread(_run, ctx, phase, connections, start, end)
        outcome.values[f"reference_insert_rate_{connections}"] = round(window.rate, 1)
        outcome.details[f"reference_{connections}"] = {
            **window.summary(),
            **phase.cpu(window.completed),
            "checkpoint_before": phase.checkpointed,
        }
        ctx.display.log(
            f"reference, {connections:>2} connections: {window.rate:,.0f} inserts/s,"
            f" p50 {window.ms(0.5):.2f} ms, p99 {window.ms(0.99):.2f} ms"
        )
    return outcome


def _run(ctx: Context, phase: Phase, connections: int, start: float, end: float) -> Window:
    """Insert from `connections` threads until `end`; the inserts finished in [start, end]."""
    opened = [psycopg.connect(ctx.system.database_url, autocommit=True) for _ in range(connections)]
    windows = [Window(start, end) for _ in opened]
    statement = sql.SQL(
        "INSERT INTO {}.{} (originator_id, originator_version, topic, state)"
        " VALUES (%s, %s, %s, %s) RETURNING notification_id"
    ).format(sql.Identifier(ctx.system.schema), sql.Identifier(_TABLE))
    state = os.urandom(_STATE_BYTES)

    def insert_until_end(
        connection: psycopg.Connection[tuple[object, ...]], window: Window
    ) -> None:
        with connection.cursor() as cursor:
            while (began := time.perf_counter()) < end:
                # prepare=True: a server-side prepared statement, as the library uses.
                cursor.execute(statement, (uuid.uuid4(), 1, _TOPIC, state), prepare=True)
                cursor.fetchone()
                finished = time.perf_counter()
                window.record(finished, finished - began, 200, ok=True)
                if window.inside(finished):
                    phase.handle.done()

    threads = [
        threading.Thread(target=insert_until_end, args=(c, w), name=f"bench-ref-{i}")
        for i, (c, w) in enumerate(zip(opened, windows, strict=True))
    ]
    # The CPU meter runs in its own thread too, and the connections close only after its
    # last reading: a backend that exits before it would drop out of PostgreSQL's total.
    meter = threading.Thread(target=phase.meter_window_blocking, args=(start, end))
    threads.append(meter)
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for connection in opened:
            connection.close()
    merged = Window(start, end)
    for window in windows:
        merged.latencies.extend(window.latencies)
        merged.statuses.update(window.statuses)
    return merged


def _create_table(ctx: Context) -> None:
    """The event table's shape, as the library creates it (eventsourcing/postgres.py)."""
    schema, table = sql.Identifier(ctx.system.schema), sql.Identifier(_TABLE)
    with ctx.system.connect() as connection:
        connection.execute(
            sql.SQL(
                "CREATE TABLE {}.{} ("
                " originator_id uuid NOT NULL,"
                " originator_version bigint NOT NULL,"
                " topic text,"
                " state bytea,"
                " notification_id bigserial,"
                " PRIMARY KEY (originator_id, originator_version))"
                " WITH (autovacuum_enabled = true,"
                " autovacuum_vacuum_threshold = 100000000,"
                " autovacuum_vacuum_scale_factor = 0.5,"
                " autovacuum_analyze_threshold = 1000,"
                " autovacuum_analyze_scale_factor = 0.01)"
            ).format(schema, table)
        )
        connection.execute(
            sql.SQL("CREATE UNIQUE INDEX {} ON {}.{} (notification_id ASC)").format(
                sql.Identifier(f"{_TABLE}_notification_id_idx"), schema, table
            )
        )


def _truncate(ctx: Context) -> None:
    """Each point starts on an empty table, as the memo's runs did."""
    with ctx.system.connect() as connection:
        connection.execute(
            sql.SQL("TRUNCATE {}.{} RESTART IDENTITY").format(
                sql.Identifier(ctx.system.schema), sql.Identifier(_TABLE)
            )
        )
