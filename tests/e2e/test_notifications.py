"""Registrations over HTTP become CloudEvents and notification requests on NATS, as documented."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import jsonschema
import nats
import pytest

from domain.portal import PortalAccount
from domain.sealing import SecretSealer
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
    for subject, body in received:
        _validate(document, subject, body)

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


async def test_portal_appointment_and_ticket_messages_reach_nats_with_no_clear_token(
    client: Any,
    bearer: Callable[..., dict[str, str]],
    api_settings: Settings,
    relay: tuple[Relay, EmbeddedNats],
    service: CustomerService,
) -> None:
    """Invite, reset, the four appointment steps and a ticket move each ask for their
    template; times show in Europe/Berlin on both sides of the spring change; the link's
    token is in no message in clear and, opened with the notification key, sets a password."""
    _, nats_server = relay
    berlin = api_settings.model_copy(
        update={"nats_url": nats_server.url, "business_time_zone": "Europe/Berlin"}
    )
    sink = open_relay(berlin, service)
    staff, admin = bearer(), bearer("admin")
    email = f"ada.{uuid4().hex[:8]}@example.com"
    body = {"first_name": "Ada", "email": email, "notification_channels": ["email"]}
    customer_id = (await _ok(await client.post("/v1/customers", json=body, headers=staff)))["id"]
    await _ok(await client.post(f"/v1/customers/{customer_id}/portal/invite", headers=staff))
    reset = f"/v1/customers/{customer_id}/portal/password-reset"
    await _ok(await client.post(reset, headers=admin))
    # Berlin moves to summer time on 28 March 2027 at 01:00 UTC.
    winter = await _book(client, staff, customer_id, "2027-03-27T09:00:00Z")
    summer = await _book(client, staff, customer_id, "2027-03-29T09:00:00Z")
    path = f"/v1/appointments/{winter}"
    await _ok(await client.post(f"{path}/confirm", headers={**staff, "If-Match": '"1"'}))
    moved = {"starts_at": "2027-03-29T13:00:00Z", "ends_at": "2027-03-29T14:00:00Z"}
    await _ok(await client.post(f"{path}/reschedule", json=moved, headers=_if(staff, 2)))
    await _ok(await client.post(f"{path}/cancel", json={"reason": "ill"}, headers=_if(staff, 3)))
    ticket = {
        "customer_id": customer_id,
        "subject": "No boot",
        "problem": "Dead",
        "device": {"type": "laptop", "make": "Lenovo"},
    }
    ticket_id = (await _ok(await client.post("/v1/tickets", json=ticket, headers=staff)))["id"]
    status = {"status": "diagnosing", "note": "internal: bad battery"}
    await _ok(
        await client.post(f"/v1/tickets/{ticket_id}/status", json=status, headers=_if(staff, 1))
    )
    try:
        await asyncio.to_thread(publish_new_events, sink, service)
    finally:
        sink.close()

    received = await stream_messages(nats_server.url)
    document = await (await client.get("/asyncapi.json")).json()
    for subject, message in received:
        _validate(document, subject, message)
    mine = [
        b["data"] for s, b in received if s == "crm.notify.email" and b["subject"] == customer_id
    ]
    by_template = {d["template"]: d["variables"] for d in mine}
    assert sorted(by_template) == sorted(
        ["registration", "portal_invite", "password_reset", "appointment_booked",
         "appointment_confirmed", "appointment_rescheduled", "appointment_cancelled",
         "ticket_status_changed"]
    )  # fmt: skip
    assert len([d for d in mine if d["template"] == "appointment_booked"]) == 2
    booked = {
        d["variables"]["appointment_id"]: d["variables"]["starts_at_text"]
        for d in mine
        if d["template"] == "appointment_booked"
    }
    assert booked == {winter: "Sat 27 Mar 2027, 10:00 CET", summer: "Mon 29 Mar 2027, 11:00 CEST"}
    assert by_template["appointment_rescheduled"]["starts_at_text"] == "Mon 29 Mar 2027, 15:00 CEST"
    assert by_template["appointment_cancelled"]["reason"] == "ill"
    assert by_template["ticket_status_changed"]["status"] == "diagnosing"

    # The tokens as the service made them: in no message, in clear or sealed with its key.
    events = [
        service.mapper.to_domain_event(n)
        for n in service.recorder.select_notifications(start=1, limit=100_000)
    ]
    links = [
        e for e in events
        if isinstance(e, PortalAccount.Invited | PortalAccount.PasswordResetRequested)
        and e.customer_id == UUID(customer_id)
    ]  # fmt: skip
    stream = json.dumps(received)
    assert len(links) == 2
    for link in links:
        clear = service.unseal(link.sealed_token)
        assert clear not in stream and clear.split(".")[1] not in stream
        assert link.sealed_token not in stream and link.token_hash not in stream
    assert "bad battery" not in json.dumps(mine), "staff notes are for the event stream only"
    assert berlin.notification_key is not None
    consumer = SecretSealer(berlin.notification_key.get_secret_value())
    token = consumer.unseal(by_template["password_reset"]["sealed_token"])
    answer = await client.post(
        "/v1/auth/set-password", json={"token": token, "password": "correct horse battery 9"}
    )
    assert answer.status == 200, await answer.text()


async def _ok(answer: Any) -> dict[str, Any]:
    assert answer.status < 300, await answer.text()
    body: dict[str, Any] = await answer.json()
    return body


def _if(headers: dict[str, str], version: int) -> dict[str, str]:
    return {**headers, "If-Match": f'"{version}"'}


async def _book(client: Any, headers: dict[str, str], customer_id: str, starts_at: str) -> str:
    ends_at = starts_at.replace("09:00", "10:00")
    body = {"customer_id": customer_id, "starts_at": starts_at, "ends_at": ends_at}
    body["staff_id"] = f"staff-{uuid4().hex[:6]}"
    return str((await _ok(await client.post("/v1/appointments", json=body, headers=headers)))["id"])


def _validate(document: dict[str, Any], subject: str, body: dict[str, Any]) -> None:
    channels = {c["address"]: c for c in document["channels"].values()}
    [ref] = channels[subject]["messages"].values()
    message = document["components"]["messages"][ref["$ref"].rsplit("/", 1)[1]]
    schema = {"$ref": message["payload"]["$ref"], "components": document["components"]}
    jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(body)


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
