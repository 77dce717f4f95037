"""Delete, restore, block and unblock, and the parts of a customer: notes to credits."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest

from domain.customers import Customer
from domain.errors import ConflictError, NotFoundError, RuleViolationError
from domain.service import CustomerService

Register = Callable[..., Customer]


@pytest.fixture
def ann(register: Register) -> Customer:
    return register()


def now(service: CustomerService, customer_id: UUID) -> Customer:
    return service.get_customer(customer_id)


# ---- lifecycle ------------------------------------------------------------------------------


def test_a_deleted_customer_can_be_restored(service: CustomerService, ann: Customer) -> None:
    """Delete marks the customer deleted and restore brings it back, each a new version."""
    deleted = service.delete_customer(ann.id, expected_version=1)
    assert now(service, ann.id).deleted is True
    restored = service.restore_customer(ann.id, expected_version=deleted.version)
    assert now(service, ann.id).deleted is False
    assert (deleted.version, restored.version) == (2, 3)


def test_deleting_a_deleted_customer_is_a_conflict(service: CustomerService, ann: Customer) -> None:
    """A second delete is refused with a ConflictError."""
    service.delete_customer(ann.id, expected_version=1)
    with pytest.raises(ConflictError):
        service.delete_customer(ann.id, expected_version=2)


def test_restoring_a_customer_that_is_not_deleted_is_a_conflict(
    service: CustomerService, ann: Customer
) -> None:
    """Restore is refused with a ConflictError when the customer is not deleted."""
    with pytest.raises(ConflictError) as refused:
        service.restore_customer(ann.id, expected_version=1)
    assert refused.value.field == "deleted"


def test_a_blocked_customer_can_be_unblocked(service: CustomerService, ann: Customer) -> None:
    """Block records the reason; unblock clears the flag and the reason."""
    service.block_customer(ann.id, "unpaid invoices", expected_version=1)
    blocked = now(service, ann.id)
    assert (blocked.blocked, blocked.block_reason) == (True, "unpaid invoices")
    service.unblock_customer(ann.id, expected_version=2)
    unblocked = now(service, ann.id)
    assert (unblocked.blocked, unblocked.block_reason) == (False, None)


def test_blocking_a_blocked_customer_is_a_conflict(service: CustomerService, ann: Customer) -> None:
    """A second block is refused with a ConflictError naming `blocked`."""
    service.block_customer(ann.id, None, expected_version=1)
    with pytest.raises(ConflictError) as refused:
        service.block_customer(ann.id, "again", expected_version=2)
    assert refused.value.field == "blocked"


def test_unblocking_a_customer_that_is_not_blocked_is_a_conflict(
    service: CustomerService, ann: Customer
) -> None:
    """Unblock is refused with a ConflictError when the customer is not blocked."""
    with pytest.raises(ConflictError) as refused:
        service.unblock_customer(ann.id, expected_version=1)
    assert refused.value.field == "blocked"


def _deleted_customer_with_parts(service: CustomerService) -> tuple[UUID, dict[str, UUID]]:
    customer_id = service.register_customer({"first_name": "Ann"}).aggregate_id
    parts = {
        "note": service.add_note(customer_id, "gate code 1234", False).result["note_id"],
        "contact": service.add_contact(customer_id, {"name": "Bo"}).result["contact_id"],
        "address": service.add_address(customer_id, {"kind": "site", "line1": "1 Main St"}).result[
            "address_id"
        ],
        "system": service.install_system(customer_id, {"system_type": "alarm"}).result["system_id"],
    }
    service.block_customer(customer_id, None, expected_version=5)
    service.delete_customer(customer_id, expected_version=6)
    return customer_id, parts  # now at version 7


COMMANDS_ON_A_DELETED_CUSTOMER: dict[
    str, Callable[[CustomerService, UUID, dict[str, UUID]], Any]
] = {
    "delete": lambda s, c, p: s.delete_customer(c, expected_version=7),
    "change_profile": lambda s, c, p: s.change_profile(c, {"last_name": "L"}, expected_version=7),
    "block": lambda s, c, p: s.block_customer(c, None, expected_version=7),
    "unblock": lambda s, c, p: s.unblock_customer(c, expected_version=7),
    "add_note": lambda s, c, p: s.add_note(c, "hello", True),
    "remove_note": lambda s, c, p: s.remove_note(c, p["note"], expected_version=7),
    "add_contact": lambda s, c, p: s.add_contact(c, {"name": "Cy"}),
    "remove_contact": lambda s, c, p: s.remove_contact(c, p["contact"], expected_version=7),
    "add_address": lambda s, c, p: s.add_address(c, {"kind": "billing", "line1": "2 Rd"}),
    "remove_address": lambda s, c, p: s.remove_address(c, p["address"], expected_version=7),
    "install_system": lambda s, c, p: s.install_system(c, {"system_type": "cctv"}),
    "change_system": lambda s, c, p: s.change_system(
        c, p["system"], {"version": "2"}, expected_version=7
    ),
    "remove_system": lambda s, c, p: s.remove_system(c, p["system"], expected_version=7),
    "hand_keys_to": lambda s, c, p: s.hand_keys_to(c, "staff-1", "safe"),
    "set_custom_price": lambda s, c, p: s.set_custom_price(c, "svc-1", Decimal("9.50")),
    "add_credit": lambda s, c, p: s.add_credit(c, Decimal(5), "goodwill"),
}


@pytest.mark.parametrize("command", sorted(COMMANDS_ON_A_DELETED_CUSTOMER))
def test_a_deleted_customer_accepts_no_command_but_restore(
    service: CustomerService, command: str
) -> None:
    """Every command but restore on a soft-deleted customer is a ConflictError naming `deleted`."""
    customer_id, parts = _deleted_customer_with_parts(service)
    with pytest.raises(ConflictError) as refused:
        COMMANDS_ON_A_DELETED_CUSTOMER[command](service, customer_id, parts)
    assert refused.value.field == "deleted"
    assert now(service, customer_id).version == 7


def test_a_restored_customer_accepts_commands_again(service: CustomerService) -> None:
    """After restore, the customer's parts and flags can be changed again."""
    customer_id, parts = _deleted_customer_with_parts(service)
    service.restore_customer(customer_id, expected_version=7)
    service.remove_note(customer_id, parts["note"], expected_version=8)
    service.unblock_customer(customer_id, expected_version=9)
    customer = now(service, customer_id)
    assert (customer.notes, customer.blocked, customer.version) == ({}, False, 10)


# ---- notes, contacts, addresses -----------------------------------------------------------------


def test_urgent_notes_list_first_then_oldest_first(service: CustomerService, ann: Customer) -> None:
    """notes_in_order() gives the urgent notes first, each group oldest first."""
    for text, urgent in [("a", False), ("B", True), ("c", False), ("D", True)]:
        service.add_note(ann.id, text, urgent)
    assert [n.text for n in now(service, ann.id).notes_in_order()] == ["B", "D", "a", "c"]


def test_a_note_records_who_added_it_and_can_be_removed(
    service: CustomerService, ann: Customer
) -> None:
    """A note keeps its author and time; removing it takes it off the customer."""
    note_id = service.add_note(ann.id, "dog on site", True).result["note_id"]
    note = now(service, ann.id).notes[note_id]
    assert (note.text, note.urgent, note.added_by) == ("dog on site", True, "system")
    service.remove_note(ann.id, note_id, expected_version=2)
    assert now(service, ann.id).notes == {}


def test_a_blank_note_is_refused(service: CustomerService, ann: Customer) -> None:
    """A note without text is refused naming `text`."""
    with pytest.raises(RuleViolationError) as refused:
        service.add_note(ann.id, "   ", False)
    assert refused.value.field == "text"


def test_a_contact_is_kept_with_normalised_email_and_phone(
    service: CustomerService, ann: Customer
) -> None:
    """A site contact is stored with its email's domain lower-cased and its phone in E.164."""
    contact_id = service.add_contact(
        ann.id, {"name": "Bo", "role": "caretaker", "email": "Bo@Site.COM", "phone": "415 555 2671"}
    ).result["contact_id"]
    contact = now(service, ann.id).contacts[contact_id]
    assert (contact.name, contact.role, contact.email, contact.phone) == (
        "Bo",
        "caretaker",
        "Bo@site.com",
        "+14155552671",
    )
    service.remove_contact(ann.id, contact_id, expected_version=2)
    assert now(service, ann.id).contacts == {}


@pytest.mark.parametrize(
    ("contact", "field"),
    [
        ({"name": " "}, "name"),
        ({"name": "Bo", "email": "bo@"}, "email"),
        ({"name": "Bo", "phone": "1"}, "phone"),
    ],
)
def test_an_invalid_contact_is_refused(
    service: CustomerService, ann: Customer, contact: dict[str, str], field: str
) -> None:
    """A contact without a name, or with an invalid email or phone, is refused naming it."""
    with pytest.raises(RuleViolationError) as refused:
        service.add_contact(ann.id, contact)
    assert refused.value.field == field


@pytest.mark.parametrize("kind", ["delivery", "billing", "site"])
def test_an_address_of_a_known_kind_is_kept_and_removable(
    service: CustomerService, ann: Customer, kind: str
) -> None:
    """Delivery, billing and site addresses are kept and can be removed."""
    address_id = service.add_address(ann.id, {"kind": kind, "line1": "1 Main St"}).result[
        "address_id"
    ]
    assert now(service, ann.id).addresses[address_id].kind == kind
    service.remove_address(ann.id, address_id, expected_version=2)
    assert now(service, ann.id).addresses == {}


def test_an_address_of_another_kind_is_refused(service: CustomerService, ann: Customer) -> None:
    """An address kind other than delivery, billing or site is refused naming `kind`."""
    with pytest.raises(RuleViolationError) as refused:
        service.add_address(ann.id, {"kind": "holiday", "line1": "1 Beach Rd"})
    assert refused.value.field == "kind"


# ---- installed systems ----------------------------------------------------------------------


def stored_events(service: CustomerService, customer_id: UUID) -> bytes:
    return b"".join(e.state for e in service.recorder.select_events(customer_id))


def test_a_system_secret_is_stored_only_sealed(service: CustomerService, ann: Customer) -> None:
    """The stored event never holds the clear secret; unseal gives it back."""
    system_id = service.install_system(
        ann.id, {"system_type": "alarm", "login": "admin", "secret": "hunter2-alarm"}
    ).result["system_id"]
    system = now(service, ann.id).systems[system_id]
    assert b"hunter2-alarm" not in stored_events(service, ann.id)
    assert system.sealed_secret is not None
    assert service.unseal_secret(ann.id, system.sealed_secret) == "hunter2-alarm"


def test_a_changed_system_secret_is_sealed_too(service: CustomerService, ann: Customer) -> None:
    """A secret given in a system change is sealed before it reaches the event."""
    system_id = service.install_system(ann.id, {"system_type": "nvr", "secret": "first-pw"}).result[
        "system_id"
    ]
    service.change_system(ann.id, system_id, {"secret": "second-pw"}, expected_version=2)
    system = now(service, ann.id).systems[system_id]
    assert b"second-pw" not in stored_events(service, ann.id)
    assert system.sealed_secret is not None
    assert service.unseal_secret(ann.id, system.sealed_secret) == "second-pw"


def test_an_empty_secret_clears_the_sealed_one(service: CustomerService, ann: Customer) -> None:
    """A system change with an empty secret removes the stored secret."""
    system_id = service.install_system(ann.id, {"system_type": "nvr", "secret": "pw"}).result[
        "system_id"
    ]
    service.change_system(ann.id, system_id, {"secret": ""}, expected_version=2)
    assert now(service, ann.id).systems[system_id].sealed_secret is None


def test_a_system_change_records_only_real_changes(service: CustomerService, ann: Customer) -> None:
    """Changing a system to its current values records nothing."""
    system_id = service.install_system(ann.id, {"system_type": "alarm", "version": "1"}).result[
        "system_id"
    ]
    same = service.change_system(
        ann.id, system_id, {"system_type": "alarm", "version": "1"}, expected_version=2
    )
    changed = service.change_system(ann.id, system_id, {"version": "2"}, expected_version=2)
    assert (same.version, changed.version) == (2, 3)
    assert now(service, ann.id).systems[system_id].version == "2"


@pytest.mark.parametrize(
    ("changes", "field"), [({"system_type": " "}, "system_type"), ({"colour": "red"}, "colour")]
)
def test_an_invalid_system_change_is_refused(
    service: CustomerService, ann: Customer, changes: dict[str, str], field: str
) -> None:
    """A blank system type or an unknown field in a system change is refused naming it."""
    system_id = service.install_system(ann.id, {"system_type": "alarm"}).result["system_id"]
    with pytest.raises(RuleViolationError) as refused:
        service.change_system(ann.id, system_id, changes, expected_version=2)
    assert refused.value.field == field


def test_a_system_can_be_removed(service: CustomerService, ann: Customer) -> None:
    """Removing an installed system takes it off the customer."""
    system_id = service.install_system(ann.id, {"system_type": "alarm"}).result["system_id"]
    service.remove_system(ann.id, system_id, expected_version=2)
    assert now(service, ann.id).systems == {}


# ---- keys, prices, credits ------------------------------------------------------------------


def test_key_custody_records_holder_location_and_since(
    service: CustomerService, ann: Customer
) -> None:
    """Handing keys records holder, location and time; the same hand-over again records nothing."""
    first = service.hand_keys_to(ann.id, "staff-1", "key safe")
    again = service.hand_keys_to(ann.id, "staff-1", "key safe")
    moved = service.hand_keys_to(ann.id, "staff-1", "office")
    custody = now(service, ann.id).key_custody
    assert (first.version, again.version, moved.version) == (2, 2, 3)
    assert custody is not None
    assert (custody.holder_staff_id, custody.location) == ("staff-1", "office")
    assert custody.since == now(service, ann.id).modified_on


def test_keys_need_a_holder(service: CustomerService, ann: Customer) -> None:
    """A blank key holder is refused naming holder_staff_id."""
    with pytest.raises(RuleViolationError) as refused:
        service.hand_keys_to(ann.id, " ", None)
    assert refused.value.field == "holder_staff_id"


def test_custom_prices_override_per_service(service: CustomerService, ann: Customer) -> None:
    """A custom price is kept per service; setting the same price again records nothing."""
    service.set_custom_price(ann.id, "svc-1", Decimal("12.50"))
    service.set_custom_price(ann.id, "svc-2", Decimal(0))
    again = service.set_custom_price(ann.id, "svc-1", Decimal("12.5"))
    assert now(service, ann.id).custom_prices == {"svc-1": Decimal("12.50"), "svc-2": Decimal(0)}
    assert again.version == 3


def test_a_negative_custom_price_is_refused(service: CustomerService, ann: Customer) -> None:
    """A price below zero is refused naming `price`."""
    with pytest.raises(RuleViolationError) as refused:
        service.set_custom_price(ann.id, "svc-1", Decimal("-0.01"))
    assert refused.value.field == "price"


def test_the_credit_balance_is_the_sum_of_the_credits(
    service: CustomerService, ann: Customer
) -> None:
    """Credits add up to the credit balance and remember who gave them and why."""
    assert now(service, ann.id).credit_balance == Decimal(0)
    service.add_credit(ann.id, Decimal("10.00"), "late technician")
    service.add_credit(ann.id, Decimal("2.50"), "goodwill")
    customer = now(service, ann.id)
    assert customer.credit_balance == Decimal("12.50")
    assert [(c.reason, c.added_by) for c in customer.credits] == [
        ("late technician", "system"),
        ("goodwill", "system"),
    ]


@pytest.mark.parametrize(
    ("amount", "reason", "field"),
    [(Decimal(0), "x", "amount"), (Decimal(-5), "x", "amount"), (Decimal(5), "  ", "reason")],
)
def test_a_credit_needs_a_positive_amount_and_a_reason(
    service: CustomerService, ann: Customer, amount: Decimal, reason: str, field: str
) -> None:
    """A credit of zero or less, or without a reason, is refused naming the field."""
    with pytest.raises(RuleViolationError) as refused:
        service.add_credit(ann.id, amount, reason)
    assert refused.value.field == field


# ---- unknown parts and customers --------------------------------------------------------------


REMOVALS: dict[str, Callable[[CustomerService, UUID, UUID], Any]] = {
    "note": lambda s, c, part: s.remove_note(c, part, expected_version=1),
    "contact": lambda s, c, part: s.remove_contact(c, part, expected_version=1),
    "address": lambda s, c, part: s.remove_address(c, part, expected_version=1),
    "system": lambda s, c, part: s.remove_system(c, part, expected_version=1),
    "system change": lambda s, c, part: s.change_system(
        c, part, {"version": "2"}, expected_version=1
    ),
}


@pytest.mark.parametrize("kind", sorted(REMOVALS))
def test_removing_an_unknown_part_is_not_found(
    service: CustomerService, ann: Customer, kind: str
) -> None:
    """Removing (or changing) a part the customer does not have is a NotFoundError."""
    with pytest.raises(NotFoundError):
        REMOVALS[kind](service, ann.id, uuid4())


def test_a_command_on_an_unknown_customer_is_not_found(service: CustomerService) -> None:
    """A command addressed to an id that is no customer is a NotFoundError."""
    with pytest.raises(NotFoundError):
        service.add_note(uuid4(), "hello", False)
