"""The gateway on a real, migrated event store, and tokens to call it with."""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from cryptography.fernet import Fernet

from domain.service import CustomerService
from gateway import create_app, issue_token
from infrastructure.database import drop_schema
from infrastructure.eventstore import build_service, migrate_event_store
from infrastructure.settings import Settings
from projections.base import ReadModel
from projections.catalog import open_read_model
from projections.duplicate_queries import attach_duplicate_lookup
from workers.follower import Follower

Bearer = Callable[..., dict[str, str]]


@pytest.fixture(scope="session")
def api_settings(
    database_url: str, nats_url: str, db_schema: str, key_encryption_key: str
) -> Settings:
    """Settings for the session's servers, its own schema and fresh secrets."""
    return Settings(
        database_url=database_url,
        nats_url=nats_url,
        db_schema=db_schema,
        jwt_secret=secrets.token_urlsafe(32),
        secret_key=Fernet.generate_key().decode(),
        notification_key=Fernet.generate_key().decode(),
        key_encryption_key=key_encryption_key,
        log_format="console",
    )


@pytest.fixture(scope="session")
def service(api_settings: Settings) -> Iterator[CustomerService]:
    """The service on a migrated schema, shared by the session's tests (ids are random)."""
    migrate_event_store(api_settings)
    service = build_service(api_settings)
    attach_duplicate_lookup(service, api_settings.db_schema)
    yield service
    service.close()


FollowReadModel = Callable[..., contextlib.AbstractContextManager[ReadModel]]


@pytest.fixture(scope="session")
def followed(api_settings: Settings, service: CustomerService) -> FollowReadModel:
    """Run a read model of the e2e schema, kept current by a follower thread, for a block:
    `with followed("search") as model: ...`; its schema is dropped afterwards."""
    database_url = api_settings.database_url or ""

    @contextlib.contextmanager
    def follow(name: str, on: CustomerService | None = None) -> Iterator[ReadModel]:
        model = open_read_model(api_settings, name)
        model.migrate()
        follower = Follower(name, on or service, model, database_url)
        thread = threading.Thread(target=follower.run, name=f"{name}-follower", daemon=True)
        thread.start()
        try:
            yield model
        finally:
            follower.stop()
            thread.join(10)
            model.datastore.close()
            drop_schema(database_url, model.schema)

    return follow


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
