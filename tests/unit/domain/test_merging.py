"""Merging and unmerging customers: the rules of what moves, and every refusal."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from uuid import UUID, uuid4

import pytest

from domain.customers import Customer
from domain.errors import (
    ConflictError,
    MergedCustomerError,
    NotFoundError,
    RuleViolationError,
    UniqueValueTakenError,
    VersionMismatchError,
)
from domain.reservations import Reservation, reservation_id
from domain.service import CustomerService, Receipt

Register = Callable[..., Customer]


def versions(service: CustomerService, *ids: UUID) -> dict[UUID, int]:
    return {i: service.get_customer(i).version for i in ids}


def merge(service: CustomerService, survivor: UUID, *merged: UUID) -> Receipt:
    return service.merge_customers(
        survivor, list(merged), expected_versions=versions(service, survivor, *merged)
    )


def unmerge(service: CustomerService, survivor: UUID, merge_id: UUID) -> Receipt:
    version = service.get_customer(survivor).version
    return service.unmerge_customers(survivor, merge_id, expected_version=version)


def owner(service: CustomerService, field: str, value: str) -> UUID | None:
    reservation = service.repository.get(reservation_id(field, value))
    assert isinstance(reservation, Reservation)
    return reservation.owner_id


def test_survivor_values_win_and_its_empty_fields_fill_in_request_order(
    service: CustomerService, register: Register
) -> None:
    """Survivor's non-empty profile values win; empty ones take the first merged value."""
    survivor = register(first_name="Ann", company_name="Acme")
    first = register(first_name="Anne", company_name="Globex", group="vip")
    second = register(first_name="A.", group="basic", tax_id="T-1")
    receipt = merge(service, survivor.id, first.id, second.id)
    after = service.get_customer(survivor.id)
    assert (after.profile.first_name, after.profile.company_name) == ("Ann", "Acme")
    assert (after.profile.group, after.profile.tax_id) == ("vip", "T-1")
    moved = receipt.result["moved"]
    assert moved[str(first.id)]["profile"] == ["group"]
    assert moved[str(second.id)]["profile"] == ["tax_id"]


def test_survivor_prices_win_and_missing_ones_move(
    service: CustomerService, register: Register
) -> None:
    """A service the survivor has a price for keeps it; another takes the merged price."""
    survivor, merged = register(), register()
    service.set_custom_price(survivor.id, "oil", Decimal("10"))
    service.set_custom_price(merged.id, "oil", Decimal("8"))
    service.set_custom_price(merged.id, "tyres", Decimal("40"))
    receipt = merge(service, survivor.id, merged.id)
    assert service.get_customer(survivor.id).custom_prices == {
        "oil": Decimal("10"),
        "tyres": Decimal("40"),
    }
    assert receipt.result["moved"][str(merged.id)]["custom_prices"] == ["tyres"]


def test_the_emails_and_phones_of_the_merged_move_to_the_survivor_and_back(
    service: CustomerService, register: Register
) -> None:
    """While merged, the merged customer's email is the survivor's: no one else can take it."""
    survivor = register(email="ann@example.com")
    merged = register(email="ann.work@example.com", mobile_phone="+14155552671")
    receipt = merge(service, survivor.id, merged.id)
    assert owner(service, "email", "ann.work@example.com") == survivor.id
    assert owner(service, "mobile_phone", "+14155552671") == survivor.id
    with pytest.raises(UniqueValueTakenError):
        service.register_customer({"first_name": "Eve", "email": "ann.work@example.com"})
    unmerge(service, survivor.id, receipt.result["merge_id"])
    assert owner(service, "email", "ann.work@example.com") == merged.id
    assert owner(service, "mobile_phone", "+14155552671") == merged.id
    assert service.get_customer(survivor.id).profile.mobile_phone is None


def test_a_moved_secret_opens_on_the_survivor(service: CustomerService, register: Register) -> None:
    """An equipment secret is sealed again for the survivor: revealing it there works."""
    survivor, merged = register(), register()
    system_id = service.install_system(
        merged.id, {"system_type": "alarm", "secret": "hunter2"}
    ).result["system_id"]
    merge(service, survivor.id, merged.id)
    assert service.reveal_secret(survivor.id, system_id)[1] == "hunter2"


def test_unmerge_keeps_on_the_survivor_what_it_got_since(
    service: CustomerService, register: Register
) -> None:
    """A note added to the survivor after the merge stays; the moved one goes back."""
    survivor, merged = register(), register()
    moved_note = service.add_note(merged.id, "gate code", urgent=True).result["note_id"]
    receipt = merge(service, survivor.id, merged.id)
    new_note = service.add_note(survivor.id, "called today", urgent=False).result["note_id"]
    unmerge(service, survivor.id, receipt.result["merge_id"])
    assert set(service.get_customer(survivor.id).notes) == {new_note}
    assert set(service.get_customer(merged.id).notes) == {moved_note}


def test_a_filled_field_changed_on_the_survivor_since_stays(
    service: CustomerService, register: Register
) -> None:
    """A field filled by the merge and changed afterwards is the survivor's own now."""
    survivor, merged = register(), register(company_name="Globex")
    receipt = merge(service, survivor.id, merged.id)
    version = service.get_customer(survivor.id).version
    service.change_profile(survivor.id, {"company_name": "Initech"}, expected_version=version)
    unmerge(service, survivor.id, receipt.result["merge_id"])
    assert service.get_customer(survivor.id).profile.company_name == "Initech"
    assert service.get_customer(merged.id).profile.company_name == "Globex"


def test_a_tombstone_refuses_changes_naming_the_survivor(
    service: CustomerService, register: Register
) -> None:
    """Every change to a merged customer is refused (409) with the survivor's id."""
    survivor, merged = register(), register()
    merge(service, survivor.id, merged.id)
    version = service.get_customer(merged.id).version
    with pytest.raises(MergedCustomerError) as refused:
        service.change_profile(merged.id, {"group": "vip"}, expected_version=version)
    assert refused.value.survivor_id == survivor.id
    with pytest.raises(MergedCustomerError):
        service.open_ticket(merged.id, "screen", "cracked", {"type": "phone"})


def test_merging_into_itself_is_refused(service: CustomerService, register: Register) -> None:
    """A customer is not its own duplicate."""
    customer = register()
    with pytest.raises(ConflictError) as refused:
        merge(service, customer.id, customer.id)
    assert refused.value.field == "from" and "itself" in refused.value.message


@pytest.mark.parametrize("state", ["deleted", "erased"])
@pytest.mark.parametrize("who", ["survivor", "merged"])
def test_a_deleted_or_erased_customer_takes_no_part(
    service: CustomerService, register: Register, state: str, who: str
) -> None:
    """Neither side of a merge may be deleted or erased: 409 saying which and why."""
    survivor, merged = register(), register()
    target = survivor if who == "survivor" else merged
    if state == "deleted":
        service.delete_customer(target.id, expected_version=target.version)
    else:
        service.erase_customer(target.id, expected_version=target.version)
    with pytest.raises(ConflictError) as refused:
        merge(service, survivor.id, merged.id)
    assert state in refused.value.message
    assert refused.value.field == ("id" if who == "survivor" else "from")


def test_a_tombstone_cannot_be_a_survivor_or_merged_again(
    service: CustomerService, register: Register
) -> None:
    """A merged customer is refused on either side, naming where it went."""
    survivor, merged, other = register(), register(), register()
    merge(service, survivor.id, merged.id)
    with pytest.raises(MergedCustomerError) as as_survivor:
        merge(service, merged.id, other.id)
    assert as_survivor.value.survivor_id == survivor.id and as_survivor.value.field == "id"
    with pytest.raises(MergedCustomerError) as as_merged:
        merge(service, other.id, merged.id)
    assert as_merged.value.field == "from"


def test_a_merge_that_would_loop_is_refused(service: CustomerService, register: Register) -> None:
    """Merging a customer into one of its own tombstones would make a cycle: 409 says so."""
    a, b = register(), register()
    merge(service, a.id, b.id)  # b -> a
    with pytest.raises(ConflictError) as refused:
        merge(service, b.id, a.id)  # a -> b would close the loop
    assert "loop" in refused.value.message and refused.value.field == "from"


def test_a_stale_version_of_any_customer_is_refused(
    service: CustomerService, register: Register
) -> None:
    """Each customer named is checked against the version its caller saw."""
    survivor, merged = register(), register()
    seen = versions(service, survivor.id, merged.id)
    service.add_note(merged.id, "changed since", urgent=False)
    with pytest.raises(VersionMismatchError):
        service.merge_customers(survivor.id, [merged.id], expected_versions=seen)


def test_every_customer_needs_a_version(service: CustomerService, register: Register) -> None:
    """A merged customer without the version its caller saw is refused, naming it."""
    survivor, merged = register(), register()
    with pytest.raises(RuleViolationError) as refused:
        service.merge_customers(
            survivor.id, [merged.id], expected_versions={survivor.id: survivor.version}
        )
    assert refused.value.field == f"versions.{merged.id}"


def test_an_unknown_customer_is_not_found(service: CustomerService, register: Register) -> None:
    survivor, unknown = register(), uuid4()
    with pytest.raises(NotFoundError):
        service.merge_customers(
            survivor.id, [unknown], expected_versions={survivor.id: 1, unknown: 1}
        )


def test_unmerging_twice_or_an_unknown_merge_is_refused(
    service: CustomerService, register: Register
) -> None:
    survivor, merged = register(), register()
    merge_id = merge(service, survivor.id, merged.id).result["merge_id"]
    unmerge(service, survivor.id, merge_id)
    for unknown in (merge_id, uuid4()):
        with pytest.raises(ConflictError) as refused:
            unmerge(service, survivor.id, unknown)
        assert refused.value.field == "merge_id"


def test_unmerge_is_refused_when_the_email_was_taken_meanwhile(
    service: CustomerService, register: Register
) -> None:
    """The survivor gave the merged email up and someone took it: 409 naming the email."""
    survivor = register()
    merged = register(email="shared@example.com")
    merge_id = merge(service, survivor.id, merged.id).result["merge_id"]  # fills the email
    version = service.get_customer(survivor.id).version
    service.change_profile(survivor.id, {"email": "own@example.com"}, expected_version=version)
    service.register_customer({"first_name": "Eve", "email": "shared@example.com"})
    with pytest.raises(UniqueValueTakenError) as refused:
        unmerge(service, survivor.id, merge_id)
    assert refused.value.field == "email"


def test_unmerge_after_the_survivor_moved_on_needs_the_later_one_undone_first(
    service: CustomerService, register: Register
) -> None:
    """a -> b, then b -> c: undoing the first needs the second undone; then both undo."""
    a, b, c = register(), register(), register()
    note = service.add_note(a.id, "from a", urgent=False).result["note_id"]
    first = merge(service, b.id, a.id).result["merge_id"]
    second = merge(service, c.id, b.id).result["merge_id"]
    assert note in service.get_customer(c.id).notes
    with pytest.raises(ConflictError):
        unmerge(service, b.id, first)
    unmerge(service, c.id, second)
    unmerge(service, b.id, first)
    assert set(service.get_customer(a.id).notes) == {note}
    assert not service.get_customer(b.id).notes and not service.get_customer(c.id).notes


def test_a_merged_customer_is_erased_only_with_its_survivor(
    service: CustomerService, register: Register
) -> None:
    """Erasing a tombstone is refused; erasing its survivor erases it too (one person)."""
    survivor = register(email="ann@example.com")
    merged = register(email="ann.old@example.com", company_name="Globex")
    service.add_note(merged.id, "gate 4711", urgent=False)
    merge(service, survivor.id, merged.id)
    with pytest.raises(MergedCustomerError):
        service.erase_customer(merged.id, expected_version=service.get_customer(merged.id).version)
    service.erase_customer(survivor.id, expected_version=service.get_customer(survivor.id).version)
    assert service.get_customer(merged.id).erased
    assert service.get_customer(merged.id).profile.email is None
    assert owner(service, "email", "ann.old@example.com") is None
    assert service.key_ring.data_key(merged.id) is None
    # What moved onto the survivor is shredded with it, in the survivor's own stream.
    [moved] = [e for e in service.customer_events(survivor.id) if isinstance(e, Customer.Merged)]
    assert [n.text for n in moved.notes] == [""] and moved.profile["company_name"] is None
