"""A merge and its undoing reach everything: history on both sides, search, NATS; and two
merges racing on one customer, from two services on one event store, cannot both win."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from aiohttp.test_utils import TestClient
from tests.e2e.answers import ok
from tests.e2e.test_notifications import publish_new_events, stream_messages
from tests.unit.domain.records import new_record

from domain.errors import DomainError
from domain.service import CustomerService, Receipt
from infrastructure.eventstore import build_service
from infrastructure.servers import EmbeddedNats
from infrastructure.settings import Settings
from projections.base import ReadModel
from workers.relay import Relay, RelayPositions, open_relay

Client = TestClient[Any, Any]
Bearer = Callable[..., dict[str, str]]
Registration = Callable[..., dict[str, Any]]


@pytest.fixture(scope="module")
def read_models(followed: Any) -> Iterator[None]:
    """The history and search read models, kept current by follower threads."""
    with followed("history"), followed("search"):
        yield


@pytest.fixture
def record_lists(followed: Any) -> Iterator[None]:
    """The appointments and tickets read models, kept current by follower threads."""
    with followed("appointments"), followed("tickets"):
        yield


async def post(
    client: Client, bearer: Bearer, path: str, body: Any, etag: int | None = None
) -> Any:
    headers = {**bearer(), **({"If-Match": f'"{etag}"'} if etag else {})}
    response = await client.post(path, json=body, headers=headers)
    assert response.status in (200, 201), await response.text()
    return await response.json(), int(response.headers["X-Event-Position"])


async def history(client: Client, bearer: Bearer, customer_id: str, position: int) -> list[Any]:
    params = {"min_position": str(position), "limit": "500"}
    body = await ok(
        await client.get(f"/v1/customers/{customer_id}/history", params=params, headers=bearer())
    )
    return list(body["items"])


async def found(client: Client, bearer: Bearer, q: str, position: int) -> list[str]:
    params = {"q": q, "min_position": str(position), "registered_within_days": "1"}
    body = await ok(await client.get("/v1/customers", params=params, headers=bearer()))
    return [item["id"] for item in body["items"]]


async def test_history_and_search_follow_a_merge_and_its_undoing(
    client: Client, bearer: Bearer, registration: Registration, read_models: None
) -> None:
    """Both sides get a merge row and an unmerge row; search hides the tombstone meanwhile."""
    survivor, _ = await post(client, bearer, "/v1/customers", registration(company_name=None))
    merged_body = registration(last_name="Quuxworth", company_name="Globex")
    merged, _ = await post(client, bearer, "/v1/customers", merged_body)
    s, m = survivor["id"], merged["id"]
    note, position = await post(client, bearer, f"/v1/customers/{m}/notes", {"text": "gate 4711"})
    assert await found(client, bearer, "Quuxworth", position) == [m]

    merge, position = await post(
        client, bearer, f"/v1/customers/{s}/merge", {"from": [m], "versions": {m: 2}}, etag=1
    )
    assert await found(client, bearer, "Quuxworth", position) == []
    rows = await history(client, bearer, s, position)
    merged_row = rows[-1]
    assert merged_row["type"] == "customer.merged"
    changes = {c["field"]: (c["from"], c["to"]) for c in merged_row["changes"]}
    assert changes[f"merged_from[{m}]"] == (None, merge["merge_id"])
    assert changes[f"notes[{note['note_id']}].text"] == (None, "gate 4711")
    assert changes["company_name"] == (None, "Globex")
    tombstone_rows = await history(client, bearer, m, position)
    assert tombstone_rows[-1]["type"] == "customer.merged_into"
    assert tombstone_rows[-1]["changes"] == [{"field": "merged_into", "from": None, "to": s}]

    _, position = await post(
        client, bearer, f"/v1/customers/{s}/unmerge", {"merge_id": merge["merge_id"]}, etag=2
    )
    assert await found(client, bearer, "Quuxworth", position) == [m]
    unmerged_row = (await history(client, bearer, s, position))[-1]
    assert unmerged_row["type"] == "customer.unmerged"
    undone = {c["field"]: (c["from"], c["to"]) for c in unmerged_row["changes"]}
    assert undone[f"notes[{note['note_id']}].text"] == ("gate 4711", None)
    assert undone["company_name"] == ("Globex", None)
    back = (await history(client, bearer, m, position))[-1]
    assert back["type"] == "customer.unmerged_from"
    assert back["changes"] == [{"field": "merged_into", "from": s, "to": None}]


async def test_the_customer_s_appointments_and_tickets_lists_follow_the_relink(
    client: Client, bearer: Bearer, registration: Registration, record_lists: None
) -> None:
    """The survivor's lists show the merged customer's records; after the unmerge, they
    are the merged customer's again."""
    survivor, _ = await post(client, bearer, "/v1/customers", registration())
    merged, _ = await post(client, bearer, "/v1/customers", registration())
    s, m = survivor["id"], merged["id"]
    ticket, _ = await post(
        client,
        bearer,
        "/v1/tickets",
        {"customer_id": m, "subject": "screen", "problem": "cracked", "device": {"type": "phone"}},
    )
    starts = datetime.now(UTC) + timedelta(days=2)
    times = {"starts_at": starts.isoformat(), "ends_at": (starts + timedelta(hours=1)).isoformat()}
    appointment, _ = await post(client, bearer, "/v1/appointments", {"customer_id": m, **times})

    async def listed(customer_id: str, position: int) -> tuple[list[str], list[str]]:
        params = {"min_position": str(position)}
        lists = []
        for kind in ("tickets", "appointments"):
            path = f"/v1/customers/{customer_id}/{kind}"
            body = await ok(await client.get(path, params=params, headers=bearer()))
            lists.append([item["id"] for item in body["items"]])
        return lists[0], lists[1]

    merge, position = await post(
        client, bearer, f"/v1/customers/{s}/merge", {"from": [m], "versions": {m: 1}}, etag=1
    )
    assert await listed(s, position) == ([ticket["id"]], [appointment["id"]])
    assert await listed(m, position) == ([], [])
    _, position = await post(
        client, bearer, f"/v1/customers/{s}/unmerge", {"merge_id": merge["merge_id"]}, etag=2
    )
    assert await listed(m, position) == ([ticket["id"]], [appointment["id"]])
    assert await listed(s, position) == ([], [])


@pytest.fixture
def tab_models(followed: Any) -> Iterator[ReadModel]:
    """The read models of the customer's other tabs, kept current by follower threads;
    the pets model (its tab is a pet-care business's only) to read its table."""
    with (
        followed("pets") as pets,
        followed("files"),
        followed("conversations"),
        followed("accounts"),
        followed("billing"),
    ):
        yield pets


TABS = {
    "files": "files",
    "interactions": "interactions",
    "chat_messages": "messages",
    "satisfaction_scores": "satisfaction",
    "packages": "packages",
    "invoices": "invoices",
    "payments": "payments",
}
"""The kind of record (as the merge's answer names it) and the tab that lists it."""


async def test_every_tab_of_the_customer_follows_the_relink(
    client: Client,
    bearer: Bearer,
    registration: Registration,
    service: CustomerService,
    tab_models: ReadModel,
) -> None:
    """Each tab of the survivor lists the merged customer's records after the merge, and
    the merged customer's own again after the unmerge."""
    survivor, _ = await post(client, bearer, "/v1/customers", registration())
    merged, _ = await post(client, bearer, "/v1/customers", registration())
    s, m = survivor["id"], merged["id"]
    made = {kind: str(new_record(service, UUID(m), kind).aggregate_id) for kind in TABS}
    pet = new_record(service, UUID(m), "pets").aggregate_id

    async def pet_owner(position: int) -> str:
        """The pet's customer in the pets table, once the model has read up to `position`."""
        for _ in range(100):
            if tab_models.position() >= position:
                break
            await asyncio.sleep(0.1)
        select = f"SELECT customer_id FROM {tab_models.schema}.pets WHERE id = %s"
        with tab_models.datastore.transaction(commit=False) as cursor:
            cursor.execute(select, (pet,))
            row = cursor.fetchone()
            assert row is not None
            return str(row["customer_id"])

    async def listed(customer_id: str, position: int) -> dict[str, list[str]]:
        lists = {}
        for kind, tab in TABS.items():
            path = f"/v1/customers/{customer_id}/{tab}"
            params = {"min_position": str(position)}
            body = await ok(await client.get(path, params=params, headers=bearer()))
            lists[kind] = [item["id"] for item in body["items"]]
        return lists

    merge, position = await post(
        client, bearer, f"/v1/customers/{s}/merge", {"from": [m], "versions": {m: 1}}, etag=1
    )
    assert {kind: merge["moved"][m][kind] for kind in TABS} == {k: [v] for k, v in made.items()}
    assert await listed(s, position) == {k: [v] for k, v in made.items()}
    assert await listed(m, position) == {k: [] for k in TABS}
    assert merge["moved"][m]["pets"] == [str(pet)] and await pet_owner(position) == s
    undone, position = await post(
        client, bearer, f"/v1/customers/{s}/unmerge", {"merge_id": merge["merge_id"]}, etag=2
    )
    assert {k: undone["moved_back"][m][k] for k in TABS} == {k: [v] for k, v in made.items()}
    assert await listed(m, position) == {k: [v] for k, v in made.items()}
    assert await listed(s, position) == {k: [] for k in TABS}
    assert await pet_owner(position) == m


@pytest.fixture
def relay(
    api_settings: Settings, service: CustomerService, server_data_dir: Path
) -> Iterator[tuple[Relay, EmbeddedNats]]:
    """A relay at the head of the session's log, and a NATS of this test's own."""
    nats_server = EmbeddedNats(server_data_dir / "nats-merge", keep_data=False)
    nats_server.start()
    relay = open_relay(api_settings.model_copy(update={"nats_url": nats_server.url}), service)
    positions = RelayPositions(service.recorder.datastore, api_settings.db_schema)  # type: ignore[attr-defined]
    positions.save("relay", service.recorder.max_notification_id() or 0)
    yield relay, nats_server
    relay.close()
    nats_server.close()


async def test_a_merge_and_its_relinks_are_published(
    client: Client,
    bearer: Bearer,
    registration: Registration,
    relay: tuple[Relay, EmbeddedNats],
    service: CustomerService,
) -> None:
    """crm.customer.merged (survivor), crm.customer.merged_into (tombstone), and each moved
    record's relinking (crm.ticket.relinked, crm.pet.relinked)."""
    sink, nats_server = relay
    survivor, _ = await post(client, bearer, "/v1/customers", registration())
    merged, _ = await post(client, bearer, "/v1/customers", registration())
    s, m = survivor["id"], merged["id"]
    ticket, _ = await post(
        client,
        bearer,
        "/v1/tickets",
        {"customer_id": m, "subject": "screen", "problem": "cracked", "device": {"type": "phone"}},
    )
    pet = service.add_pet(UUID(m), {"name": "Rex", "species": "dog"}).aggregate_id
    merge, _ = await post(
        client, bearer, f"/v1/customers/{s}/merge", {"from": [m], "versions": {m: 1}}, etag=1
    )
    await asyncio.to_thread(publish_new_events, sink, service)

    received = {subject: body for subject, body in await stream_messages(nats_server.url)}
    assert received["crm.customer.merged"]["subject"] == s
    assert received["crm.customer.merged"]["data"]["merged_id"] == m
    assert received["crm.customer.merged"]["data"]["merge_id"] == merge["merge_id"]
    assert received["crm.customer.merged_into"]["data"]["survivor_id"] == s
    relinked = received["crm.ticket.relinked"]
    assert relinked["subject"] == ticket["id"]
    assert (relinked["data"]["customer_id"], relinked["data"]["previous_customer_id"]) == (s, m)
    relinked = received["crm.pet.relinked"]
    assert relinked["subject"] == str(pet) and relinked["data"]["merge_id"] == merge["merge_id"]
    assert (relinked["data"]["customer_id"], relinked["data"]["previous_customer_id"]) == (s, m)


def race(one: CustomerService, other: CustomerService) -> None:
    """Merge one new customer into two new survivors at once, from the two services."""
    first, second, contested = (
        one.register_customer({"first_name": name}).aggregate_id for name in ("A", "B", "M")
    )
    barrier = threading.Barrier(2)
    outcomes: dict[UUID, Receipt | DomainError] = {}

    def run(on: CustomerService, survivor: UUID) -> None:
        barrier.wait()
        try:
            outcomes[survivor] = on.merge_customers(
                survivor, [contested], expected_versions={survivor: 1, contested: 1}
            )
        except DomainError as refused:
            outcomes[survivor] = refused

    threads = [
        threading.Thread(target=run, args=(one, first)),
        threading.Thread(target=run, args=(other, second)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    won = [s for s, outcome in outcomes.items() if isinstance(outcome, Receipt)]
    assert len(won) == 1 and len(outcomes) == 2, outcomes
    assert one.get_customer(contested).merged_into == won[0]
    lost = first if won[0] == second else second
    assert one.get_customer(lost).merges == {}


def test_two_merges_racing_on_one_customer_one_wins(
    api_settings: Settings, service: CustomerService
) -> None:
    """Two services (as two gateways would) merge one customer into different survivors at
    once, each having seen its version: exactly one merge is saved, the other is refused."""
    other = build_service(api_settings)
    try:
        for _ in range(5):
            race(service, other)
    finally:
        other.close()
