"""The customer portal over HTTP: invite and reset links, setting a password, logging in,
the login lockout shared by gateway processes, and what a customer token may reach.

The link's token is read the way the notification relay reads it: from the invite event,
unsealed with the service key. Passwords are hashed with argon2id's cheapest parameters
here, to keep the tests fast; production uses the library's defaults.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID

import jwt
import psycopg
import pytest
from aiohttp.test_utils import TestClient
from argon2 import profiles
from tests.e2e.answers import ok, problem

from domain.passwords import PasswordHasher
from domain.portal import PortalAccount, portal_account_id, token_hash
from domain.service import CustomerService
from gateway import create_app
from gateway.login_guard import TABLE, login_key
from infrastructure.eventstore import build_service
from infrastructure.settings import Settings

Client = TestClient[Any, Any]
Bearer = Callable[..., dict[str, str]]
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def services(api_settings: Settings, service: CustomerService) -> Iterator[list[CustomerService]]:
    """Two services on the session's (migrated) store: two gateway processes."""
    built = []
    for _ in range(2):
        one = build_service(api_settings)
        one.password_hasher = PasswordHasher(profiles.CHEAPEST)
        built.append(one)
    yield built
    for one in built:
        one.close()


@pytest.fixture
async def api(
    aiohttp_client: Any, api_settings: Settings, services: list[CustomerService]
) -> Client:
    client: Client = await aiohttp_client(create_app(api_settings, service=services[0]))
    return client


@pytest.fixture
async def other_gateway(
    aiohttp_client: Any, api_settings: Settings, services: list[CustomerService]
) -> Client:
    client: Client = await aiohttp_client(create_app(api_settings, service=services[1]))
    return client


def fields(body: dict[str, Any]) -> list[str | None]:
    return [e["field"] for e in body.get("errors", [])]


async def customer(api: Client, bearer: Bearer) -> tuple[str, str]:
    """A new customer's id and email."""
    email = f"mo.{secrets.token_hex(6)}@example.net"
    body = {"first_name": "Mo", "email": email}
    created = await ok(await api.post("/v1/customers", json=body, headers=bearer()), 201)
    return str(created["id"]), email


def sent_token(service: CustomerService, customer_id: str) -> str:
    """The token of the newest link, as the notification relay unseals it."""
    events = list(service.events.get(portal_account_id(UUID(customer_id))))
    links = [
        e
        for e in events
        if isinstance(e, PortalAccount.Invited | PortalAccount.PasswordResetRequested)
    ]
    return service.sealer.unseal(links[-1].sealed_token)


async def with_password(
    api: Client, bearer: Bearer, service: CustomerService, password: str = PASSWORD
) -> tuple[str, str]:
    """A customer invited to the portal who set `password` through the link."""
    customer_id, email = await customer(api, bearer)
    await ok(await api.post(f"/v1/customers/{customer_id}/portal/invite", headers=bearer()), 202)
    body = {"token": sent_token(service, customer_id), "password": password}
    await ok(await api.post("/v1/auth/set-password", json=body))
    return customer_id, email


async def log_in(api: Client, login: str, password: str = PASSWORD) -> Any:
    return await api.post("/v1/auth/login", json={"login": login, "password": password})


# ---- links and logging in ------------------------------------------------------------------


async def test_invite_set_password_log_in_and_use_the_token(
    api: Client, bearer: Bearer, services: list[CustomerService], api_settings: Settings
) -> None:
    """The invite stores a hash of the token only; the link sets the password; the login
    gives a customer token that reads and changes its own record."""
    customer_id, email = await customer(api, bearer)
    response = await api.post(f"/v1/customers/{customer_id}/portal/invite", headers=bearer())
    invited = await ok(response, 202)
    assert invited["customer_id"] == customer_id and "X-Event-Position" in response.headers
    token = sent_token(services[0], customer_id)
    [_, event] = services[0].events.get(portal_account_id(UUID(customer_id)))
    assert event.token_hash == token_hash(token)
    stored = services[0].recorder.select_notifications(start=1, limit=1_000_000)
    assert not any(token.encode() in n.state for n in stored)
    set_password = {"token": token, "password": PASSWORD}
    assert (await ok(await api.post("/v1/auth/set-password", json=set_password)))[
        "customer_id"
    ] == customer_id
    used = await problem(await api.post("/v1/auth/set-password", json=set_password), 422)
    assert fields(used) == ["token"]
    logged_in = await ok(await log_in(api, email.upper()))
    assert logged_in["customer_id"] == customer_id and logged_in["token_type"] == "Bearer"
    secret = api_settings.jwt_secret.get_secret_value() if api_settings.jwt_secret else ""
    claims = jwt.decode(logged_in["token"], secret, algorithms=["HS256"])
    assert (claims["role"], claims["customer_id"]) == ("customer", customer_id)
    me = {"Authorization": f"Bearer {logged_in['token']}"}
    own = await api.get(f"/v1/customers/{customer_id}", headers=me)
    assert (await ok(own))["email"] == email
    changed = await api.patch(
        f"/v1/customers/{customer_id}",
        json={"last_name": "King", "newsletter": False},
        headers={**me, "If-Match": own.headers["ETag"]},
    )
    shown = await ok(changed)
    assert shown["last_name"] == "King" and shown["consents"][-1]["channel"] == "portal"
    refused = await api.patch(
        f"/v1/customers/{customer_id}",
        json={"discount_percent": "50"},
        headers={**me, "If-Match": changed.headers["ETag"]},
    )
    assert fields(await problem(refused, 422)) == ["discount_percent"]


async def test_link_and_password_refusals(
    api: Client, bearer: Bearer, services: list[CustomerService]
) -> None:
    """A forged token and a short password are 422 naming the field; no login for a
    customer without email or username (409), nor an unknown customer (404)."""
    customer_id, _ = await customer(api, bearer)
    await ok(await api.post(f"/v1/customers/{customer_id}/portal/invite", headers=bearer()), 202)
    token = sent_token(services[0], customer_id)
    short = await api.post("/v1/auth/set-password", json={"token": token, "password": "short"})
    assert fields(await problem(short, 422)) == ["password"]
    forged = await api.post(
        "/v1/auth/set-password", json={"token": token[:-4] + "AAAA", "password": PASSWORD}
    )
    assert fields(await problem(forged, 422)) == ["token"]
    nameless = await ok(
        await api.post("/v1/customers", json={"first_name": "Bo"}, headers=bearer()), 201
    )
    no_login = await api.post(f"/v1/customers/{nameless['id']}/portal/invite", headers=bearer())
    assert fields(await problem(no_login, 409)) == ["email"]
    unknown = await api.post(f"/v1/customers/{UUID(int=5)}/portal/invite", headers=bearer())
    await problem(unknown, 404)


async def test_password_reset_is_for_admins_and_keeps_the_old_password_until_used(
    api: Client, bearer: Bearer, services: list[CustomerService]
) -> None:
    """Staff get 403, a customer 404; an admin's reset link replaces the password."""
    customer_id, email = await with_password(api, bearer, services[0])
    path = f"/v1/customers/{customer_id}/portal/password-reset"
    await problem(await api.post(path, headers=bearer("staff")), 403)
    me = bearer("customer", sub=f"customer:{customer_id}", customer_id=customer_id)
    await problem(await api.post(path, headers=me), 404)
    await ok(await api.post(path, headers=bearer("admin", sub="root@shop")), 202)
    await ok(await log_in(api, email))
    new = {"token": sent_token(services[0], customer_id), "password": "a brand new secret"}
    await ok(await api.post("/v1/auth/set-password", json=new))
    await problem(await log_in(api, email), 401)
    await ok(await log_in(api, email, "a brand new secret"))


async def test_wrong_unknown_blocked_and_deleted_logins_are_refused(
    api: Client, bearer: Bearer, services: list[CustomerService]
) -> None:
    """Wrong password or unknown login: 401; right password of a blocked or deleted
    customer: 403 naming why."""
    customer_id, email = await with_password(api, bearer, services[0])
    wrong = await log_in(api, email, "not the password")
    await problem(wrong, 401)
    assert wrong.headers["WWW-Authenticate"].startswith("Bearer")
    await problem(await log_in(api, f"nobody-{secrets.token_hex(4)}@example.com"), 401)
    await problem(await api.post("/v1/auth/login", json={"login": email}), 422)
    await ok(
        await api.post(
            f"/v1/customers/{customer_id}/block",
            json={"reason": "unpaid"},
            headers={**bearer(), "If-Match": '"1"'},
        )
    )
    assert "blocked" in (await problem(await log_in(api, email), 403))["detail"]
    await ok(
        await api.post(
            f"/v1/customers/{customer_id}/unblock", headers={**bearer(), "If-Match": '"2"'}
        )
    )
    await ok(
        await api.delete(f"/v1/customers/{customer_id}", headers={**bearer(), "If-Match": '"3"'})
    )
    assert "deleted" in (await problem(await log_in(api, email), 403))["detail"]


async def test_repeated_failures_lock_the_login_across_gateways(
    api: Client,
    other_gateway: Client,
    bearer: Bearer,
    services: list[CustomerService],
    api_settings: Settings,
) -> None:
    """Five wrong passwords through one gateway lock the login in the other too (even for
    the right password) with Retry-After; when the lock ends, the right password works; a
    success clears the count."""
    _, email = await with_password(api, bearer, services[0])
    for _ in range(5):
        await problem(await log_in(api, email.upper(), "guess guess guess"), 401)
    locked = await log_in(other_gateway, email)
    await problem(locked, 429)
    assert 800 <= int(locked.headers["Retry-After"]) <= 900
    await problem(await log_in(api, f" {email} "), 429)
    # Fifteen minutes later, as far as the table can tell.
    with psycopg.connect(api_settings.database_url or "", autocommit=True) as connection:
        connection.execute(
            psycopg.sql.SQL(
                "UPDATE {} SET locked_until = now() - interval '1 second' WHERE login_key = %s"
            ).format(psycopg.sql.Identifier(api_settings.db_schema, TABLE)),
            (login_key(email),),
        )
    await ok(await log_in(other_gateway, email))
    # A success clears the count: four failures, a success, four more and a success pass.
    for _ in range(2):
        for _ in range(4):
            await problem(await log_in(api, email, "guess again, again"), 401)
        await ok(await log_in(api, email))


# ---- a customer token reaches nothing else ---------------------------------------------------


DENIED: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    "GET another customer": ("GET", "/v1/customers/{other}", None),
    "PATCH another customer": ("PATCH", "/v1/customers/{other}", {"last_name": "X"}),
    "POST another's portal invite": ("POST", "/v1/customers/{other}/portal/invite", None),
    "POST another's password reset": ("POST", "/v1/customers/{other}/portal/password-reset", None),
    "POST own portal invite (staff only)": ("POST", "/v1/customers/{me}/portal/invite", None),
    "POST own password reset (admin only)": (
        "POST",
        "/v1/customers/{me}/portal/password-reset",
        None,
    ),
    "GET /v1/customers (search)": ("GET", "/v1/customers", None),
    "POST /v1/customers": ("POST", "/v1/customers", {"first_name": "Eve"}),
    "DELETE own record (staff only)": ("DELETE", "/v1/customers/{me}", None),
    "POST own block (staff only)": ("POST", "/v1/customers/{me}/block", None),
    "POST own note (staff only)": ("POST", "/v1/customers/{me}/notes", {"text": "hi"}),
    "GET own raw events (audit only)": ("GET", "/v1/customers/{me}/events", None),
}


@pytest.mark.parametrize("endpoint", DENIED)
async def test_a_logged_in_customer_gets_404_from(
    api: Client, bearer: Bearer, services: list[CustomerService], endpoint: str
) -> None:
    """With a token from the login: another customer's record, and any staff operation on
    its own, answer 404 as for an id that does not exist."""
    customer_id, email = await with_password(api, bearer, services[0])
    other_id, _ = await customer(api, bearer)
    token = (await ok(await log_in(api, email)))["token"]
    method, template, body = DENIED[endpoint]
    headers = {"Authorization": f"Bearer {token}", "If-Match": '"1"'}
    path = template.format(me=customer_id, other=other_id)
    await problem(await api.request(method, path, json=body, headers=headers), 404)
    other = await ok(await api.get(f"/v1/customers/{other_id}", headers=bearer()))
    assert other["version"] == 1
