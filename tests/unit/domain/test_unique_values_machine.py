"""A Hypothesis state machine of customers competing for the same emails and mobile phones.

The reservation invariant: no two customers ever hold the same email (case-insensitively)
or mobile phone, and every value a customer holds is reserved for that customer. A
command the model finds no reason to refuse must succeed; a refused one must be refused
for one of the reasons the model found.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from domain.errors import ConflictError, DomainError, UniqueValueTakenError
from domain.reservations import Reservation, reservation_id
from domain.sealing import SecretSealer
from domain.service import CustomerService, Receipt

SETTINGS = settings(max_examples=50, stateful_step_count=30, deadline=None)

Reason = tuple[type[DomainError], str | None]


def outcome(command: Callable[[], Receipt], reasons: set[Reason]) -> Receipt | None:
    """Run a command: it succeeds when no reason to refuse it exists, else fails for one of them."""
    try:
        receipt = command()
    except DomainError as error:
        assert reasons, f"refused without a reason: {error!r}"
        assert (type(error), error.field) in reasons, f"{error!r} is none of {reasons}"
        return None
    assert not reasons, f"accepted although {reasons}"
    return receipt


def optional(values: list[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), st.sampled_from(values))


class CompetingCustomers(RuleBasedStateMachine):
    """Up to three customers registering and changing to the same emails and phones."""

    EMAILS = {
        "ann@example.com": "ann@example.com",
        "Ann@Example.com": "Ann@example.com",
        "ANN@EXAMPLE.COM": "ANN@example.com",
        "bob@example.com": "bob@example.com",
    }
    MOBILES = {
        "(415) 555-2671": "+14155552671",
        "415.555.2671": "+14155552671",
        "+1 415 555 2672": "+14155552672",
    }

    def __init__(self) -> None:
        super().__init__()
        self.service = CustomerService(sealer=SecretSealer(SecretSealer.generate_key()))
        self.ids: list[UUID] = []
        self.versions: list[int] = []
        self.deleted: list[bool] = []
        self.emails: list[str | None] = []
        self.mobiles: list[str | None] = []

    def taken(self, field: str, value: str | None, by_other_than: int | None) -> bool:
        """Is the stored value held by a customer other than `by_other_than`?"""
        if value is None:
            return False
        held = self.emails if field == "email" else self.mobiles
        key = value.casefold()
        return any(
            other is not None and other.casefold() == key and i != by_other_than
            for i, other in enumerate(held)
        )

    @precondition(lambda self: len(self.ids) < 3)
    @rule(email=optional(list(EMAILS)), mobile=optional(list(MOBILES)))
    def register(self, email: str | None, mobile: str | None) -> None:
        stored_email = self.EMAILS[email] if email else None
        stored_mobile = self.MOBILES[mobile] if mobile else None
        reasons: set[Reason] = set()
        if self.taken("email", stored_email, None):
            reasons.add((UniqueValueTakenError, "email"))
        if self.taken("mobile_phone", stored_mobile, None):
            reasons.add((UniqueValueTakenError, "mobile_phone"))
        receipt = outcome(
            lambda: self.service.register_customer(
                {"first_name": "C", "email": email, "mobile_phone": mobile}
            ),
            reasons,
        )
        if receipt is not None:
            self.ids.append(receipt.aggregate_id)
            self.versions.append(receipt.version)
            self.deleted.append(False)
            self.emails.append(stored_email)
            self.mobiles.append(stored_mobile)

    @precondition(lambda self: self.ids)
    @rule(
        data=st.data(),
        changes=st.fixed_dictionaries(
            {}, optional={"email": optional(list(EMAILS)), "mobile_phone": optional(list(MOBILES))}
        ),
    )
    def change_contact_points(self, data: st.DataObject, changes: dict[str, str | None]) -> None:
        i = data.draw(st.integers(0, len(self.ids) - 1))
        new_email = self.EMAILS[e] if (e := changes.get("email")) else None
        new_mobile = self.MOBILES[m] if (m := changes.get("mobile_phone")) else None
        reasons: set[Reason] = {(ConflictError, "deleted")} if self.deleted[i] else set()
        if "email" in changes and self.taken("email", new_email, i):
            reasons.add((UniqueValueTakenError, "email"))
        if "mobile_phone" in changes and self.taken("mobile_phone", new_mobile, i):
            reasons.add((UniqueValueTakenError, "mobile_phone"))
        receipt = outcome(
            lambda: self.service.change_profile(
                self.ids[i], changes, expected_version=self.versions[i]
            ),
            reasons,
        )
        if receipt is not None:
            self.versions[i] = receipt.version
            if "email" in changes:
                self.emails[i] = new_email
            if "mobile_phone" in changes:
                self.mobiles[i] = new_mobile

    @precondition(lambda self: self.ids)
    @rule(data=st.data())
    def delete_or_restore(self, data: st.DataObject) -> None:
        i = data.draw(st.integers(0, len(self.ids) - 1))
        if self.deleted[i]:
            receipt = self.service.restore_customer(self.ids[i], expected_version=self.versions[i])
        else:
            receipt = self.service.delete_customer(self.ids[i], expected_version=self.versions[i])
        self.versions[i] = receipt.version
        self.deleted[i] = not self.deleted[i]

    @invariant()
    def no_two_customers_hold_the_same_email_or_mobile_phone(self) -> None:
        """Deleted customers keep their values too, so this is stronger than for live ones."""
        customers = [self.service.get_customer(c) for c in self.ids]
        emails = [c.profile.email.casefold() for c in customers if c.profile.email]
        mobiles = [c.profile.mobile_phone for c in customers if c.profile.mobile_phone]
        assert len(emails) == len(set(emails))
        assert len(mobiles) == len(set(mobiles))
        assert [c.profile.email for c in customers] == self.emails
        assert [c.profile.mobile_phone for c in customers] == self.mobiles
        assert [c.deleted for c in customers] == self.deleted

    @invariant()
    def each_held_value_is_reserved_for_its_holder(self) -> None:
        for customer_id, email, mobile in zip(self.ids, self.emails, self.mobiles, strict=True):
            for field, value in (("email", email), ("mobile_phone", mobile)):
                if value is not None:
                    reservation: Reservation = self.service.repository.get(
                        reservation_id(field, value)
                    )
                    assert isinstance(reservation, Reservation)
                    assert reservation.owner_id == customer_id


CompetingCustomers.TestCase.settings = SETTINGS
TestCompetingCustomers = CompetingCustomers.TestCase
