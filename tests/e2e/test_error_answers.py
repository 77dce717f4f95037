"""Every way a client can get a customer request wrong answers problem+json naming the cause."""

from __future__ import annotations

import io
import uuid
from typing import Any

import pytest

Client = Any
PROBLEM = "application/problem+json"


async def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.headers["Content-Type"].startswith(PROBLEM)
    body: dict[str, Any] = await response.json()
    assert body["status"] == status and body["title"] and "type" in body
    return body


def fields(body: dict[str, Any]) -> list[str]:
    return [e["field"] for e in body.get("errors", [])]


async def created(client: Client, bearer: Any, registration: Any, **values: Any) -> str:
    response = await client.post("/v1/customers", json=registration(**values), headers=bearer())
    assert response.status == 201, await response.text()
    return str((await response.json())["id"])


async def test_malformed_json_is_400(client: Client, bearer: Any) -> None:
    """A body that is not JSON answers 400."""
    response = await client.post(
        "/v1/customers",
        data=b'{"first_name": "Ada",',
        headers={**bearer(), "Content-Type": "application/json"},
    )
    await problem(response, 400)


async def test_wrong_content_type_is_415(client: Client, bearer: Any) -> None:
    """A form post instead of JSON answers 415."""
    response = await client.post("/v1/customers", data={"first_name": "Ada"}, headers=bearer())
    await problem(response, 415)


async def test_unknown_field_is_422_naming_it(
    client: Client, bearer: Any, registration: Any
) -> None:
    """A field the contract does not have is refused, not dropped: 422 naming it."""
    response = await client.post(
        "/v1/customers", json=registration(fist_name="typo"), headers=bearer()
    )
    assert fields(await problem(response, 422)) == ["fist_name"]


async def test_missing_first_name_is_422(client: Client, bearer: Any, registration: Any) -> None:
    """first_name is required."""
    body = registration()
    del body["first_name"]
    response = await client.post("/v1/customers", json=body, headers=bearer())
    assert fields(await problem(response, 422)) == ["first_name"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("email", "not-an-email"),
        ("email", "two@@example.com"),
        ("mobile_phone", "12"),
        ("mobile_phone", "call me maybe"),
        ("phone", "+99 123"),
        ("discount_percent", "101"),
        ("notification_channels", ["pigeon"]),
        ("birthday", "1990-02-30"),
        ("customer_number", 0),
        ("parent_customer_id", "not-a-uuid"),
    ],
)
async def test_invalid_values_are_422_naming_the_field(
    client: Client, bearer: Any, registration: Any, field: str, value: Any
) -> None:
    """A value of the wrong shape or breaking a rule answers 422 naming its field."""
    response = await client.post(
        "/v1/customers", json=registration(**{field: value}), headers=bearer()
    )
    assert fields(await problem(response, 422))[0].split(".")[0] == field


async def test_three_assigned_staff_is_422(client: Client, bearer: Any, registration: Any) -> None:
    """At most two staff can be assigned to a customer."""
    response = await client.post(
        "/v1/customers", json=registration(assigned_staff_ids=["a", "b", "c"]), headers=bearer()
    )
    assert fields(await problem(response, 422)) == ["assigned_staff_ids"]


async def test_money_as_a_json_number_is_422(
    client: Client, bearer: Any, registration: Any
) -> None:
    """Money must be a decimal string: a JSON number for a credit is refused naming `amount`."""
    cid = await created(client, bearer, registration)
    response = await client.post(
        f"/v1/customers/{cid}/credits", json={"amount": 10.1, "reason": "x"}, headers=bearer()
    )
    assert fields(await problem(response, 422)) == ["amount"]


async def test_taken_username_is_409_and_changing_a_username_is_409(
    client: Client, bearer: Any, registration: Any
) -> None:
    """A username is unique (409 when taken) and immutable once set (409 when changed)."""
    username = f"user-{uuid.uuid4().hex[:10]}"
    cid = await created(client, bearer, registration, username=username)
    taken = await client.post(
        "/v1/customers", json=registration(username=username.upper()), headers=bearer()
    )
    assert fields(await problem(taken, 409)) == ["username"]
    changed = await client.patch(
        f"/v1/customers/{cid}",
        json={"username": "someone-else"},
        headers={**bearer(), "If-Match": '"1"'},
    )
    assert fields(await problem(changed, 409)) == ["username"]


async def test_customer_number_cannot_be_patched(
    client: Client, bearer: Any, registration: Any
) -> None:
    """customer_number is not a patchable field: 422 naming it."""
    cid = await created(client, bearer, registration)
    response = await client.patch(
        f"/v1/customers/{cid}",
        json={"customer_number": 5},
        headers={**bearer(), "If-Match": '"1"'},
    )
    assert fields(await problem(response, 422)) == ["customer_number"]


async def test_patch_without_if_match_is_428_and_stale_is_412(
    client: Client, bearer: Any, registration: Any
) -> None:
    """PATCH needs If-Match (428 without), and a stale version answers 412."""
    cid = await created(client, bearer, registration)
    missing = await client.patch(f"/v1/customers/{cid}", json={"group": "x"}, headers=bearer())
    await problem(missing, 428)
    stale = await client.patch(
        f"/v1/customers/{cid}", json={"group": "x"}, headers={**bearer(), "If-Match": '"7"'}
    )
    await problem(stale, 412)


async def test_null_for_a_required_field_is_422(
    client: Client, bearer: Any, registration: Any
) -> None:
    """Clearing first_name with null in a merge patch answers 422 naming it."""
    cid = await created(client, bearer, registration)
    response = await client.patch(
        f"/v1/customers/{cid}", json={"first_name": None}, headers={**bearer(), "If-Match": '"1"'}
    )
    assert fields(await problem(response, 422)) == ["first_name"]


async def test_body_over_one_mebibyte_is_413(client: Client, bearer: Any) -> None:
    """A body larger than 1 MiB answers 413."""
    response = await client.post(
        "/v1/customers",
        data=io.BytesIO(b'{"first_name": "' + b"a" * (1 << 20) + b'"}'),
        headers={**bearer(), "Content-Type": "application/json"},
    )
    await problem(response, 413)


async def test_no_token_is_401_and_customer_token_of_another_customer_is_404(
    client: Client, bearer: Any, registration: Any
) -> None:
    """Without a token: 401; a customer token reading another customer: 404, as for a miss."""
    cid = await created(client, bearer, registration)
    await problem(await client.get(f"/v1/customers/{cid}"), 401)
    other = bearer("customer", sub="c1", customer_id=str(uuid.uuid4()))
    await problem(await client.get(f"/v1/customers/{cid}", headers=other), 404)
    own = bearer("customer", sub="c2", customer_id=cid)
    assert (await client.get(f"/v1/customers/{cid}", headers=own)).status == 200
    await problem(await client.post("/v1/customers", json=registration(), headers=own), 404)


async def test_unknown_customer_and_unknown_part_are_404(
    client: Client, bearer: Any, registration: Any
) -> None:
    """An unknown customer id, a malformed id and an unknown note id all answer 404."""
    await problem(await client.get(f"/v1/customers/{uuid.uuid4()}", headers=bearer()), 404)
    await problem(await client.get("/v1/customers/12345", headers=bearer()), 404)
    cid = await created(client, bearer, registration)
    response = await client.delete(
        f"/v1/customers/{cid}/notes/{uuid.uuid4()}", headers={**bearer(), "If-Match": '"1"'}
    )
    await problem(response, 404)


async def test_a_reservation_id_is_not_a_customer(
    client: Client, bearer: Any, registration: Any
) -> None:
    """Ids of the service's internal records (reservations) answer 404 on the customer path."""
    from domain.reservations import reservation_id

    body = registration()
    await created(client, bearer, registration, email=body["email"])
    rid = reservation_id("email", body["email"])
    await problem(await client.get(f"/v1/customers/{rid}", headers=bearer()), 404)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"version": "0"}, "version"),
        ({"version": "two"}, "version"),
        ({"as_of": "yesterday"}, "as_of"),
        ({"as_of": "2026-01-01T00:00:00"}, "as_of"),
        ({"colour": "blue"}, "colour"),
    ],
)
async def test_bad_query_parameters_are_422_naming_them(
    client: Client, bearer: Any, registration: Any, params: dict[str, str], field: str
) -> None:
    """Unparseable, out-of-range, offset-less or unknown query parameters answer 422."""
    cid = await created(client, bearer, registration)
    response = await client.get(f"/v1/customers/{cid}", params=params, headers=bearer())
    assert fields(await problem(response, 422)) == [field]


async def test_forged_event_cursor_is_422(client: Client, bearer: Any, registration: Any) -> None:
    """A cursor this service did not give out answers 422 naming `cursor`."""
    cid = await created(client, bearer, registration)
    response = await client.get(
        f"/v1/customers/{cid}/events", params={"cursor": "Zm9yZ2Vk"}, headers=bearer("admin")
    )
    assert fields(await problem(response, 422)) == ["cursor"]


async def test_version_beyond_the_stream_is_404(
    client: Client, bearer: Any, registration: Any
) -> None:
    """Asking for a version the customer never had answers 404, not a 500."""
    cid = await created(client, bearer, registration)
    response = await client.get(f"/v1/customers/{cid}", params={"version": "99"}, headers=bearer())
    await problem(response, 404)


async def test_a_unix_time_in_a_date_time_query_parameter_is_422_naming_it(
    client: Client, bearer: Any
) -> None:
    """`to=45220` is no RFC 3339 time (lax parsing would take it as seconds since 1970)."""
    response = await client.get("/v1/appointments", params={"to": "45220"}, headers=bearer())
    assert response.status == 422
    assert [e["field"] for e in (await response.json())["errors"]] == ["to"]
