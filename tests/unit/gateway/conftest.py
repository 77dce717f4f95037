"""Fixtures of the gateway framework's tests: an app with no service and no database.

Each test builds its own app through `create_app`, with real `Settings` (from keyword
arguments only) and its own probe handlers added as extra routes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any
from uuid import UUID

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.auth import Role, issue_token
from gateway.keys import ReadinessCheck

SECRET = "unit-test-secret-that-is-long-enough-for-hs256"
MAX_BODY = 1024

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]


@pytest.fixture
def make_client(aiohttp_client: Any, make_settings: Callable[..., Any]) -> MakeClient:
    """Start a gateway with `routes` added and return a test client for it."""

    async def make(
        routes: Iterable[web.AbstractRouteDef] = (),
        *,
        readiness_checks: Mapping[str, ReadinessCheck] | None = None,
        **settings: Any,
    ) -> Client:
        values: dict[str, Any] = {"jwt_secret": SECRET, "max_body_bytes": MAX_BODY}
        app = create_app(
            make_settings(**{**values, **settings}),
            readiness_checks=readiness_checks,
            extra_routes=routes,
        )
        client: Client = await aiohttp_client(app)
        return client

    return make


Bearer = Callable[..., dict[str, str]]


@pytest.fixture
def jwt_secret() -> str:
    """The HS256 secret the test apps verify tokens with."""
    return SECRET


@pytest.fixture
def bearer() -> Bearer:
    """Make an Authorization header with a valid token: `bearer(role, sub, customer_id)`."""

    def make(
        role: Role = "admin", sub: str = "ann", customer_id: UUID | None = None
    ) -> dict[str, str]:
        return {"Authorization": f"Bearer {issue_token(SECRET, sub, role, customer_id)}"}

    return make
