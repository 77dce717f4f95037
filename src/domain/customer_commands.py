"""Every command and query about customers: registration, profile, lifecycle and parts."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate

from domain.customers import Customer
from domain.duplicates import DuplicateLookup, NewCustomer
from domain.errors import (
    ConflictError,
    DomainError,
    ImmutableFieldError,
    NotFoundError,
    RuleViolationError,
)
from domain.key_ring import SEALED_PREFIX, KeyRing
from domain.reservations import UNIQUE_FIELDS, Reservation, reservation_id
from domain.sealing import SecretSealer
from domain.values import Address, Profile, normalise_email, normalise_phone
from domain.write_path import Change, Idempotency, Receipt, WritePath

__all__ = ["CustomerCommands"]


class _Unset:
    """No likely duplicates given: the registration looks them up itself."""


_UNSET = _Unset()


@dataclass(frozen=True)
class _Registration:
    profile: Profile
    addresses: list[Address]
    given_number: int | None


class CustomerCommands(WritePath):
    """The customer part of the service; the settings it reads are set by the service."""

    sealer: SecretSealer
    """Opens equipment secrets sealed before per-customer keys (one service-wide key)."""
    key_ring: KeyRing
    next_customer_number: Callable[[], int]
    phone_region: str
    newsletter_default: bool
    duplicate_lookup: DuplicateLookup
    """Likely duplicates of new customers among the known ones (a read model's query)."""

    # ---- registration and profile ---------------------------------------------------------

    def register_customer(
        self,
        fields: Mapping[str, Any],
        idempotency: Idempotency | None = None,
        *,
        customer_id: UUID | None = None,
    ) -> Receipt:
        """Register a customer, reserving its email, mobile phone, username and number; the
        answer names its likely duplicates among the customers known (or None: unchecked)."""
        registration = self._registration_of(fields)
        return self.execute(
            self._registration(registration, customer_id), idempotency, replay_on_conflict=True
        )

    def register_customers(
        self, registrations: Sequence[tuple[UUID, Mapping[str, Any]]]
    ) -> list[Receipt | DomainError]:
        """Register many customers of the given ids, saved together: each one's receipt or
        refusal, in order (a bulk import's batch: see `WritePath.execute_batch`).

        A given id that already exists refuses the save like a taken value, so a batch
        run twice cannot register anyone twice; the caller finds such customers by id.
        The likely duplicates of the whole batch are looked up at once.
        """
        checked: dict[int, tuple[UUID, _Registration]] = {}
        refusals: dict[int, DomainError] = {}
        for index, (customer_id, fields) in enumerate(registrations):
            try:
                checked[index] = (customer_id, self._registration_of(fields))
            except DomainError as refused:
                refusals[index] = refused
        found = self.duplicate_lookup(
            [NewCustomer(i, r.profile, r.addresses) for i, r in checked.values()]
        )
        attempts = [
            self._registration(registration, customer_id, found[n] if found else None)
            for n, (customer_id, registration) in enumerate(checked.values())
        ]
        outcomes = iter(self.execute_batch(attempts))
        return [refusals.get(i) or next(outcomes) for i in range(len(registrations))]

    def _registration_of(self, fields: Mapping[str, Any]) -> _Registration:
        """The registration's values, checked (refusing with the field's name)."""
        values = self._normalised(dict(fields))
        addresses = [Address(address_id=uuid4(), **a) for a in values.pop("addresses", ())]
        given_number = values.pop("customer_number", None)
        unknown = set(values) - set(Profile.field_names())
        if unknown:
            raise RuleViolationError(sorted(unknown)[0], "not a registration field")
        values.setdefault("newsletter", self.newsletter_default)
        # A missing first_name is refused by check_rules like a blank one.
        profile = Profile.from_dict({"first_name": None, **values})
        profile.check_rules()
        return _Registration(profile, addresses, given_number)

    def _registration(
        self,
        registration: _Registration,
        customer_id: UUID | None,
        likely_duplicates: list[dict[str, Any]] | _Unset | None = _UNSET,
    ) -> Callable[[], Change]:
        """The attempt that decides the registration; a given customer id is used by every
        attempt. Its likely duplicates are looked up by the first attempt, unless given."""
        profile, addresses, given_number = (
            registration.profile,
            registration.addresses,
            registration.given_number,
        )
        tries = 0
        duplicates = likely_duplicates

        def attempt() -> Change:
            nonlocal tries, duplicates
            tries += 1
            if isinstance(duplicates, _Unset):
                found = self.duplicate_lookup([NewCustomer(customer_id, profile, addresses)])
                duplicates = found[0] if found is not None else None
            # The first try reads nothing: it claims every value as new and lets the event
            # store's unique key judge. Only after a refusal are the reservations read, to
            # reclaim released values or to say which value is taken. (A refused first try
            # may leave a gap in customer numbers, as any sequence does.)
            optimistic = tries == 1
            # A new customer's key exists already (made ahead); a given id's key is made
            # by the write path's one look-up before the save.
            new_id = customer_id or self.key_ring.new_subject()
            claims = [
                self._claim(name, value, new_id, optimistic=optimistic)
                for name, value in unique_values(profile, given_number).items()
            ]
            number = (
                given_number
                if given_number is not None
                else self._allocate_customer_number(optimistic=optimistic)
            )
            if given_number is None:
                claims.append(self._claim("customer_number", number, new_id, optimistic=optimistic))
            customer = Customer.register(
                customer_number=number,
                profile=profile,
                addresses=addresses,
                customer_id=new_id,
            )
            return Change(
                customer.id,
                customer.version,
                {
                    "id": customer.id,
                    "customer_number": number,
                    "version": customer.version,
                    "likely_duplicates": duplicates,
                },
                [customer, *claims],
            )

        return attempt

    def change_profile(
        self,
        customer_id: UUID,
        changes: Mapping[str, Any],
        *,
        expected_version: int,
        consent_channel: str = "staff",
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        """Change profile fields (merge-patch semantics); unique values move their reservations."""
        values = self._normalised(dict(changes))
        if "customer_number" in values:
            raise ImmutableFieldError("customer_number")

        def attempt() -> Change:
            customer = self._customer(customer_id, expected_version)
            before = unique_values(customer.profile, customer.customer_number)
            customer.change_profile(values, consent_channel=consent_channel)
            after = unique_values(customer.profile, customer.customer_number)
            reservations: list[Aggregate] = []
            for name in UNIQUE_FIELDS:
                old, new = before.get(name), after.get(name)
                if old is not None and reservation_id(name, old) == (
                    reservation_id(name, new) if new is not None else None
                ):
                    continue
                if old is not None:
                    reservations.append(self._release(name, old, customer.id))
                if new is not None:
                    reservations.append(self._claim(name, new, customer.id))
            return self._changed(customer, reservations)

        return self.execute(attempt, idempotency, key=customer_id)

    # ---- lifecycle ----------------------------------------------------------------------

    def delete_customer(self, customer_id: UUID, *, expected_version: int) -> Receipt:
        """Soft delete: hidden from search, kept with its history."""
        return self._command(customer_id, expected_version, Customer.delete)

    def restore_customer(
        self, customer_id: UUID, *, expected_version: int, idempotency: Idempotency | None = None
    ) -> Receipt:
        return self._command(customer_id, expected_version, Customer.restore, idempotency)

    def block_customer(
        self,
        customer_id: UUID,
        reason: str | None,
        *,
        expected_version: int,
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        return self._command(customer_id, expected_version, lambda c: c.block(reason), idempotency)

    def unblock_customer(
        self, customer_id: UUID, *, expected_version: int, idempotency: Idempotency | None = None
    ) -> Receipt:
        return self._command(customer_id, expected_version, Customer.unblock, idempotency)

    # ---- parts --------------------------------------------------------------------------

    def add_note(
        self,
        customer_id: UUID,
        text: str,
        urgent: bool,
        *,
        expected_version: int | None = None,
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        return self._add_part(
            customer_id,
            expected_version,
            "note_id",
            lambda c: c.add_note(text, urgent=urgent),
            idempotency,
        )

    def remove_note(self, customer_id: UUID, note_id: UUID, *, expected_version: int) -> Receipt:
        return self._command(customer_id, expected_version, lambda c: c.remove_note(note_id))

    def add_contact(
        self,
        customer_id: UUID,
        contact: Mapping[str, Any],
        *,
        expected_version: int | None = None,
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        values = dict(contact)
        if values.get("email"):
            values["email"] = normalise_email(values["email"])
        if values.get("phone"):
            values["phone"] = normalise_phone(
                values["phone"], self.phone_region, field_name="phone"
            )
        return self._add_part(
            customer_id,
            expected_version,
            "contact_id",
            lambda c: c.add_contact(**values),
            idempotency,
        )

    def remove_contact(
        self, customer_id: UUID, contact_id: UUID, *, expected_version: int
    ) -> Receipt:
        return self._command(customer_id, expected_version, lambda c: c.remove_contact(contact_id))

    def add_address(
        self,
        customer_id: UUID,
        address: Mapping[str, Any],
        *,
        expected_version: int | None = None,
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        return self._add_part(
            customer_id,
            expected_version,
            "address_id",
            lambda c: c.add_address(**address),
            idempotency,
        )

    def remove_address(
        self, customer_id: UUID, address_id: UUID, *, expected_version: int
    ) -> Receipt:
        return self._command(customer_id, expected_version, lambda c: c.remove_address(address_id))

    def install_system(
        self,
        customer_id: UUID,
        system: Mapping[str, Any],
        *,
        expected_version: int | None = None,
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        """Record installed equipment; its secret is sealed before it reaches an event."""
        values = self._sealed(customer_id, dict(system))
        return self._add_part(
            customer_id,
            expected_version,
            "system_id",
            lambda c: c.install_system(**values),
            idempotency,
        )

    def change_system(
        self,
        customer_id: UUID,
        system_id: UUID,
        changes: Mapping[str, Any],
        *,
        expected_version: int,
    ) -> Receipt:
        values = self._sealed(customer_id, dict(changes))
        return self._command(
            customer_id, expected_version, lambda c: c.change_system(system_id, values)
        )

    def remove_system(
        self, customer_id: UUID, system_id: UUID, *, expected_version: int
    ) -> Receipt:
        return self._command(customer_id, expected_version, lambda c: c.remove_system(system_id))

    def hand_keys_to(
        self,
        customer_id: UUID,
        holder_staff_id: str,
        location: str | None,
        *,
        expected_version: int | None = None,
    ) -> Receipt:
        return self._command(
            customer_id, expected_version, lambda c: c.hand_keys_to(holder_staff_id, location)
        )

    def set_custom_price(
        self,
        customer_id: UUID,
        service_id: str,
        price: Decimal,
        *,
        expected_version: int | None = None,
    ) -> Receipt:
        return self._command(
            customer_id, expected_version, lambda c: c.set_custom_price(service_id, price)
        )

    def add_credit(
        self,
        customer_id: UUID,
        amount: Decimal,
        reason: str,
        *,
        expected_version: int | None = None,
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        return self._add_part(
            customer_id,
            expected_version,
            "credit_id",
            lambda c: c.add_credit(amount, reason),
            idempotency,
        )

    # ---- queries ------------------------------------------------------------------------

    def get_customer(
        self, customer_id: UUID, *, version: int | None = None, as_of: datetime | None = None
    ) -> Customer:
        """The customer now, at a version, or as it was at a moment."""
        if as_of is None:
            try:
                customer: Aggregate = self.repository.get(customer_id, version=version)
            except AggregateNotFoundError:
                raise NotFoundError("customer", customer_id) from None
            if not isinstance(customer, Customer):
                raise NotFoundError("customer", customer_id)
            if version is not None and customer.version < version:
                raise NotFoundError("customer version", f"{customer_id}@{version}")
            return customer
        state: Any = None
        for event in self.customer_events(customer_id):
            if event.timestamp > as_of or (
                version is not None and event.originator_version > version
            ):
                break
            state = event.mutate(state)
        if state is None:
            raise NotFoundError("customer", customer_id)
        return state  # type: ignore[no-any-return]

    def customer_as_it_was(
        self, customer_id: UUID, *, version: int | None = None, as_of: datetime | None = None
    ) -> Customer:
        """A past state shown to people: with the customer's key as it is now, so an erasure
        made by another process (whose key this one may have cached) hides it at once."""
        self.key_ring.forget(customer_id)
        return self.get_customer(customer_id, version=version, as_of=as_of)

    def customer_events(self, customer_id: UUID) -> Iterator[Customer.Event]:
        """The customer's stream, oldest first (raises NotFoundError for an unknown id)."""
        self.key_ring.forget(customer_id)  # as get_customer: after an erasure, nothing in clear
        events = iter(self.events.get(customer_id))
        first = next(events, None)
        if not isinstance(first, Customer.Registered):
            raise NotFoundError("customer", customer_id)
        yield first
        yield from events  # type: ignore[misc]

    def unseal(self, sealed: str) -> str:
        """A value sealed with the service key (a portal link's token, an old secret)."""
        return self.sealer.unseal(sealed)

    def unseal_secret(self, customer_id: UUID, sealed: str) -> str:
        """A sealed equipment secret in clear: with the customer's data key, or the service
        key for one sealed before per-customer keys."""
        if not sealed.startswith(SEALED_PREFIX):
            return self.sealer.unseal(sealed)
        key = self.key_ring.data_key(customer_id)
        if key is None:
            raise ConflictError("customer is erased: its secrets are gone", field="erased")
        return key.unseal(sealed)

    # ---- the write path -----------------------------------------------------------------

    def _command(
        self,
        customer_id: UUID,
        expected_version: int | None,
        decide: Callable[[Customer], Any],
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        def attempt() -> Change:
            customer = self._customer(customer_id, expected_version)
            decide(customer)
            return self._changed(customer)

        return self.execute(attempt, idempotency, key=customer_id)

    def _add_part(
        self,
        customer_id: UUID,
        expected_version: int | None,
        id_name: str,
        add: Callable[[Customer], UUID],
        idempotency: Idempotency | None,
    ) -> Receipt:
        def attempt() -> Change:
            customer = self._customer(customer_id, expected_version)
            part_id = add(customer)
            change = self._changed(customer)
            change.result[id_name] = part_id
            return change

        return self.execute(attempt, idempotency, key=customer_id)

    def _customer(self, customer_id: UUID, expected_version: int | None) -> Customer:
        customer: Customer = self.load(customer_id, Customer, expected_version)
        return customer

    @staticmethod
    def _changed(customer: Customer, others: list[Aggregate] | None = None) -> Change:
        return Change(
            customer.id,
            customer.version,
            {"id": customer.id, "version": customer.version},
            [customer, *(others or [])],
        )

    def _claim(
        self, name: str, value: str | int, owner_id: UUID, *, optimistic: bool = False
    ) -> Reservation:
        if optimistic:
            return Reservation.claim_new(name, value, owner_id)
        try:
            reservation: Reservation = self.repository.get(reservation_id(name, value))
        except AggregateNotFoundError:
            return Reservation.claim_new(name, value, owner_id)
        reservation.claim(owner_id)
        return reservation

    def _release(self, name: str, value: str | int, owner_id: UUID) -> Reservation:
        reservation: Reservation = self.repository.get(reservation_id(name, value))
        reservation.release(owner_id)
        return reservation

    def _allocate_customer_number(self, *, optimistic: bool = False) -> int:
        """The next free number: numbers given by hand may already hold some of the sequence."""
        while True:
            number = self.next_customer_number()
            if optimistic:
                return number
            try:
                held: Reservation = self.repository.get(reservation_id("customer_number", number))
            except AggregateNotFoundError:
                return number
            if held.owner_id is None:
                return number

    def _normalised(self, values: dict[str, Any]) -> dict[str, Any]:
        """Contact points as stored; a blank one means none (it must not be reserved as "")."""
        for name in ("email", "mobile_phone", "phone", "username"):
            if isinstance(values.get(name), str) and not values[name].strip():
                values[name] = None
        if values.get("email"):
            values["email"] = normalise_email(values["email"])
        for name in ("mobile_phone", "phone"):
            if values.get(name):
                values[name] = normalise_phone(values[name], self.phone_region, field_name=name)
        if values.get("username"):
            values["username"] = values["username"].strip()
        return values

    def _sealed(self, customer_id: UUID, values: dict[str, Any]) -> dict[str, Any]:
        """The secret sealed with the customer's data key: erasing the customer shreds it."""
        if "secret" in values:
            secret = values.pop("secret")
            values["sealed_secret"] = None
            if secret:
                key = self.key_ring.data_key(customer_id, create=True)
                if key is None:
                    raise ConflictError(
                        "customer is erased: its record can no longer change", field="erased"
                    )
                values["sealed_secret"] = key.seal(secret)
        return values


def unique_values(profile: Profile, customer_number: int | None) -> dict[str, str | int]:
    values: dict[str, str | int] = {}
    if customer_number is not None:
        values["customer_number"] = customer_number
    for name in ("email", "mobile_phone", "username"):
        if (value := getattr(profile, name)) is not None:
            values[name] = value
    return values
