"""Registering and reading customers over HTTP: the contract of POST and GET /v1/customers."""

from __future__ import annotations

import asyncio
from typing import Any

Client = Any


async def register(client: Client, bearer: Any, body: dict[str, Any], **headers: str) -> Any:
    return await client.post("/v1/customers", json=body, headers={**bearer(), **headers})


async def test_registration_answers_201_with_location_etag_and_position(
    client: Client, bearer: Any, registration: Any
) -> None:
    """A registration answers 201 with the id, number and version, Location, ETag and position."""
    response = await register(client, bearer, registration())
    body = await response.json()
    assert response.status == 201
    assert set(body) == {"id", "customer_number", "version", "likely_duplicates"}
    assert body["version"] == 1 and body["customer_number"] > 0
    assert response.headers["Location"] == f"/v1/customers/{body['id']}"
    assert response.headers["ETag"] == '"1"'
    assert int(response.headers["X-Event-Position"]) > 0


async def test_get_shows_every_registration_field_normalised(
    client: Client, bearer: Any, registration: Any
) -> None:
    """GET returns the record with the email's domain lower-cased, phones in E.164, defaults set."""
    sent = registration(
        email="Grace@Navy.MIL",
        mobile_phone="(415) 555-2671",
        company_name="Hopper & Co",
        birthday="1906-12-09",
        discount_percent="12.5",
        assigned_staff_ids=["s1", "s2"],
        addresses=[{"kind": "billing", "line1": "1 Main St", "city": "Arlington"}],
        custom_fields={"gate": "blue"},
    )
    sent.pop("mobile_phone")  # a unique one is below, typed with formatting
    sent["mobile_phone"] = registration()["mobile_phone"]
    created = await (await register(client, bearer, sent)).json()
    response = await client.get(f"/v1/customers/{created['id']}", headers=bearer())
    customer = await response.json()
    assert response.status == 200
    assert response.headers["ETag"] == '"1"'
    assert customer["email"] == "Grace@navy.mil"
    assert customer["mobile_phone"].startswith("+1415")
    assert customer["birthday"] == "1906-12-09"
    assert customer["discount_percent"] == "12.5"
    assert customer["source"] == "telephone" and customer["newsletter"] is True
    assert customer["promotional_sms"] is False and customer["notification_channels"] == ["email"]
    assert customer["addresses"][0]["city"] == "Arlington"
    assert customer["customer_number"] == created["customer_number"]
    assert customer["deleted"] is False and customer["blocked"] is False
    assert [c["topic"] for c in customer["consents"]] == ["newsletter", "promotional_sms"]
    assert customer["consents"][0]["by"] == "alice@shop"


async def test_twenty_concurrent_registrations_with_one_email_give_one_201(
    client: Client, bearer: Any, registration: Any
) -> None:
    """Twenty racing registrations with the same email: exactly one 201 and nineteen 409s."""
    email = registration()["email"]
    responses = await asyncio.gather(
        *(
            register(client, bearer, registration(email=email.upper() if i % 2 else email))
            for i in range(20)
        )
    )
    statuses = sorted(r.status for r in responses)
    assert statuses == [201] + [409] * 19
    problem = await next(r for r in responses if r.status == 409).json()
    assert problem["errors"][0]["field"] == "email"


async def test_a_given_customer_number_is_kept_and_cannot_be_reused(
    client: Client, bearer: Any, registration: Any
) -> None:
    """A customer number given at registration is kept; a second customer asking for it gets 409."""
    number = 10_000_000 + int.from_bytes(__import__("os").urandom(3), "big")
    first = await register(client, bearer, registration(customer_number=number))
    assert (await first.json())["customer_number"] == number
    second = await register(client, bearer, registration(customer_number=number))
    assert second.status == 409
    assert (await second.json())["errors"][0]["field"] == "customer_number"


async def test_mobile_phone_is_unique_whatever_its_formatting(
    client: Client, bearer: Any, registration: Any
) -> None:
    """The same mobile number typed two ways is one number: the second registration gets 409."""
    body = registration()
    await register(client, bearer, body)
    digits = "".join(ch for ch in body["mobile_phone"] if ch.isdigit())
    response = await register(client, bearer, registration(mobile_phone=f"+1{digits}"))
    assert response.status == 409
    assert (await response.json())["errors"][0]["field"] == "mobile_phone"


async def test_idempotent_retry_returns_the_first_answer_and_creates_nothing(
    client: Client, bearer: Any, registration: Any, service: Any
) -> None:
    """A retry with the same Idempotency-Key and body gets the first response and adds no event."""
    body = registration()
    first = await register(client, bearer, body, **{"Idempotency-Key": "reg-1-" + body["email"]})
    head = service.recorder.max_notification_id()
    retry = await register(client, bearer, body, **{"Idempotency-Key": "reg-1-" + body["email"]})
    assert (first.status, await first.json()) == (retry.status, await retry.json())
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert service.recorder.max_notification_id() == head


async def test_idempotency_key_reused_with_another_body_is_422(
    client: Client, bearer: Any, registration: Any
) -> None:
    """The same Idempotency-Key with a different body answers 422 naming the header."""
    key = {"Idempotency-Key": "reuse-" + registration()["email"]}
    assert (await register(client, bearer, registration(), **key)).status == 201
    response = await register(client, bearer, registration(), **key)
    assert response.status == 422
    assert (await response.json())["errors"][0]["field"] == "Idempotency-Key"


async def test_concurrent_retries_of_one_keyed_request_create_one_customer(
    client: Client, bearer: Any, registration: Any
) -> None:
    """Ten concurrent sends of one keyed request all answer with the same single customer."""
    body = registration()
    key = {"Idempotency-Key": "burst-" + body["email"]}
    responses = await asyncio.gather(*(register(client, bearer, body, **key) for _ in range(10)))
    ids = {(await r.json())["id"] for r in responses}
    assert {r.status for r in responses} == {201}
    assert len(ids) == 1


async def test_state_as_of_a_version_and_a_time(
    client: Client, bearer: Any, registration: Any
) -> None:
    """GET ?version=1 and ?as_of=<registration time> show the record before a later change."""
    created = await (await register(client, bearer, registration(last_name="Before"))).json()
    url = f"/v1/customers/{created['id']}"
    first = await (await client.get(url, headers=bearer())).json()
    patched = await client.patch(
        url, json={"last_name": "After"}, headers={**bearer(), "If-Match": '"1"'}
    )
    assert patched.status == 200
    by_version = await (await client.get(url, params={"version": "1"}, headers=bearer())).json()
    as_of = await (
        await client.get(url, params={"as_of": first["registered_at"]}, headers=bearer())
    ).json()
    now = await (await client.get(url, headers=bearer())).json()
    assert by_version["last_name"] == as_of["last_name"] == "Before"
    assert now["last_name"] == "After" and now["version"] == 2
