"""Every command about a customer's pets (and their vets)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict
from datetime import date, datetime
from typing import Any
from uuid import UUID

from domain.customer_records import customer_taking_records
from domain.errors import NotFoundError, RuleViolationError, VersionMismatchError
from domain.pets import VET_FIELDS, Pet, Vet
from domain.references import followed, load_for
from domain.values import normalise_phone
from domain.write_path import Change, Idempotency, Receipt, WritePath

__all__ = ["PetCommands"]


class PetCommands(WritePath):
    """The pets part of the service; `clock` and `phone_region` are set by the service."""

    clock: Callable[[], datetime]
    phone_region: str

    def add_pet(
        self,
        customer_id: UUID,
        fields: Mapping[str, Any],
        *,
        expected_version: int | None = None,
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        """Add a pet to the customer's record (`expected_version`: the customer's)."""
        values = dict(fields)
        values["vet"] = self._vet(None, values.get("vet"))

        seen: list[int] = []

        def attempt() -> Change:
            customer = customer_taking_records(self, customer_id, expected_version)
            seen[:] = [customer.version]
            pet = Pet.add(customer_id=customer.id, today=self._today(), **values)
            return _changed(pet)

        return followed(self, self.execute(attempt, idempotency), customer_id, seen)

    def change_pet(
        self,
        customer_id: UUID,
        pet_id: UUID,
        patch: Mapping[str, Any],
        *,
        expected_version: int,
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        """Apply a JSON merge patch to a pet (`vet` merges field by field; null clears)."""

        def attempt() -> Change:
            customer_taking_records(self, customer_id)
            pet = self._pet(customer_id, pet_id, expected_version)
            changes = dict(patch)
            if "vet" in changes:
                changes["vet"] = self._vet(pet.vet, changes["vet"])
            pet.change(changes, today=self._today())
            return _changed(pet)

        return self.execute(attempt, idempotency, key=pet_id)

    def remove_pet(
        self,
        customer_id: UUID,
        pet_id: UUID,
        *,
        expected_version: int,
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        """Remove a pet from the record (its history stays)."""

        def attempt() -> Change:
            customer_taking_records(self, customer_id)
            pet = self._pet(customer_id, pet_id, expected_version)
            pet.remove()
            return _changed(pet)

        return self.execute(attempt, idempotency, key=pet_id)

    def get_pet(self, customer_id: UUID, pet_id: UUID) -> Pet:
        """The customer's pet now (NotFoundError for another customer's or a removed one)."""
        return self._pet(customer_id, pet_id, None)

    def _pet(self, customer_id: UUID, pet_id: UUID, expected_version: int | None) -> Pet:
        # A removed pet is gone whatever version the caller saw: 404 before 412.
        pet: Pet = load_for(self, pet_id, Pet, None, customer_id)
        if pet.removed:
            raise NotFoundError("pet", pet_id)
        if expected_version is not None and expected_version != pet.version:
            raise VersionMismatchError(expected_version, pet.version)
        return pet

    def _vet(self, current: Vet | None, given: Mapping[str, Any] | None) -> Vet | None:
        """The vet after merging `given` into `current` (null: no vet); the phone in E.164."""
        if given is None:
            return None
        unknown = set(given) - set(VET_FIELDS)
        if unknown:
            raise RuleViolationError(f"vet.{sorted(unknown)[0]}", "not a field of a vet")
        merged = {**(asdict(current) if current else {}), **given}
        if merged.get("phone"):
            merged["phone"] = normalise_phone(
                merged["phone"], self.phone_region, field_name="vet.phone"
            )
        vet = Vet(**merged)
        return vet if any(asdict(vet).values()) else None

    def _today(self) -> date:
        return self.clock().date()


def _changed(pet: Pet) -> Change:
    return Change(pet.id, pet.version, {"id": pet.id, "version": pet.version}, [pet])
