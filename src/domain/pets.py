"""A customer's pets and their vets, for pet-care businesses (seed 002: the Pet and Vet tabs).

Each pet is an aggregate of its own: a household with three dogs changes one dog's record
without racing the others, and its version is what a PATCH's If-Match names. What a
pet-care business keeps about a pet: its name and species (required), breed, birthday
and care notes (allergies, temperament), and the pet's vet (name, clinic, phone) to call
in an emergency. A removed pet stays in its stream (history) and is gone everywhere else.
Every event carries `customer_id`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from domain.base import TracedAggregate
from domain.errors import NotFoundError, RuleViolationError
from domain.personal_data import VET_FIELDS
from domain.relinking import Relinkable

__all__ = ["PET_FIELDS", "VET_FIELDS", "Pet", "Vet"]

PET_FIELDS = ("name", "species", "breed", "birthday", "notes", "vet")
"""What a pet's record holds (and a merge patch may set)."""
_REQUIRED = ("name", "species")


@dataclass(frozen=True)
class Vet:
    """The pet's veterinarian: who to call about it."""

    name: str | None = None
    clinic: str | None = None
    phone: str | None = None
    """E.164, normalised like the customer's phones."""


class Pet(Relinkable, TracedAggregate):
    """One of a customer's pets."""

    if TYPE_CHECKING:  # annotations at run time would make the library build a dataclass
        customer_id: UUID
        name: str
        species: str
        """dog, cat, rabbit...: free text, as businesses care for all kinds."""
        breed: str | None
        birthday: date | None
        notes: str | None
        vet: Vet | None
        removed: bool

    class Added(TracedAggregate.Created):
        customer_id: UUID
        name: str
        species: str
        breed: str | None
        birthday: date | None
        notes: str | None
        vet: Vet | None

        def apply(self, pet: Pet) -> None:
            pet.customer_id, pet.name, pet.species = self.customer_id, self.name, self.species
            pet.breed, pet.birthday, pet.notes = self.breed, self.birthday, self.notes
            pet.vet, pet.removed = self.vet, False

    class Changed(TracedAggregate.Event):
        customer_id: UUID
        changes: dict[str, Any]
        """The fields that changed and their new values (null clears one)."""

        def apply(self, pet: Pet) -> None:
            for name, value in self.changes.items():
                setattr(pet, name, value)

    class Removed(TracedAggregate.Event):
        customer_id: UUID

        def apply(self, pet: Pet) -> None:
            pet.removed = True

    # ---- merges of its customer ------------------------------------------------------------

    class Relinked(Relinkable.Relinked):
        pass

    @classmethod
    def add(cls, *, customer_id: UUID, today: date, **fields: Any) -> Pet:
        """A new pet: a name and a species, and a birthday not in the future."""
        values = {name: _stripped(fields.get(name)) for name in PET_FIELDS}
        _check(values, today)
        return cls._create(cls.Added, id=uuid4(), customer_id=customer_id, **values)

    def change(self, changes: dict[str, Any], *, today: date) -> bool:
        """Apply the fields that differ from the record (False: nothing changed)."""
        self._require_present()
        unknown = set(changes) - set(PET_FIELDS)
        if unknown:
            raise RuleViolationError(sorted(unknown)[0], "not a field of a pet")
        given = {k: _stripped(v) for k, v in changes.items()}
        differing = {k: v for k, v in given.items() if getattr(self, k) != v}
        if not differing:
            return False
        _check({name: getattr(self, name) for name in PET_FIELDS} | differing, today)
        self.trigger_event(self.Changed, customer_id=self.customer_id, changes=differing)
        return True

    def remove(self) -> None:
        self._require_present()
        self.trigger_event(self.Removed, customer_id=self.customer_id)

    def _require_present(self) -> None:
        if self.removed:
            raise NotFoundError("pet", self.id)


def _stripped(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _check(values: dict[str, Any], today: date) -> None:
    for name in _REQUIRED:
        value = values.get(name)
        if not isinstance(value, str) or not value.strip():
            raise RuleViolationError(name, f"a pet needs a {name}")
    birthday = values.get("birthday")
    if birthday is not None and birthday > today:
        raise RuleViolationError("birthday", "a pet's birthday cannot be in the future")
