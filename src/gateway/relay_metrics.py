"""The NATS relay's progress on the gateway's /metrics, read from its table at scrape time.

The relay runs in a worker process; like the read models' lag (`gateway.reads`), its
progress is read from PostgreSQL before each scrape, so one scrape of any gateway shows
it wherever the relay runs. The relay's own per-event histogram (`relay_lag_seconds`,
commit to JetStream ack) lives in the worker process's registry.
"""

from __future__ import annotations

import contextlib
from typing import Any

import psycopg
from aiohttp import web
from prometheus_client import Gauge
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from gateway.keys import REGISTRY_KEY, SETTINGS_KEY
from projections.base import UPSTREAM

__all__ = ["RelayProgress"]


class RelayProgress:
    """Gauges of each relay's position, backlog and lag, refreshed before a scrape."""

    def __init__(self, app: web.Application, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool
        schema = app[SETTINGS_KEY].db_schema
        registry = app[REGISTRY_KEY]
        self._query = sql.SQL(
            "SELECT r.relay, r.position, h.head,"
            " extract(epoch FROM r.updated_at - r.last_event_at) AS batch_lag,"
            " extract(epoch FROM now() - r.updated_at) AS since_progress"
            " FROM {} r, (SELECT coalesce(max(notification_id), 0) AS head FROM {}) h"
        ).format(
            sql.Identifier(schema, "relay_positions"), sql.Identifier(schema, f"{UPSTREAM}_events")
        )
        labels = ["relay"]
        self._position = Gauge(
            "relay_position", "Last position published to JetStream", labels, registry=registry
        )
        self._backlog = Gauge(
            "relay_backlog_events",
            "Events not yet published to JetStream",
            labels,
            registry=registry,
        )
        self._lag = Gauge(
            "relay_batch_lag_seconds",
            "Commit of the newest event of the last published batch to its JetStream ack",
            labels,
            registry=registry,
        )
        self._stalled = Gauge(
            "relay_stalled_seconds",
            "While events wait: seconds since the relay last published (else 0)",
            labels,
            registry=registry,
        )

    async def refresh(self) -> None:
        with contextlib.suppress(psycopg.Error):
            async with self._pool.connection() as connection:
                cursor = await connection.execute(self._query)
                for row in await cursor.fetchall():
                    backlog = max(0, int(row["head"]) - int(row["position"]))
                    self._position.labels(row["relay"]).set(row["position"])
                    self._backlog.labels(row["relay"]).set(backlog)
                    self._lag.labels(row["relay"]).set(float(row["batch_lag"] or 0))
                    stalled = float(row["since_progress"] or 0) if backlog else 0.0
                    self._stalled.labels(row["relay"]).set(stalled)
