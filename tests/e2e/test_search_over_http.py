"""`GET /v1/customers` over HTTP, against the search read model kept by a running follower.

Every test tags its customers with a group (or a city) of its own, so the session's other
customers (many of them Ada Lovelace) never change what a test finds.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from aiohttp.test_utils import TestClient

from domain.customers import Customer
from domain.service import CustomerService
from domain.values import Profile
from projections.base import ReadModel

Client = TestClient[Any, Any]
Bearer = Callable[..., dict[str, str]]
Registration = Callable[..., dict[str, Any]]


@pytest.fixture(scope="module", autouse=True)
def search_view(followed: Any) -> Iterator[ReadModel]:
    """The search read model, kept current by a follower thread."""
    with followed("search") as model:
        yield model


@dataclasses.dataclass
class Api:
    """The HTTP calls these tests make, remembering the newest position it has seen."""

    client: Client
    headers: dict[str, str]
    make: Registration
    position: int = 0

    async def register(self, **fields: Any) -> dict[str, Any]:
        body = self.make(**fields)
        response = await self.client.post("/v1/customers", json=body, headers=self.headers)
        assert response.status == 201, await response.text()
        self.saw(response)
        return {**body, **(await response.json())}

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = kwargs.pop("headers", self.headers)
        response = await self.client.request(method, path, headers=headers, **kwargs)
        assert response.status in (200, 201), await response.text()
        self.saw(response)
        return await response.json()

    async def version(self, customer_id: UUID | str) -> dict[str, str]:
        response = await self.client.get(f"/v1/customers/{customer_id}", headers=self.headers)
        return {**self.headers, "If-Match": response.headers["ETag"]}

    async def search(self, **params: Any) -> dict[str, Any]:
        """A search that first waits for every write seen so far (read-your-writes)."""
        response = await self.get(min_position=self.position, **params)
        assert response.status == 200, await response.text()
        found: dict[str, Any] = await response.json()
        return found

    async def ids(self, **params: Any) -> list[str]:
        return [item["id"] for item in (await self.search(limit=200, **params))["items"]]

    async def get(self, **params: Any) -> Any:
        query = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items()}
        return await self.client.get("/v1/customers", params=query, headers=self.headers)

    def saw(self, response: Any) -> None:
        self.position = max(self.position, int(response.headers["X-Event-Position"]))


@pytest.fixture
def api(client: Client, bearer: Bearer, registration: Registration) -> Api:
    return Api(client, bearer("staff"), registration)


def tag() -> str:
    return secrets.token_hex(4)


def register_backdated(service: CustomerService, days: int, **profile: Any) -> tuple[str, int]:
    """A customer registered `days` ago (saved directly: HTTP cannot backdate)."""
    customer = Customer.register(
        customer_number=service.next_customer_number(), profile=Profile(**profile)
    )
    [registered] = customer.collect_events()
    then = datetime.now(UTC) - timedelta(days=days)
    [recording] = service.save(dataclasses.replace(registered, timestamp=then))
    return str(customer.id), recording.notification.id


# ---- q ------------------------------------------------------------------------------------------


async def test_q_finds_a_name_by_its_prefix_and_despite_a_typo(api: Api) -> None:
    """ "Lov" (a prefix), "Lovelase" (a typo) and "lovelace ada" (any order) find Ada Lovelace."""
    group = f"g{tag()}"
    ada = await api.register(group=group)
    await api.register(first_name="Grace", last_name="Hopper", group=group)
    for q in ("Lov", "Lovelase", "lovelace ada", "ADA"):
        assert await api.ids(q=q, group=group) == [ada["id"]], q


async def test_q_finds_an_email(api: Api) -> None:
    """The whole email in any case, or its local part, finds the customer."""
    local = f"ada.{tag()}"
    ada = await api.register(email=f"{local}@Example.com")
    assert await api.ids(q=f"{local.upper()}@EXAMPLE.COM") == [ada["id"]]
    assert await api.ids(q=local) == [ada["id"]]


async def test_q_finds_a_phone_however_it_is_typed(api: Api) -> None:
    """ "(415) 555-2671", "415-555-2671" and "+14155552671" all find the same mobile number."""
    exchange, line = 200 + secrets.randbelow(700), 1000 + secrets.randbelow(9000)
    ada = await api.register(mobile_phone=f"(415) {exchange}-{line}")
    for q in (f"(415) {exchange}-{line}", f"415-{exchange}-{line}", f"+1415{exchange}{line}"):
        found = await api.search(q=q)
        assert [i["id"] for i in found["items"]] == [ada["id"]], q
        assert found["items"][0]["mobile_phone"] == f"+1415{exchange}{line}"


async def test_q_finds_a_customer_number_first(api: Api) -> None:
    """The customer number as q puts that customer first."""
    ada = await api.register()
    found = await api.search(q=str(ada["customer_number"]))
    assert found["items"][0]["id"] == ada["id"]
    assert found["items"][0]["customer_number"] == ada["customer_number"]


async def test_q_finds_a_company_and_a_dba_name(api: Api) -> None:
    """Words of the company name or of the DBA name find the customer."""
    word = f"engines{tag()}"
    ada = await api.register(company_name=f"Analytical {word.title()}", dba_name=f"Babbage {word}s")
    assert await api.ids(q=f"analytical {word}") == [ada["id"]]
    assert await api.ids(q=f"babbage {word}s") == [ada["id"]]


# ---- filters ------------------------------------------------------------------------------------


async def test_city_matches_any_address_and_the_billing_city_is_shown(api: Api) -> None:
    """Any address's city filters (case ignored); the billing address's city is the one shown;
    an address added or removed later counts."""
    paris, london, rome = (f"{name}{tag()}" for name in ("Paris", "London", "Rome"))
    addresses = [
        {"kind": "site", "line1": "1 Rue", "city": paris},
        {"kind": "billing", "line1": "2 St James Sq", "city": london},
    ]
    ada = await api.register(addresses=addresses)
    for city in (paris.lower(), london.upper()):
        found = await api.search(city=city)
        assert [(i["id"], i["city"]) for i in found["items"]] == [(ada["id"], london)], city
    added = await api.call(
        "POST",
        f"/v1/customers/{ada['id']}/addresses",
        json={"kind": "delivery", "line1": "3 Via", "city": rome},
    )
    assert await api.ids(city=rome) == [ada["id"]]
    await api.call(
        "DELETE",
        f"/v1/customers/{ada['id']}/addresses/{added['address_id']}",
        headers=await api.version(ada["id"]),
    )
    assert await api.ids(city=rome) == []


async def test_system_type_follows_installs_changes_and_removals(api: Api) -> None:
    """A customer is found by the type of any installed system, as it is now."""
    alarm, camera = f"alarm{tag()}", f"camera{tag()}"
    ada = await api.register()
    installed = await api.call(
        "POST", f"/v1/customers/{ada['id']}/systems", json={"system_type": alarm}
    )
    found = await api.search(system_type=alarm.upper())
    assert [(i["id"], i["system_types"]) for i in found["items"]] == [(ada["id"], [alarm])]
    path = f"/v1/customers/{ada['id']}/systems/{installed['system_id']}"
    await api.call(
        "PATCH", path, json={"system_type": camera}, headers=await api.version(ada["id"])
    )
    assert await api.ids(system_type=alarm) == []
    assert await api.ids(system_type=camera) == [ada["id"]]
    await api.call("DELETE", path, headers=await api.version(ada["id"]))
    assert await api.ids(system_type=camera) == []


async def test_group_follows_profile_changes(api: Api) -> None:
    """The group filter finds the customer's current group only."""
    old, new = f"g{tag()}", f"g{tag()}"
    ada = await api.register(group=old)
    assert await api.ids(group=old.upper()) == [ada["id"]]
    await api.call(
        "PATCH",
        f"/v1/customers/{ada['id']}",
        json={"group": new},
        headers=await api.version(ada["id"]),
    )
    assert await api.ids(group=old) == []
    assert await api.ids(group=new) == [ada["id"]]


async def test_deleted_customers_are_hidden_unless_asked_for(api: Api) -> None:
    """A soft-deleted customer is left out, listed with include_deleted=true, back once restored."""
    group = f"g{tag()}"
    ada = await api.register(group=group)
    await api.call("DELETE", f"/v1/customers/{ada['id']}", headers=await api.version(ada["id"]))
    assert await api.ids(group=group) == []
    found = await api.search(group=group, include_deleted=True)
    assert [(i["id"], i["deleted"]) for i in found["items"]] == [(ada["id"], True)]
    await api.call(
        "POST", f"/v1/customers/{ada['id']}/restore", headers=await api.version(ada["id"])
    )
    assert await api.ids(group=group) == [ada["id"]]


async def test_the_list_shows_the_last_30_days_unless_told_otherwise(
    api: Api, service: CustomerService
) -> None:
    """Without q and without a window only the last 30 days are listed; a window or q widens it."""
    group = f"g{tag()}"
    old, position = register_backdated(
        service, 40, first_name="Old", last_name="Timer", group=group
    )
    api.position = max(api.position, position)
    new = (await api.register(first_name="New", last_name="Timer", group=group))["id"]
    assert await api.ids(group=group) == [new]
    assert await api.ids(group=group, registered_within_days=60) == [new, old]
    forty_five_days_ago = (datetime.now(UTC) - timedelta(days=45)).date().isoformat()
    assert await api.ids(group=group, registered_after=forty_five_days_ago) == [new, old]
    a_week_ago = (datetime.now(UTC) - timedelta(days=7)).isoformat()
    assert await api.ids(group=group, registered_before=a_week_ago) == [old]
    assert sorted(await api.ids(group=group, q="timer")) == sorted([new, old])
    assert await api.ids(group=group, q="\u0301") == [new]  # an accent alone is no q


# ---- pages --------------------------------------------------------------------------------------


@pytest.mark.parametrize("q", [None, "lovelace", "lovelase"])
async def test_pages_list_every_match_once_and_in_order(api: Api, q: str | None) -> None:
    """Following next_cursor with limit=3 lists all 7 customers once each, newest first among
    equal matches, and the last page has no cursor."""
    group = f"g{tag()}"
    registered = [(await api.register(group=group))["id"] for _ in range(7)]
    params: dict[str, Any] = {"group": group, "limit": 3, **({"q": q} if q else {})}
    seen: list[str] = []
    pages = 0
    cursor = None
    while True:
        page = await api.search(**params, **({"cursor": cursor} if cursor else {}))
        pages += 1
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == list(reversed(registered))


# ---- read-your-writes ---------------------------------------------------------------------------


async def test_min_position_waits_for_the_view_to_reach_the_write(
    client: Client, bearer: Bearer, registration: Registration
) -> None:
    """A search with the registration's X-Event-Position as min_position finds it at once."""
    group = f"g{tag()}"
    response = await client.post("/v1/customers", json=registration(group=group), headers=bearer())
    position = response.headers["X-Event-Position"]
    found = await client.get(
        "/v1/customers", params={"group": group, "min_position": position}, headers=bearer()
    )
    assert found.status == 200
    assert [i["id"] for i in (await found.json())["items"]] == [(await response.json())["id"]]


async def test_min_position_beyond_the_log_answers_503_after_wait_ms(
    client: Client, bearer: Bearer, service: CustomerService
) -> None:
    """A position the log has not reached answers 503 with Retry-After once wait_ms is over."""
    beyond = (service.recorder.max_notification_id() or 0) + 1_000_000
    started = time.monotonic()
    response = await client.get(
        "/v1/customers", params={"min_position": str(beyond), "wait_ms": "300"}, headers=bearer()
    )
    assert response.status == 503
    assert time.monotonic() - started >= 0.3
    assert int(response.headers["Retry-After"]) > 0
    assert response.content_type == "application/problem+json"


# ---- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "-1"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"registered_after": "last tuesday"}, "registered_after"),
        ({"registered_before": "2025-02-30"}, "registered_before"),
        ({"registered_after": "2025-01-31T09:00:00"}, "registered_after"),
        ({"registered_within_days": "0"}, "registered_within_days"),
        ({"include_deleted": "maybe"}, "include_deleted"),
        ({"sort": "name"}, "sort"),
        ({"cursor": "bm90LWEtY3Vyc29y.AAAAAAAAAAAAAAAAAAAAAA"}, "cursor"),
        ({"cursor": "not a cursor"}, "cursor"),
        ({"wait_ms": "-5"}, "wait_ms"),
        ({"q": "ada\x00"}, "q"),
        ({"city": "\x00"}, "city"),
        (
            {"registered_after": "2025-02-01", "registered_before": "2025-01-01"},
            "registered_before",
        ),
    ],
)
async def test_bad_parameters_answer_422_naming_them(
    client: Client, bearer: Bearer, params: dict[str, str], field: str
) -> None:
    """Unknown parameters, bad values and forged cursors answer 422 naming the parameter."""
    response = await client.get("/v1/customers", params=params, headers=bearer())
    assert response.status == 422
    assert response.content_type == "application/problem+json"
    assert field in [e["field"] for e in (await response.json())["errors"]]


async def test_a_tampered_or_borrowed_cursor_answers_422(api: Api) -> None:
    """A real cursor with one character changed, or used with other parameters, is refused."""
    group = f"g{tag()}"
    for _ in range(2):
        await api.register(group=group)
    cursor = (await api.search(group=group, limit=1))["next_cursor"]
    assert cursor is not None
    flipped = cursor[:5] + ("A" if cursor[5] != "A" else "B") + cursor[6:]
    for params in (
        {"group": group, "cursor": flipped},
        {"group": f"{group}x", "cursor": cursor},
        {"group": group, "q": "ada", "cursor": cursor},
    ):
        response = await api.get(limit=1, **params)
        assert response.status == 422, params
        assert [e["field"] for e in (await response.json())["errors"]] == ["cursor"]
    assert (await api.get(group=group, limit=5, cursor=cursor)).status == 200


async def test_a_customer_token_gets_404(client: Client, bearer: Bearer) -> None:
    """Customers cannot search the customer list: it answers 404, as for any staff resource."""
    headers = bearer("customer", sub="ada", customer_id=str(UUID(int=7)))
    response = await client.get("/v1/customers", headers=headers)
    assert response.status == 404
