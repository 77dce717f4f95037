"""Profile changes: merge-patch semantics, real changes only, consent history, event metadata."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from domain.context import acting_as
from domain.customers import Customer
from domain.errors import ConflictError, RuleViolationError
from domain.service import CustomerService

Register = Callable[..., Customer]


def change(
    service: CustomerService, customer: Customer, consent_channel: str | None = None, **changes: Any
) -> Customer:
    current = service.get_customer(customer.id)
    service.change_profile(
        customer.id,
        changes,
        expected_version=current.version,
        consent_channel=consent_channel or "staff",
    )
    return service.get_customer(customer.id)


def event_types(service: CustomerService, customer: Customer) -> list[str]:
    return [type(e).__name__ for e in service.customer_events(customer.id)]


def test_fields_absent_from_a_change_keep_their_values(
    service: CustomerService, register: Register
) -> None:
    """A change replaces only the fields it names; every other field keeps its value."""
    ann = register(last_name="Lee", company_name="Lee & Co", group="vip")
    changed = change(service, ann, company_name="Lee Ltd")
    assert changed.profile.company_name == "Lee Ltd"
    assert (changed.profile.last_name, changed.profile.group) == ("Lee", "vip")


def test_a_null_clears_an_optional_field(service: CustomerService, register: Register) -> None:
    """A null in the change clears an optional field (JSON merge patch)."""
    ann = register(last_name="Lee", discount_percent=Decimal(10))
    changed = change(service, ann, last_name=None, discount_percent=None)
    assert (changed.profile.last_name, changed.profile.discount_percent) == (None, None)


def test_custom_fields_are_replaced_as_a_whole(
    service: CustomerService, register: Register
) -> None:
    """custom_fields in a change replaces the whole map (the merge is one level deep)."""
    ann = register(custom_fields={"gate": "1234", "dog": "yes"})
    assert change(service, ann, custom_fields={"gate": "9"}).profile.custom_fields == {"gate": "9"}


@pytest.mark.parametrize(
    "field", ["first_name", "newsletter", "assigned_staff_ids", "notification_channels"]
)
def test_a_null_for_a_required_or_defaulted_field_is_refused(
    service: CustomerService, register: Register, field: str
) -> None:
    """A null cannot clear first_name or a field that has a default; the field is named."""
    ann = register()
    with pytest.raises(RuleViolationError) as refused:
        change(service, ann, **{field: None})
    assert refused.value.field == field


def test_an_unknown_field_is_refused_naming_it(
    service: CustomerService, register: Register
) -> None:
    """A field that is not part of the profile is refused, naming it."""
    ann = register()
    with pytest.raises(RuleViolationError) as refused:
        change(service, ann, shoe_size=42)
    assert refused.value.field == "shoe_size"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"assigned_staff_ids": ["s1", "s2", "s3"]}, "assigned_staff_ids"),
        ({"discount_percent": Decimal(101)}, "discount_percent"),
        ({"notification_channels": ["email", "telegram"]}, "notification_channels"),
        ({"first_name": "  "}, "first_name"),
        ({"email": "ann@"}, "email"),
        ({"mobile_phone": "12345"}, "mobile_phone"),
    ],
)
def test_a_change_breaking_a_rule_is_refused_and_records_nothing(
    service: CustomerService, register: Register, changes: dict[str, Any], field: str
) -> None:
    """A change is checked by the registration rules; a refused change records no event."""
    ann = register(assigned_staff_ids=["s1"])
    with pytest.raises(RuleViolationError) as refused:
        change(service, ann, **changes)
    assert refused.value.field == field
    assert service.get_customer(ann.id).version == ann.version


def test_contact_points_in_a_change_are_normalised(
    service: CustomerService, register: Register
) -> None:
    """An email and a mobile phone in a change are stored normalised, as at registration."""
    changed = change(service, register(), email="Ann@EXAMPLE.com", mobile_phone="(415) 555-2671")
    assert (changed.profile.email, changed.profile.mobile_phone) == (
        "Ann@example.com",
        "+14155552671",
    )


def test_a_change_to_the_same_values_records_no_event(
    service: CustomerService, register: Register
) -> None:
    """Sending the current values (in any formatting) records nothing and keeps the version."""
    ann = register(
        email="ann@example.com",
        mobile_phone="+14155552671",
        assigned_staff_ids=["s1", "s2"],
        newsletter=True,
    )
    receipt = service.change_profile(
        ann.id,
        {
            "first_name": "Ann",
            "email": "ann@EXAMPLE.com",
            "mobile_phone": "(415) 555-2671",
            "assigned_staff_ids": ["s1", "s2"],
            "newsletter": True,
        },
        expected_version=ann.version,
    )
    assert receipt.version == ann.version
    assert event_types(service, ann) == ["Registered"]


def test_only_the_fields_that_really_changed_are_recorded(
    service: CustomerService, register: Register
) -> None:
    """The ProfileChanged event carries the fields that changed, not the whole request."""
    ann = register(last_name="Lee", group="vip")
    change(service, ann, last_name="Lee", group="regular", store="north")
    last = list(service.customer_events(ann.id))[-1]
    assert isinstance(last, Customer.ProfileChanged)
    assert last.changes == {"group": "regular", "store": "north"}


def test_a_consent_change_is_recorded_as_consent_history(
    service: CustomerService, register: Register
) -> None:
    """Changing newsletter records a ConsentChanged: topic, decision, channel, time and actor."""
    ann = register(source="web")
    with acting_as("staff-7", "req-42"):
        changed = change(service, ann, consent_channel="portal", newsletter=False)
    assert event_types(service, ann) == ["Registered", "ConsentChanged"]
    consent = changed.consents[-1]
    assert (consent.topic, consent.granted, consent.channel, consent.by) == (
        "newsletter",
        False,
        "portal",
        "staff-7",
    )
    assert consent.at == changed.modified_on
    assert changed.profile.newsletter is False


def test_consent_changes_default_to_the_staff_channel(
    service: CustomerService, register: Register
) -> None:
    """Without a consent channel, a consent change is recorded as taken by staff."""
    changed = change(service, register(), promotional_sms=True)
    assert (changed.consents[-1].topic, changed.consents[-1].channel) == (
        "promotional_sms",
        "staff",
    )
    assert changed.profile.promotional_sms is True


def test_a_mixed_change_records_the_profile_and_each_consent_separately(
    service: CustomerService, register: Register
) -> None:
    """Plain fields go in one ProfileChanged; each consent topic gets its own ConsentChanged."""
    ann = register()
    change(service, ann, last_name="Lee", newsletter=False, promotional_sms=True)
    events = list(service.customer_events(ann.id))[1:]
    assert [type(e).__name__ for e in events] == [
        "ProfileChanged",
        "ConsentChanged",
        "ConsentChanged",
    ]
    assert events[0].changes == {"last_name": "Lee"}  # type: ignore[attr-defined]
    history = service.get_customer(ann.id).consents
    assert [(c.topic, c.granted) for c in history] == [
        ("newsletter", True),
        ("promotional_sms", False),
        ("newsletter", False),
        ("promotional_sms", True),
    ]


def test_every_event_carries_the_actor_and_correlation_id_of_its_context(
    service: CustomerService,
) -> None:
    """Each event records the actor and correlation id bound when it was created."""
    with acting_as("staff-1", "req-1"):
        receipt = service.register_customer({"first_name": "Ann"})
    customer_id = receipt.aggregate_id
    with acting_as("staff-2", "req-2"):
        service.change_profile(customer_id, {"last_name": "Lee"}, expected_version=1)
        service.add_note(customer_id, "call first", urgent=False)
    with acting_as("customer-9", "req-3"):
        service.change_profile(
            customer_id, {"newsletter": False}, expected_version=3, consent_channel="portal"
        )
    assert [(e.actor, e.correlation_id) for e in service.customer_events(customer_id)] == [
        ("staff-1", "req-1"),
        ("staff-2", "req-2"),
        ("staff-2", "req-2"),
        ("customer-9", "req-3"),
    ]


def test_the_reservations_of_a_registration_carry_the_same_actor(
    service: CustomerService,
) -> None:
    """The reservation saved with a registration records the same actor and correlation id."""
    with acting_as("staff-1", "req-1"):
        service.register_customer({"first_name": "Ann", "email": "ann@example.com"})
    events = service.recorder.select_notifications(start=1, limit=10)
    assert len(events) == 3  # the customer, its email and its number
    assert all(b'"actor":"staff-1"' in n.state for n in events)
    assert all(b'"correlation_id":"req-1"' in n.state for n in events)


def test_events_outside_a_request_are_by_the_system(
    service: CustomerService, register: Register
) -> None:
    """Without a bound actor, events are recorded as by `system` with no correlation id."""
    event = next(service.customer_events(register().id))
    assert (event.actor, event.correlation_id) == ("system", "")


def test_a_deleted_customer_profile_cannot_be_changed(
    service: CustomerService, register: Register
) -> None:
    """A profile change on a soft-deleted customer is a ConflictError naming `deleted`."""
    ann = register()
    service.delete_customer(ann.id, expected_version=ann.version)
    with pytest.raises(ConflictError) as refused:
        change(service, ann, last_name="Lee")
    assert refused.value.field == "deleted"
