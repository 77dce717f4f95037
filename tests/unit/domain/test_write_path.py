"""The write path in memory: optimistic versions, lost races retried, idempotent requests."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest

from domain.customers import Customer
from domain.errors import RuleViolationError, UniqueValueTakenError, VersionMismatchError
from domain.idempotency import IdempotencyKeyReusedError, idempotency_id
from domain.sealing import SecretSealer
from domain.service import CustomerService, Idempotency

Register = Callable[..., Customer]


def events_recorded(service: CustomerService) -> int:
    return service.recorder.max_notification_id() or 0


class RacedService(CustomerService):
    """A service where another writer slips in once, between a command's decision and its save."""

    def __init__(self) -> None:
        super().__init__(sealer=SecretSealer(SecretSealer.generate_key()))
        self.other_writer: Callable[[], Any] | None = None

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        if self.other_writer is not None:
            other_writer, self.other_writer = self.other_writer, None
            other_writer()
        return super().save(*objs, **kwargs)


# ---- versions -------------------------------------------------------------------------------


def test_a_stale_expected_version_is_refused_and_changes_nothing(
    service: CustomerService, register: Register
) -> None:
    """A command made on a version that is no longer current is a VersionMismatchError."""
    ann = register()
    service.change_profile(ann.id, {"last_name": "Lee"}, expected_version=1)
    with pytest.raises(VersionMismatchError) as refused:
        service.change_profile(ann.id, {"last_name": "Li"}, expected_version=1)
    assert (refused.value.expected, refused.value.actual) == (1, 2)
    assert service.get_customer(ann.id).profile.last_name == "Lee"


def test_a_part_added_with_a_stale_version_is_refused(
    service: CustomerService, register: Register
) -> None:
    """Adding a part with an If-Match that is no longer current is a VersionMismatchError."""
    ann = register()
    service.add_note(ann.id, "first", False)
    with pytest.raises(VersionMismatchError):
        service.add_note(ann.id, "second", False, expected_version=1)


def test_commands_without_an_expected_version_apply_to_the_latest(
    service: CustomerService, register: Register
) -> None:
    """Parts added without If-Match apply on top of whatever version is current."""
    ann = register()
    service.change_profile(ann.id, {"last_name": "Lee"}, expected_version=1)
    receipts = [
        service.add_note(ann.id, "one", False),
        service.add_credit(ann.id, Decimal(5), "goodwill"),
        service.hand_keys_to(ann.id, "staff-1", None),
    ]
    assert [r.version for r in receipts] == [3, 4, 5]


def test_the_receipt_carries_the_new_version_and_the_global_position(
    service: CustomerService, register: Register
) -> None:
    """A receipt gives the aggregate's new version and the position of its last event."""
    ann = register()
    receipt = service.add_note(ann.id, "hello", False)
    assert receipt.version == 2
    assert receipt.position == events_recorded(service)


def test_a_part_added_while_another_writer_got_in_first_is_retried_on_fresh_state() -> None:
    """A save that loses the version race is retried from a fresh read, keeping both changes."""
    # The other writer adds a note after our command loaded the customer.
    service = RacedService()
    ann_id = service.register_customer({"first_name": "Ann"}).aggregate_id
    service.other_writer = lambda: service.add_note(ann_id, "theirs", False)
    receipt = service.add_note(ann_id, "ours", False)
    # Our first save failed, the retry read version 2 and saved version 3.
    assert receipt.version == 3
    texts = sorted(n.text for n in service.get_customer(ann_id).notes.values())
    assert texts == ["ours", "theirs"]


def test_a_registration_that_loses_the_race_for_an_email_is_refused_on_retry() -> None:
    """When another registration takes the email first, the retry reports the value as taken."""
    service = RacedService()
    service.other_writer = lambda: service.register_customer(
        {"first_name": "Bob", "email": "ann@example.com"}
    )
    with pytest.raises(UniqueValueTakenError) as refused:
        service.register_customer({"first_name": "Ann", "email": "ann@example.com"})
    assert refused.value.field == "email"


def test_a_profile_change_that_loses_the_race_is_refused_as_stale() -> None:
    """A profile change whose version was taken meanwhile reports the version mismatch."""
    service = RacedService()
    ann_id = service.register_customer({"first_name": "Ann"}).aggregate_id
    service.other_writer = lambda: service.change_profile(
        ann_id, {"last_name": "Theirs"}, expected_version=1
    )
    with pytest.raises(VersionMismatchError):
        service.change_profile(ann_id, {"last_name": "Ours"}, expected_version=1)
    assert service.get_customer(ann_id).profile.last_name == "Theirs"


# ---- idempotency ----------------------------------------------------------------------------


def test_a_repeated_keyed_registration_returns_the_first_result(
    service: CustomerService,
) -> None:
    """The same key and fingerprint twice replays the first receipt and records nothing new."""
    key = Idempotency(uuid4(), "fingerprint-1")
    first = service.register_customer({"first_name": "Ann", "email": "ann@example.com"}, key)
    recorded = events_recorded(service)
    again = service.register_customer({"first_name": "Ann", "email": "ann@example.com"}, key)
    assert (again.aggregate_id, again.version, again.result) == (
        first.aggregate_id,
        first.version,
        first.result,
    )
    assert (first.replayed, again.replayed) == (False, True)
    assert again.position >= first.position
    assert events_recorded(service) == recorded


def test_a_repeated_keyed_note_adds_one_note(service: CustomerService, register: Register) -> None:
    """A retried note with the same key returns the first note's id and adds no second note."""
    ann = register()
    key = Idempotency(uuid4(), "fp")
    first = service.add_note(ann.id, "call first", True, idempotency=key)
    again = service.add_note(ann.id, "call first", True, idempotency=key)
    assert again.result["note_id"] == first.result["note_id"]
    assert again.replayed
    assert list(service.get_customer(ann.id).notes) == [first.result["note_id"]]


def test_a_replay_answers_as_first_even_after_later_changes(
    service: CustomerService, register: Register
) -> None:
    """A replay gives the first outcome's version, not the customer's current one."""
    ann = register()
    key = Idempotency(uuid4(), "fp")
    first = service.add_note(ann.id, "one", False, idempotency=key)
    service.add_note(ann.id, "two", False)
    again = service.add_note(ann.id, "one", False, idempotency=key)
    assert (again.version, again.result) == (first.version, first.result)


def test_a_key_reused_for_another_request_is_refused(
    service: CustomerService, register: Register
) -> None:
    """The same key with another fingerprint is an IdempotencyKeyReusedError naming the header."""
    ann = register()
    record_id = uuid4()
    service.add_note(ann.id, "one", False, idempotency=Idempotency(record_id, "fp-1"))
    recorded = events_recorded(service)
    with pytest.raises(IdempotencyKeyReusedError) as refused:
        service.add_note(ann.id, "two", False, idempotency=Idempotency(record_id, "fp-2"))
    assert isinstance(refused.value, RuleViolationError)
    assert refused.value.field == "Idempotency-Key"
    assert events_recorded(service) == recorded


def test_a_refused_keyed_request_is_not_remembered(service: CustomerService) -> None:
    """A keyed request that was refused leaves no record, so its retry is decided afresh."""
    bob = service.register_customer({"first_name": "Bob", "email": "ann@example.com"})
    key = Idempotency(uuid4(), "fp")
    with pytest.raises(UniqueValueTakenError):
        service.register_customer({"first_name": "Ann", "email": "ann@example.com"}, key)
    # Bob gives the address up; Ann's retry with the same key now registers her.
    service.change_profile(bob.aggregate_id, {"email": None}, expected_version=1)
    receipt = service.register_customer({"first_name": "Ann", "email": "ann@example.com"}, key)
    assert not receipt.replayed
    assert service.get_customer(receipt.aggregate_id).profile.email == "ann@example.com"


def test_a_keyed_request_racing_its_duplicate_returns_the_winners_outcome() -> None:
    """When an identical keyed request saves first, the loser answers with the winner's outcome."""
    service = RacedService()
    key = Idempotency(uuid4(), "fp")
    fields = {"first_name": "Ann", "email": "ann@example.com"}
    winner: list[Any] = []
    service.other_writer = lambda: winner.append(service.register_customer(fields, key))
    loser = service.register_customer(fields, key)
    assert loser.replayed
    assert (loser.aggregate_id, loser.result) == (winner[0].aggregate_id, winner[0].result)


class TwinAfterCheckService(CustomerService):
    """A service where an identical keyed request wins just after the first replay check."""

    def __init__(self) -> None:
        super().__init__(sealer=SecretSealer(SecretSealer.generate_key()))
        self.twin: Callable[[], Any] | None = None

    def _earlier_outcome(self, idempotency: Idempotency) -> Any:
        earlier = super()._earlier_outcome(idempotency)
        if self.twin is not None:
            twin, self.twin = self.twin, None
            twin()
        return earlier


def test_a_keyed_request_refused_because_its_twin_won_replays_the_twin() -> None:
    """When the twin's effect refuses the decision (a newer version), the twin's answer is given."""
    service = TwinAfterCheckService()
    ann = service.register_customer({"first_name": "Ann"}).aggregate_id
    key = Idempotency(uuid4(), "fp")
    twin: list[Any] = []

    def change() -> Any:
        return service.change_profile(
            ann, {"last_name": "Lee"}, expected_version=1, idempotency=key
        )

    service.twin = lambda: twin.append(change())
    answer = change()
    assert answer.replayed
    assert (answer.version, answer.result) == (twin[0].version, twin[0].result)


class ReadsCountedService(CustomerService):
    """A service that counts its reads of idempotency records."""

    def __init__(self) -> None:
        super().__init__(sealer=SecretSealer(SecretSealer.generate_key()))
        self.record_reads = 0

    def _earlier_outcome(self, idempotency: Idempotency) -> Any:
        self.record_reads += 1
        return super()._earlier_outcome(idempotency)


def test_a_first_keyed_registration_reads_no_idempotency_record_and_its_repeat_replays() -> None:
    """A registration tries its save first; only a refused save looks for the earlier outcome,
    and a repeat (its record refuses the save) answers with it and registers nobody."""
    service = ReadsCountedService()
    key = Idempotency(uuid4(), "fp")
    fields = {"first_name": "Ann", "email": "ann@example.com", "mobile_phone": "+14155552671"}
    first = service.register_customer(fields, key)
    assert service.record_reads == 0
    recorded = events_recorded(service)
    again = service.register_customer(fields, key)
    assert again.replayed and service.record_reads == 1
    assert (again.aggregate_id, again.version, again.result) == (
        first.aggregate_id,
        first.version,
        first.result,
    )
    assert events_recorded(service) == recorded


def test_a_repeated_registration_key_with_another_body_is_refused_after_its_save_is() -> None:
    """A registration's key reused for other values (all of them new) is still refused, naming
    the header, and saves nothing."""
    service = ReadsCountedService()
    record_id = uuid4()
    service.register_customer({"first_name": "Ann"}, Idempotency(record_id, "fp-1"))
    recorded = events_recorded(service)
    with pytest.raises(IdempotencyKeyReusedError):
        service.register_customer(
            {"first_name": "Bob", "email": "bob@example.com"}, Idempotency(record_id, "fp-2")
        )
    assert events_recorded(service) == recorded


def test_idempotency_keys_are_scoped_to_the_caller() -> None:
    """The same key from two callers names two records; from one caller, one record."""
    assert idempotency_id("staff-1", "k") == idempotency_id("staff-1", "k")
    assert idempotency_id("staff-1", "k") != idempotency_id("staff-2", "k")
