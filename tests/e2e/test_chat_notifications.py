"""Each chat message notifies the other side on NATS: staff's reach the customer on its
channels (`crm.notify.email|sms`, template `chat_message`), the customer's reach staff
(`crm.notify.staff`); every message agrees with the served AsyncAPI document."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tests.e2e.test_notifications import (  # the relay to a NATS of the test's own
    _validate,
    publish_new_events,
    relay,
    stream_messages,
)

from domain.service import CustomerService
from infrastructure.servers import EmbeddedNats
from workers.relay import Relay

__all__ = ["relay"]  # a fixture, used by name

Bearer = Callable[..., dict[str, str]]


async def test_a_staff_message_notifies_the_customer_and_a_customer_message_notifies_staff(
    client: Any,
    bearer: Bearer,
    registration: Callable[..., dict[str, Any]],
    relay: tuple[Relay, EmbeddedNats],
    service: CustomerService,
) -> None:
    """Staff → email and SMS requests to the customer with the text; customer → one notice
    for staff naming the customer; neither side is notified of its own message."""
    sink, nats_server = relay
    body = registration(first_name="Ada", last_name="Byron", notification_channels=["email", "sms"])
    response = await client.post("/v1/customers", json=body, headers=bearer())
    assert response.status == 201, await response.text()
    customer_id = (await response.json())["id"]
    path = f"/v1/customers/{customer_id}/messages"
    staff = await client.post(path, json={"text": "Rex is ready to go home"}, headers=bearer())
    own = bearer("customer", sub="ada@portal", customer_id=customer_id)
    reply = await client.post(path, json={"text": "Picking him up at 5"}, headers=own)
    assert (staff.status, reply.status) == (201, 201)
    staff_message, reply_message = (await staff.json())["id"], (await reply.json())["id"]
    await asyncio.to_thread(publish_new_events, sink, service)

    received = await stream_messages(nats_server.url)
    document = await (await client.get("/asyncapi.json")).json()
    for subject, message in received:
        _validate(document, subject, message)
    about = [(s, m) for s, m in received if m["subject"] == customer_id]
    to_customer = [m["data"] for s, m in about if s in ("crm.notify.email", "crm.notify.sms")]
    chat = [d for d in to_customer if d["template"] == "chat_message"]
    assert sorted(d["channel"] for d in chat) == ["email", "sms"]
    assert {d["variables"]["message_id"] for d in chat} == {staff_message}
    assert {d["variables"]["text"] for d in chat} == {"Rex is ready to go home"}
    assert {d["recipient"] for d in chat if d["channel"] == "email"} == {
        body["email"].split("@")[0] + "@example.com"
    }
    [notice] = [m for s, m in about if s == "crm.notify.staff"]
    assert notice["type"] == "crm.notify.staff.v1" and notice["actor"] == "ada@portal"
    assert notice["data"]["kind"] == "chat_message"
    assert notice["data"]["message_id"] == reply_message
    assert notice["data"]["customer_name"] == "Ada Byron"
    assert notice["data"]["text"] == "Picking him up at 5"
    # The events themselves are about the messages (subject: the message's id).
    posted = {m["subject"]: m["data"] for s, m in received if s == "crm.chat_message.posted"}
    assert posted[staff_message]["sender"] == "staff"
    assert posted[reply_message] == {
        "customer_id": customer_id,
        "sender": "customer",
        "text": "Picking him up at 5",
    }
