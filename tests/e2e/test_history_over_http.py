"""`GET /v1/customers/{id}/history` over HTTP, against the history model kept by a follower."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any
from uuid import uuid4

import pytest
from aiohttp.test_utils import TestClient

from projections.base import ReadModel

Client = TestClient[Any, Any]
Bearer = Callable[..., dict[str, str]]
Registration = Callable[..., dict[str, Any]]


@pytest.fixture(scope="module", autouse=True)
def history_view(followed: Any) -> Iterator[ReadModel]:
    """The history read model, kept current by a follower thread."""
    with followed("history") as model:
        yield model


@dataclasses.dataclass
class Api:
    """The calls these tests make, remembering the newest position and each ETag seen."""

    client: Client
    bearer: Bearer
    make: Registration
    position: int = 0
    etags: dict[str, str] = dataclasses.field(default_factory=dict)

    async def register(self, **fields: Any) -> str:
        body = await self.call("POST", "/v1/customers", json=self.make(**fields))
        return str(body["id"])

    async def call(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> Any:
        """A command; If-Match is the customer's last ETag when the method needs one."""
        customer = path.split("/")[3] if path.count("/") >= 3 else ""
        sent = {**self.bearer(), **(headers or {})}
        if method in ("PATCH", "DELETE") or path.endswith(("restore", "block", "unblock")):
            sent.setdefault("If-Match", self.etags[customer])
        response = await self.client.request(method, path, headers=sent, **kwargs)
        assert response.status in (200, 201), await response.text()
        self.position = max(self.position, int(response.headers["X-Event-Position"]))
        body = await response.json()
        self.etags[str(body.get("id", customer))] = response.headers["ETag"]
        return body

    async def get(
        self, customer_id: str, *, headers: dict[str, str] | None = None, **params: Any
    ) -> Any:
        """The history as asked, waiting for every write seen so far unless told otherwise."""
        params.setdefault("min_position", self.position)
        return await self.client.get(
            f"/v1/customers/{customer_id}/history",
            params={k: str(v) for k, v in params.items()},
            headers=headers or self.bearer(),
        )

    async def items(self, customer_id: str, **params: Any) -> list[dict[str, Any]]:
        response = await self.get(customer_id, limit=500, **params)
        assert response.status == 200, await response.text()
        items: list[dict[str, Any]] = (await response.json())["items"]
        return items


@pytest.fixture
def api(client: Client, bearer: Bearer, registration: Registration) -> Api:
    return Api(client, bearer, registration)


def changes(item: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {c["field"]: (c["from"], c["to"]) for c in item["changes"]}


def fields_of(item: dict[str, Any], prefix: str) -> dict[str, tuple[Any, Any]]:
    return {f.split("].", 1)[1]: v for f, v in changes(item).items() if f.startswith(prefix)}


async def test_the_registration_row_lists_the_registered_fields(api: Api) -> None:
    """The first row is the registration: every given field from null, with actor and time."""
    customer_id = await api.register(
        company_name="Analytical Engines",
        addresses=[{"kind": "billing", "line1": "12 St James Sq", "city": "London"}],
    )
    [item] = await api.items(customer_id)
    assert set(item) == {"position", "version", "type", "at", "actor", "correlation_id", "changes"}
    assert (item["type"], item["version"], item["actor"]) == (
        "customer.registered",
        1,
        "alice@shop",
    )
    assert datetime.fromisoformat(item["at"]).utcoffset() is not None
    assert item["position"] <= api.position
    found = changes(item)
    assert found["first_name"] == (None, "Ada")
    assert found["company_name"] == (None, "Analytical Engines")
    assert found["email"][1].endswith("@example.com")
    assert found["mobile_phone"][1].startswith("+1415")
    assert found["consent.newsletter"] == (None, True)
    assert fields_of(item, "addresses[")["city"] == (None, "London")
    assert "phone" not in found and "deleted" not in found
    assert all(before is None for before, _ in found.values())


async def test_a_patch_shows_from_and_to_for_each_changed_field(api: Api) -> None:
    """A PATCH is one row listing exactly the fields it changed, old and new value."""
    customer_id = await api.register(company_name="Old Ltd", custom_fields={"gate": "1"})
    await api.call(
        "PATCH",
        f"/v1/customers/{customer_id}",
        json={
            "company_name": None,
            "group": "vip",
            "discount_percent": "7.5",
            "birthday": "1990-02-03",
            "custom_fields": {"gate": "2"},
            "first_name": "Ada",
        },
    )
    items = await api.items(customer_id)
    assert [i["type"] for i in items] == ["customer.registered", "customer.profile_changed"]
    assert items[1]["version"] == 2
    assert changes(items[1]) == {
        "company_name": ("Old Ltd", None),
        "birthday": (None, "1990-02-03"),
        "group": (None, "vip"),
        "discount_percent": (None, "7.5"),
        "custom_fields.gate": ("1", "2"),
    }


async def test_consent_changes_are_rows_of_their_own(api: Api) -> None:
    """Withdrawing and giving consent read `consent.<topic>` with the old and new choice."""
    customer_id = await api.register()
    path = f"/v1/customers/{customer_id}"
    await api.call(
        "PATCH", path, json={"newsletter": False, "promotional_sms": True, "consent_channel": "web"}
    )
    items = await api.items(customer_id, type="customer.consent_changed")
    assert [changes(i) for i in items] == [
        {"consent.newsletter": (True, False)},
        {"consent.promotional_sms": (False, True)},
    ]


async def test_parts_are_listed_field_by_field(api: Api) -> None:
    """Notes, contacts, addresses, systems, prices, credits and keys each read as rows."""
    customer_id = await api.register()
    base = f"/v1/customers/{customer_id}"
    note = await api.call("POST", f"{base}/notes", json={"text": "Gate code", "urgent": True})
    contact = await api.call(
        "POST", f"{base}/contacts", json={"name": "Bob", "email": "Bob@Example.com"}
    )
    address = await api.call(
        "POST", f"{base}/addresses", json={"kind": "site", "line1": "1 Road", "city": "Leeds"}
    )
    system = await api.call(
        "POST", f"{base}/systems", json={"system_type": "nas", "ip_address": "10.0.0.9"}
    )
    await api.call(
        "PATCH", f"{base}/systems/{system['system_id']}", json={"ip_address": "10.0.0.10"}
    )
    await api.call("PUT", f"{base}/prices/cleaning", json={"price": "49.90"})
    credit = await api.call("POST", f"{base}/credits", json={"amount": "10.00", "reason": "late"})
    await api.call("PUT", f"{base}/keys", json={"holder_staff_id": "s7", "location": "safe"})
    await api.call("DELETE", f"{base}/notes/{note['note_id']}")
    rows = {i["type"]: i for i in await api.items(customer_id)}
    assert fields_of(rows["customer.note_added"], f"notes[{note['note_id']}]") == {
        "text": (None, "Gate code"),
        "urgent": (None, True),
    }
    assert fields_of(rows["customer.contact_added"], f"contacts[{contact['contact_id']}]") == {
        "name": (None, "Bob"),
        "email": (None, "Bob@example.com"),
    }
    assert fields_of(rows["customer.address_added"], f"addresses[{address['address_id']}]") == {
        "kind": (None, "site"),
        "line1": (None, "1 Road"),
        "city": (None, "Leeds"),
    }
    system_prefix = f"systems[{system['system_id']}]"
    assert fields_of(rows["customer.system_installed"], system_prefix) == {
        "system_type": (None, "nas"),
        "ip_address": (None, "10.0.0.9"),
    }
    assert changes(rows["customer.system_changed"]) == {
        f"{system_prefix}.ip_address": ("10.0.0.9", "10.0.0.10")
    }
    assert changes(rows["customer.custom_price_set"]) == {"custom_prices.cleaning": (None, "49.90")}
    assert fields_of(rows["customer.credit_added"], f"credits[{credit['credit_id']}]") == {
        "amount": (None, "10.00"),
        "reason": (None, "late"),
    }
    assert changes(rows["customer.key_custody_changed"]) == {
        "key_custody.holder_staff_id": (None, "s7"),
        "key_custody.location": (None, "safe"),
    }
    assert fields_of(rows["customer.note_removed"], f"notes[{note['note_id']}]") == {
        "text": ("Gate code", None),
        "urgent": (True, None),
    }


async def test_a_secret_change_shows_only_the_mask(api: Api) -> None:
    """Installing and replacing an equipment secret read `***`; the secret never appears."""
    customer_id = await api.register()
    base = f"/v1/customers/{customer_id}"
    system = await api.call(
        "POST", f"{base}/systems", json={"system_type": "alarm", "secret": "hunter2"}
    )
    await api.call(
        "PATCH", f"{base}/systems/{system['system_id']}", json={"secret": "correct horse"}
    )
    response = await api.get(customer_id)
    text = await response.text()
    assert "hunter2" not in text and "correct horse" not in text and "gAAAA" not in text
    items = (await response.json())["items"]
    secret = f"systems[{system['system_id']}].secret"
    assert changes(items[1])[secret] == (None, "***")
    assert changes(items[2]) == {secret: ("***", "***")}


async def test_delete_restore_block_and_unblock_are_rows(api: Api) -> None:
    """Lifecycle commands read as `deleted` and `blocked` flipping, with the block reason."""
    customer_id = await api.register()
    base = f"/v1/customers/{customer_id}"
    await api.call("POST", f"{base}/block", json={"reason": "unpaid"})
    await api.call("POST", f"{base}/unblock")
    await api.call("DELETE", base)
    await api.call("POST", f"{base}/restore")
    items = await api.items(customer_id)
    assert [(i["type"], changes(i)) for i in items[1:]] == [
        ("customer.blocked", {"blocked": (False, True), "block_reason": (None, "unpaid")}),
        ("customer.unblocked", {"blocked": (True, False), "block_reason": ("unpaid", None)}),
        ("customer.deleted", {"deleted": (False, True)}),
        ("customer.restored", {"deleted": (True, False)}),
    ]


async def test_actor_and_correlation_id_come_from_the_request(api: Api) -> None:
    """The token's subject and the X-Request-ID of the command are on its row."""
    customer_id = await api.register()
    request_id = f"hist-{secrets.token_hex(6)}"
    await api.call(
        "PATCH",
        f"/v1/customers/{customer_id}",
        json={"group": "b"},
        headers={**api.bearer(sub="bob@shop"), "X-Request-ID": request_id},
    )
    last = (await api.items(customer_id))[-1]
    assert (last["actor"], last["correlation_id"]) == ("bob@shop", request_id)


async def test_pages_follow_the_cursor_without_duplicates(api: Api) -> None:
    """Small pages, oldest first, add up to the whole history with no row twice."""
    customer_id = await api.register()
    for n in range(7):
        await api.call("POST", f"/v1/customers/{customer_id}/notes", json={"text": f"n{n}"})
    everything = await api.items(customer_id)
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        response = await api.get(customer_id, **params)
        assert response.status == 200, await response.text()
        page = await response.json()
        assert len(page["items"]) <= 3
        seen += [i["position"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [i["position"] for i in everything] == sorted(set(seen))
    assert len(seen) == 8


async def test_the_type_filter_and_its_cursor_go_together(api: Api) -> None:
    """`type` keeps only those events; its cursor is refused on a listing without it."""
    customer_id = await api.register()
    for n in range(3):
        await api.call("POST", f"/v1/customers/{customer_id}/notes", json={"text": f"n{n}"})
    response = await api.get(customer_id, type="customer.note_added", limit=2)
    page = await response.json()
    assert [i["type"] for i in page["items"]] == ["customer.note_added"] * 2
    unfiltered = await api.get(customer_id, cursor=page["next_cursor"])
    assert unfiltered.status == 422
    assert [e["field"] for e in (await unfiltered.json())["errors"]] == ["cursor"]
    rest = await api.get(customer_id, type="customer.note_added", cursor=page["next_cursor"])
    assert [i["type"] for i in (await rest.json())["items"]] == ["customer.note_added"]


async def test_min_position_waits_for_the_view_and_503_beyond_the_log(api: Api) -> None:
    """A read at a command's position sees its row; a position past the log answers 503."""
    customer_id = await api.register()
    await api.call("POST", f"/v1/customers/{customer_id}/notes", json={"text": "just now"})
    items = await api.items(customer_id)
    assert items[-1]["type"] == "customer.note_added" and items[-1]["position"] == api.position
    beyond = await api.get(customer_id, min_position=api.position + 1_000_000, wait_ms=50)
    assert beyond.status == 503
    assert beyond.headers["Retry-After"].isdigit()


async def test_unknown_customers_and_other_customers_answer_404(api: Api, bearer: Bearer) -> None:
    """No such customer, a non-UUID id, or another customer's token: 404; one's own: 200."""
    customer_id = await api.register()
    other_id = await api.register()
    assert (await api.get(str(uuid4()))).status == 404
    assert (await api.client.get("/v1/customers/nope/history", headers=bearer())).status == 404
    mine = bearer("customer", sub="ada", customer_id=customer_id)
    assert (await api.get(other_id, headers=mine)).status == 404
    assert (await api.get(customer_id, headers=mine)).status == 200
    for role in ("admin", "service"):
        assert (await api.get(customer_id, headers=bearer(role))).status == 200


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "A" * 32}, "cursor"),
        ({"type": "Customer Registered"}, "type.0"),
        ({"min_position": "-1"}, "min_position"),
        ({"wait_ms": "soon"}, "wait_ms"),
        ({"colour": "blue"}, "colour"),
    ],
)
async def test_bad_query_parameters_answer_422_naming_them(
    api: Api, params: dict[str, Any], field: str
) -> None:
    """Each malformed or unknown parameter is refused with a 422 that names it."""
    customer_id = await api.register()
    response = await api.get(customer_id, **params)
    assert response.status == 422, await response.text()
    assert field in [e["field"] for e in (await response.json())["errors"]]


async def test_a_cursor_of_another_customer_is_refused(api: Api) -> None:
    """A cursor only pages the listing that gave it."""
    first, second = await api.register(), await api.register()
    await api.call("POST", f"/v1/customers/{first}/notes", json={"text": "x"})
    page = await (await api.get(first, limit=1)).json()
    response = await api.get(second, cursor=page["next_cursor"])
    assert response.status == 422
    assert [e["field"] for e in (await response.json())["errors"]] == ["cursor"]


async def test_the_operation_is_in_the_openapi_document(client: Client) -> None:
    """/openapi.json documents the history operation with its query parameters."""
    document = await (await client.get("/openapi.json")).json()
    operation = document["paths"]["/v1/customers/{id}/history"]["get"]
    names = {p.get("name") for p in operation["parameters"]}
    assert {"limit", "cursor", "type", "min_position", "wait_ms"} <= names
    assert "oldest first" in operation["summary"]
