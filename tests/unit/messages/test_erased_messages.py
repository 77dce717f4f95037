"""A relay that reaches an erased customer's events late publishes nothing personal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from domain.customers import Customer
from domain.service import CustomerService
from projections.cloudevents import event_message
from projections.notifications import notification_messages

Log = list[tuple[int, Any]]


def test_events_read_after_the_erasure_carry_no_personal_data(
    service: CustomerService, read_log: Callable[[], Log]
) -> None:
    """Registered, note and the erasure of an erased customer: their messages name nobody,
    and no welcome goes out (no address is left to send it to)."""
    email = "grace.hopper@example.com"
    receipt = service.register_customer(
        {
            "first_name": "Grace",
            "last_name": "Hopper",
            "email": email,
            "mobile_phone": "+14155550134",
        }
    )
    customer_id = receipt.aggregate_id
    service.add_note(customer_id, "Grace prefers mornings", False)
    service.erase_customer(customer_id, expected_version=2)

    def profile(wanted: Any, at: Any) -> Any:
        return service.get_customer(wanted, as_of=at).profile

    bodies = b""
    kinds = []
    for position, event in read_log():
        if getattr(event, "originator_id", None) != customer_id:
            continue
        kinds.append(type(event))
        message = event_message(position, event)
        assert message is not None
        bodies += message.body
        for request in notification_messages(position, event, profile):
            bodies += request.body
    assert kinds == [Customer.Registered, Customer.NoteAdded, Customer.Erased]
    for value in (b"Grace", b"Hopper", email.encode(), b"4155550134", b"mornings"):
        assert value not in bodies
