"""The gateway on a real, migrated event store, and tokens to call it with."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from cryptography.fernet import Fernet

from domain.service import CustomerService
from gateway import create_app, issue_token
from infrastructure.eventstore import build_service, migrate_event_store
from infrastructure.settings import Settings

Bearer = Callable[..., dict[str, str]]


@pytest.fixture(scope="session")
def api_settings(database_url: str, nats_url: str, db_schema: str) -> Settings:
    """Settings for the session's servers, its own schema and fresh secrets."""
    return Settings(
        database_url=database_url,
        nats_url=nats_url,
        db_schema=db_schema,
        jwt_secret=secrets.token_urlsafe(32),
        secret_key=Fernet.generate_key().decode(),
        log_format="console",
    )


@pytest.fixture(scope="session")
def service(api_settings: Settings) -> Iterator[CustomerService]:
    """The service on a migrated schema, shared by the session's tests (ids are random)."""
    migrate_event_store(api_settings)
    service = build_service(api_settings)
    yield service
    service.close()


@pytest.fixture
async def client(
    aiohttp_client: Any, api_settings: Settings, service: CustomerService
) -> TestClient[Any, Any]:
    """An HTTP client of a gateway serving that service."""
    client: TestClient[Any, Any] = await aiohttp_client(create_app(api_settings, service=service))
    return client


@pytest.fixture
def bearer(api_settings: Settings) -> Bearer:
    """Authorization headers for a role: `bearer("staff")`, `bearer("customer", customer_id=id)`."""
    assert api_settings.jwt_secret is not None
    secret = api_settings.jwt_secret.get_secret_value()

    def headers(role: str = "staff", sub: str = "alice@shop", **claims: Any) -> dict[str, str]:
        token = issue_token(secret, sub, role, **claims)  # type: ignore[arg-type]
        return {"Authorization": f"Bearer {token}"}

    return headers


@pytest.fixture
def registration() -> Callable[..., dict[str, Any]]:
    """A valid registration body with a never-used email and mobile phone; override any field."""

    def body(**fields: Any) -> dict[str, Any]:
        exchange, line = 200 + secrets.randbelow(700), 1000 + secrets.randbelow(9000)
        return {
            "first_name": "Ada",
            "last_name": "Lovelace",
            "email": f"{secrets.token_hex(6)}@Example.com",
            # Random numbers in a valid US range, so sessions never collide.
            "mobile_phone": f"(415) {exchange}-{line}",
            **fields,
        }

    return body
