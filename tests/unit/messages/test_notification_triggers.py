"""Portal, appointment and ticket triggers: their templates, variables, times and tokens."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from cryptography.fernet import Fernet

from domain.portal import PortalAccount, token_hash
from domain.sealing import SecretSealer, UnreadableSecretError
from domain.service import CustomerService
from projections.notifications import notification_messages
from workers.relay_lookups import service_lookups

Log = list[tuple[int, Any]]
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
"""Before Berlin's 2026 spring change (29 March, 01:00 UTC: CET +01:00 → CEST +02:00)."""
NOTIFICATION_KEY = Fernet.generate_key().decode()


@pytest.fixture
def service() -> CustomerService:
    """A service on the in-memory store whose clock stands on 1 March 2026."""
    return CustomerService(sealer=SecretSealer(SecretSealer.generate_key()), clock=lambda: NOW)


@pytest.fixture
def customer(service: CustomerService) -> UUID:
    return service.register_customer(
        {
            "first_name": "Ada",
            "email": "ada@example.com",
            "mobile_phone": "+14155552671",
            "username": "ada",
            "notification_channels": ["email", "sms"],
            "newsletter": False,
            "promotional_sms": False,
        }
    ).aggregate_id


Requests = Callable[[str], list[dict[str, Any]]]


@pytest.fixture
def requests_for(service: CustomerService, validate: Callable[..., None]) -> Iterator[Requests]:
    """The notification requests of the newest event of a type, each checked against the
    AsyncAPI document, as the relay builds them with Europe/Berlin as the business zone."""
    lookups = service_lookups(service, "Europe/Berlin", NOTIFICATION_KEY)

    def of(event_type: str) -> list[dict[str, Any]]:
        log = [
            (n.id, service.mapper.to_domain_event(n))
            for n in service.recorder.select_notifications(start=1, limit=10_000)
        ]
        position, event = next(
            (p, e) for p, e in reversed(log) if type(e).__qualname__ == event_type
        )
        bodies = []
        for message in notification_messages(position, event, lookups):
            body = json.loads(message.body)
            validate(message.subject, body)
            assert message.subject == f"crm.notify.{body['data']['channel']}"
            bodies.append(body)
        return bodies

    yield of


def test_a_portal_invite_carries_the_token_sealed_for_the_sender_only(
    service: CustomerService, customer: UUID, requests_for: Requests
) -> None:
    """The consumer's key opens the link's token; it is in no message in clear, nor sealed
    with the service's key, and the service's key cannot open what is sent."""
    service.invite_to_portal(customer)
    invited: PortalAccount.Invited = next(
        e for e in _events(service) if isinstance(e, PortalAccount.Invited)
    )
    clear = service.unseal(invited.sealed_token)
    requests = requests_for("PortalAccount.Invited")
    assert [r["data"]["channel"] for r in requests] == ["email", "sms"]
    for request in requests:
        raw = json.dumps(request)
        assert clear not in raw and invited.sealed_token not in raw
        assert clear.split(".")[1] not in raw  # not even the random half
        data = request["data"]
        assert data["template"] == "portal_invite" and data["category"] == "transactional"
        sealed = data["variables"]["sealed_token"]
        opened = SecretSealer(NOTIFICATION_KEY).unseal(sealed)
        assert token_hash(opened) == invited.token_hash
        with pytest.raises(UnreadableSecretError):
            service.unseal(sealed)
        assert data["variables"]["username"] == "ada"
        assert data["variables"]["expires_at_text"] == "Sun 8 Mar 2026, 13:00 CET"


def test_a_password_reset_asks_for_a_reset_link_valid_for_a_day(
    service: CustomerService, customer: UUID, requests_for: Requests
) -> None:
    """`password_reset`, its own template, with the reset's expiry and a sealed token."""
    service.request_password_reset(customer)
    [email, sms] = requests_for("PortalAccount.PasswordResetRequested")
    variables = email["data"]["variables"]
    assert email["data"]["template"] == sms["data"]["template"] == "password_reset"
    assert email["data"]["recipient"] == "ada@example.com"
    assert datetime.fromisoformat(variables["expires_at"]) == NOW + timedelta(hours=24)
    assert (
        SecretSealer(NOTIFICATION_KEY)
        .unseal(variables["sealed_token"])
        .startswith(customer.hex + ".")
    )


def test_a_link_whose_token_the_service_cannot_open_is_not_sent(
    service: CustomerService, customer: UUID, validate: Callable[..., None]
) -> None:
    """Sealed with a key the service no longer has: no request, and no stalled relay."""
    service.invite_to_portal(customer)
    position, invited = next(
        (n.id, e)
        for n in service.recorder.select_notifications(start=1, limit=10_000)
        if isinstance(e := service.mapper.to_domain_event(n), PortalAccount.Invited)
    )
    service.sealer = SecretSealer(SecretSealer.generate_key())  # the old key is lost
    lookups = service_lookups(service, "UTC", NOTIFICATION_KEY)
    assert notification_messages(position, invited, lookups) == []


def test_appointment_times_are_shown_on_the_business_clock_across_daylight_saving(
    service: CustomerService, customer: UUID, requests_for: Requests
) -> None:
    """09:00 UTC is 10:00 CET on the Saturday before the spring change, 11:00 CEST after."""
    before = datetime(2026, 3, 28, 9, tzinfo=UTC)
    after = datetime(2026, 3, 30, 9, tzinfo=UTC)
    service.book_appointment(customer, before, before + timedelta(hours=1), staff_id="bob")
    [booked, _] = requests_for("Appointment.Booked")
    service.book_appointment(customer, after, after + timedelta(hours=1), staff_id="bob")
    [booked_after, _] = requests_for("Appointment.Booked")
    winter, summer = booked["data"]["variables"], booked_after["data"]["variables"]
    assert booked["data"]["template"] == "appointment_booked"
    assert (winter["starts_at_text"], winter["ends_at_text"]) == (
        "Sat 28 Mar 2026, 10:00 CET",
        "Sat 28 Mar 2026, 11:00 CET",
    )
    assert winter["starts_at_local"] == "2026-03-28T10:00:00+01:00"
    assert summer["starts_at_text"] == "Mon 30 Mar 2026, 11:00 CEST"
    assert summer["starts_at_local"] == "2026-03-30T11:00:00+02:00"
    assert winter["starts_at"] == "2026-03-28T09:00:00Z" and winter["time_zone"] == "Europe/Berlin"
    assert (winter["staff_id"], winter["first_name"]) == ("bob", "Ada")


def test_confirm_reschedule_and_cancel_each_ask_for_their_own_message(
    service: CustomerService, customer: UUID, requests_for: Requests
) -> None:
    """A moved appointment shows the old and new time (across the change), a cancelled
    one its reason; completion and no-show ask for nothing."""
    starts = datetime(2026, 3, 28, 9, tzinfo=UTC)
    booked = service.book_appointment(customer, starts, starts + timedelta(hours=1), staff_id="bob")
    appointment = booked.aggregate_id
    version = service.confirm_appointment(appointment, expected_version=booked.version).version
    [confirmed, _] = requests_for("Appointment.Confirmed")
    assert confirmed["data"]["template"] == "appointment_confirmed"
    moved = starts + timedelta(days=2)
    version = service.reschedule_appointment(
        appointment, moved, moved + timedelta(hours=1), expected_version=version
    ).version
    [rescheduled, _] = requests_for("Appointment.Rescheduled")
    variables = rescheduled["data"]["variables"]
    assert rescheduled["data"]["template"] == "appointment_rescheduled"
    assert variables["previous_starts_at_text"] == "Sat 28 Mar 2026, 10:00 CET"
    assert variables["starts_at_text"] == "Mon 30 Mar 2026, 11:00 CEST"
    service.cancel_appointment(appointment, "shop closed", expected_version=version)
    [cancelled, _] = requests_for("Appointment.Cancelled")
    assert cancelled["data"]["template"] == "appointment_cancelled"
    assert cancelled["data"]["variables"]["reason"] == "shop closed"
    assert cancelled["data"]["customer_id"] == cancelled["subject"] == str(customer)


def test_a_ticket_status_change_names_the_device_but_not_the_staff_note(
    service: CustomerService, customer: UUID, requests_for: Requests
) -> None:
    """The repair's subject, device, both statuses and the note for the customer travel;
    the internal note does not."""
    device = {"type": "phone", "make": "Apple", "model": "iPhone 12", "serial": "F17XK"}
    opened = service.open_ticket(customer, "Cracked screen", "dropped", device)
    service.change_ticket_status(
        opened.aggregate_id,
        "diagnosing",
        "customer was rude",
        customer_note="We are checking the screen",
        expected_version=opened.version,
    )
    [email, sms] = requests_for("Ticket.StatusChanged")
    variables = email["data"]["variables"]
    assert email["data"]["template"] == sms["data"]["template"] == "ticket_status_changed"
    assert (variables["previous_status"], variables["status"]) == ("new", "diagnosing")
    assert variables["ticket_number"] == opened.result["number"] == 1
    assert (variables["subject"], variables["device_make"], variables["device_model"]) == (
        "Cracked screen",
        "Apple",
        "iPhone 12",
    )
    assert variables["customer_note"] == "We are checking the screen"
    assert "rude" not in json.dumps(email) and "F17XK" not in json.dumps(email)


def test_the_customer_s_channels_choose_where_transactional_messages_go(
    service: CustomerService, requests_for: Requests
) -> None:
    """An SMS-only customer gets appointment messages by SMS alone, whatever the consents."""
    sms_only = service.register_customer(
        {
            "first_name": "Bob",
            "email": "bob@example.com",
            "mobile_phone": "+14155552672",
            "notification_channels": ["sms"],
            "newsletter": True,
        }
    ).aggregate_id
    starts = datetime(2026, 4, 2, 9, tzinfo=UTC)
    service.book_appointment(sms_only, starts, starts + timedelta(hours=1))
    [only] = requests_for("Appointment.Booked")
    assert (only["data"]["channel"], only["data"]["recipient"]) == ("sms", "+14155552672")


def _events(service: CustomerService) -> list[Any]:
    notifications = service.recorder.select_notifications(start=1, limit=10_000)
    return [service.mapper.to_domain_event(n) for n in notifications]
