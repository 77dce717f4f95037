"""Interactions, chat messages and satisfaction scores over HTTP, with the conversations
read model followed."""

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

Client = TestClient[Any, Any]
Bearer = Callable[..., dict[str, str]]


@pytest.fixture(scope="module", autouse=True)
def conversations_view(followed: Any) -> Iterator[None]:
    """The conversations read model, kept current by a follower thread."""
    with followed("conversations"):
        yield


def fields(body: dict[str, Any]) -> list[str | None]:
    return [e["field"] for e in body.get("errors", [])]


async def customer(client: Client, bearer: Bearer) -> str:
    body = {"first_name": "Cy", "email": f"cy.{secrets.token_hex(6)}@example.net"}
    return str(
        (await ok(await client.post("/v1/customers", json=body, headers=bearer()), 201))["id"]
    )


async def created(response: Any) -> tuple[dict[str, Any], int]:
    body = await ok(response, 201)
    return body, int(response.headers["X-Event-Position"])


async def read(client: Client, path: str, headers: dict[str, str], position: int) -> Any:
    separator = "&" if "?" in path else "?"
    return await ok(
        await client.get(f"{path}{separator}min_position={position}&wait_ms=10000", headers=headers)
    )


# ---- interactions ------------------------------------------------------------------------


async def test_interactions_are_listed_newest_first_in_keyset_pages_and_by_kind(
    client: Client, bearer: Bearer
) -> None:
    """Three logged at different times: newest first, two per page, and `kind` filters;
    staff_id defaults to the token's sub."""
    customer_id = await customer(client, bearer)
    path = f"/v1/customers/{customer_id}/interactions"
    now = datetime.now(UTC)
    position = 0
    for hours, kind in ((3, "call"), (1, "visit"), (2, "call")):
        body = {
            "kind": kind,
            "direction": "inbound",
            "summary": f"{kind} {hours}h ago",
            "at": (now - timedelta(hours=hours)).isoformat(),
        }
        _, position = await created(
            await client.post(path, json=body, headers=bearer(sub="bob@shop"))
        )
    first = await read(client, f"{path}?limit=2", bearer(), position)
    assert [i["summary"] for i in first["items"]] == ["visit 1h ago", "call 2h ago"]
    assert first["items"][0]["staff_id"] == "bob@shop" == first["items"][0]["logged_by"]
    second = await read(client, f"{path}?limit=2&cursor={first['next_cursor']}", bearer(), position)
    assert [i["summary"] for i in second["items"]] == ["call 3h ago"]
    assert second["next_cursor"] is None
    calls = await read(client, f"{path}?kind=call", bearer(), position)
    assert [i["kind"] for i in calls["items"]] == ["call", "call"]
    named = {"kind": "email", "direction": "outbound", "summary": "Quote", "staff_id": "eve"}
    _, position = await created(await client.post(path, json=named, headers=bearer()))
    emails = await read(client, f"{path}?kind=email", bearer(), position)
    assert [(i["staff_id"], i["direction"]) for i in emails["items"]] == [("eve", "outbound")]


async def test_bad_interactions_are_refused_naming_the_field(
    client: Client, bearer: Bearer
) -> None:
    """Unknown kind or direction, no summary, a time in the future or without an offset: 422;
    a bad cursor or kind filter: 422."""
    customer_id = await customer(client, bearer)
    path = f"/v1/customers/{customer_id}/interactions"
    good = {"kind": "call", "direction": "inbound", "summary": "Asked for a quote"}
    future = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    for change, field in (
        ({"kind": "fax"}, "kind"),
        ({"direction": "sideways"}, "direction"),
        ({"summary": ""}, "summary"),
        ({"at": future}, "at"),
        ({"at": "2025-01-01T10:00:00"}, "at"),
        ({"colour": "red"}, "colour"),
    ):
        refused = await problem(
            await client.post(path, json={**good, **change}, headers=bearer()), 422
        )
        assert field in fields(refused), refused
    assert fields(await problem(await client.get(f"{path}?kind=fax", headers=bearer()), 422)) == [
        "kind.0"
    ]
    assert fields(
        await problem(await client.get(f"{path}?cursor=nope", headers=bearer()), 422)
    ) == ["cursor"]


async def test_interactions_are_staff_only_and_need_a_customer_that_takes_records(
    client: Client, bearer: Bearer
) -> None:
    """A customer token: 404 even for its own; unknown customer 404; erased 409; stale 412."""
    customer_id = await customer(client, bearer)
    path = f"/v1/customers/{customer_id}/interactions"
    body = {"kind": "call", "direction": "inbound", "summary": "Hi"}
    own = bearer("customer", customer_id=customer_id)
    await problem(await client.post(path, json=body, headers=own), 404)
    await problem(await client.get(path, headers=own), 404)
    await problem(
        await client.post(f"/v1/customers/{uuid4()}/interactions", json=body, headers=bearer()),
        404,
    )
    stale = {**bearer(), "If-Match": '"5"'}
    await problem(await client.post(path, json=body, headers=stale), 412)
    erased = await client.post(
        f"/v1/customers/{customer_id}/erase", headers={**bearer("admin"), "If-Match": '"1"'}
    )
    assert erased.status == 200
    await problem(await client.post(path, json=body, headers=bearer()), 409)


# ---- chat --------------------------------------------------------------------------------


async def test_staff_and_the_customer_chat_and_each_reads_the_conversation(
    client: Client, bearer: Bearer
) -> None:
    """Staff post as `staff`, the portal token as `customer`; both read it newest first;
    another customer's token gets 404 for reading and posting."""
    customer_id = await customer(client, bearer)
    path = f"/v1/customers/{customer_id}/messages"
    own = bearer("customer", sub="cy@portal", customer_id=customer_id)
    _, position = await created(
        await client.post(path, json={"text": "Your car is ready"}, headers=bearer())
    )
    _, position = await created(
        await client.post(path, json={"text": "Thanks, coming at 5"}, headers=own)
    )
    for headers in (bearer(), own):
        chat = await read(client, path, headers, position)
        assert [(m["sender"], m["author"], m["text"]) for m in chat["items"]] == [
            ("customer", "cy@portal", "Thanks, coming at 5"),
            ("staff", "alice@shop", "Your car is ready"),
        ]
    stranger = bearer("customer", customer_id=await customer(client, bearer))
    await problem(await client.get(path, headers=stranger), 404)
    await problem(await client.post(path, json={"text": "hi"}, headers=stranger), 404)


async def test_bad_messages_are_refused(client: Client, bearer: Bearer) -> None:
    """Empty, too long, or with control characters: 422 on `text`; unknown customer: 404;
    a deleted customer: 409."""
    customer_id = await customer(client, bearer)
    path = f"/v1/customers/{customer_id}/messages"
    for text in ("", " ", "x" * 5001, "bell\x07"):
        refused = await problem(await client.post(path, json={"text": text}, headers=bearer()), 422)
        assert fields(refused) == ["text"], refused
    await problem(
        await client.post(
            f"/v1/customers/{uuid4()}/messages", json={"text": "hi"}, headers=bearer()
        ),
        404,
    )
    deleted = await client.delete(
        f"/v1/customers/{customer_id}", headers={**bearer(), "If-Match": '"1"'}
    )
    assert deleted.status == 200
    await problem(await client.post(path, json={"text": "hi"}, headers=bearer()), 409)


async def test_a_retried_message_is_posted_once(client: Client, bearer: Bearer) -> None:
    """The same Idempotency-Key and body, even sent at once: one message."""
    customer_id = await customer(client, bearer)
    path = f"/v1/customers/{customer_id}/messages"
    keyed = {**bearer(), "Idempotency-Key": f"chat-{secrets.token_hex(4)}"}
    answers = await asyncio.gather(
        *(client.post(path, json={"text": "Once"}, headers=keyed) for _ in range(3))
    )
    bodies = [await ok(a, 201) for a in answers]
    assert len({b["id"] for b in bodies}) == 1
    position = max(int(a.headers["X-Event-Position"]) for a in answers)
    chat = await read(client, path, bearer(), position)
    assert [m["text"] for m in chat["items"]] == ["Once"]


# ---- satisfaction ------------------------------------------------------------------------


async def open_ticket(client: Client, bearer: Bearer, customer_id: str) -> str:
    body = {
        "customer_id": customer_id,
        "subject": "Screen",
        "problem": "Cracked",
        "device": {"type": "phone"},
    }
    return str((await ok(await client.post("/v1/tickets", json=body, headers=bearer()), 201))["id"])


async def test_scores_are_listed_with_their_average_and_a_ticket_takes_one(
    client: Client, bearer: Bearer
) -> None:
    """The customer scores its repair in the portal, staff record a general score; the tab
    lists both with count and average; a second score for the ticket: 409."""
    customer_id = await customer(client, bearer)
    ticket_id = await open_ticket(client, bearer, customer_id)
    path = f"/v1/customers/{customer_id}/satisfaction"
    own = bearer("customer", sub="cy@portal", customer_id=customer_id)
    body = {"score": 5, "comment": "Fast repair", "ticket_id": ticket_id}
    _, position = await created(await client.post(path, json=body, headers=own))
    _, position = await created(await client.post(path, json={"score": 2}, headers=bearer()))
    again = await problem(
        await client.post(path, json={"score": 1, "ticket_id": ticket_id}, headers=own), 409
    )
    assert fields(again) == ["ticket_id"]
    for headers in (own, bearer()):
        tab = await read(client, path, headers, position)
        assert (tab["count"], tab["average"]) == (2, "3.50")
        assert [(s["score"], s["ticket_id"], s["given_by"]) for s in tab["items"]] == [
            (2, None, "alice@shop"),
            (5, ticket_id, "cy@portal"),
        ]
    page = await read(client, f"{path}?limit=1", bearer(), position)
    assert len(page["items"]) == 1 and page["count"] == 2 and page["next_cursor"]
    empty = await read(client, f"/v1/customers/{uuid4()}/satisfaction", bearer(), position)
    assert (empty["items"], empty["count"], empty["average"]) == ([], 0, None)


async def test_two_racing_scores_for_one_ticket_make_one(client: Client, bearer: Bearer) -> None:
    """Sent at once: one 201, the others 409 (the score's id is derived from the ticket)."""
    customer_id = await customer(client, bearer)
    ticket_id = await open_ticket(client, bearer, customer_id)
    path = f"/v1/customers/{customer_id}/satisfaction"
    answers = await asyncio.gather(
        *(
            client.post(path, json={"score": s, "ticket_id": ticket_id}, headers=bearer())
            for s in (1, 3, 5)
        )
    )
    assert sorted(a.status for a in answers) == [201, 409, 409]


async def test_bad_scores_are_refused_naming_the_field(client: Client, bearer: Bearer) -> None:
    """Out of 1-5, not an integer, another customer's or an unknown ticket: 422; a customer
    token for another customer: 404."""
    customer_id, other = await customer(client, bearer), await customer(client, bearer)
    others_ticket = await open_ticket(client, bearer, other)
    path = f"/v1/customers/{customer_id}/satisfaction"
    for body, field in (
        ({"score": 0}, "score"),
        ({"score": 6}, "score"),
        ({"score": 4.5}, "score"),
        ({"score": "5"}, "score"),
        ({"score": 4, "ticket_id": others_ticket}, "ticket_id"),
        ({"score": 4, "ticket_id": str(uuid4())}, "ticket_id"),
        ({"score": 4, "ticket_id": "12"}, "ticket_id"),
    ):
        refused = await problem(await client.post(path, json=body, headers=bearer()), 422)
        assert fields(refused) == [field], refused
    stranger = bearer("customer", customer_id=other)
    await problem(await client.post(path, json={"score": 3}, headers=stranger), 404)
    await problem(await client.get(path, headers=stranger), 404)
    await problem(
        await client.post(
            f"/v1/customers/{uuid4()}/satisfaction", json={"score": 3}, headers=bearer()
        ),
        404,
    )


async def test_the_history_shows_each_interaction_message_and_score(
    client: Client, bearer: Bearer, followed: Any
) -> None:
    """One history row per record, its fields named `interactions[<id>].kind`, ..."""
    customer_id = await customer(client, bearer)
    base = f"/v1/customers/{customer_id}"
    call = {"kind": "call", "direction": "outbound", "summary": "Reminder", "staff_id": "bob"}
    logged, _ = await created(
        await client.post(f"{base}/interactions", json=call, headers=bearer())
    )
    posted, _ = await created(
        await client.post(f"{base}/messages", json={"text": "See you"}, headers=bearer())
    )
    scored, position = await created(
        await client.post(
            f"{base}/satisfaction", json={"score": 4, "comment": "Nice"}, headers=bearer()
        )
    )
    with followed("history"):
        history = await ok(
            await client.get(
                f"{base}/history?min_position={position}&wait_ms=10000", headers=bearer()
            )
        )
    rows = {row["type"]: {c["field"]: c["to"] for c in row["changes"]} for row in history["items"]}
    assert rows["interaction.logged"][f"interactions[{logged['id']}].kind"] == "call"
    assert rows["interaction.logged"][f"interactions[{logged['id']}].staff_id"] == "bob"
    assert rows["chat_message.posted"] == {
        f"messages[{posted['id']}].sender": "staff",
        f"messages[{posted['id']}].text": "See you",
    }
    assert rows["satisfaction_score.given"] == {
        f"satisfaction[{scored['id']}].score": 4,
        f"satisfaction[{scored['id']}].comment": "Nice",
    }
