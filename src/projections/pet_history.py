"""What a pet's events set in its customer's history.

Field names: `pets[<pet_id>].name`, `.species`, `.breed`, `.birthday`, `.notes`, and the
vet's `pets[<pet_id>].vet.name`, `.vet.clinic`, `.vet.phone`. A removed pet clears them all.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from domain.personal_data import VET_FIELDS
from domain.pets import Pet
from projections.history_fields import Fields, Recorders, as_json, removed_fields

__all__ = ["RECORDERS"]

RECORDERS = Recorders(
    personal=("pets[*].name", "pets[*].breed", "pets[*].birthday", "pets[*].notes", "pets[*].vet.*")
)
"""What each `Pet` event sets in the customer's history."""

_PLAIN = ("name", "species", "breed", "birthday", "notes")


@RECORDERS(Pet.Added)
def _added(event: Pet.Added, before: Fields) -> Fields:
    fields = _pet(event.originator_id, {name: getattr(event, name) for name in _PLAIN})
    return fields | _vet(event.originator_id, event.vet)


@RECORDERS(Pet.Changed)
def _changed(event: Pet.Changed, before: Fields) -> Fields:
    fields = _pet(event.originator_id, {k: v for k, v in event.changes.items() if k in _PLAIN})
    if "vet" in event.changes:
        fields |= _vet(event.originator_id, event.changes["vet"])
    return fields


@RECORDERS(Pet.Removed)
def _removed(event: Pet.Removed, before: Fields) -> Fields:
    return removed_fields(before, f"pets[{event.originator_id}].")


def _pet(pet_id: UUID, values: dict[str, Any]) -> Fields:
    return {f"pets[{pet_id}].{name}": as_json(value) for name, value in values.items()}


def _vet(pet_id: UUID, vet: Any) -> Fields:
    """Every vet field (null without a vet); a vet read back inside `changes` may be a dict."""
    get = (
        (lambda name: None)
        if vet is None
        else vet.get
        if isinstance(vet, dict)
        else (lambda name: getattr(vet, name))
    )
    return {f"pets[{pet_id}].vet.{name}": get(name) for name in VET_FIELDS}
