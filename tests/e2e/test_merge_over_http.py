"""Merging and unmerging customers over HTTP, on a real event store: answers and refusals."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from tests.e2e.answers import ok, problem

Client = TestClient[Any, Any]
Bearer = Callable[..., dict[str, str]]
Registration = Callable[..., dict[str, Any]]


async def register(client: Client, bearer: Bearer, body: dict[str, Any]) -> str:
    return str(
        (await ok(await client.post("/v1/customers", json=body, headers=bearer()), 201))["id"]
    )


async def version(client: Client, bearer: Bearer, customer_id: str) -> int:
    response = await client.get(f"/v1/customers/{customer_id}", headers=bearer())
    assert response.status == 200, await response.text()
    return int(response.headers["ETag"].strip('"'))


async def merge(
    client: Client,
    bearer: Bearer,
    survivor: str,
    *merged: str,
    headers: dict[str, str] | None = None,
    versions: dict[str, int] | None = None,
    role: str = "staff",
) -> Any:
    seen = (
        versions if versions is not None else {m: await version(client, bearer, m) for m in merged}
    )
    sent = {**bearer(role), "If-Match": f'"{await version(client, bearer, survivor)}"'}
    return await client.post(
        f"/v1/customers/{survivor}/merge",
        json={"from": list(merged), "versions": seen},
        headers={**sent, **(headers or {})},
    )


async def test_a_merge_answers_what_moved_and_the_merged_customer_redirects(
    client: Client, bearer: Bearer, registration: Registration
) -> None:
    """200 with merge_id, survivor_id, merged_ids, moved; GET of the merged answers 308."""
    survivor = await register(client, bearer, registration(company_name=None))
    merged = await register(client, bearer, registration(company_name="Globex"))
    note = await ok(
        await client.post(
            f"/v1/customers/{merged}/notes",
            json={"text": "gate 4711", "urgent": True},
            headers=bearer(),
        ),
        201,
    )
    ticket = await ok(
        await client.post(
            "/v1/tickets",
            json={
                "customer_id": merged,
                "subject": "screen",
                "problem": "cracked",
                "device": {"type": "phone"},
            },
            headers=bearer(),
        ),
        201,
    )
    starts = datetime.now(UTC) + timedelta(days=2)
    appointment = await ok(
        await client.post(
            "/v1/appointments",
            json={
                "customer_id": merged,
                "starts_at": starts.isoformat(),
                "ends_at": (starts + timedelta(hours=1)).isoformat(),
            },
            headers=bearer(),
        ),
        201,
    )

    body = await ok(await merge(client, bearer, survivor, merged))
    assert (body["survivor_id"], body["merged_ids"]) == (survivor, [merged])
    moved = body["moved"][merged]
    assert moved["notes"] == [note["note_id"]]
    assert moved["profile"] == ["company_name"]
    assert sorted(moved["reservations"]) == ["email", "mobile_phone"]
    assert (moved["tickets"], moved["appointments"]) == ([ticket["id"]], [appointment["id"]])

    # The merged customer's GET points at the survivor.
    gone = await client.get(f"/v1/customers/{merged}", headers=bearer(), allow_redirects=False)
    assert gone.status == 308 and gone.headers["Location"] == f"/v1/customers/{survivor}"
    assert (await gone.json())["merged_into"] == survivor
    # The survivor shows what came, and the merge that can be undone.
    shown = await ok(await client.get(f"/v1/customers/{survivor}", headers=bearer()))
    assert shown["company_name"] == "Globex"
    assert [n["note_id"] for n in shown["notes"]] == [note["note_id"]]
    assert shown["merges"] == [{"merge_id": body["merge_id"], "merged_ids": [merged]}]
    relinked = await ok(await client.get(f"/v1/tickets/{ticket['id']}", headers=bearer()))
    assert relinked["customer_id"] == survivor
    # A change to the merged customer is refused naming the survivor.
    refused = await problem(
        await client.post(f"/v1/customers/{merged}/notes", json={"text": "late"}, headers=bearer()),
        409,
    )
    assert refused["errors"][0]["field"] == "merged_into" and survivor in refused["detail"]


async def test_unmerge_gives_the_customer_back_exactly(
    client: Client, bearer: Bearer, registration: Registration
) -> None:
    """After the unmerge, the merged customer's GET shows it as before the merge."""
    survivor = await register(client, bearer, registration())
    merged = await register(client, bearer, registration(company_name="Initech"))
    await client.post(f"/v1/customers/{merged}/notes", json={"text": "x"}, headers=bearer())
    before = await ok(await client.get(f"/v1/customers/{merged}", headers=bearer()))
    survivor_before = await ok(await client.get(f"/v1/customers/{survivor}", headers=bearer()))
    merge_id = (await ok(await merge(client, bearer, survivor, merged)))["merge_id"]

    answer = await ok(
        await client.post(
            f"/v1/customers/{survivor}/unmerge",
            json={"merge_id": merge_id},
            headers={**bearer(), "If-Match": f'"{await version(client, bearer, survivor)}"'},
        )
    )
    assert answer["restored_ids"] == [merged] and answer["merge_id"] == merge_id
    after = await ok(await client.get(f"/v1/customers/{merged}", headers=bearer()))
    survivor_after = await ok(await client.get(f"/v1/customers/{survivor}", headers=bearer()))
    changing = {"version", "updated_at"}
    assert {k: v for k, v in after.items() if k not in changing} == {
        k: v for k, v in before.items() if k not in changing
    }
    assert {k: v for k, v in survivor_after.items() if k not in changing} == {
        k: v for k, v in survivor_before.items() if k not in changing
    }


async def test_a_retried_merge_answers_the_same(
    client: Client, bearer: Bearer, registration: Registration
) -> None:
    """The same Idempotency-Key gives the first answer again, and merges nothing twice."""
    survivor = await register(client, bearer, registration())
    merged = await register(client, bearer, registration())
    key = {"Idempotency-Key": secrets.token_hex(8)}
    seen = {merged: await version(client, bearer, merged)}
    first = await ok(await merge(client, bearer, survivor, merged, headers=key, versions=seen))
    again = await merge(client, bearer, survivor, merged, headers=key, versions=seen)
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert await ok(again) == first


async def test_without_if_match_a_merge_answers_428(
    client: Client, bearer: Bearer, registration: Registration
) -> None:
    survivor = await register(client, bearer, registration())
    merged = await register(client, bearer, registration())
    response = await client.post(
        f"/v1/customers/{survivor}/merge",
        json={"from": [merged], "versions": {merged: 1}},
        headers=bearer(),
    )
    await problem(response, 428)


async def test_a_merged_customer_without_its_version_answers_428_naming_it(
    client: Client, bearer: Bearer, registration: Registration
) -> None:
    survivor = await register(client, bearer, registration())
    merged = await register(client, bearer, registration())
    body = await problem(await merge(client, bearer, survivor, merged, versions={}), 428)
    assert body["errors"] == [
        {"field": f"versions.{merged}", "message": "the version you saw is needed"}
    ]


async def test_a_stale_version_answers_412(
    client: Client, bearer: Bearer, registration: Registration
) -> None:
    """A stale version of the survivor (If-Match) or of a merged customer (versions): 412."""
    survivor = await register(client, bearer, registration())
    merged = await register(client, bearer, registration())
    await problem(await merge(client, bearer, survivor, merged, versions={merged: 7}), 412)
    stale = {"If-Match": '"9"'}
    await problem(await merge(client, bearer, survivor, merged, headers=stale), 412)


async def test_merging_into_itself_answers_409(
    client: Client, bearer: Bearer, registration: Registration
) -> None:
    customer = await register(client, bearer, registration())
    body = await problem(await merge(client, bearer, customer, customer), 409)
    assert body["errors"][0]["field"] == "from" and "itself" in body["detail"]


async def test_merging_a_deleted_or_into_an_erased_customer_answers_409(
    client: Client, bearer: Bearer, registration: Registration
) -> None:
    survivor = await register(client, bearer, registration())
    deleted = await register(client, bearer, registration())
    erased = await register(client, bearer, registration())
    await ok(
        await client.delete(f"/v1/customers/{deleted}", headers={**bearer(), "If-Match": '"1"'})
    )
    await ok(
        await client.post(
            f"/v1/customers/{erased}/erase", headers={**bearer("admin"), "If-Match": '"1"'}
        )
    )
    body = await problem(await merge(client, bearer, survivor, deleted), 409)
    assert "deleted" in body["detail"] and body["errors"][0]["field"] == "from"
    other = await register(client, bearer, registration())
    body = await problem(await merge(client, bearer, erased, other), 409)
    assert "erased" in body["detail"] and body["errors"][0]["field"] == "id"


async def test_a_tombstone_as_survivor_or_a_loop_answers_409(
    client: Client, bearer: Bearer, registration: Registration
) -> None:
    a = await register(client, bearer, registration())
    b = await register(client, bearer, registration())
    c = await register(client, bearer, registration())
    await ok(await merge(client, bearer, a, b))  # b is a tombstone pointing at a
    as_survivor = await problem(await merge(client, bearer, b, c, headers={"If-Match": '"2"'}), 409)
    assert as_survivor["errors"][0]["field"] == "id" and a in as_survivor["detail"]
    loop = await problem(await merge(client, bearer, b, a, headers={"If-Match": '"2"'}), 409)
    assert "loop" in loop["detail"]


async def test_an_unknown_customer_answers_404(
    client: Client, bearer: Bearer, registration: Registration
) -> None:
    survivor = await register(client, bearer, registration())
    unknown = "00000000-0000-4000-8000-000000000000"
    await problem(await merge(client, bearer, survivor, unknown, versions={unknown: 1}), 404)


async def test_a_customer_token_gets_404_and_a_service_token_403(
    client: Client, bearer: Bearer, registration: Registration
) -> None:
    survivor = await register(client, bearer, registration())
    merged = await register(client, bearer, registration())
    as_customer = {"Authorization": bearer("customer", customer_id=survivor)["Authorization"]}
    await problem(await merge(client, bearer, survivor, merged, headers=as_customer), 404)
    await problem(await merge(client, bearer, survivor, merged, role="service"), 403)


async def test_an_empty_from_answers_422(
    client: Client, bearer: Bearer, registration: Registration
) -> None:
    survivor = await register(client, bearer, registration())
    body = await problem(
        await client.post(
            f"/v1/customers/{survivor}/merge",
            json={"from": []},
            headers={**bearer(), "If-Match": '"1"'},
        ),
        422,
    )
    assert body["errors"][0]["field"] == "from"


async def test_unmerging_an_unknown_merge_answers_409_and_without_if_match_428(
    client: Client, bearer: Bearer, registration: Registration
) -> None:
    survivor = await register(client, bearer, registration())
    path = f"/v1/customers/{survivor}/unmerge"
    body = {"merge_id": "00000000-0000-4000-8000-000000000001"}
    await problem(await client.post(path, json=body, headers=bearer()), 428)
    refused = await problem(
        await client.post(path, json=body, headers={**bearer(), "If-Match": '"1"'}), 409
    )
    assert refused["errors"][0]["field"] == "merge_id"


async def test_erasing_a_merged_customer_answers_409_naming_the_survivor(
    client: Client, bearer: Bearer, registration: Registration
) -> None:
    survivor = await register(client, bearer, registration())
    merged = await register(client, bearer, registration())
    await ok(await merge(client, bearer, survivor, merged))
    body = await problem(
        await client.post(
            f"/v1/customers/{merged}/erase", headers={**bearer("admin"), "If-Match": '"2"'}
        ),
        409,
    )
    assert survivor in body["detail"]


async def test_erasing_a_survivor_erases_the_customers_merged_into_it(
    client: Client, bearer: Bearer, registration: Registration
) -> None:
    """They were one person: the merged customer's own events read redacted afterwards."""
    survivor = await register(client, bearer, registration())
    merged_body = registration()
    merged = await register(client, bearer, merged_body)
    await ok(await merge(client, bearer, survivor, merged))
    etag = f'"{await version(client, bearer, survivor)}"'
    await ok(
        await client.post(
            f"/v1/customers/{survivor}/erase", headers={**bearer("admin"), "If-Match": etag}
        )
    )
    events = await ok(await client.get(f"/v1/customers/{merged}/events", headers=bearer("admin")))
    registered = events["items"][0]["payload"]
    assert registered["profile"]["email"] is None
    assert merged_body["email"].split("@")[0] not in str(events)
    assert events["items"][-1]["type"] == "customer.erased"


async def test_an_unmerge_with_a_stale_version_answers_412(
    client: Client, bearer: Bearer, registration: Registration
) -> None:
    survivor = await register(client, bearer, registration())
    merged = await register(client, bearer, registration())
    merge_id = (await ok(await merge(client, bearer, survivor, merged)))["merge_id"]
    response = await client.post(
        f"/v1/customers/{survivor}/unmerge",
        json={"merge_id": merge_id},
        headers={**bearer(), "If-Match": '"1"'},  # the version before the merge
    )
    await problem(response, 412)
    still = await client.get(f"/v1/customers/{merged}", headers=bearer(), allow_redirects=False)
    assert still.status == 308
