"""Liveness and readiness: `/healthz` says the process answers, `/readyz` that it can work.

An orchestrator restarts a gateway whose `/healthz` fails and stops routing to one whose
`/readyz` fails, so liveness never depends on Postgres or NATS (a database outage must
not restart every gateway), while readiness runs each backing-service probe given to
`create_app`, concurrently and each under a short timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import nats
import structlog
from aiohttp import web
from pydantic import BaseModel

from gateway.keys import READINESS_KEY, ReadinessCheck
from gateway.operations import Body, operation
from gateway.problems import RETRY_AFTER_SECONDS, Problem
from gateway.requests import json_response
from infrastructure.database import check_postgres

__all__ = [
    "CHECK_TIMEOUT_SECONDS",
    "HealthStatus",
    "ReadinessStatus",
    "healthz",
    "nats_check",
    "postgres_check",
    "readyz",
]

CHECK_TIMEOUT_SECONDS = 2.0

_log = structlog.get_logger("gateway.health")


class HealthStatus(BaseModel):
    """The process is up."""

    status: str = "ok"


class ReadinessStatus(BaseModel):
    """Every backing service answered; `checks` maps each to "up"."""

    status: str = "ok"
    checks: dict[str, str]


@operation("Liveness: the process answers", tag="operations", responses={200: HealthStatus})
async def healthz(request: web.Request) -> web.Response:
    """Always 200: liveness must not depend on backing services."""
    return json_response({"status": "ok"})


@operation(
    "Readiness: every backing service is reachable",
    tag="operations",
    responses={200: ReadinessStatus, 503: Body(description="Some backing service is down")},
)
async def readyz(request: web.Request) -> web.Response:
    """200 with each check's status, or a 503 problem naming the checks that are down."""
    checks: Mapping[str, ReadinessCheck] = request.app.get(READINESS_KEY, {})
    names = list(checks)
    results = await asyncio.gather(*(_probe(name, checks[name]) for name in names))
    status = {name: "up" if ok else "down" for name, ok in zip(names, results, strict=True)}
    down = [name for name, ok in zip(names, results, strict=True) if not ok]
    if down:
        raise Problem(
            503,
            f"Not ready: {', '.join(down)} unreachable.",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            extensions={"checks": status},
        )
    return json_response({"status": "ok", "checks": status})


async def _probe(name: str, check: ReadinessCheck) -> bool:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            return await check()
    except Exception as exc:  # a probe that fails in any way means "down"
        _log.warning("readiness_check_failed", check=name, error=repr(exc))
        return False


def postgres_check(database_url: str) -> ReadinessCheck:
    """A probe that connects to the database and runs `SELECT 1` (in a thread: libpq blocks)."""

    async def check() -> bool:
        return await asyncio.to_thread(check_postgres, database_url, CHECK_TIMEOUT_SECONDS)

    return check


def nats_check(url: str) -> ReadinessCheck:
    """A probe that connects to the NATS server at `url` (no reconnects) and disconnects."""

    async def quiet(_: Exception) -> None:
        # The failure is reported by the probe's result; nats-py would also log it.
        return None

    async def check() -> bool:
        client = await nats.connect(
            [server.strip() for server in url.split(",")],
            connect_timeout=CHECK_TIMEOUT_SECONDS,
            allow_reconnect=False,
            # nats-py retries a refused server until it exceeds this (0 means forever),
            # waiting reconnect_time_wait in between: one quick retry, then give up.
            max_reconnect_attempts=1,
            reconnect_time_wait=0.1,
            error_cb=quiet,
        )
        await client.close()
        return True

    return check
