"""Pets and their vets over HTTP, for a pet-care business, with the pets read model followed."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from aiohttp.test_utils import TestClient
from tests.e2e.answers import ok, problem

from domain.service import CustomerService
from gateway import create_app
from infrastructure.settings import Settings

Client = TestClient[Any, Any]
Bearer = Callable[..., dict[str, str]]
REX = {
    "name": "Rex",
    "species": "dog",
    "breed": "beagle",
    "birthday": "2020-04-01",
    "notes": "Allergic to chicken",
    "vet": {"name": "Dr Quinn", "clinic": "Paws & Claws", "phone": "(415) 555-2671"},
}


@pytest.fixture(scope="module", autouse=True)
def pets_view(followed: Any) -> Iterator[None]:
    """The pets read model, kept current by a follower thread."""
    with followed("pets"):
        yield


@pytest.fixture
async def pet_care(aiohttp_client: Any, api_settings: Settings, service: CustomerService) -> Client:
    """A gateway of a pet-care business (CUSTOMERS_BUSINESS_TYPE=pet_care)."""
    settings = api_settings.model_copy(update={"business_type": "pet_care"})
    client: Client = await aiohttp_client(create_app(settings, service=service))
    return client


def fields(body: dict[str, Any]) -> list[str | None]:
    return [e["field"] for e in body.get("errors", [])]


def if_match(headers: dict[str, str], version: int) -> dict[str, str]:
    return {**headers, "If-Match": f'"{version}"'}


async def customer(client: Client, bearer: Bearer) -> str:
    body = {"first_name": "Pat", "email": f"pat.{secrets.token_hex(6)}@example.net"}
    return str(
        (await ok(await client.post("/v1/customers", json=body, headers=bearer()), 201))["id"]
    )


async def add_pet(client: Client, bearer: Bearer, customer_id: str, **body: Any) -> Any:
    response = await client.post(
        f"/v1/customers/{customer_id}/pets", json={**REX, **body}, headers=bearer()
    )
    added = await ok(response, 201)
    assert response.headers["Location"] == f"/v1/customers/{customer_id}/pets/{added['id']}"
    assert response.headers["ETag"] == '"1"'
    added["position"] = int(response.headers["X-Event-Position"])
    return added


async def test_a_pet_with_its_vet_is_listed_shown_on_the_customer_and_read_by_its_owner(
    pet_care: Client, bearer: Bearer
) -> None:
    """The vet's phone in E.164; the list, the pet's own GET and the customer's GET agree."""
    customer_id = await customer(pet_care, bearer)
    added = await add_pet(pet_care, bearer, customer_id)
    listed = await ok(
        await pet_care.get(
            f"/v1/customers/{customer_id}/pets?min_position={added['position']}&wait_ms=10000",
            headers=bearer(),
        )
    )
    [pet] = listed["items"]
    assert listed["next_cursor"] is None
    assert pet["vet"] == {"name": "Dr Quinn", "clinic": "Paws & Claws", "phone": "+14155552671"}
    assert (pet["name"], pet["species"], pet["birthday"], pet["version"]) == (
        "Rex",
        "dog",
        "2020-04-01",
        1,
    )
    own = bearer("customer", sub="pat", customer_id=customer_id)
    response = await pet_care.get(f"/v1/customers/{customer_id}/pets/{pet['id']}", headers=own)
    shown = await ok(response)
    assert response.headers["ETag"] == '"1"' and shown["vet"] == pet["vet"]
    profile = await ok(await pet_care.get(f"/v1/customers/{customer_id}", headers=own))
    assert [p["id"] for p in profile["pets"]] == [pet["id"]]
    at_version = await ok(await pet_care.get(f"/v1/customers/{customer_id}?version=1", headers=own))
    assert "pets" not in at_version, "pets are the current ones: not in a past version"


async def test_a_merge_patch_changes_the_pet_and_merges_its_vet_with_if_match(
    pet_care: Client, bearer: Bearer
) -> None:
    """PATCH with If-Match: 200 and a new ETag; stale 412, none 428; the list follows."""
    customer_id = await customer(pet_care, bearer)
    pet_id = (await add_pet(pet_care, bearer, customer_id))["id"]
    path = f"/v1/customers/{customer_id}/pets/{pet_id}"
    patch = {"breed": None, "vet": {"clinic": "Vets4Pets"}, "notes": "Calm now"}
    response = await pet_care.patch(
        path,
        json=patch,
        headers={**if_match(bearer(), 1), "Content-Type": "application/merge-patch+json"},
    )
    assert (await ok(response))["version"] == 2 and response.headers["ETag"] == '"2"'
    position = response.headers["X-Event-Position"]
    await problem(
        await pet_care.patch(path, json={"name": "Max"}, headers=if_match(bearer(), 1)), 412
    )
    await problem(await pet_care.patch(path, json={"name": "Max"}, headers=bearer()), 428)
    listed = await ok(
        await pet_care.get(
            f"/v1/customers/{customer_id}/pets?min_position={position}&wait_ms=10000",
            headers=bearer(),
        )
    )
    [pet] = listed["items"]
    assert pet["breed"] is None and pet["notes"] == "Calm now" and pet["version"] == 2
    assert pet["vet"] == {"name": "Dr Quinn", "clinic": "Vets4Pets", "phone": "+14155552671"}


async def test_removing_a_pet_needs_if_match_and_leaves_it_in_history_only(
    pet_care: Client, bearer: Bearer, followed: Any
) -> None:
    """DELETE: 428 without If-Match, 412 stale, 200; then the pet is 404 and off the list,
    and the history shows it added and cleared field by field."""
    customer_id = await customer(pet_care, bearer)
    pet_id = (await add_pet(pet_care, bearer, customer_id))["id"]
    path = f"/v1/customers/{customer_id}/pets/{pet_id}"
    await problem(await pet_care.delete(path, headers=bearer()), 428)
    await problem(await pet_care.delete(path, headers=if_match(bearer(), 7)), 412)
    response = await pet_care.delete(path, headers=if_match(bearer(), 1))
    assert (await ok(response))["version"] == 2
    position = response.headers["X-Event-Position"]
    await problem(await pet_care.get(path, headers=bearer()), 404)
    await problem(await pet_care.delete(path, headers=if_match(bearer(), 2)), 404)
    listed = await ok(
        await pet_care.get(
            f"/v1/customers/{customer_id}/pets?min_position={position}&wait_ms=10000",
            headers=bearer(),
        )
    )
    assert listed["items"] == []
    with followed("history"):
        history = await ok(
            await pet_care.get(
                f"/v1/customers/{customer_id}/history?min_position={position}&wait_ms=10000",
                headers=bearer(),
            )
        )
    rows = {row["type"]: row["changes"] for row in history["items"]}
    added = {c["field"]: c["to"] for c in rows["pet.added"]}
    assert added[f"pets[{pet_id}].name"] == "Rex"
    assert added[f"pets[{pet_id}].vet.phone"] == "+14155552671"
    removed = {c["field"]: (c["from"], c["to"]) for c in rows["pet.removed"]}
    assert removed[f"pets[{pet_id}].species"] == ("dog", None)


async def test_bad_pets_are_refused_naming_the_field(pet_care: Client, bearer: Bearer) -> None:
    """Missing name, unknown field, a future birthday, a vet phone that is no number: 422."""
    customer_id = await customer(pet_care, bearer)
    path = f"/v1/customers/{customer_id}/pets"
    tomorrow = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
    for body, field in (
        ({"species": "cat"}, "name"),
        ({**REX, "colour": "brown"}, "colour"),
        ({**REX, "birthday": tomorrow}, "birthday"),
        ({**REX, "vet": {"phone": "not a phone"}}, "vet.phone"),
        ({**REX, "birthday": "01/02/2020"}, "birthday"),
    ):
        refused = await problem(await pet_care.post(path, json=body, headers=bearer()), 422)
        assert field in fields(refused), refused
    pet_id = (await add_pet(pet_care, bearer, customer_id))["id"]
    cleared = await pet_care.patch(
        f"{path}/{pet_id}", json={"name": None}, headers=if_match(bearer(), 1)
    )
    assert fields(await problem(cleared, 422)) == ["name"]


async def test_unknown_customers_and_pets_are_404_and_erased_or_deleted_customers_409(
    pet_care: Client, bearer: Bearer
) -> None:
    """The customer in the path must exist (404) and take records (409); a pet is reached
    only through its own customer (404 through another)."""
    await problem(
        await pet_care.post(f"/v1/customers/{uuid4()}/pets", json=REX, headers=bearer()), 404
    )
    owner, other = await customer(pet_care, bearer), await customer(pet_care, bearer)
    pet_id = (await add_pet(pet_care, bearer, owner))["id"]
    for path in (f"/v1/customers/{other}/pets/{pet_id}", f"/v1/customers/{owner}/pets/{uuid4()}"):
        await problem(
            await pet_care.patch(path, json={"name": "X"}, headers=if_match(bearer(), 1)), 404
        )
        await problem(await pet_care.get(path, headers=bearer()), 404)
    deleted = await customer(pet_care, bearer)
    response = await pet_care.delete(f"/v1/customers/{deleted}", headers=if_match(bearer(), 1))
    assert response.status == 200
    erased = await customer(pet_care, bearer)
    response = await pet_care.post(
        f"/v1/customers/{erased}/erase", headers=if_match(bearer("admin"), 1)
    )
    assert response.status == 200
    for customer_id in (deleted, erased):
        await problem(
            await pet_care.post(f"/v1/customers/{customer_id}/pets", json=REX, headers=bearer()),
            409,
        )
    stale = if_match(bearer(), 9)
    await problem(await pet_care.post(f"/v1/customers/{owner}/pets", json=REX, headers=stale), 412)


async def test_customer_tokens_read_their_own_pets_only_and_change_none(
    pet_care: Client, bearer: Bearer
) -> None:
    """Another customer's pets: 404; adding, changing or removing a pet: 404 (staff only)."""
    owner, other = await customer(pet_care, bearer), await customer(pet_care, bearer)
    pet_id = (await add_pet(pet_care, bearer, owner))["id"]
    own = bearer("customer", sub="pat", customer_id=owner)
    await problem(await pet_care.get(f"/v1/customers/{other}/pets", headers=own), 404)
    await problem(
        await pet_care.get(
            f"/v1/customers/{owner}/pets", headers=bearer("customer", customer_id=other)
        ),
        404,
    )
    await problem(await pet_care.post(f"/v1/customers/{owner}/pets", json=REX, headers=own), 404)
    path = f"/v1/customers/{owner}/pets/{pet_id}"
    await problem(await pet_care.patch(path, json={"name": "X"}, headers=if_match(own, 1)), 404)
    await problem(await pet_care.delete(path, headers=if_match(own, 1)), 404)


async def test_an_idempotent_retry_adds_the_pet_once(pet_care: Client, bearer: Bearer) -> None:
    """The same Idempotency-Key and body: the first answer again, one pet."""
    customer_id = await customer(pet_care, bearer)
    keyed = {**bearer(), "Idempotency-Key": f"pet-{secrets.token_hex(4)}"}
    path = f"/v1/customers/{customer_id}/pets"
    first = await ok(await pet_care.post(path, json=REX, headers=keyed), 201)
    again = await pet_care.post(path, json=REX, headers=keyed)
    assert await ok(again, 201) == first and again.headers["Idempotent-Replayed"] == "true"
    listed = await ok(
        await pet_care.get(
            f"{path}?min_position={again.headers['X-Event-Position']}&wait_ms=10000",
            headers=bearer(),
        )
    )
    assert [p["id"] for p in listed["items"]] == [first["id"]]


async def test_a_business_that_is_not_pet_care_has_no_pets(client: Client, bearer: Bearer) -> None:
    """General business: the pets routes answer 404 problems, the OpenAPI document does not
    list them, and a customer's GET has no `pets`."""
    customer_id = await customer(client, bearer)
    path = f"/v1/customers/{customer_id}/pets"
    await problem(await client.post(path, json=REX, headers=bearer()), 404)
    await problem(await client.get(path, headers=bearer()), 404)
    await problem(
        await client.patch(f"{path}/{uuid4()}", json={}, headers=if_match(bearer(), 1)), 404
    )
    shown = await ok(await client.get(f"/v1/customers/{customer_id}", headers=bearer()))
    assert "pets" not in shown
    document = await ok(await client.get("/openapi.json"))
    assert not [p for p in document["paths"] if "/pets" in p]


async def test_the_pet_care_openapi_document_lists_the_pets_operations(pet_care: Client) -> None:
    """The document is built from the routes that run: pet care has them."""
    document = await ok(await pet_care.get("/openapi.json"))
    pets = document["paths"]["/v1/customers/{id}/pets/{pet_id}"]
    assert {"get", "patch", "delete"} <= set(pets)
    assert {"get", "post"} <= set(document["paths"]["/v1/customers/{id}/pets"])


async def test_two_racing_patches_with_one_if_match_make_one_change(
    pet_care: Client, bearer: Bearer
) -> None:
    """Both saw version 1: one answers 200 (version 2), the others 412."""
    customer_id = await customer(pet_care, bearer)
    pet_id = (await add_pet(pet_care, bearer, customer_id))["id"]
    path = f"/v1/customers/{customer_id}/pets/{pet_id}"
    answers = await asyncio.gather(
        *(
            pet_care.patch(path, json={"notes": f"note {n}"}, headers=if_match(bearer(), 1))
            for n in range(4)
        )
    )
    assert sorted(a.status for a in answers) == [200, 412, 412, 412]
    shown = await ok(await pet_care.get(path, headers=bearer()))
    assert shown["version"] == 2
