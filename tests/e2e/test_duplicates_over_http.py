"""Likely duplicates over HTTP: the duplicates read model kept by a running follower, its two
GETs, and the `likely_duplicates` registration and import report.

Every test gives its customers values of its own (a random phone, street, company or tax
id), so the session's other customers (many of them Ada Lovelace) never pair with them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import threading
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from aiohttp.test_utils import TestClient
from tests.e2e.answers import ok, problem

from domain.duplicates import NewCustomer
from domain.service import CustomerService
from domain.values import Profile
from gateway import create_app
from infrastructure.settings import Settings
from projections.base import ReadModel
from projections.duplicate_queries import DuplicateLookup
from projections.duplicates import MAX_HOLDERS
from workers.imports import ImportWorker

Client = TestClient[Any, Any]
Bearer = Callable[..., dict[str, str]]
Registration = Callable[..., dict[str, Any]]


@pytest.fixture(scope="module", autouse=True)
def duplicates_view(followed: Any) -> Iterator[ReadModel]:
    """The duplicates read model, kept current by a follower thread."""
    with followed("duplicates") as model:
        yield model


def _local_number() -> tuple[str, str]:
    """A random US number as typed without country code, and in E.164."""
    exchange, line = 200 + secrets.randbelow(700), 1000 + secrets.randbelow(9000)
    return f"(628) {exchange}-{line}", f"+1628{exchange}{line}"


def _street() -> str:
    return f"{100 + secrets.randbelow(9000)} {secrets.token_hex(4)} Street"


@dataclasses.dataclass
class Api:
    """The HTTP calls these tests make, remembering the newest position it has seen."""

    client: Client
    headers: dict[str, str]
    make: Registration
    position: int = 0

    async def register(self, **fields: Any) -> dict[str, Any]:
        response = await self.client.post(
            "/v1/customers", json=self.make(**fields), headers=self.headers
        )
        body: dict[str, Any] = await ok(response, 201)
        self.saw(response)
        return body

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        response = await self.client.request(method, path, headers=headers, **kwargs)
        assert response.status in (200, 201), await response.text()
        self.saw(response)
        return await response.json()

    async def etag(self, customer_id: str) -> dict[str, str]:
        response = await self.client.get(f"/v1/customers/{customer_id}", headers=self.headers)
        return {"If-Match": response.headers["ETag"]}

    async def duplicates_of(self, customer_id: str, **params: Any) -> list[dict[str, Any]]:
        """The customer's pairs, once the view has every write seen so far."""
        response = await self.client.get(
            f"/v1/customers/{customer_id}/duplicates",
            params={"min_position": str(self.position), **params},
            headers=self.headers,
        )
        items: list[dict[str, Any]] = (await ok(response))["items"]
        return items

    async def paired_with(self, customer_id: str) -> dict[str, dict[str, Any]]:
        return {item["duplicate"]["id"]: item for item in await self.duplicates_of(customer_id)}

    def saw(self, response: Any) -> None:
        self.position = max(self.position, int(response.headers["X-Event-Position"]))


@pytest.fixture
def api(client: Client, bearer: Bearer, registration: Registration) -> Api:
    return Api(client, bearer("staff"), registration)


def _reasons(item: dict[str, Any]) -> set[str]:
    return {reason["reason"] for reason in item["reasons"]}


async def test_a_landline_typed_without_country_code_pairs_with_the_same_mobile(api: Api) -> None:
    """A mobile in E.164 and another customer's landline typed locally are one phone."""
    local, e164 = _local_number()
    first = await api.register(first_name="Grace", last_name="Hopper", mobile_phone=e164)
    second = await api.register(
        first_name="Grace", last_name="Hopper", mobile_phone=None, phone=local
    )
    pairs = await api.paired_with(first["id"])
    assert list(pairs) == [second["id"]]
    item = pairs[second["id"]]
    assert item["customer"]["id"] == first["id"]
    assert item["customer"]["mobile_phone"] == e164
    assert item["reasons"] == [{"reason": "same_phone", "detail": "mobile_phone ~ phone"}]
    assert item["score"] == 0.75
    # Seen from the other side, the same pair with the same score.
    [back] = await api.duplicates_of(second["id"])
    assert (back["duplicate"]["id"], back["score"]) == (first["id"], 0.75)


async def test_a_contacts_email_pairs_case_insensitively_but_not_a_plus_address(api: Api) -> None:
    """A contact's `Ada.X@…` is another customer's `ada.x@…`; `ada.x+shop@…` is not."""
    mailbox = f"ada.{secrets.token_hex(5)}"
    first = await api.register(email=f"{mailbox}@example.com")
    second = await api.register()
    third = await api.register()
    await api.call(
        "POST",
        f"/v1/customers/{second['id']}/contacts",
        json={"name": "Ada", "email": f"{mailbox.upper()}@Example.com"},
    )
    await api.call(
        "POST",
        f"/v1/customers/{third['id']}/contacts",
        json={"name": "Ada", "email": f"{mailbox}+shop@example.com"},
    )
    pairs = await api.paired_with(first["id"])
    assert list(pairs) == [second["id"]]
    assert pairs[second["id"]]["reasons"] == [
        {"reason": "same_email", "detail": "contact_email ~ email"}
    ]


async def test_similar_names_at_one_address_pair_and_other_names_there_do_not(api: Api) -> None:
    """Katherine and Katharine Johnson at "12 Elm Street" / "12 elm st." pair; Robert
    Johnson and Katherine Miller at that address pair with no one."""
    street, postal = _street(), f"9{secrets.randbelow(10000):04d}"
    at = {"kind": "billing", "line1": street, "postal_code": postal, "city": "Springfield"}
    typed = {**at, "line1": street.lower().replace("street", "st."), "city": None}
    first = await api.register(
        first_name="Katherine", last_name="Johnson", addresses=[at], mobile_phone=None
    )
    second = await api.register(
        first_name="Katharine", last_name="Johnson", addresses=[typed], mobile_phone=None
    )
    robert = await api.register(first_name="Robert", last_name="Johnson", addresses=[at])
    miller = await api.register(first_name="Katherine", last_name="Miller", addresses=[at])
    pairs = await api.paired_with(first["id"])
    assert list(pairs) == [second["id"]]
    assert _reasons(pairs[second["id"]]) == {"similar_name_same_address"}
    assert pairs[second["id"]]["customer"]["city"] == "Springfield"
    assert await api.duplicates_of(robert["id"]) == []
    assert await api.duplicates_of(miller["id"]) == []


async def test_one_name_at_one_company_pairs_and_colleagues_do_not(api: Api) -> None:
    """Two "Alan Turing"s of "Bletchley <x> Ltd" / "BLETCHLEY <x>, LLC" pair; a colleague with
    another name, or with the same first name and another surname, does not."""
    company = f"Bletchley {secrets.token_hex(4)}"
    first = await api.register(first_name="Alan", last_name="Turing", company_name=f"{company} Ltd")
    second = await api.register(
        first_name="Alan", last_name="Turing", company_name=f"{company.upper()}, LLC"
    )
    colleague = await api.register(first_name="Joan", last_name="Clarke", company_name=company)
    namesake = await api.register(first_name="Alan", last_name="Brooke", company_name=company)
    pairs = await api.paired_with(first["id"])
    assert list(pairs) == [second["id"]]
    assert pairs[second["id"]]["reasons"] == [
        {"reason": "similar_name_same_company", "detail": "name similarity 1.00"}
    ]
    assert pairs[second["id"]]["score"] == 0.8
    assert await api.duplicates_of(colleague["id"]) == []
    assert await api.duplicates_of(namesake["id"]) == []


async def test_a_company_on_more_than_twenty_records_pairs_none_of_them(api: Api) -> None:
    """Twenty "Pat Doe"s of one company pair with each other; a twenty-first makes the
    company common and unpairs them all; a delete back to twenty pairs them again."""
    company = f"Megacorp {secrets.token_hex(4)}"
    staff = [
        await api.register(first_name="Pat", last_name="Doe", company_name=company)
        for _ in range(MAX_HOLDERS)
    ]
    first = staff[0]["id"]
    assert set(await api.paired_with(first)) == {s["id"] for s in staff[1:]}
    extra = await api.register(first_name="Pat", last_name="Doe", company_name=company)
    assert await api.duplicates_of(first) == []
    assert await api.duplicates_of(extra["id"]) == []
    await api.call("DELETE", f"/v1/customers/{extra['id']}", headers=await api.etag(extra["id"]))
    assert set(await api.paired_with(first)) == {s["id"] for s in staff[1:]}


async def test_a_shared_tax_id_pairs_whatever_the_names(api: Api) -> None:
    """ "DE 123-456-789" and "de123456789" are one tax id, under two contact names."""
    digits = f"{secrets.randbelow(10**9):09d}"
    typed = f"DE {digits[:3]}-{digits[3:6]}-{digits[6:]}"
    first = await api.register(first_name="Hans", tax_id=typed)
    second = await api.register(first_name="Greta", last_name="Meier", tax_id=f"de{digits}")
    pairs = await api.paired_with(first["id"])
    assert list(pairs) == [second["id"]]
    assert pairs[second["id"]]["reasons"] == [{"reason": "same_tax_id", "detail": "tax_id"}]
    assert pairs[second["id"]]["score"] == 0.9


async def test_a_profile_change_makes_and_unmakes_a_pair(api: Api) -> None:
    """Changing the landline to the other's number pairs them; changing it away unpairs."""
    local, e164 = _local_number()
    first = await api.register(mobile_phone=e164)
    second = await api.register()
    await api.call(
        "PATCH",
        f"/v1/customers/{second['id']}",
        json={"phone": local},
        headers=await api.etag(second["id"]),
    )
    assert list(await api.paired_with(first["id"])) == [second["id"]]
    await api.call(
        "PATCH",
        f"/v1/customers/{second['id']}",
        json={"phone": None},
        headers=await api.etag(second["id"]),
    )
    assert await api.duplicates_of(first["id"]) == []


async def test_a_deleted_customer_leaves_its_pairs_and_a_restored_one_comes_back(
    api: Api,
) -> None:
    local, e164 = _local_number()
    first = await api.register(mobile_phone=e164)
    second = await api.register(phone=local)
    assert list(await api.paired_with(first["id"])) == [second["id"]]
    await api.call("DELETE", f"/v1/customers/{second['id']}", headers=await api.etag(second["id"]))
    assert await api.duplicates_of(first["id"]) == []
    await api.call(
        "POST", f"/v1/customers/{second['id']}/restore", headers=await api.etag(second["id"])
    )
    assert list(await api.paired_with(first["id"])) == [second["id"]]


async def test_an_erased_customer_leaves_no_pair_and_no_personal_data_in_the_view(
    api: Api, bearer: Bearer, api_settings: Settings, duplicates_view: ReadModel
) -> None:
    """After the erasure no table of the view holds the customer's id or any of its values."""
    local, e164 = _local_number()
    surname = f"Erasable{secrets.token_hex(4)}"
    first = await api.register(mobile_phone=e164)
    second = await api.register(last_name=surname, phone=local, email=f"{surname}@example.com")
    assert list(await api.paired_with(first["id"])) == [second["id"]]
    response = await api.client.post(
        f"/v1/customers/{second['id']}/erase",
        headers={**bearer("admin"), **await api.etag(second["id"])},
    )
    await ok(response)
    api.saw(response)
    assert await api.duplicates_of(first["id"]) == []
    with psycopg.connect(api_settings.database_url or "") as connection:
        for table in ("customers", "match_keys", "pairs"):
            dump = connection.execute(
                f'SELECT t::text FROM "{duplicates_view.schema}".{table} t'
            ).fetchall()
            text = "\n".join(row[0] for row in dump)
            assert second["id"] not in text, table
            assert surname.casefold() not in text.casefold(), table


async def test_registration_reports_its_likely_duplicates_and_a_replay_reports_the_same(
    api: Api,
) -> None:
    """The 201 names the known customer the new one is likely a duplicate of; a retry with
    the same Idempotency-Key answers the same body."""
    local, e164 = _local_number()
    first = await api.register(first_name="Edsger", last_name="Dijkstra", mobile_phone=e164)
    assert first["likely_duplicates"] == []
    # The view has the first customer before the second registers (read-your-writes).
    await api.duplicates_of(first["id"])
    body = api.make(first_name="Edsger", last_name="Dijkstra", phone=local)
    headers = {**api.headers, "Idempotency-Key": secrets.token_hex(8)}
    answer = await ok(await api.client.post("/v1/customers", json=body, headers=headers), 201)
    assert answer["likely_duplicates"] == [
        {
            "customer_id": first["id"],
            "score": 0.75,
            "reasons": [{"reason": "same_phone", "detail": "mobile_phone ~ phone"}],
        }
    ]
    replay = await api.client.post("/v1/customers", json=body, headers=headers)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert await ok(replay, 201) == answer


async def test_a_value_that_must_be_unique_is_still_refused(api: Api) -> None:
    """A taken mobile phone is a 409, not a likely duplicate."""
    _, e164 = _local_number()
    await api.register(mobile_phone=e164)
    response = await api.client.post(
        "/v1/customers", json=api.make(mobile_phone=e164), headers=api.headers
    )
    body = await problem(response, 409)
    assert body["errors"][0]["field"] == "mobile_phone"


async def test_imported_rows_report_their_likely_duplicates(
    api: Api, api_settings: Settings, service: CustomerService
) -> None:
    """A created row's report names the known customer it likely duplicates."""
    local, e164 = _local_number()
    first = await api.register(first_name="Barbara", last_name="Liskov", mobile_phone=e164)
    await api.duplicates_of(first["id"])
    worker = ImportWorker(service, api_settings.database_url or "", schema=api_settings.db_schema)
    thread = threading.Thread(target=worker.run, name="duplicates-import-worker", daemon=True)
    thread.start()
    try:
        content = (
            "First Name;Last Name;Phone;E-mail\n"
            f"Barbara;Liskov;{local};{secrets.token_hex(6)}@example.com\n"
            f"Someone;Else;;{secrets.token_hex(6)}@example.com\n"
        )
        response = await api.client.post(
            "/v1/customers/imports",
            data=content.encode(),
            headers={**api.headers, "Content-Type": "text/csv"},
        )
        import_id = (await ok(response, 202))["import_id"]
        for _ in range(200):
            report = await ok(
                await api.client.get(f"/v1/customers/imports/{import_id}", headers=api.headers)
            )
            if report["status"] != "running":
                break
            await asyncio.sleep(0.05)
    finally:
        worker.stop()
        thread.join(10)
    rows = {row["row"]: row for row in report["rows"]}
    assert rows[2]["status"] == rows[3]["status"] == "created"
    assert [d["customer_id"] for d in rows[2]["likely_duplicates"]] == [first["id"]]
    assert rows[2]["likely_duplicates"][0]["reasons"][0]["reason"] == "same_phone"
    assert rows[3]["likely_duplicates"] == []


async def test_the_list_of_all_pairs_is_by_score_filtered_and_paged_without_repeats(
    api: Api,
) -> None:
    """Highest score first; `min_score` leaves out the lower; pages never repeat a pair."""
    digits = f"{secrets.randbelow(10**9):09d}"
    local, e164 = _local_number()
    taxed = [await api.register(first_name="Tax", tax_id=f"X{digits}") for _ in range(3)]
    await api.register(first_name="Ph", mobile_phone=e164)
    await api.register(first_name="Qz", last_name="Other", phone=local)
    seen: list[tuple[str, str]] = []
    scores: list[float] = []
    cursor = None
    while True:
        params = {"min_score": "0.85", "limit": "2", "min_position": str(api.position)}
        if cursor:
            params["cursor"] = cursor
        page = await ok(await api.client.get("/v1/duplicates", params=params, headers=api.headers))
        for item in page["items"]:
            assert item["customer"]["customer_number"] < item["duplicate"]["customer_number"]
            seen.append((item["customer"]["id"], item["duplicate"]["id"]))
            scores.append(item["score"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen))
    assert scores == sorted(scores, reverse=True)
    assert min(scores) >= 0.85
    ids = [c["id"] for c in taxed]
    assert {(ids[0], ids[1]), (ids[0], ids[2]), (ids[1], ids[2])} <= set(seen)


async def test_a_customer_token_gets_404_from_both_lists(
    client: Client, bearer: Bearer, api: Api
) -> None:
    customer = await api.register()
    token = bearer("customer", customer_id=customer["id"])
    for path in (f"/v1/customers/{customer['id']}/duplicates", "/v1/duplicates"):
        await problem(await client.get(path, headers=token), 404)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"min_score": "1.5"}, "min_score"),
        ({"min_score": "high"}, "min_score"),
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"wait_ms": "-1"}, "wait_ms"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_bad_query_parameters_answer_422_naming_the_field(
    client: Client, bearer: Bearer, query: dict[str, str], field: str
) -> None:
    for path in ("/v1/duplicates", f"/v1/customers/{secrets.token_hex(16)}/duplicates"):
        body = await problem(await client.get(path, params=query, headers=bearer()), 422)
        assert [error["field"] for error in body["errors"]] == [field]


async def test_a_customer_id_that_is_no_uuid_answers_404(client: Client, bearer: Bearer) -> None:
    await problem(await client.get("/v1/customers/nope/duplicates", headers=bearer()), 404)


async def test_a_position_the_view_has_not_reached_answers_503(
    client: Client, bearer: Bearer
) -> None:
    response = await client.get(
        "/v1/duplicates", params={"min_position": "999999999", "wait_ms": "0"}, headers=bearer()
    )
    await problem(response, 503)
    assert "Retry-After" in response.headers


async def test_lists_answer_503_while_the_view_is_not_built(
    aiohttp_client: Any, api_settings: Settings, service: CustomerService, bearer: Bearer
) -> None:
    """A gateway on a schema whose duplicates view no worker has created yet: 503 with
    Retry-After, not a 500."""
    unbuilt = api_settings.model_copy(update={"db_schema": f"unbuilt_{secrets.token_hex(4)}"})
    client = await aiohttp_client(create_app(unbuilt, service=service))
    for path in ("/v1/duplicates", f"/v1/customers/{secrets.token_hex(16)}/duplicates"):
        response = await client.get(path, headers=bearer())
        await problem(response, 503)
        assert "Retry-After" in response.headers


def test_the_lookup_says_not_checked_while_the_view_is_not_built(
    service: CustomerService,
) -> None:
    """Registration's look-up on a schema with no duplicates view answers None (the 201's
    `likely_duplicates: null`) instead of failing the registration."""
    lookup = DuplicateLookup(service.recorder.datastore, f"unbuilt_{secrets.token_hex(4)}")  # type: ignore[attr-defined]
    new = NewCustomer(None, Profile(first_name="Ada", mobile_phone="+14155550123"), [])
    assert lookup([new]) is None


async def test_a_merged_customer_leaves_its_pairs_and_the_survivor_takes_them_over(
    api: Api,
) -> None:
    """Merged away, a customer is in no pair; the survivor, filled with its mobile, pairs
    with the other's landline instead; unmerged, the pairs are as before."""
    local, e164 = _local_number()
    survivor = await api.register(first_name="Grace", last_name="Hopper", mobile_phone=None)
    merged = await api.register(first_name="Grace", last_name="Hopper", mobile_phone=e164)
    other = await api.register(first_name="Grace", last_name="Hopper", phone=local)
    assert list(await api.paired_with(other["id"])) == [merged["id"]]
    version = (await api.etag(merged["id"]))["If-Match"].strip('"')
    answer = await api.call(
        "POST",
        f"/v1/customers/{survivor['id']}/merge",
        json={"from": [merged["id"]], "versions": {merged["id"]: int(version)}},
        headers=await api.etag(survivor["id"]),
    )
    assert await api.duplicates_of(merged["id"]) == []
    assert list(await api.paired_with(other["id"])) == [survivor["id"]]
    await api.call(
        "POST",
        f"/v1/customers/{survivor['id']}/unmerge",
        json={"merge_id": answer["merge_id"]},
        headers=await api.etag(survivor["id"]),
    )
    assert list(await api.paired_with(other["id"])) == [merged["id"]]
