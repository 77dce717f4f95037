"""Many registrations in one save: the rules of one by one, conflicts retried alone."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from domain.errors import RuleViolationError, UniqueValueTakenError
from domain.reservations import Reservation, reservation_id
from domain.sealing import SecretSealer
from domain.service import CustomerService
from domain.write_path import Receipt


class CountingService(CustomerService):
    """A service that counts its saves, to tell one save per batch from one per customer."""

    def __init__(self) -> None:
        super().__init__(sealer=SecretSealer(SecretSealer.generate_key()))
        self.saves = 0

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        self.saves += 1
        return super().save(*objs, **kwargs)


def _rows(count: int) -> list[tuple[UUID, dict[str, Any]]]:
    return [
        (uuid4(), {"first_name": f"Ann {i}", "email": f"ann{i}@example.com"}) for i in range(count)
    ]


def _email_holder(service: CustomerService, email: str) -> UUID | None:
    reservation: Reservation = service.repository.get(reservation_id("email", email))
    return reservation.owner_id


def test_a_batch_without_conflicts_is_one_save() -> None:
    """Fifty new customers and their reservations are saved together, under the given ids."""
    service = CountingService()
    rows = _rows(50)
    results = service.register_customers(rows)
    assert service.saves == 1
    assert [r.aggregate_id for r in results if isinstance(r, Receipt)] == [i for i, _ in rows]
    assert len({service.get_customer(i).customer_number for i, _ in rows}) == 50
    assert service.get_customer(rows[7][0]).profile.email == "ann7@example.com"
    assert _email_holder(service, "ann7@example.com") == rows[7][0]


def test_a_value_taken_before_is_a_duplicate_naming_its_holder_and_the_rest_are_saved() -> None:
    """A row whose email another customer holds is refused; every other row is registered."""
    service = CountingService()
    holder = service.register_customer({"first_name": "Bo", "email": "ann3@example.com"})
    rows = _rows(16)
    results = service.register_customers(rows)
    refused = results[3]
    assert isinstance(refused, UniqueValueTakenError)
    assert (refused.field, refused.holder_id) == ("email", holder.aggregate_id)
    assert all(isinstance(r, Receipt) for i, r in enumerate(results) if i != 3)
    assert _email_holder(service, "ann3@example.com") == holder.aggregate_id
    # Split in halves down to the conflict, not one save per row.
    assert service.saves < 16


def test_of_two_rows_of_a_batch_with_the_same_email_the_earlier_wins() -> None:
    """Within one batch, the later of two rows claiming a value is the duplicate."""
    service = CustomerService(sealer=SecretSealer(SecretSealer.generate_key()))
    rows = _rows(8)
    rows[6] = (rows[6][0], {"first_name": "Cy", "email": "ANN2@example.com"})
    results = service.register_customers(rows)
    later = results[6]
    assert isinstance(later, UniqueValueTakenError) and later.holder_id == rows[2][0]
    assert isinstance(results[2], Receipt)
    assert sum(isinstance(r, Receipt) for r in results) == 7


def test_an_invalid_row_is_refused_naming_its_field_and_the_batch_goes_on() -> None:
    """A domain rule refuses one row as the API would; the others are registered."""
    service = CustomerService(sealer=SecretSealer(SecretSealer.generate_key()))
    rows = _rows(4)
    rows[1] = (rows[1][0], {"first_name": "", "email": "x@example.com"})
    rows[2] = (rows[2][0], {"first_name": "Di", "date_of_birth": "not a date", "shoe": 1})
    results = service.register_customers(rows)
    assert isinstance(results[1], RuleViolationError) and results[1].field == "first_name"
    assert isinstance(results[2], RuleViolationError)
    assert [isinstance(r, Receipt) for r in results] == [True, False, False, True]


def test_a_batch_run_again_registers_no_one_twice() -> None:
    """Given ids that exist already refuse the save: no second customer under any of them."""
    service = CustomerService(sealer=SecretSealer(SecretSealer.generate_key()))
    rows = [(uuid4(), {"first_name": f"Eve {i}"}) for i in range(6)]
    service.register_customers(rows)
    before = service.recorder.max_notification_id()
    again = service.register_customers(rows)
    assert not any(isinstance(r, Receipt) for r in again)
    assert service.recorder.max_notification_id() == before


def test_a_value_released_before_is_reclaimed_by_a_row_of_the_batch() -> None:
    """An email another customer gave up is free: the row claiming it is registered."""
    service = CountingService()
    bo = service.register_customer({"first_name": "Bo", "email": "ann2@example.com"})
    service.change_profile(bo.aggregate_id, {"email": "bo@example.com"}, expected_version=1)
    rows = _rows(5)
    results = service.register_customers(rows)
    assert all(isinstance(r, Receipt) for r in results)
    assert _email_holder(service, "ann2@example.com") == rows[2][0]


def test_a_row_kept_out_of_the_save_still_wins_over_a_later_row() -> None:
    """A row that runs alone (one value reserved before) keeps its other value from later rows."""
    service = CustomerService(sealer=SecretSealer(SecretSealer.generate_key()))
    bo = service.register_customer({"first_name": "Bo", "mobile_phone": "+14155550100"})
    service.change_profile(bo.aggregate_id, {"mobile_phone": None}, expected_version=1)
    rows = _rows(6)
    rows[1] = (
        rows[1][0],
        {"first_name": "Cy", "email": "cy@example.com", "mobile_phone": "+14155550100"},
    )
    rows[4] = (rows[4][0], {"first_name": "Di", "email": "cy@example.com"})
    results = service.register_customers(rows)
    assert isinstance(results[1], Receipt), "the released phone is reclaimed, the email is new"
    later = results[4]
    assert isinstance(later, UniqueValueTakenError) and later.holder_id == rows[1][0]
