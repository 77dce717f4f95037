"""No secret reaches a log: the whole output of a real gateway and real workers is grepped.

The processes are the ones production runs (`python -m gateway`, `python -m workers worker
all`), at the production log level and format, on the session's PostgreSQL and NATS. A
scenario then does everything that handles a secret: equipment with a secret, changed,
portal invites and resets (one-time tokens, sent on NATS by the relay), set-password,
right and wrong logins, requests with valid, forged and expired bearer tokens, a secret in
an invalid body, and a crash-worthy request. Every byte the processes wrote to stdout and
stderr is then searched for each secret, password and token, and for the JWT secret and
the Fernet key themselves.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import aiohttp
import pytest
from tests.e2e.processes import run_stack_logged

from domain.portal import PortalAccount, portal_account_id
from infrastructure.database import drop_schema
from infrastructure.eventstore import build_service
from infrastructure.settings import Settings
from infrastructure.tokens import issue_token
from projections.base import read_model_schema
from projections.catalog import READ_MODELS

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture
def stack_settings(
    make_settings: Any, database_url: str, nats_url: str, db_schema: str
) -> Iterator[Settings]:
    """Settings (fresh secrets, no developer CUSTOMERS_* variables) for a schema of this
    test's own, dropped afterwards."""
    settings = make_settings(
        database_url=database_url,
        nats_url=nats_url,
        db_schema=f"{db_schema}_logs",
        log_format="json",
    )
    yield settings
    for name in READ_MODELS:
        drop_schema(database_url, read_model_schema(settings.db_schema, name))
    drop_schema(database_url, settings.db_schema)


class Scenario:
    """Requests that handle secrets, and every secret they handled."""

    def __init__(self, base: str, settings: Settings) -> None:
        assert settings.jwt_secret is not None
        self.base = base
        self.settings = settings
        self.jwt_secret = settings.jwt_secret.get_secret_value()
        self.admin = issue_token(self.jwt_secret, "admin@shop", "admin")
        self.secrets: set[str] = {self.jwt_secret, self.admin}
        assert settings.secret_key is not None
        self.secrets.add(settings.secret_key.get_secret_value())
        assert settings.notification_key is not None
        self.secrets.add(settings.notification_key.get_secret_value())
        assert settings.key_encryption_key is not None
        self.secrets.add(settings.key_encryption_key.get_secret_value())
        self.customer_ids: list[str] = []

    def secret(self, kind: str) -> str:
        value = f"{kind}-{secrets.token_urlsafe(18)}"
        self.secrets.add(value)
        return value

    async def run(self) -> None:
        auth = {"Authorization": f"Bearer {self.admin}"}
        async with aiohttp.ClientSession(self.base, headers=auth) as http:
            for number in range(3):
                await self._customer(http, number)
            # Tokens that must be refused, and must not be echoed into a log line either.
            expired = issue_token(self.jwt_secret, "x", "admin", ttl=-timedelta(hours=1))
            forged = issue_token(secrets.token_urlsafe(32), "x", "admin")
            self.secrets |= {expired, forged}
            for token in (expired, forged, self.secret("garbage-token")):
                answer = await http.get(
                    "/v1/customers", headers={"Authorization": f"Bearer {token}"}
                )
                assert answer.status == 401
            # A secret inside a body that is refused.
            bad = await http.post(
                f"/v1/customers/{self.customer_ids[0]}/systems",
                json={"system_type": "", "secret": self.secret("refused-system-secret")},
            )
            assert bad.status == 422

    async def _customer(self, http: aiohttp.ClientSession, number: int) -> None:
        email = f"logs.{secrets.token_hex(6)}@example.com"
        created = await http.post(
            "/v1/customers",
            json={
                "first_name": "Log",
                "email": email,
                "custom_fields": {"alarm code": self.secret("custom-field-code")},
            },
        )
        assert created.status == 201, await created.text()
        customer_id = (await created.json())["id"]
        self.customer_ids.append(customer_id)
        installed = await http.post(
            f"/v1/customers/{customer_id}/systems",
            json={"system_type": "alarm", "login": "admin", "secret": self.secret("system")},
        )
        assert installed.status == 201, await installed.text()
        system_id = (await installed.json())["system_id"]
        changed = await http.patch(
            f"/v1/customers/{customer_id}/systems/{system_id}",
            json={"secret": self.secret("changed-system")},
            headers={"If-Match": installed.headers["ETag"]},
        )
        assert changed.status == 200, await changed.text()
        invited = await http.post(f"/v1/customers/{customer_id}/portal/invite")
        assert invited.status == 202, await invited.text()
        password = self.secret("portal-password")
        link_token = self._link_token(customer_id)
        self.secrets.add(link_token)
        set_password = await http.post(
            "/v1/auth/set-password", json={"token": link_token, "password": password}
        )
        assert set_password.status == 200, await set_password.text()
        wrong = await http.post(
            "/v1/auth/login", json={"login": email, "password": self.secret("wrong-password")}
        )
        assert wrong.status in {401, 422}
        logged_in = await http.post("/v1/auth/login", json={"login": email, "password": password})
        assert logged_in.status == 200, await logged_in.text()
        customer_token = (await logged_in.json())["token"]
        self.secrets.add(customer_token)
        me = await http.get(
            f"/v1/customers/{customer_id}", headers={"Authorization": f"Bearer {customer_token}"}
        )
        assert me.status == 200
        if number == 0:
            reset = await http.post(f"/v1/customers/{customer_id}/portal/password-reset")
            assert reset.status == 202, await reset.text()
            self.secrets.add(self._link_token(customer_id))

    def _link_token(self, customer_id: str) -> str:
        # As the relay unseals it for the notification: the test reads the event store.
        service = build_service(self.settings)
        try:
            events = list(service.events.get(portal_account_id(UUID(customer_id))))
            links = [
                e
                for e in events
                if isinstance(e, PortalAccount.Invited | PortalAccount.PasswordResetRequested)
            ]
            return str(service.sealer.unseal(links[-1].sealed_token))
        finally:
            service.close()


def test_no_secret_password_or_token_appears_in_any_log(
    stack_settings: Settings, server_data_dir: Path
) -> None:
    """Secrets, portal passwords, link tokens and bearer tokens are in no process's output."""
    scenarios: list[Scenario] = []

    def use_every_secret(base: str) -> None:
        scenarios.append(Scenario(base, stack_settings))
        asyncio.run(scenarios[0].run())

    logs = run_stack_logged(stack_settings, server_data_dir, use_every_secret)
    (scenario,) = scenarios
    output = b"".join(path.read_bytes() for path in logs.values())
    # The logs do cover the scenario: every request's path, with its customer id, is there.
    assert all(customer_id.encode() in output for customer_id in scenario.customer_ids)
    assert b"/v1/auth/login" in output and b"follower_leading" in output
    assert len(scenario.secrets) > 20
    leaked = sorted(s for s in scenario.secrets if s.encode() in output)
    assert leaked == []
    # Nor a bearer token of any kind: a JWT's header is always this prefix.
    assert b"eyJhbGciOi" not in output
