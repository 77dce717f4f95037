"""Loyalty points, stored cards and prepaid packages over HTTP on a real event store, with
the accounts and history read models kept by followers."""

from __future__ import annotations

import asyncio
import contextlib
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
CARD: dict[str, Any] = {
    "provider": "stripe",
    "token": "pm_1NvXyZabc",
    "brand": "visa",
    "last4": "4242",
    "exp_month": 12,
    "exp_year": datetime.now(UTC).year + 3,
}


@pytest.fixture(scope="module", autouse=True)
def views(followed: Any) -> Iterator[None]:
    """The accounts and history read models, kept current by follower threads."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(followed("accounts"))
        stack.enter_context(followed("history"))
        yield


def fields(body: dict[str, Any]) -> list[str | None]:
    return [e["field"] for e in body.get("errors", [])]


async def customer(client: Client, bearer: Bearer) -> str:
    body = {"first_name": "Mo", "email": f"mo.{secrets.token_hex(6)}@example.net"}
    created = await ok(await client.post("/v1/customers", json=body, headers=bearer()), 201)
    return str(created["id"])


async def tab(client: Client, headers: dict[str, str], path: str, position: int) -> Any:
    """A tab once its read model has caught up with `position`."""
    joiner = "&" if "?" in path else "?"
    return await ok(await client.get(f"{path}{joiner}min_position={position}", headers=headers))


async def post(
    client: Client, path: str, headers: dict[str, str], body: Any = None, status: int = 201
) -> tuple[Any, int]:
    response = await client.post(path, json=body, headers=headers)
    answer = await ok(response, status)
    return answer, int(response.headers["X-Event-Position"])


# ---- loyalty ------------------------------------------------------------------------------


async def test_points_are_awarded_and_taken_and_never_below_zero(
    client: Client, bearer: Bearer
) -> None:
    """The ledger tab lists entries newest first with the balance; an overdraw is a 409
    naming the balance, and changes nothing."""
    base = f"/v1/customers/{await customer(client, bearer)}/loyalty"
    await post(client, base, bearer(), {"points": 100, "reason": "signed up"})
    taken, position = await post(client, base, bearer(), {"points": -60, "reason": "a wash"})
    assert (taken["balance"], taken["version"]) == (40, 3)
    refused = await problem(
        await client.post(base, json={"points": -50, "reason": "too much"}, headers=bearer()), 409
    )
    assert refused["detail"] == "balance is 40, cannot take 50"
    assert fields(refused) == ["points"] and refused["balance"] == 40
    shown = await tab(client, bearer(), base, position)
    assert (shown["balance"], shown["version"]) == (40, 3)
    assert [(e["points"], e["reason"], e["balance"]) for e in shown["items"]] == [
        (-60, "a wash", 40),
        (100, "signed up", 100),
    ]
    first = await ok(await client.get(f"{base}?limit=1", headers=bearer()))
    assert len(first["items"]) == 1 and first["next_cursor"]
    rest = await ok(
        await client.get(f"{base}?limit=1&cursor={first['next_cursor']}", headers=bearer())
    )
    assert [e["points"] for e in rest["items"]] == [100] and rest["next_cursor"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"points": 0, "reason": "x"}, "points"),
        ({"points": "5", "reason": "x"}, "points"),
        ({"points": 1.5, "reason": "x"}, "points"),
        ({"points": 10_000_000, "reason": "x"}, "points"),
        ({"points": 5}, "reason"),
        ({"points": 5, "reason": "x", "colour": "red"}, "colour"),
    ],
)
async def test_bad_entries_are_422_naming_the_field(
    client: Client, bearer: Bearer, body: dict[str, Any], field: str
) -> None:
    base = f"/v1/customers/{await customer(client, bearer)}/loyalty"
    refused = await problem(await client.post(base, json=body, headers=bearer()), 422)
    assert field in fields(refused)


async def test_loyalty_if_match_idempotency_and_unknown_customers(
    client: Client, bearer: Bearer
) -> None:
    """If-Match is the ledger's version (0 before any entry); a keyed retry records once."""
    base = f"/v1/customers/{await customer(client, bearer)}/loyalty"
    entry = {"points": 5, "reason": "visit"}
    stale = {**bearer(), "If-Match": '"1"'}
    await problem(await client.post(base, json=entry, headers=stale), 412)
    keyed = {**bearer(), "If-Match": '"0"', "Idempotency-Key": f"k-{secrets.token_hex(4)}"}
    first, _ = await post(client, base, keyed, entry)
    again = await client.post(base, json=entry, headers=keyed)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (await ok(again, 201)) == first
    _, position = await post(client, base, bearer(), {"points": 1, "reason": "more"})
    assert (await tab(client, bearer(), base, position))["balance"] == 6
    unknown = f"/v1/customers/{uuid4()}/loyalty"
    await problem(await client.post(unknown, json=entry, headers=bearer()), 404)
    await problem(
        await client.post("/v1/customers/nope/loyalty", json=entry, headers=bearer()), 404
    )


async def test_a_customer_reads_its_own_ledger_only_and_cannot_award_itself(
    client: Client, bearer: Bearer
) -> None:
    customer_id = await customer(client, bearer)
    base = f"/v1/customers/{customer_id}/loyalty"
    _, position = await post(client, base, bearer(), {"points": 7, "reason": "visit"})
    own = bearer("customer", sub="mo", customer_id=customer_id)
    assert (await tab(client, own, base, position))["balance"] == 7
    await problem(await client.post(base, json={"points": 9, "reason": "me"}, headers=own), 404)
    other = f"/v1/customers/{await customer(client, bearer)}/loyalty"
    await problem(await client.get(other, headers=own), 404)


async def test_deleted_and_erased_customers_take_no_entries_and_reasons_go(
    client: Client, bearer: Bearer
) -> None:
    """A deleted customer is 409 (deleted), an erased one 409 (erased); the erasure nulls
    the reasons in the tab and keeps the points."""
    customer_id = await customer(client, bearer)
    base = f"/v1/customers/{customer_id}"
    await post(client, f"{base}/loyalty", bearer(), {"points": 3, "reason": "Mo's birthday"})
    await ok(await client.delete(base, headers={**bearer(), "If-Match": '"1"'}))
    entry = {"points": 1, "reason": "x"}
    deleted = await problem(await client.post(f"{base}/loyalty", json=entry, headers=bearer()), 409)
    assert fields(deleted) == ["deleted"]
    await ok(await client.post(f"{base}/restore", headers={**bearer(), "If-Match": '"2"'}))
    erased = await client.post(f"{base}/erase", headers={**bearer("admin"), "If-Match": '"3"'})
    position = int((await ok(erased) and erased).headers["X-Event-Position"])
    refused = await problem(await client.post(f"{base}/loyalty", json=entry, headers=bearer()), 409)
    assert fields(refused) == ["erased"]
    shown = await tab(client, bearer(), f"{base}/loyalty", position)
    assert [(e["points"], e["reason"]) for e in shown["items"]] == [(3, None)]


# ---- cards --------------------------------------------------------------------------------


async def test_at_most_two_cards_and_removal_needs_if_match(client: Client, bearer: Bearer) -> None:
    """Two cards stored, a third 409 naming the limit; a removal needs the wallet's version."""
    base = f"/v1/customers/{await customer(client, bearer)}/cards"
    first, _ = await post(client, base, bearer(), CARD)
    second, _ = await post(client, base, bearer(), {**CARD, "token": "pm_two", "brand": "amex"})
    third = await client.post(base, json={**CARD, "token": "pm_three"}, headers=bearer())
    assert "at most 2 cards" in (await problem(third, 409))["detail"]
    card = f"{base}/{first['card_id']}"
    await problem(await client.delete(card, headers=bearer()), 428)
    await problem(await client.delete(card, headers={**bearer(), "If-Match": '"1"'}), 412)
    removed = await client.delete(card, headers={**bearer(), "If-Match": f'"{second["version"]}"'})
    assert (await ok(removed))["version"] == 4
    again = await client.delete(card, headers={**bearer(), "If-Match": '"4"'})
    await problem(again, 404)
    shown = await tab(client, bearer(), base, int(removed.headers["X-Event-Position"]))
    assert shown["version"] == 4
    assert [(c["token"], c["brand"], c["last4"]) for c in shown["items"]] == [
        ("pm_two", "amex", "4242")
    ]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"brand": "bitcoin"}, "brand"),
        ({"last4": "12345"}, "last4"),
        ({"exp_month": 0}, "exp_month"),
        ({"exp_year": 2020}, "exp_year"),
        ({"token": ""}, "token"),
        ({"token": "4111 1111 1111 1111"}, "token"),
        ({"cvc": "123"}, "cvc"),
    ],
)
async def test_a_card_is_a_token_with_brand_last4_and_an_expiry(
    client: Client, bearer: Bearer, change: dict[str, Any], field: str
) -> None:
    base = f"/v1/customers/{await customer(client, bearer)}/cards"
    refused = await problem(await client.post(base, json={**CARD, **change}, headers=bearer()), 422)
    assert field in fields(refused)


async def test_a_customer_adds_and_lists_its_own_cards_without_tokens(
    client: Client, bearer: Bearer
) -> None:
    customer_id = await customer(client, bearer)
    base = f"/v1/customers/{customer_id}/cards"
    own = bearer("customer", sub="mo", customer_id=customer_id)
    added, position = await post(client, base, own, CARD)
    shown = await tab(client, own, base, position)
    assert [(c["id"], c["token"], c["added_by"]) for c in shown["items"]] == [
        (added["card_id"], None, "mo")
    ]
    staff_view = await tab(client, bearer(), base, position)
    assert staff_view["items"][0]["token"] == CARD["token"]
    removed = await client.delete(
        f"{base}/{added['card_id']}", headers={**own, "If-Match": f'"{added["version"]}"'}
    )
    assert (await ok(removed))["version"] == added["version"] + 1
    other = f"/v1/customers/{await customer(client, bearer)}/cards"
    await problem(await client.post(other, json=CARD, headers=own), 404)
    await problem(await client.get(other, headers=own), 404)


async def test_an_erased_customers_cards_are_dropped_and_new_ones_refused(
    client: Client, bearer: Bearer
) -> None:
    customer_id = await customer(client, bearer)
    base = f"/v1/customers/{customer_id}"
    await post(client, f"{base}/cards", bearer(), CARD)
    erased = await client.post(f"{base}/erase", headers={**bearer("admin"), "If-Match": '"1"'})
    await ok(erased)
    shown = await tab(client, bearer(), f"{base}/cards", int(erased.headers["X-Event-Position"]))
    assert shown["items"] == []
    refused = await client.post(f"{base}/cards", json={**CARD, "token": "pm_x"}, headers=bearer())
    assert fields(await problem(refused, 409)) == ["erased"]


# ---- packages -----------------------------------------------------------------------------


async def test_sessions_are_used_until_none_is_left(client: Client, bearer: Bearer) -> None:
    """Each use takes one (If-Match optional); past zero is a 409 naming sessions_left; the
    tab shows sessions left, the price and the status, filtered by status."""
    base = f"/v1/customers/{await customer(client, bearer)}/packages"
    package = {"name": "2 grooming sessions", "sessions": 2, "price": "80.00", "service_id": "g"}
    bought, _ = await post(client, base, bearer(), package)
    use = f"{base}/{bought['id']}/use"
    first, _ = await post(client, use, bearer(), status=200)
    assert (first["sessions_left"], first["version"]) == (1, 2)
    await problem(await client.post(use, headers={**bearer(), "If-Match": '"1"'}), 412)
    _, position = await post(client, use, {**bearer(), "If-Match": '"2"'}, status=200)
    used_up = await problem(await client.post(use, headers=bearer()), 409)
    assert fields(used_up) == ["sessions_left"]
    shown = await tab(client, bearer(), base, position)
    assert [(p["sessions_left"], p["price"], p["status"]) for p in shown["items"]] == [
        (0, "80.00", "used_up")
    ]
    active = await ok(await client.get(f"{base}?status=active", headers=bearer()))
    assert active["items"] == []


async def test_no_use_after_the_expiry_or_once_deactivated(client: Client, bearer: Bearer) -> None:
    base = f"/v1/customers/{await customer(client, bearer)}/packages"
    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    expiring, _ = await post(
        client, base, bearer(), {"name": "one", "sessions": 3, "expires_at": soon}
    )
    lasting, _ = await post(client, base, bearer(), {"name": "two", "sessions": 3})
    await asyncio.sleep(1.2)
    expired = await problem(
        await client.post(f"{base}/{expiring['id']}/use", headers=bearer()), 409
    )
    assert fields(expired) == ["expires_at"]
    deactivate = f"{base}/{lasting['id']}/deactivate"
    await problem(await client.post(deactivate, headers=bearer()), 428)
    _, position = await post(client, deactivate, {**bearer(), "If-Match": '"1"'}, status=200)
    refused = await problem(await client.post(f"{base}/{lasting['id']}/use", headers=bearer()), 409)
    assert fields(refused) == ["status"]
    shown = await tab(client, bearer(), base, position)
    assert [(p["name"], p["status"]) for p in shown["items"]] == [
        ("two", "deactivated"),
        ("one", "expired"),
    ]
    past = {"name": "old", "sessions": 1, "expires_at": "2020-01-01T00:00:00Z"}
    assert fields(await problem(await client.post(base, json=past, headers=bearer()), 422)) == [
        "expires_at"
    ]


async def test_packages_are_the_customers_own(client: Client, bearer: Bearer) -> None:
    """A customer reads its packages but cannot use them; another customer's is 404."""
    customer_id = await customer(client, bearer)
    base = f"/v1/customers/{customer_id}/packages"
    bought, position = await post(client, base, bearer(), {"name": "wash", "sessions": 1})
    own = bearer("customer", sub="mo", customer_id=customer_id)
    assert [p["id"] for p in (await tab(client, own, base, position))["items"]] == [bought["id"]]
    await problem(await client.post(f"{base}/{bought['id']}/use", headers=own), 404)
    other = f"/v1/customers/{await customer(client, bearer)}/packages/{bought['id']}/use"
    await problem(await client.post(other, headers=bearer()), 404)
    await problem(await client.post(f"{base}/{uuid4()}/use", headers=bearer()), 404)
    bad = {"name": "x", "sessions": 0, "price": 1.5}
    assert set(fields(await problem(await client.post(base, json=bad, headers=bearer()), 422))) == {
        "sessions",
        "price",
    }


# ---- history ------------------------------------------------------------------------------


async def test_the_history_shows_points_cards_and_sessions(client: Client, bearer: Bearer) -> None:
    customer_id = await customer(client, bearer)
    base = f"/v1/customers/{customer_id}"
    entry, _ = await post(client, f"{base}/loyalty", bearer(), {"points": 4, "reason": "visit"})
    card, _ = await post(client, f"{base}/cards", bearer(), CARD)
    bought, _ = await post(client, f"{base}/packages", bearer(), {"name": "wash", "sessions": 2})
    _, position = await post(client, f"{base}/packages/{bought['id']}/use", bearer(), status=200)
    history = await tab(client, bearer(), f"{base}/history", position)
    changes = {c["field"]: c["to"] for row in history["items"] for c in row["changes"]}
    assert changes[f"loyalty[{entry['entry_id']}].points"] == 4
    assert changes["loyalty.balance"] == 4
    assert changes[f"cards[{card['card_id']}].expiry"] == f"{CARD['exp_year']}-12"
    assert changes[f"cards[{card['card_id']}].last4"] == "4242"
    assert changes[f"packages[{bought['id']}].sessions_left"] == 1
    assert not any(CARD["token"] in str(row) for row in history["items"]), "never the token"


async def test_a_merged_away_customer_takes_nothing_naming_the_survivor(
    client: Client, bearer: Bearer
) -> None:
    """Points, cards and packages for a tombstone: 409 naming the survivor (not moved)."""
    survivor, merged = await customer(client, bearer), await customer(client, bearer)
    body = {"from": [merged], "versions": {merged: 1}}
    response = await client.post(
        f"/v1/customers/{survivor}/merge", json=body, headers={**bearer(), "If-Match": '"1"'}
    )
    assert response.status == 200, await response.text()
    base = f"/v1/customers/{merged}"
    for path, part in (
        ("loyalty", {"points": 1, "reason": "x"}),
        ("cards", CARD),
        ("packages", {"name": "wash", "sessions": 1}),
    ):
        refused = await problem(
            await client.post(f"{base}/{path}", json=part, headers=bearer()), 409
        )
        assert fields(refused) == ["merged_into"] and survivor in refused["detail"]
