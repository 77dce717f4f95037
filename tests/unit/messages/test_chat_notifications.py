"""Chat messages ask to notify the other side: the customer for staff's, staff for the
customer's; nobody when the customer is gone."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from domain.chat import ChatMessage
from domain.service import CustomerService
from projections.notifications import Lookups, notification_messages

Log = list[tuple[int, Any]]


def _posted(
    service: CustomerService, read_log: Callable[[], Log], sender: str, *, number: int = 2671
) -> tuple[Any, Lookups]:
    customer_id = service.register_customer(
        {
            "first_name": "Ada",
            "last_name": "Byron",
            "email": f"ada{number}@example.com",
            "mobile_phone": f"+1415555{number}",
            "notification_channels": ["sms"],
        }
    ).aggregate_id
    service.post_message(customer_id, "Ready at 5", sender=sender)
    position, event = next(
        (p, e) for p, e in reversed(read_log()) if isinstance(e, ChatMessage.Posted)
    )

    def profiles(wanted: Any, at: Any) -> Any:
        return service.get_customer(wanted).profile

    return (position, event), Lookups(profiles)


def test_a_staff_message_asks_for_the_customer_s_channels_only(
    service: CustomerService, read_log: Callable[[], Log], validate: Callable[..., None]
) -> None:
    """SMS (its only channel) with the text: no email, no notice to staff."""
    (position, event), lookups = _posted(service, read_log, "staff")
    messages = notification_messages(position, event, lookups)
    assert [m.subject for m in messages] == ["crm.notify.sms"]
    body = json.loads(messages[0].body)
    validate("crm.notify.sms", body)
    assert body["data"]["template"] == "chat_message"
    assert body["data"]["recipient"] == "+14155552671"
    assert body["data"]["variables"]["text"] == "Ready at 5"


def test_a_customer_message_asks_for_one_notice_to_staff(
    service: CustomerService, read_log: Callable[[], Log], validate: Callable[..., None]
) -> None:
    """`crm.notify.staff` naming the customer; the customer is not told of its own message."""
    (position, event), lookups = _posted(service, read_log, "customer")
    messages = notification_messages(position, event, lookups)
    assert [m.subject for m in messages] == ["crm.notify.staff"]
    body = json.loads(messages[0].body)
    validate("crm.notify.staff", body)
    assert body["data"]["customer_name"] == "Ada Byron"
    assert body["data"]["message_id"] == str(event.originator_id)
    assert notification_messages(position, event, lookups)[0].msg_id == messages[0].msg_id


def test_an_erased_customer_s_chat_notifies_nobody(
    service: CustomerService, read_log: Callable[[], Log]
) -> None:
    """No profile (erased): neither side is notified."""
    for number, sender in ((1001, "staff"), (1002, "customer")):
        (position, event), _ = _posted(service, read_log, sender, number=number)
        assert notification_messages(position, event, Lookups(lambda *_: None)) == []
