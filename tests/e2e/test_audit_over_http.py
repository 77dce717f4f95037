"""The audit API over HTTP: the global log page by page, and the hash chain's check."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest

from domain.service import CustomerService

Client = Any


async def _register(client: Client, bearer: Any, registration: Any) -> tuple[str, int]:
    response = await client.post("/v1/customers", json=registration(), headers=bearer())
    assert response.status == 201, await response.text()
    return str((await response.json())["id"]), int(response.headers["X-Event-Position"])


async def test_the_log_pages_every_event_in_commit_order(
    client: Client, bearer: Any, registration: Any, service: CustomerService
) -> None:
    """Paging from a position with a small limit walks every later event once, in order,
    with the envelope of the audit view and the stream each event belongs to."""
    before = service.recorder.max_notification_id() or 0
    first, _ = await _register(client, bearer, registration)
    await client.post(f"/v1/customers/{first}/notes", json={"text": "hi"}, headers=bearer())
    second, head = await _register(client, bearer, registration)
    items: list[dict[str, Any]] = []
    cursor: str | None = str(before)
    while cursor is not None:
        response = await client.get(
            "/v1/events", params={"after": cursor, "limit": "3"}, headers=bearer("service")
        )
        assert response.status == 200, await response.text()
        page = await response.json()
        assert len(page["items"]) <= 3
        items += page["items"]
        cursor = page["next_cursor"]
    positions = [item["position"] for item in items]
    assert positions == sorted(set(positions)) and positions[0] > before
    assert positions[-1] >= head
    ours = [(i["stream_id"], i["version"], i["type"]) for i in items]
    assert (first, 1, "customer.registered") in ours
    assert (first, 2, "customer.note_added") in ours
    assert (second, 1, "customer.registered") in ours
    note = next(i for i in items if i["type"] == "customer.note_added" and i["stream_id"] == first)
    assert note["actor"] == "alice@shop" and note["payload"]["text"] == "hi"
    assert {"at", "correlation_id"} <= set(note)


async def test_the_log_masks_secrets_and_credentials(
    client: Client, bearer: Any, registration: Any, service: CustomerService
) -> None:
    """An equipment secret shows as *** in the global log, never sealed or in clear."""
    customer, position = await _register(client, bearer, registration)
    await client.post(
        f"/v1/customers/{customer}/systems",
        json={"system_type": "alarm", "secret": "hunter2"},
        headers=bearer(),
    )
    response = await client.get(
        "/v1/events", params={"after": str(position)}, headers=bearer("admin")
    )
    text = await response.text()
    assert response.status == 200 and "hunter2" not in text
    installed = [
        i for i in (await response.json())["items"] if i["type"] == "customer.system_installed"
    ]
    assert installed and all(i["payload"]["system"]["sealed_secret"] == "***" for i in installed)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"after": "-1"}, "after"),
        ({"after": "x"}, "after"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "abc"}, "cursor"),
    ],
)
async def test_bad_log_parameters_answer_422_naming_them(
    client: Client, bearer: Any, params: dict[str, str], field: str
) -> None:
    """A bad `after` or `limit` (or an unknown parameter) answers 422 naming it."""
    response = await client.get("/v1/events", params=params, headers=bearer("admin"))
    assert response.status == 422
    assert response.content_type == "application/problem+json"
    assert [e["field"] for e in (await response.json())["errors"]] == [field]


@pytest.mark.parametrize("path", ["/v1/events", "/v1/audit/verify"])
async def test_audit_routes_are_for_admin_and_service_only(
    client: Client, bearer: Any, path: str
) -> None:
    """Staff get 403, a customer token 404 (it must not learn the route exists), no token 401."""
    assert (await client.get(path, headers=bearer("staff"))).status == 403
    customer = bearer("customer", sub="c@x", customer_id=str(uuid4()))
    assert (await client.get(path, headers=customer)).status == 404
    assert (await client.get(path)).status == 401


async def test_verify_checks_the_whole_log_and_one_stream(
    client: Client, bearer: Any, registration: Any
) -> None:
    """The untouched store verifies: every stream, and one stream with its event count."""
    customer, _ = await _register(client, bearer, registration)
    await client.post(f"/v1/customers/{customer}/notes", json={"text": "x"}, headers=bearer())
    response = await client.get("/v1/audit/verify", headers=bearer("admin"))
    body = await response.json()
    assert response.status == 200, body
    assert body["ok"] is True and body["first_break"] is None
    assert body["events_checked"] >= 2 and body["streams_checked"] >= 1
    assert body["head"]["position"] >= 2
    one = await client.get(
        "/v1/audit/verify", params={"stream_id": customer}, headers=bearer("service")
    )
    assert await one.json() == {
        "ok": True,
        "streams_checked": 1,
        "events_checked": 2,
        "first_break": None,
        "backfilled_through": None,
        "head": None,
    }


async def test_verify_of_an_unknown_stream_is_404_and_a_bad_id_422(
    client: Client, bearer: Any
) -> None:
    """A stream with no events answers 404; a stream_id that is no UUID answers 422."""
    unknown = await client.get(
        "/v1/audit/verify", params={"stream_id": str(uuid4())}, headers=bearer("admin")
    )
    assert unknown.status == 404
    bad = await client.get(
        "/v1/audit/verify", params={"stream_id": "nope"}, headers=bearer("admin")
    )
    assert bad.status == 422
    assert [e["field"] for e in (await bad.json())["errors"]] == ["stream_id"]
