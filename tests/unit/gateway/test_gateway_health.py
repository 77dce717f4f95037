"""Liveness never depends on backing services; readiness reports each one."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway import health

PROBLEM = "application/problem+json"


async def up() -> bool:
    """A reachable service."""
    return True


async def down() -> bool:
    """An unreachable service."""
    return False


async def broken() -> bool:
    """A probe that fails."""
    raise ConnectionRefusedError("no route to host")


async def hanging() -> bool:
    """A probe that never answers."""
    await asyncio.sleep(3600)
    return True


async def test_healthz_is_always_ok(make_client: Any) -> None:
    """/healthz answers 200 even when every backing service is down."""
    client = await make_client(readiness_checks={"postgres": down})
    response = await client.get("/healthz")
    assert (response.status, await response.json()) == (200, {"status": "ok"})


async def test_readyz_ok_lists_each_check(make_client: Any) -> None:
    """/readyz answers 200 with the status of each check when all are up."""
    client = await make_client(readiness_checks={"postgres": up, "nats": up})
    response = await client.get("/readyz")
    assert response.status == 200
    assert await response.json() == {"status": "ok", "checks": {"postgres": "up", "nats": "up"}}


async def test_readyz_names_what_is_down(make_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """/readyz answers 503 with Retry-After naming failed, raising and hanging checks."""
    monkeypatch.setattr(health, "CHECK_TIMEOUT_SECONDS", 0.05)
    checks = {"postgres": down, "nats": broken, "cache": hanging, "search": up}
    client = await make_client(readiness_checks=checks)
    response = await client.get("/readyz")
    body = await response.json(content_type=PROBLEM)
    assert response.status == 503
    assert response.headers["Retry-After"] == "5"
    assert body["checks"] == {"postgres": "down", "nats": "down", "cache": "down", "search": "up"}
    assert "postgres, nats, cache" in body["detail"]


async def test_real_probes_report_unreachable_servers_as_down() -> None:
    """The Postgres and NATS probes answer False (not raise) for a closed port."""
    # Port 9 (discard) is closed on any test machine; the probe must not wait long.
    for check in (
        health.postgres_check("postgresql://u@127.0.0.1:9/db"),
        health.nats_check("nats://127.0.0.1:9"),
    ):
        assert await health._probe("x", check) is False
