"""Registrations over HTTP become CloudEvents and notification requests on NATS, as documented."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import nats
import pytest

from domain.service import CustomerService
from gateway import create_app
from infrastructure.servers import EmbeddedNats
from infrastructure.settings import Settings
from projections.asyncapi import asyncapi_document
from workers.relay import Relay, RelayPositions, open_relay


@pytest.fixture
def relay(
    api_settings: Settings, service: CustomerService, server_data_dir: Path
) -> Iterator[tuple[Relay, EmbeddedNats]]:
    """A relay on the session's schema, at the head of its log, and a NATS of this test's own."""
    nats_server = EmbeddedNats(server_data_dir / "nats", keep_data=False)
    nats_server.start()
    relay = open_relay(api_settings.model_copy(update={"nats_url": nats_server.url}), service)
    positions = RelayPositions(service.recorder.datastore, api_settings.db_schema)  # type: ignore[attr-defined]
    positions.save("relay", service.recorder.max_notification_id() or 0)
    yield relay, nats_server
    relay.close()
    nats_server.close()


def publish_new_events(relay: Relay, service: CustomerService) -> None:
    """What the relay's follower does: the events after its position, as one batch."""
    notifications = service.recorder.select_notifications(
        start=relay.position(), limit=1000, inclusive_of_start=False
    )
    relay.process([(n.id, service.mapper.to_domain_event(n)) for n in notifications])


async def stream_messages(url: str) -> list[tuple[str, dict[str, Any]]]:
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        count = (await js.stream_info("CRM")).state.messages
        subscription = await js.pull_subscribe("crm.>", stream="CRM")
        messages = await subscription.fetch(count, timeout=5) if count else []
        return [(m.subject, json.loads(m.data)) for m in messages]
    finally:
        await client.close()


async def test_a_registration_asks_for_a_welcome_on_the_customer_s_channels(
    client: Any,
    bearer: Callable[..., dict[str, str]],
    registration: Callable[..., dict[str, Any]],
    relay: tuple[Relay, EmbeddedNats],
    service: CustomerService,
) -> None:
    """Email and SMS requests carry recipient, template and variables; the opt-out gets none."""
    sink, nats_server = relay
    welcomed = registration(notification_channels=["email", "sms"], company_name="Engines")
    created = await client.post("/v1/customers", json=welcomed, headers=bearer())
    silent = registration(send_registration_email=False)
    quiet = await client.post("/v1/customers", json=silent, headers=bearer())
    assert (created.status, quiet.status) == (201, 201)
    welcomed_id, quiet_id = (await created.json())["id"], (await quiet.json())["id"]
    await asyncio.to_thread(publish_new_events, sink, service)

    received = await stream_messages(nats_server.url)
    document = await (await client.get("/asyncapi.json")).json()
    channels = {c["address"]: c for c in document["channels"].values()}
    for subject, body in received:
        [ref] = channels[subject]["messages"].values()
        message = document["components"]["messages"][ref["$ref"].rsplit("/", 1)[1]]
        schema = {"$ref": message["payload"]["$ref"], "components": document["components"]}
        jsonschema.Draft202012Validator(schema).validate(body)

    by_customer = {(s, b["subject"]): b for s, b in received}
    assert ("crm.customer.registered", welcomed_id) in by_customer
    assert ("crm.customer.registered", quiet_id) in by_customer
    email = by_customer[("crm.notify.email", welcomed_id)]["data"]
    sms = by_customer[("crm.notify.sms", welcomed_id)]["data"]
    assert email["recipient"] == welcomed["email"].split("@")[0] + "@example.com"
    assert sms["recipient"].startswith("+1415")
    assert email["template"] == sms["template"] == "registration"
    assert email["variables"]["company_name"] == "Engines"
    assert email["variables"]["first_name"] == welcomed["first_name"]
    assert not any(s.startswith("crm.notify") and b["subject"] == quiet_id for s, b in received)
    registered = by_customer[("crm.customer.registered", welcomed_id)]
    assert registered["actor"] == "alice@shop" and registered["correlationid"]


async def test_the_asyncapi_document_is_served_without_a_token(client: Any) -> None:
    """`GET /asyncapi.json` is open, like the OpenAPI document, and is the generated document."""
    answer = await client.get("/asyncapi.json")
    assert answer.status == 200
    assert await answer.json() == json.loads(json.dumps(asyncapi_document()))


async def test_metrics_show_the_relay_s_backlog_and_lag(
    aiohttp_client: Any,
    api_settings: Settings,
    service: CustomerService,
    relay: tuple[Relay, EmbeddedNats],
) -> None:
    """/metrics reads the relay's table: position, backlog behind the head, last batch's lag."""
    sink, _ = relay
    service.register_customer({"first_name": "Lag"})
    http = await aiohttp_client(create_app(api_settings, service=service))
    before = await (await http.get("/metrics")).text()
    assert _gauge(before, "relay_backlog_events") >= 1
    await asyncio.to_thread(publish_new_events, sink, service)
    after = await (await http.get("/metrics")).text()
    assert _gauge(after, "relay_backlog_events") == 0
    assert _gauge(after, "relay_position") == service.recorder.max_notification_id()
    assert 0 <= _gauge(after, "relay_batch_lag_seconds") < 60
    assert _gauge(after, "relay_stalled_seconds") == 0


def _gauge(metrics: str, name: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(f'{name}{{relay="relay"}} '):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in /metrics")
