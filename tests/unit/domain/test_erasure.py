"""Crypto-shredding in the domain: personal fields encrypted per customer, erasure, reveal."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from uuid import UUID

import pytest
from argon2 import profiles

from domain.context import acting_as
from domain.customers import Customer
from domain.errors import ConflictError, NotFoundError, VersionMismatchError
from domain.passwords import PasswordHasher
from domain.portal import InvalidCredentialsError, PortalAccount, portal_account_id
from domain.sealing import SecretSealer
from domain.service import CustomerService

ADA = {
    "first_name": "Ada",
    "last_name": "Lovelace",
    "email": "ada@example.com",
    "mobile_phone": "+14155552671",
    "username": "ada",
    "birthday": date(1815, 12, 10),
    "id_number": "X1234567",
    "custom_fields": {"gate_code": "4711-blue"},
    "group": "vip",
    "addresses": [{"kind": "billing", "line1": "12 St James Sq", "city": "London"}],
}
CLEAR = (b"Ada", b"Lovelace", b"ada@example.com", b"4155552671", b"1815", b"X1234567")
CLEAR += (b"4711-blue", b"St James", b"London", b"Gate code", b"Bob Carer", b"hunter2")


@pytest.fixture
def service() -> CustomerService:
    return CustomerService(
        sealer=SecretSealer(SecretSealer.generate_key()),
        password_hasher=PasswordHasher(profiles.CHEAPEST),
    )


def stored(service: CustomerService) -> bytes:
    return b"".join(n.state for n in service.recorder.select_notifications(start=1, limit=10_000))


def ada_with_parts(service: CustomerService) -> UUID:
    """Ada, with a note, a contact and an alarm whose secret is hunter2."""
    customer_id = service.register_customer(ADA).aggregate_id
    service.add_note(customer_id, "Gate code changes monthly", True)
    service.add_contact(customer_id, {"name": "Bob Carer", "phone": "+14155552672"})
    service.install_system(customer_id, {"system_type": "alarm", "secret": "hunter2"})
    return customer_id


def test_personal_fields_are_stored_encrypted_and_read_back_whole(
    service: CustomerService,
) -> None:
    """No personal value is in the stored events, yet the customer reads as registered."""
    customer_id = ada_with_parts(service)
    raw = stored(service)
    assert not [value for value in CLEAR if value in raw]
    assert b"vip" in raw, "what is not personal stays readable for the audit"
    customer = service.get_customer(customer_id)
    assert (customer.profile.first_name, customer.profile.email) == ("Ada", "ada@example.com")
    assert customer.profile.birthday == date(1815, 12, 10)
    assert customer.profile.custom_fields == {"gate_code": "4711-blue"}
    assert [a.line1 for a in customer.addresses.values()] == ["12 St James Sq"]
    assert [n.text for n in customer.notes.values()] == ["Gate code changes monthly"]
    assert [c.name for c in customer.contacts.values()] == ["Bob Carer"]


def test_each_customer_has_its_own_data_key(service: CustomerService) -> None:
    """Two customers' personal data are encrypted with two different keys."""
    first = service.register_customer({"first_name": "Ann"}).aggregate_id
    second = service.register_customer({"first_name": "Bea"}).aggregate_id
    first_key, second_key = service.key_ring.data_key(first), service.key_ring.data_key(second)
    assert first_key is not None and second_key is not None
    sealed = first_key.encrypt(b"x")
    assert second_key is not first_key
    with pytest.raises(Exception, match="does not open"):
        second_key.decrypt(sealed)


def test_an_erased_customer_replays_redacted_and_its_events_are_untouched(
    service: CustomerService,
) -> None:
    """Erasure destroys the key and records an event; the stream replays, redacted."""
    customer_id = ada_with_parts(service)
    before = stored(service)
    version = service.get_customer(customer_id).version
    receipt = service.erase_customer(customer_id, expected_version=version)
    assert receipt.result == {"id": customer_id, "version": version + 1, "erased": True}
    assert stored(service).startswith(before), "the events before the erasure are unchanged"
    assert service.key_ring.data_key(customer_id) is None
    customer = service.get_customer(customer_id)
    assert customer.erased and customer.version == version + 1
    assert (customer.profile.first_name, customer.profile.email) == ("", None)
    assert customer.profile.birthday is None and customer.profile.custom_fields == {}
    assert customer.profile.group == "vip" and customer.customer_number == 1
    assert [a.line1 for a in customer.addresses.values()] == [""]
    assert [n.text for n in customer.notes.values()] == [""]
    assert [(c.name, c.phone) for c in customer.contacts.values()] == [("", None)]
    assert [s.sealed_secret for s in customer.systems.values()] == [None]
    first_version = service.get_customer(customer_id, version=1)
    assert (first_version.profile.first_name, first_version.profile.last_name) == ("", None)


def test_erasing_twice_answers_the_same_and_records_nothing(service: CustomerService) -> None:
    """A second erasure (even with the If-Match of the first) has no effect."""
    customer_id = service.register_customer(ADA).aggregate_id
    first = service.erase_customer(customer_id, expected_version=1)
    log_length = len(stored(service))
    again = service.erase_customer(customer_id, expected_version=1)
    assert (again.result, again.version) == (first.result, first.version)
    assert len(stored(service)) == log_length


def test_erasure_refused_for_a_stale_version_destroys_nothing(service: CustomerService) -> None:
    """A 412 erasure keeps the key: nothing happened."""
    customer_id = service.register_customer(ADA).aggregate_id
    service.add_note(customer_id, "hello", False)
    with pytest.raises(VersionMismatchError):
        service.erase_customer(customer_id, expected_version=1)
    assert service.key_ring.data_key(customer_id) is not None
    assert service.get_customer(customer_id).profile.first_name == "Ada"


def test_erasure_releases_the_email_mobile_and_username(service: CustomerService) -> None:
    """Someone else can register with an erased customer's email, mobile and username."""
    customer_id = service.register_customer(ADA).aggregate_id
    service.erase_customer(customer_id, expected_version=1)
    fields = {k: ADA[k] for k in ("email", "mobile_phone", "username")}
    newcomer = service.register_customer({"first_name": "Grace", **fields}).aggregate_id
    assert service.get_customer(newcomer).profile.email == "ada@example.com"


def test_an_erased_customer_can_no_longer_change(service: CustomerService) -> None:
    """Every command on an erased customer is refused naming `erased`."""
    customer_id = service.register_customer(ADA).aggregate_id
    service.erase_customer(customer_id, expected_version=1)
    for command in (
        lambda: service.add_note(customer_id, "again", False),
        lambda: service.change_profile(customer_id, {"first_name": "X"}, expected_version=2),
        lambda: service.block_customer(customer_id, None, expected_version=2),
        lambda: service.install_system(customer_id, {"system_type": "nvr", "secret": "s"}),
    ):
        with pytest.raises(ConflictError) as refused:
            command()
        assert refused.value.field == "erased"


def test_a_revealed_secret_is_recorded_with_who_saw_it(service: CustomerService) -> None:
    """Reveal gives the secret in clear and records the actor and system, not the secret."""
    customer_id = ada_with_parts(service)
    system_id = next(iter(service.get_customer(customer_id).systems))
    with acting_as("admin@shop"):
        receipt, secret = service.reveal_secret(customer_id, system_id)
    assert secret == "hunter2"
    event = list(service.customer_events(customer_id))[-1]
    assert isinstance(event, Customer.SecretRevealed)
    assert (event.system_id, event.actor, receipt.version) == (system_id, "admin@shop", 5)
    assert b"hunter2" not in stored(service)


def test_reveal_refuses_an_unknown_system_a_missing_secret_and_an_erased_customer(
    service: CustomerService,
) -> None:
    """404 for a system without a secret or unknown; 409 once erased."""
    customer_id = ada_with_parts(service)
    service.install_system(customer_id, {"system_type": "nvr"})
    systems = service.get_customer(customer_id).systems
    without = next(i for i, s in systems.items() if s.sealed_secret is None)
    with_secret = next(i for i, s in systems.items() if s.sealed_secret is not None)
    for system_id in (without, UUID(int=7)):
        with pytest.raises(NotFoundError):
            service.reveal_secret(customer_id, system_id)
    service.erase_customer(customer_id, expected_version=service.get_customer(customer_id).version)
    with pytest.raises(ConflictError):
        service.reveal_secret(customer_id, with_secret)


def test_an_erased_customer_cannot_log_in(service: CustomerService) -> None:
    """The portal refuses an erased customer's right password, and keeps no hash readable."""
    customer_id = service.register_customer(ADA).aggregate_id
    service.invite_to_portal(customer_id)
    events = list(service.events.get(portal_account_id(customer_id)))
    token = service.sealer.unseal(
        next(e for e in events if isinstance(e, PortalAccount.Invited)).sealed_token
    )
    service.set_portal_password(token, "correct horse battery")
    assert service.authenticate_customer("ada@example.com", "correct horse battery")
    service.erase_customer(customer_id, expected_version=1)
    for login in ("ada@example.com", "ada"):
        with pytest.raises(InvalidCredentialsError):
            service.authenticate_customer(login, "correct horse battery")
    account = service.repository.get(portal_account_id(customer_id))
    assert account.password_hash is None


def test_an_erased_customers_appointment_is_written_without_its_personal_data(
    service: CustomerService,
) -> None:
    """An event about an erased customer (its key gone) drops its personal values."""
    customer_id = service.register_customer(ADA).aggregate_id
    starts = datetime.now(UTC) + timedelta(days=3)
    appointment = service.book_appointment(
        customer_id, starts, starts + timedelta(hours=1)
    ).aggregate_id
    service.erase_customer(customer_id, expected_version=1)
    service.cancel_appointment(appointment, "Ada moved to Paris", expected_version=1)
    assert b"Paris" not in stored(service)


def test_no_new_appointment_ticket_or_portal_link_for_an_erased_customer(
    service: CustomerService,
) -> None:
    """Booking, opening a ticket and inviting to the portal are refused once erased."""
    customer_id = service.register_customer(ADA).aggregate_id
    service.erase_customer(customer_id, expected_version=1)
    starts = datetime.now(UTC) + timedelta(days=3)
    for command in (
        lambda: service.book_appointment(customer_id, starts, starts + timedelta(hours=1)),
        lambda: service.open_ticket(customer_id, "Screen", "cracked", {"type": "phone"}),
        lambda: service.invite_to_portal(customer_id),
    ):
        with pytest.raises(ConflictError):
            command()


def test_every_personal_event_reads_back_as_the_library_mapper_would_give_it(
    service: CustomerService,
) -> None:
    """Each kind of event with personal data maps to storage and back through the shredding
    mapper exactly as through the library's plain one (which drops nothing)."""
    from eventsourcing.persistence import Mapper

    from domain.appointments import Appointment
    from domain.personal_data import personal_fields
    from domain.tickets import Device, Ticket
    from domain.values import Address, Profile

    profile = Profile(
        first_name="Ada",
        last_name="L",
        email="a@b.c",
        birthday=date(1815, 12, 10),
        assigned_staff_ids=("s1",),
        custom_fields={"k": "v"},
    )
    address = Address(address_id=UUID(int=1), kind="site", line1="1 Main St", city="X")
    customer = Customer.register(customer_number=1, profile=profile, addresses=[address])
    customer.change_profile({"phone": None, "tax_id": "T-9", "email": "z@b.c"}, consent_channel="x")
    customer.add_note("ring twice", urgent=True)
    customer.add_contact(name="Bob", email="bob@b.c", phone="+14155552672")
    customer.add_address(kind="billing", line1="2 High St", postal_code="N1")
    system_id = customer.install_system(system_type="alarm", login="admin", ip_address="10.0.0.7")
    customer.change_system(system_id, {"login": "root", "notes": "panel in hall"})
    customer.block("unpaid")
    customer.hand_keys_to("staff-1", "under the mat")
    customer.add_credit(__import__("decimal").Decimal("5"), "goodwill")
    starts = datetime.now(UTC) + timedelta(days=3)
    appointment = Appointment.book(
        customer_id=customer.id,
        starts_at=starts,
        ends_at=starts + timedelta(hours=1),
        now=datetime.now(UTC),
        notes="bring the dog",
    )
    appointment.cancel("ill")
    ticket = Ticket.open(
        number=1,
        customer_id=customer.id,
        subject="Screen",
        problem="dropped it",
        device=Device(type="phone", make="Acme", serial="SN1"),
    )
    ticket.comment("back on Monday", public=True)
    ticket.change_status("diagnosing", "opened the case")
    events = [*customer.collect_events(), *appointment.collect_events()]
    events += ticket.collect_events()
    plain = Mapper(service.mapper.transcoder)
    for event in events:
        shredded = service.mapper.to_domain_event(service.mapper.to_stored_event(event))
        assert vars(shredded) == vars(plain.to_domain_event(plain.to_stored_event(event)))
    covered = {type(e) for e in events} & set(personal_fields())
    assert len(covered) >= 15, sorted(k.__qualname__ for k in covered)


def test_personal_values_are_put_back_as_dataclasses_replace_would_and_no_other_field() -> None:
    """The mapper copies a value object's fields instead of running `replace`: the same
    object, and a field the class does not have is still refused."""
    import dataclasses

    from domain.personal_data import _replaced
    from domain.values import Address, Profile

    profile = Profile(first_name="", email=None, group="vip", assigned_staff_ids=("s1",))
    changes = {"first_name": "Ada", "email": "ada@example.com"}
    copied = _replaced(profile, changes)
    assert copied == dataclasses.replace(profile, **changes)
    assert vars(copied) == vars(dataclasses.replace(profile, **changes))
    assert profile.first_name == ""  # the original is left alone
    address = Address(UUID(int=1), "billing", "1 High Street", city="Leeds")
    assert _replaced(address, {"city": None}) == dataclasses.replace(address, city=None)
    with pytest.raises(TypeError, match="no field 'nickname'"):
        _replaced(profile, {"nickname": "A"})
