"""Repair tickets over HTTP on a real event store, with their read model kept by a follower."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import Any
from uuid import uuid4

import pytest
from aiohttp.test_utils import TestClient
from tests.e2e.answers import ok, problem

Client = TestClient[Any, Any]
Bearer = Callable[..., dict[str, str]]
DEVICE = {"type": "laptop", "make": "Lenovo", "model": "X1", "serial": "PF-123"}


@pytest.fixture(scope="module", autouse=True)
def tickets_view(followed: Any) -> Iterator[None]:
    """The tickets read model, kept current by a follower thread."""
    with followed("tickets"):
        yield


def fields(body: dict[str, Any]) -> list[str | None]:
    return [e["field"] for e in body.get("errors", [])]


async def customer(client: Client, bearer: Bearer) -> str:
    body = {"first_name": "Mo", "email": f"mo.{secrets.token_hex(6)}@example.net"}
    return str(
        (await ok(await client.post("/v1/customers", json=body, headers=bearer()), 201))["id"]
    )


async def open_ticket(client: Client, bearer: Bearer, customer_id: str, **body: Any) -> Any:
    body = {
        "customer_id": customer_id,
        "subject": "No boot",
        "problem": "Dead",
        "device": DEVICE,
        **body,
    }
    response = await client.post("/v1/tickets", json=body, headers=bearer())
    opened = await ok(response, 201)
    assert response.headers["Location"] == f"/v1/tickets/{opened['id']}"
    opened["position"] = int(response.headers["X-Event-Position"])
    return opened


async def set_status(
    client: Client, headers: dict[str, str], ticket_id: str, status: str, version: int, **body: Any
) -> Any:
    return await client.post(
        f"/v1/tickets/{ticket_id}/status",
        json={"status": status, **body},
        headers={**headers, "If-Match": f'"{version}"'},
    )


async def test_a_repair_from_new_to_closed_with_its_timeline(
    client: Client, bearer: Bearer
) -> None:
    """Every step with If-Match; the ticket shows its device, timeline and allowed moves."""
    ticket = await open_ticket(client, bearer, await customer(client, bearer))
    steps = ["diagnosing", "awaiting_parts", "in_repair", "ready_for_pickup", "closed"]
    for version, status in enumerate(steps, start=1):
        response = await set_status(client, bearer(), ticket["id"], status, version, note=status)
        assert (await ok(response))["version"] == version + 1
    response = await client.get(f"/v1/tickets/{ticket['id']}", headers=bearer())
    shown = await ok(response)
    assert response.headers["ETag"] == '"6"'
    assert shown["device"] == DEVICE and shown["status"] == "closed"
    assert [s["status"] for s in shown["timeline"]] == ["new", *steps]
    assert shown["timeline"][-1]["note"] == "closed" and shown["allowed_transitions"] == []


async def test_refused_status_changes(client: Client, bearer: Bearer) -> None:
    """Off the graph: 409 listing the allowed; unknown status: 422; stale: 412; none: 428;
    from a final state: 409 with nothing allowed."""
    ticket = await open_ticket(client, bearer, await customer(client, bearer))
    off_graph = await problem(await set_status(client, bearer(), ticket["id"], "closed", 1), 409)
    assert off_graph["allowed"] == ["diagnosing", "cancelled"] and fields(off_graph) == ["status"]
    assert "diagnosing" in off_graph["detail"]
    unknown = await problem(await set_status(client, bearer(), ticket["id"], "fixed", 1), 422)
    assert fields(unknown) == ["status"]
    await problem(await set_status(client, bearer(), ticket["id"], "diagnosing", 7), 412)
    no_version = await client.post(
        f"/v1/tickets/{ticket['id']}/status", json={"status": "diagnosing"}, headers=bearer()
    )
    await problem(no_version, 428)
    await ok(await set_status(client, bearer(), ticket["id"], "cancelled", 1))
    final = await problem(await set_status(client, bearer(), ticket["id"], "diagnosing", 2), 409)
    assert final["allowed"] == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"customer_id": str(uuid4())}, "customer_id"),
        ({"device": {"make": "Acme"}}, "device.type"),
        ({"subject": ""}, "subject"),
        ({"device": {**DEVICE, "colour": "red"}}, "device.colour"),
    ],
)
async def test_bad_tickets_are_422_naming_the_field(
    client: Client, bearer: Bearer, change: dict[str, Any], field: str
) -> None:
    """An unknown customer, a device without type, a blank subject, an unknown field."""
    body = {"customer_id": await customer(client, bearer), "subject": "s", "problem": "p"}
    response = await client.post(
        "/v1/tickets", json={**body, "device": DEVICE, **change}, headers=bearer()
    )
    assert field in fields(await problem(response, 422))


async def test_a_deleted_customer_gets_no_ticket(client: Client, bearer: Bearer) -> None:
    """409 naming customer_id."""
    customer_id = await customer(client, bearer)
    await client.delete(f"/v1/customers/{customer_id}", headers={**bearer(), "If-Match": '"1"'})
    body = {"customer_id": customer_id, "subject": "s", "problem": "p", "device": DEVICE}
    response = await client.post("/v1/tickets", json=body, headers=bearer())
    assert fields(await problem(response, 409)) == ["customer_id"]


async def test_comments_public_and_internal_and_none_on_a_closed_ticket(
    client: Client, bearer: Bearer
) -> None:
    """Staff comments are internal unless public; a cancelled ticket takes none (409)."""
    ticket = await open_ticket(client, bearer, await customer(client, bearer))
    path = f"/v1/tickets/{ticket['id']}/comments"
    public = await ok(
        await client.post(path, json={"text": "Parts ordered", "public": True}, headers=bearer()),
        201,
    )
    assert public["version"] == 2 and "comment_id" in public
    await ok(await client.post(path, json={"text": "Water damage"}, headers=bearer()), 201)
    shown = await ok(await client.get(f"/v1/tickets/{ticket['id']}", headers=bearer()))
    assert [(c["text"], c["public"]) for c in shown["comments"]] == [
        ("Parts ordered", True),
        ("Water damage", False),
    ]
    await ok(await set_status(client, bearer(), ticket["id"], "cancelled", 3))
    closed = await client.post(path, json={"text": "Too late", "public": True}, headers=bearer())
    assert fields(await problem(closed, 409)) == ["status"]


async def test_lists_by_status_and_customer(client: Client, bearer: Bearer) -> None:
    """The read model lists newest first, filtered; the customer's own view agrees."""
    customer_id = await customer(client, bearer)
    first = await open_ticket(client, bearer, customer_id)
    second = await open_ticket(client, bearer, customer_id)
    moved = await set_status(client, bearer(), first["id"], "diagnosing", 1)
    position = moved.headers["X-Event-Position"]
    query = {"customer_id": customer_id, "min_position": position}
    listed = await ok(await client.get("/v1/tickets", params=query, headers=bearer()))
    assert [i["id"] for i in listed["items"]] == [second["id"], first["id"]]
    assert listed["items"][1]["status"] == "diagnosing"
    assert listed["items"][1]["device"] == DEVICE
    diagnosing = await ok(
        await client.get("/v1/tickets", params={**query, "status": "diagnosing"}, headers=bearer())
    )
    assert [i["id"] for i in diagnosing["items"]] == [first["id"]]
    paged = await ok(
        await client.get("/v1/tickets", params={**query, "limit": "1"}, headers=bearer())
    )
    assert len(paged["items"]) == 1 and paged["next_cursor"]
    rest = await ok(
        await client.get(
            "/v1/tickets",
            params={**query, "limit": "1", "cursor": paged["next_cursor"]},
            headers=bearer(),
        )
    )
    assert [i["id"] for i in rest["items"]] == [first["id"]]
    own = await ok(
        await client.get(
            f"/v1/customers/{customer_id}/tickets",
            params={"min_position": position},
            headers=bearer(),
        )
    )
    assert [i["id"] for i in own["items"]] == [second["id"], first["id"]]


async def test_each_ticket_gets_a_number_shown_wherever_it_is_shown(
    client: Client, bearer: Bearer
) -> None:
    """Opening answers the ticket's number; the ticket and the lists show the same one."""
    customer_id = await customer(client, bearer)
    first = await open_ticket(client, bearer, customer_id)
    second = await open_ticket(client, bearer, customer_id)
    assert isinstance(first["number"], int) and first["number"] > 0
    assert second["number"] != first["number"]
    shown = await ok(await client.get(f"/v1/tickets/{first['id']}", headers=bearer()))
    assert shown["number"] == first["number"]
    query = {"customer_id": customer_id, "min_position": str(second["position"])}
    listed = await ok(await client.get("/v1/tickets", params=query, headers=bearer()))
    assert [i["number"] for i in listed["items"]] == [second["number"], first["number"]]


async def test_a_customer_token_follows_its_own_repairs_only(
    client: Client, bearer: Bearer
) -> None:
    """Its own tickets, with public comments only and no staff notes; its own comments are
    public (asking for an internal one is 422)."""
    mine, theirs = await customer(client, bearer), await customer(client, bearer)
    me = bearer("customer", sub=f"customer:{mine}", customer_id=mine)
    own = await open_ticket(client, bearer, mine)
    other = await open_ticket(client, bearer, theirs)
    await ok(await set_status(client, bearer(), own["id"], "diagnosing", 1, note="staff only"))
    for public in (True, False):
        await client.post(
            f"/v1/tickets/{own['id']}/comments",
            json={"text": f"public={public}", "public": public},
            headers=bearer(),
        )
    shown = await ok(await client.get(f"/v1/tickets/{own['id']}", headers=me))
    assert [c["text"] for c in shown["comments"]] == ["public=True"]
    assert [s["note"] for s in shown["timeline"]] == [None, None]
    mine_comment = await ok(
        await client.post(
            f"/v1/tickets/{own['id']}/comments", json={"text": "When ready?"}, headers=me
        ),
        201,
    )
    listed = await ok(
        await client.get("/v1/tickets", params={"min_position": str(other["position"])}, headers=me)
    )
    assert [i["id"] for i in listed["items"]] == [own["id"]]
    after = await ok(await client.get(f"/v1/tickets/{own['id']}", headers=bearer()))
    assert after["comments"][-1]["public"] is True and after["version"] == mine_comment["version"]
    internal = await client.post(
        f"/v1/tickets/{own['id']}/comments", json={"text": "psst", "public": False}, headers=me
    )
    assert fields(await problem(internal, 422)) == ["public"]


DENIED: dict[str, Callable[[Client, dict[str, str], str, str, str], Any]] = {
    "GET /v1/tickets/{id}": lambda c, me, mine, theirs, other: c.get(
        f"/v1/tickets/{other}", headers=me
    ),
    "POST /v1/tickets/{id}/comments": lambda c, me, mine, theirs, other: c.post(
        f"/v1/tickets/{other}/comments", json={"text": "hi"}, headers=me
    ),
    "POST /v1/tickets/{id}/status": lambda c, me, mine, theirs, other: set_status(
        c, me, other, "diagnosing", 1
    ),
    "GET /v1/tickets?customer_id": lambda c, me, mine, theirs, other: c.get(
        "/v1/tickets", params={"customer_id": theirs}, headers=me
    ),
    "GET /v1/customers/{id}/tickets": lambda c, me, mine, theirs, other: c.get(
        f"/v1/customers/{theirs}/tickets", headers=me
    ),
    "POST /v1/tickets (staff only)": lambda c, me, mine, theirs, other: c.post(
        "/v1/tickets",
        json={"customer_id": mine, "subject": "s", "problem": "p", "device": DEVICE},
        headers=me,
    ),
}


@pytest.mark.parametrize("endpoint", DENIED)
async def test_a_customer_token_gets_404_from(
    client: Client, bearer: Bearer, endpoint: str
) -> None:
    """Another customer's ticket, or a staff-only action: 404 as for a miss; nothing changes."""
    mine, theirs = await customer(client, bearer), await customer(client, bearer)
    me = bearer("customer", sub=f"customer:{mine}", customer_id=mine)
    other = await open_ticket(client, bearer, theirs)
    await problem(await DENIED[endpoint](client, me, mine, theirs, other["id"]), 404)
    shown = await ok(await client.get(f"/v1/tickets/{other['id']}", headers=bearer()))
    assert (shown["version"], shown["comments"]) == (1, [])


async def test_a_status_change_tells_the_customer_its_note_and_keeps_the_staffs(
    client: Client, bearer: Bearer
) -> None:
    """`customer_note` is shown to the customer's own token, `note` only to staff; an
    over-long customer note is 422 naming it."""
    mine = await customer(client, bearer)
    me = bearer("customer", sub=f"customer:{mine}", customer_id=mine)
    ticket = await open_ticket(client, bearer, mine)
    await ok(
        await set_status(
            client,
            bearer(),
            ticket["id"],
            "diagnosing",
            1,
            note="supplier B, 40 EUR",
            customer_note="We are checking the screen; news by Friday",
        )
    )
    step = (await ok(await client.get(f"/v1/tickets/{ticket['id']}", headers=me)))["timeline"][1]
    assert (step["note"], step["customer_note"]) == (
        None,
        "We are checking the screen; news by Friday",
    )
    staff = await ok(await client.get(f"/v1/tickets/{ticket['id']}", headers=bearer()))
    assert staff["timeline"][1]["note"] == "supplier B, 40 EUR"
    too_long = await set_status(
        client, bearer(), ticket["id"], "awaiting_parts", 2, customer_note="x" * 20_000
    )
    assert fields(await problem(too_long, 422)) == ["customer_note"]
