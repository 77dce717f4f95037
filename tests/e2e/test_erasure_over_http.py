"""Erasure and secret reveal over HTTP: admin only, If-Match, redacted reads, repeatable."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any
from uuid import UUID

from aiohttp.test_utils import TestClient
from argon2 import profiles
from tests.e2e.answers import ok, problem

from domain.customers import Customer
from domain.passwords import PasswordHasher
from domain.portal import PortalAccount, portal_account_id
from domain.service import CustomerService

Client = TestClient[Any, Any]
Bearer = Callable[..., dict[str, str]]


async def registered(client: Client, bearer: Bearer, body: dict[str, Any]) -> str:
    created = await ok(await client.post("/v1/customers", json=body, headers=bearer()), 201)
    return str(created["id"])


async def erase(client: Client, bearer: Bearer, customer_id: str, version: int) -> Any:
    return await client.post(
        f"/v1/customers/{customer_id}/erase",
        headers={**bearer("admin"), "If-Match": f'"{version}"'},
    )


async def test_an_erased_customer_reads_redacted_and_a_second_erasure_answers_the_same(
    client: Client, bearer: Bearer, registration: Callable[..., dict[str, Any]]
) -> None:
    """Erase answers {id, version, erased}; GET shows `erased: true` with no personal data."""
    body = registration(birthday="1815-12-10", id_number="X123")
    customer_id = await registered(client, bearer, body)
    response = await erase(client, bearer, customer_id, 1)
    first = await ok(response)
    assert first == {"id": customer_id, "version": 2, "erased": True}
    assert response.headers["ETag"] == '"2"' and int(response.headers["X-Event-Position"]) > 0
    again = await ok(await erase(client, bearer, customer_id, 1))
    assert again == first
    shown = await ok(await client.get(f"/v1/customers/{customer_id}", headers=bearer()))
    assert shown["erased"] is True and shown["version"] == 2
    assert (shown["first_name"], shown["last_name"], shown["email"]) == ("", None, None)
    assert (shown["mobile_phone"], shown["birthday"], shown["id_number"]) == (None, None, None)
    text = str(shown) + str(
        await ok(await client.get(f"/v1/customers/{customer_id}/events", headers=bearer("admin")))
    )
    assert body["email"].lower() not in text.lower() and "Lovelace" not in text


async def test_erasure_is_for_admins_with_if_match(
    client: Client, bearer: Bearer, registration: Callable[..., dict[str, Any]]
) -> None:
    """Staff get 403, no If-Match 428, a stale one 412, an unknown customer 404."""
    customer_id = await registered(client, bearer, registration())
    path = f"/v1/customers/{customer_id}/erase"
    await problem(await client.post(path, headers={**bearer("staff"), "If-Match": '"1"'}), 403)
    await problem(await client.post(path, headers=bearer("admin")), 428)
    await problem(await erase(client, bearer, customer_id, 7), 412)
    await problem(await erase(client, bearer, str(UUID(int=3)), 1), 404)
    shown = await ok(await client.get(f"/v1/customers/{customer_id}", headers=bearer()))
    assert shown["erased"] is False and shown["first_name"] == "Ada"


async def test_erased_values_can_be_registered_again_and_the_record_is_frozen(
    client: Client, bearer: Bearer, registration: Callable[..., dict[str, Any]]
) -> None:
    """The email and mobile are free after erasure; changing the erased record answers 409."""
    body = registration()
    customer_id = await registered(client, bearer, body)
    await ok(await erase(client, bearer, customer_id, 1))
    await registered(client, bearer, {**body, "first_name": "Grace"})
    refused = await problem(
        await client.patch(
            f"/v1/customers/{customer_id}",
            json={"first_name": "Back"},
            headers={**bearer(), "If-Match": '"2"'},
        ),
        409,
    )
    assert [e["field"] for e in refused.get("errors", [])] == ["erased"]


async def test_an_erased_customer_is_refused_at_the_portal_login(
    client: Client, bearer: Bearer, service: CustomerService
) -> None:
    """A customer who had a portal password cannot log in once erased."""
    email = f"erase.{secrets.token_hex(6)}@example.net"
    customer_id = await registered(client, bearer, {"first_name": "Mo", "email": email})
    await ok(await client.post(f"/v1/customers/{customer_id}/portal/invite", headers=bearer()), 202)
    events = list(service.events.get(portal_account_id(UUID(customer_id))))
    invite = next(e for e in events if isinstance(e, PortalAccount.Invited))
    hasher, service.password_hasher = service.password_hasher, PasswordHasher(profiles.CHEAPEST)
    try:
        token = service.sealer.unseal(invite.sealed_token)
        password = {"token": token, "password": "correct horse battery"}
        await ok(await client.post("/v1/auth/set-password", json=password))
        login = {"login": email, "password": "correct horse battery"}
        await ok(await client.post("/v1/auth/login", json=login))
        await ok(await erase(client, bearer, customer_id, 1))
        await problem(await client.post("/v1/auth/login", json=login), 401)
    finally:
        service.password_hasher = hasher


async def test_reveal_shows_the_secret_to_an_admin_and_records_who(
    client: Client, bearer: Bearer, service: CustomerService, registration: Any
) -> None:
    """The admin gets the secret (no-store); the customer's stream records the admin."""
    customer_id = await registered(client, bearer, registration())
    system = {"system_type": "alarm", "secret": "hunter2-reveal"}
    added = await ok(
        await client.post(f"/v1/customers/{customer_id}/systems", json=system, headers=bearer()),
        201,
    )
    path = f"/v1/customers/{customer_id}/systems/{added['system_id']}/reveal"
    response = await client.post(path, headers=bearer("admin", sub="root@shop"))
    shown = await ok(response)
    assert shown["secret"] == "hunter2-reveal" and shown["version"] == 3
    assert response.headers["Cache-Control"] == "no-store"
    last = list(service.customer_events(UUID(customer_id)))[-1]
    assert isinstance(last, Customer.SecretRevealed) and last.actor == "root@shop"
    assert "hunter2" not in str(vars(last))


async def test_reveal_is_refused_to_staff_and_for_unknown_or_erased(
    client: Client, bearer: Bearer, registration: Any
) -> None:
    """403 for staff; 404 for an unknown system or one without a secret; 409 once erased."""
    customer_id = await registered(client, bearer, registration())
    base = f"/v1/customers/{customer_id}/systems"
    with_secret = await ok(
        await client.post(base, json={"system_type": "nvr", "secret": "s3"}, headers=bearer()), 201
    )
    without = await ok(await client.post(base, json={"system_type": "tv"}, headers=bearer()), 201)
    reveal = f"{base}/{with_secret['system_id']}/reveal"
    await problem(await client.post(reveal, headers=bearer("staff")), 403)
    for system_id in (without["system_id"], UUID(int=5)):
        await problem(await client.post(f"{base}/{system_id}/reveal", headers=bearer("admin")), 404)
    await ok(await erase(client, bearer, customer_id, 3))
    await problem(await client.post(reveal, headers=bearer("admin")), 409)
