"""A real gateway on a real TCP port, for tools that speak HTTP from outside (schemathesis).

The stack is what production runs, in one process: the service on its own migrated schema
of the session's PostgreSQL, every follower (the read models and the NATS relay) running
in threads as `customers worker` runs them, and the aiohttp app with its readiness probes
served by aiohttp's own runner on a loopback port, on an event loop of its own thread. So
a client in the test's thread sends real requests, and what the read side does with what
the fuzzer sent (park an event it cannot apply, say) can be checked afterwards.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from cryptography.fernet import Fernet

from domain.service import CustomerService
from gateway import create_app, issue_token
from gateway.health import nats_check, postgres_check
from infrastructure.database import drop_schema
from infrastructure.eventstore import build_service, migrate_event_store
from infrastructure.settings import Settings
from projections.base import read_model_schema
from projections.catalog import READ_MODELS, open_read_model
from workers.runners import follower_names, run_followers

Token = Callable[..., str]


@dataclass
class LiveGateway:
    """A running gateway: its base URL, its settings and the service behind it."""

    base_url: str
    settings: Settings
    service: CustomerService

    def token(self, role: str = "admin", sub: str = "fuzz@test", **claims: Any) -> str:
        """A valid bearer token for `role` (a customer token needs `customer_id=`)."""
        assert self.settings.jwt_secret is not None
        return issue_token(self.settings.jwt_secret.get_secret_value(), sub, role, **claims)  # type: ignore[arg-type]

    def head(self) -> int:
        """The global position of the last event."""
        return self.service.recorder.max_notification_id() or 0

    def parked_after_catching_up(self, within_seconds: float = 60) -> list[str]:
        """Wait until every read model has processed the head of the log; what each parked."""
        head = self.head()
        parked: list[str] = []
        for name in READ_MODELS:
            model = open_read_model(self.settings, name)
            try:
                deadline = time.monotonic() + within_seconds
                while model.position() < head:
                    assert time.monotonic() < deadline, f"{name} did not reach position {head}"
                    time.sleep(0.1)
                parked += [f"{name} parked position {p}" for p in model.parked_positions()]
            finally:
                model.datastore.close()
        return parked


class _ServedApp:
    """An aiohttp app served on 127.0.0.1 by an event loop in a thread of its own."""

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(app, access_log=None)
        self._thread = threading.Thread(target=self._loop.run_forever, name="live-gateway")
        self.port = 0

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(60)

    async def _serve(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server  # the bound socket tells the port the OS chose
        assert isinstance(server, asyncio.base_events.Server)
        self.port = server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop.close()


@pytest.fixture(scope="session")
def live_gateway(
    database_url: str, nats_url: str, db_schema: str, key_encryption_key: str
) -> Iterator[LiveGateway]:
    """The whole service on a schema of its own, serving HTTP on a loopback port."""
    # Its own schema: the followers' leader locks are per schema, and the e2e tests run
    # followers of their own on the session schema.
    settings = Settings(
        database_url=database_url,
        nats_url=nats_url,
        db_schema=f"{db_schema}_live",
        jwt_secret=secrets.token_urlsafe(32),
        secret_key=Fernet.generate_key().decode(),
        notification_key=Fernet.generate_key().decode(),
        key_encryption_key=key_encryption_key,
        log_format="console",
        # Pet care has every route the others have, and the pets routes too.
        business_type="pet_care",
    )
    migrate_event_store(settings)
    service = build_service(settings)
    stop_followers = threading.Event()
    followers = threading.Thread(
        target=run_followers,
        args=(settings, follower_names(), stop_followers),
        name="live-followers",
        daemon=True,
    )
    followers.start()
    checks = {"postgres": postgres_check(database_url), "nats": nats_check(nats_url)}
    served = _ServedApp(create_app(settings, service=service, readiness_checks=checks))
    served.start()
    try:
        yield LiveGateway(f"http://127.0.0.1:{served.port}", settings, service)
    finally:
        served.stop()
        stop_followers.set()
        followers.join(30)
        service.close()
        for name in READ_MODELS:
            drop_schema(database_url, read_model_schema(settings.db_schema, name))
        drop_schema(database_url, settings.db_schema)
