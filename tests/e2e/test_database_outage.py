"""While PostgreSQL is down the gateway answers 503 with Retry-After, and recovers by itself."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway import create_app, issue_token
from gateway.health import postgres_check
from infrastructure.eventstore import build_service, migrate_event_store
from infrastructure.servers import EmbeddedPostgres

pytestmark = pytest.mark.slow


@pytest.fixture
def own_postgres(server_data_dir: Path) -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL of this test's own, which it may stop and start."""
    postgres = EmbeddedPostgres(server_data_dir / "postgres", keep_data=False)
    postgres.start()
    yield postgres
    postgres.close()


async def test_503_with_retry_after_while_postgres_is_down_then_recovery(
    aiohttp_client: Any, make_settings: Any, own_postgres: EmbeddedPostgres, registration: Any
) -> None:
    """Postgres stopped: commands and reads answer 503 + Retry-After quickly; started: 201 again."""
    settings = make_settings(database_url=own_postgres.url, db_schema="outage")
    migrate_event_store(settings)
    service = build_service(settings)
    try:
        checks = {"postgres": postgres_check(own_postgres.url)}
        app = create_app(settings, service=service, readiness_checks=checks)
        client = await aiohttp_client(app)
        token = issue_token(settings.jwt_secret.get_secret_value(), "ops", "staff")
        auth = {"Authorization": f"Bearer {token}"}
        before = await client.post("/v1/customers", json=registration(), headers=auth)
        assert before.status == 201
        customer_url = before.headers["Location"]

        own_postgres.stop("immediate")
        started = time.monotonic()
        down = await client.post("/v1/customers", json=registration(), headers=auth)
        read = await client.get(customer_url, headers=auth)
        assert down.status == read.status == 503
        assert down.headers["Retry-After"].isdigit()
        assert down.headers["Content-Type"].startswith("application/problem+json")
        assert time.monotonic() - started < 30
        # The breaker is open now: the next request does not wait at all.
        quick = time.monotonic()
        assert (await client.get(customer_url, headers=auth)).status == 503
        assert time.monotonic() - quick < 1

        own_postgres.start()
        deadline = time.monotonic() + 30
        while True:
            after = await client.post("/v1/customers", json=registration(), headers=auth)
            if after.status != 503 or time.monotonic() > deadline:
                break
        assert after.status == 201
        assert (await client.get(customer_url, headers=auth)).status == 200
    finally:
        service.close()
