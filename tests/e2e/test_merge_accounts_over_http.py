"""Over HTTP: a merge moves the loyalty balance and the cards that fit, the loyalty and cards
tabs follow it and its undoing, an unmerge whose points were spent answers 409 naming
`loyalty`, and NATS carries the ledger entries but never a card or its token."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from tests.e2e.answers import ok, problem
from tests.e2e.test_merge_everywhere import post, relay
from tests.e2e.test_notifications import publish_new_events, stream_messages

from domain.service import CustomerService
from infrastructure.servers import EmbeddedNats
from workers.relay import Relay

__all__ = ["relay"]  # the fixture, used here

Client = TestClient[Any, Any]
Bearer = Callable[..., dict[str, str]]
Registration = Callable[..., dict[str, Any]]
CARD = {"provider": "stripe", "brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2040}


@pytest.fixture
def accounts(followed: Any) -> Iterator[None]:
    with followed("accounts"):
        yield


async def tabs(client: Client, bearer: Bearer, customer: str, position: int) -> Any:
    params = {"min_position": str(position)}
    loyalty = await ok(
        await client.get(f"/v1/customers/{customer}/loyalty", params=params, headers=bearer())
    )
    cards = await ok(
        await client.get(f"/v1/customers/{customer}/cards", params=params, headers=bearer())
    )
    return loyalty["balance"], sorted(c["token"] for c in cards["items"]), loyalty["items"]


async def two_with_accounts(client: Client, bearer: Bearer, registration: Registration) -> Any:
    survivor, _ = await post(client, bearer, "/v1/customers", registration())
    merged, _ = await post(client, bearer, "/v1/customers", registration())
    s, m = survivor["id"], merged["id"]
    await post(client, bearer, f"/v1/customers/{s}/loyalty", {"points": 100, "reason": "sign-up"})
    await post(client, bearer, f"/v1/customers/{m}/loyalty", {"points": 30, "reason": "visit"})
    await post(client, bearer, f"/v1/customers/{s}/cards", {**CARD, "token": "pm_own"})
    for token in ("pm_1", "pm_2"):
        await post(client, bearer, f"/v1/customers/{m}/cards", {**CARD, "token": token})
    return s, m


async def test_the_loyalty_and_cards_tabs_follow_a_merge_and_its_undoing(
    client: Client, bearer: Bearer, registration: Registration, accounts: None
) -> None:
    """The survivor's tab shows the added balance, an entry naming the merge and the card
    that fitted; the one that did not stays on the merged customer, named in the answer."""
    s, m = await two_with_accounts(client, bearer, registration)
    merge, position = await post(
        client, bearer, f"/v1/customers/{s}/merge", {"from": [m], "versions": {m: 1}}, etag=1
    )
    moved = merge["moved"][m]
    assert moved["loyalty_points"] == 30 and len(moved["cards"]) == 1
    assert [c["reason"] for c in moved["cards_not_moved"]] == ["no_room"]
    balance, tokens, entries = await tabs(client, bearer, s, position)
    assert (balance, tokens) == (130, ["pm_1", "pm_own"])
    assert entries[0]["points"] == 30 and merge["merge_id"] in entries[0]["reason"]
    balance, tokens, entries = await tabs(client, bearer, m, position)
    assert (balance, tokens) == (0, ["pm_2"])
    assert [e["points"] for e in entries] == [-30, 30]

    undone, position = await post(
        client, bearer, f"/v1/customers/{s}/unmerge", {"merge_id": merge["merge_id"]}, etag=2
    )
    assert undone["moved_back"][m]["loyalty_points"] == 30
    assert undone["moved_back"][m]["cards"] == moved["cards"]
    assert (await tabs(client, bearer, s, position))[:2] == (100, ["pm_own"])
    assert (await tabs(client, bearer, m, position))[:2] == (30, ["pm_1", "pm_2"])


async def test_an_unmerge_whose_points_were_spent_answers_409_naming_loyalty(
    client: Client, bearer: Bearer, registration: Registration
) -> None:
    s, m = await two_with_accounts(client, bearer, registration)
    merge, _ = await post(
        client, bearer, f"/v1/customers/{s}/merge", {"from": [m], "versions": {m: 1}}, etag=1
    )
    await post(client, bearer, f"/v1/customers/{s}/loyalty", {"points": -110, "reason": "spa"})
    response = await client.post(
        f"/v1/customers/{s}/unmerge",
        json={"merge_id": merge["merge_id"]},
        headers={**bearer(), "If-Match": '"2"'},
    )
    body = await problem(response, 409)
    assert body["errors"][0]["field"] == "loyalty"
    assert "balance is 20, cannot take back the 30 points" in body["detail"]


async def test_a_tombstone_takes_no_points_and_no_card_409_naming_the_survivor(
    client: Client, bearer: Bearer, registration: Registration
) -> None:
    s, m = await two_with_accounts(client, bearer, registration)
    await post(client, bearer, f"/v1/customers/{s}/merge", {"from": [m], "versions": {m: 1}}, 1)
    points = {"points": 5, "reason": "late"}
    for path, body in (("loyalty", points), ("cards", {**CARD, "token": "pm_3"})):
        response = await client.post(f"/v1/customers/{m}/{path}", json=body, headers=bearer())
        assert s in (await problem(response, 409))["detail"]


async def test_the_moved_points_are_published_and_no_card_or_token_is(
    client: Client,
    bearer: Bearer,
    registration: Registration,
    relay: tuple[Relay, EmbeddedNats],
    service: CustomerService,
) -> None:
    """crm.loyalty_ledger.points_moved on both sides, naming the merge; the card wallet's
    events (a provider's token) stay off the bus."""
    sink, nats_server = relay
    s, m = await two_with_accounts(client, bearer, registration)
    merge, _ = await post(
        client, bearer, f"/v1/customers/{s}/merge", {"from": [m], "versions": {m: 1}}, etag=1
    )
    await asyncio.to_thread(publish_new_events, sink, service)
    received = await stream_messages(nats_server.url)
    moved = [body for subject, body in received if subject == "crm.loyalty_ledger.points_moved"]
    assert sorted((b["data"]["customer_id"], b["data"]["points"]) for b in moved) == sorted(
        [(s, 30), (m, -30)]
    )
    assert all(b["data"]["merge_id"] == merge["merge_id"] for b in moved)
    assert not [subject for subject, _ in received if "card" in subject]
    everything = json.dumps(received)
    assert "pm_1" not in everything and "pm_own" not in everything
