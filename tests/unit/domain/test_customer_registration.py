"""Registration: required and normalised fields, defaults, customer numbers, profile rules."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from domain.customers import Customer
from domain.errors import RuleViolationError
from domain.sealing import SecretSealer
from domain.service import CustomerService

Register = Callable[..., Customer]


def events_recorded(service: CustomerService) -> int:
    return service.recorder.max_notification_id() or 0


@pytest.mark.parametrize("first_name", ["", "   ", None])
def test_a_blank_first_name_is_refused_naming_the_field(
    service: CustomerService, first_name: str | None
) -> None:
    """A blank or null first_name is refused with a RuleViolationError naming first_name."""
    with pytest.raises(RuleViolationError) as refused:
        service.register_customer({"first_name": first_name, "last_name": "Lee"})
    assert refused.value.field == "first_name"


def test_a_missing_first_name_is_refused_naming_the_field(service: CustomerService) -> None:
    """A registration without first_name is refused like a blank one, not with a TypeError."""
    with pytest.raises(RuleViolationError) as refused:
        service.register_customer({"last_name": "Lee"})
    assert refused.value.field == "first_name"


def test_an_unknown_field_is_refused_naming_it(service: CustomerService) -> None:
    """A field that is not part of the registration is refused, naming that field."""
    with pytest.raises(RuleViolationError) as refused:
        service.register_customer({"first_name": "Ann", "favourite_colour": "teal"})
    assert refused.value.field == "favourite_colour"


def test_the_email_domain_is_lower_cased_and_the_local_part_kept(register: Register) -> None:
    """An email is stored with its domain lower-cased and its local part as typed."""
    customer = register(email="Ann.Lee@Example.COM")
    assert customer.profile.email == "Ann.Lee@example.com"


@pytest.mark.parametrize("email", ["not-an-email", "ann@", "ann@localhost", "a@@example.com"])
def test_an_invalid_email_is_refused_naming_email(service: CustomerService, email: str) -> None:
    """An address that is not RFC 5322 valid is refused with a RuleViolationError on `email`."""
    with pytest.raises(RuleViolationError) as refused:
        service.register_customer({"first_name": "Ann", "email": email})
    assert refused.value.field == "email"


@pytest.mark.parametrize(
    "typed", ["(415) 555-2671", "415.555.2671", "415 555 2671", "+1 415-555-2671", "1-415-555-2671"]
)
def test_a_mobile_phone_in_any_formatting_is_stored_as_e164(register: Register, typed: str) -> None:
    """A mobile phone typed in any formatting is stored in E.164, local numbers read as US."""
    assert register(mobile_phone=typed).profile.mobile_phone == "+14155552671"


def test_local_numbers_are_read_in_the_configured_region() -> None:
    """With another phone region configured, a local number is read in that region."""
    service = CustomerService(sealer=SecretSealer(SecretSealer.generate_key()), phone_region="GB")
    receipt = service.register_customer({"first_name": "Ann", "mobile_phone": "07911 123456"})
    customer = service.get_customer(receipt.aggregate_id)
    assert customer.profile.mobile_phone == "+447911123456"


@pytest.mark.parametrize("field", ["mobile_phone", "phone"])
@pytest.mark.parametrize("typed", ["12345", "+1 555 0100", "call me maybe"])
def test_an_invalid_phone_number_is_refused_naming_the_field(
    service: CustomerService, field: str, typed: str
) -> None:
    """A phone number that does not parse or is not valid is refused, naming its field."""
    with pytest.raises(RuleViolationError) as refused:
        service.register_customer({"first_name": "Ann", field: typed})
    assert refused.value.field == field


def test_a_landline_phone_is_also_stored_as_e164(register: Register) -> None:
    """The second phone number is normalised to E.164 like the mobile phone."""
    assert register(phone="(212) 555-0100").profile.phone == "+12125550100"


@pytest.mark.parametrize("field", ["email", "mobile_phone", "phone", "username"])
def test_a_blank_contact_point_counts_as_none(register: Register, field: str) -> None:
    """A blank email, phone or username is stored as none and reserves nothing."""
    first = register(**{field: "  "})
    second = register(first_name="Bob", **{field: ""})
    assert getattr(first.profile, field) is None
    assert getattr(second.profile, field) is None


def test_registration_defaults_are_those_of_the_contract(register: Register) -> None:
    """Omitted fields take the defaults in API.md (source, consents, channels, mail)."""
    profile = register().profile
    assert profile.source == "telephone"
    assert profile.newsletter is True
    assert profile.promotional_sms is False
    assert profile.notification_channels == ("email",)
    assert profile.send_registration_email is True
    assert profile.assigned_staff_ids == ()
    assert profile.custom_fields == {}


def test_the_newsletter_default_follows_the_service_setting() -> None:
    """A service set with newsletter_default=False registers without newsletter unless asked."""
    service = CustomerService(
        sealer=SecretSealer(SecretSealer.generate_key()), newsletter_default=False
    )
    silent = service.register_customer({"first_name": "Ann"})
    asked = service.register_customer({"first_name": "Bob", "newsletter": True})
    assert service.get_customer(silent.aggregate_id).profile.newsletter is False
    assert service.get_customer(asked.aggregate_id).profile.newsletter is True


def test_registration_records_the_initial_consents_given_through_the_source(
    register: Register,
) -> None:
    """The consents at registration are kept as history, given through the registration source."""
    customer = register(source="web", promotional_sms=True, newsletter=False)
    assert [(c.topic, c.granted, c.channel) for c in customer.consents] == [
        ("newsletter", False, "web"),
        ("promotional_sms", True, "web"),
    ]
    assert all(c.at == customer.created_on for c in customer.consents)


def test_customer_numbers_are_allocated_when_absent_and_unique(register: Register) -> None:
    """Registrations without a number get distinct positive numbers from the sequence."""
    numbers = [register(first_name=f"C{i}").customer_number for i in range(5)]
    assert numbers == [1, 2, 3, 4, 5]


def test_a_given_customer_number_is_kept(register: Register) -> None:
    """A customer number given at registration is the customer's number."""
    assert register(customer_number=4711).customer_number == 4711


def test_the_allocated_sequence_skips_numbers_taken_by_hand(register: Register) -> None:
    """Numbers given by hand are skipped when the sequence reaches them."""
    register(customer_number=2)
    register(customer_number=3)
    allocated = [register(first_name=f"C{i}").customer_number for i in range(3)]
    assert allocated == [1, 4, 5]


@pytest.mark.parametrize("number", [0, -1])
def test_a_non_positive_customer_number_is_refused(service: CustomerService, number: int) -> None:
    """A customer number of zero or below is refused, never silently replaced, nothing saved."""
    before = events_recorded(service)
    with pytest.raises(RuleViolationError) as refused:
        service.register_customer({"first_name": "Ann", "customer_number": number})
    assert refused.value.field == "customer_number"
    assert events_recorded(service) == before


def test_a_refused_registration_saves_nothing(service: CustomerService) -> None:
    """A refused registration leaves the store unchanged and does not burn a number."""
    before = events_recorded(service)
    with pytest.raises(RuleViolationError):
        service.register_customer({"first_name": "Ann", "assigned_staff_ids": ["a", "b", "c"]})
    assert events_recorded(service) == before
    receipt = service.register_customer({"first_name": "Ann"})
    assert receipt.result["customer_number"] == 1


def test_two_assigned_staff_are_allowed(register: Register) -> None:
    """Up to two staff members can be assigned."""
    assert register(assigned_staff_ids=["s1", "s2"]).profile.assigned_staff_ids == ("s1", "s2")


@pytest.mark.parametrize("staff", [["s1", "s2", "s3"], ["s1", "s1"]])
def test_more_than_two_or_repeated_assigned_staff_are_refused(
    service: CustomerService, staff: list[str]
) -> None:
    """More than two assigned staff, or one staff member twice, is a RuleViolationError."""
    with pytest.raises(RuleViolationError) as refused:
        service.register_customer({"first_name": "Ann", "assigned_staff_ids": staff})
    assert refused.value.field == "assigned_staff_ids"


@pytest.mark.parametrize("discount", [Decimal(0), Decimal("12.5"), Decimal(100)])
def test_a_discount_from_0_to_100_is_accepted(register: Register, discount: Decimal) -> None:
    """A discount percentage between 0 and 100 inclusive is kept."""
    assert register(discount_percent=discount).profile.discount_percent == discount


@pytest.mark.parametrize("discount", [Decimal(-1), Decimal("100.01"), Decimal(101)])
def test_a_discount_outside_0_to_100_is_refused(
    service: CustomerService, discount: Decimal
) -> None:
    """A discount below 0 or above 100 percent is refused naming discount_percent."""
    with pytest.raises(RuleViolationError) as refused:
        service.register_customer({"first_name": "Ann", "discount_percent": discount})
    assert refused.value.field == "discount_percent"


def test_the_known_notification_channels_are_accepted(register: Register) -> None:
    """Any subset of email and sms is a valid choice of notification channels."""
    customer = register(notification_channels=["sms", "email"])
    assert customer.profile.notification_channels == ("sms", "email")


@pytest.mark.parametrize("channels", [["pigeon"], ["email", "fax"]])
def test_an_unknown_notification_channel_is_refused(
    service: CustomerService, channels: list[str]
) -> None:
    """A channel other than email or sms is refused naming notification_channels."""
    with pytest.raises(RuleViolationError) as refused:
        service.register_customer({"first_name": "Ann", "notification_channels": channels})
    assert refused.value.field == "notification_channels"


@pytest.mark.parametrize("field", ["newsletter", "source", "assigned_staff_ids", "custom_fields"])
def test_a_null_for_a_field_with_a_default_is_refused(service: CustomerService, field: str) -> None:
    """A null for a field that has a default but no 'unknown' is refused naming the field."""
    with pytest.raises(RuleViolationError) as refused:
        service.register_customer({"first_name": "Ann", field: None})
    assert refused.value.field == field


def test_addresses_given_at_registration_are_kept(register: Register) -> None:
    """Addresses given at registration become the customer's addresses, each with an id."""
    customer = register(
        addresses=[
            {"kind": "billing", "line1": "1 Main St", "city": "Springfield"},
            {"kind": "site", "line1": "2 Side Rd"},
        ]
    )
    assert sorted(a.kind for a in customer.addresses.values()) == ["billing", "site"]
    assert all(a.address_id == key for key, a in customer.addresses.items())


@pytest.mark.parametrize(
    ("address", "field"),
    [({"kind": "home", "line1": "1 Main St"}, "kind"), ({"kind": "site", "line1": " "}, "line1")],
)
def test_an_invalid_address_at_registration_is_refused(
    service: CustomerService, address: dict[str, Any], field: str
) -> None:
    """An address of an unknown kind or without a first line refuses the registration."""
    with pytest.raises(RuleViolationError) as refused:
        service.register_customer({"first_name": "Ann", "addresses": [address]})
    assert refused.value.field == field
