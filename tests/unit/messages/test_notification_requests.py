"""Notification requests: who gets which template on which channel, and nothing secret."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from domain.customers import Customer
from domain.values import Profile
from projections.notifications import TRIGGERS, Lookups, notification_messages, recipients

Log = list[tuple[int, Any]]


def _no_profiles(*_: Any) -> Profile | None:
    raise AssertionError("registration carries its profile: no lookup")


no_lookup = Lookups(_no_profiles)


def registered(service: Any, read_log: Callable[[], Log], **fields: Any) -> tuple[int, Any]:
    service.register_customer({"first_name": "Ada", **fields})
    return next((p, e) for p, e in reversed(read_log()) if isinstance(e, Customer.Registered))


def requests(position: int, event: Any) -> list[dict[str, Any]]:
    return [json.loads(m.body) for m in notification_messages(position, event, no_lookup)]


def test_registration_asks_for_a_welcome_on_each_chosen_channel(
    service: Any, read_log: Callable[[], Log], validate: Callable[..., None]
) -> None:
    """Email and SMS channels each get a `registration` request to the customer's address."""
    position, event = registered(
        service,
        read_log,
        email="ada@example.com",
        mobile_phone="+14155552671",
        company_name="Engines",
        notification_channels=["email", "sms"],
    )
    messages = notification_messages(position, event, no_lookup)
    assert [m.subject for m in messages] == ["crm.notify.email", "crm.notify.sms"]
    for message in messages:
        validate(message.subject, json.loads(message.body))
    email, sms = (json.loads(m.body)["data"] for m in messages)
    assert (email["recipient"], sms["recipient"]) == ("ada@example.com", "+14155552671")
    assert email["template"] == sms["template"] == "registration"
    assert email["variables"] == {
        "first_name": "Ada",
        "last_name": None,
        "company_name": "Engines",
        "customer_number": event.customer_number,
    }
    assert email["category"] == "transactional"
    assert email["customer_id"] == str(event.originator_id)


def test_send_registration_email_false_sends_nothing(
    service: Any, read_log: Callable[[], Log]
) -> None:
    """An operator's "do not send registration email" silences the welcome on every channel."""
    position, event = registered(
        service,
        read_log,
        email="ada@example.com",
        mobile_phone="+14155552671",
        notification_channels=["email", "sms"],
        send_registration_email=False,
    )
    assert requests(position, event) == []


def test_a_channel_without_an_address_is_left_out(
    service: Any, read_log: Callable[[], Log]
) -> None:
    """An SMS channel with no mobile number (or email with no address) sends nothing there."""
    position, event = registered(
        service, read_log, email="ada@example.com", notification_channels=["email", "sms"]
    )
    assert [r["data"]["channel"] for r in requests(position, event)] == ["email"]
    position, event = registered(service, read_log, notification_channels=["email"])
    assert requests(position, event) == []


def test_marketing_consent_does_not_gate_transactional_messages(
    service: Any, read_log: Callable[[], Log]
) -> None:
    """No newsletter or promotional SMS consent still gets the registration welcome."""
    position, event = registered(
        service,
        read_log,
        email="ada@example.com",
        mobile_phone="+14155552671",
        notification_channels=["email", "sms"],
        newsletter=False,
        promotional_sms=False,
    )
    assert len(requests(position, event)) == 2


@pytest.mark.parametrize(
    ("newsletter", "promotional_sms", "expected"),
    [(True, True, ["email", "sms"]), (True, False, ["email"]), (False, True, ["sms"]),
     (False, False, [])],
)  # fmt: skip
def test_marketing_messages_need_the_channel_s_consent(
    newsletter: bool, promotional_sms: bool, expected: list[str]
) -> None:
    """Marketing goes by email only with `newsletter`, by SMS only with `promotional_sms`."""
    profile = Profile(
        first_name="Ada",
        email="ada@example.com",
        mobile_phone="+14155552671",
        notification_channels=("email", "sms"),
        newsletter=newsletter,
        promotional_sms=promotional_sms,
    )
    assert [channel for channel, _ in recipients(profile, "marketing")] == expected
    assert len(recipients(profile, "transactional")) == 2


def test_request_ids_derive_from_the_event_and_the_channel(
    service: Any, read_log: Callable[[], Log]
) -> None:
    """The same event gives the same ids (JetStream drops a republish); channels differ."""
    position, event = registered(
        service,
        read_log,
        email="ada@example.com",
        mobile_phone="+14155552671",
        notification_channels=["email", "sms"],
    )
    first = [m.msg_id for m in notification_messages(position, event, no_lookup)]
    again = [m.msg_id for m in notification_messages(position, event, no_lookup)]
    assert first == again and len(set(first)) == 2


def test_requests_carry_chosen_variables_only(full_life: str, read_log: Callable[[], Log]) -> None:
    """Nothing but the template's variables travels: no id number, birthday or secret."""
    for position, event in read_log():
        for message in notification_messages(position, event, no_lookup):
            assert b"1815" not in message.body and full_life.encode() not in message.body
            assert b"sealed_secret" not in message.body and b"4711-blue" not in message.body


def test_events_without_a_trigger_ask_for_nothing(
    full_life: str, read_log: Callable[[], Log]
) -> None:
    """Only triggers' events produce requests; of a customer's own events, registration."""
    assert set(TRIGGERS) == {
        "customer.registered",
        "portal_account.invited",
        "portal_account.password_reset_requested",
        "appointment.booked",
        "appointment.confirmed",
        "appointment.rescheduled",
        "appointment.cancelled",
        "ticket.status_changed",
        "chat_message.posted",
    }
    asking = {type(e).__name__ for p, e in read_log() if notification_messages(p, e, no_lookup)}
    assert asking == {"Registered"}
