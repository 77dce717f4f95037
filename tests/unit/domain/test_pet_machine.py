"""A Hypothesis state machine adding, changing and removing a customer's pets.

Rules add pets (some with a blank name), apply merge patches with current or stale
versions, and remove pets, some of them twice. A simple model predicts each refusal; the
invariants check that every pet is as the model expects (its vet merged field by field)
and that replaying the recorded events gives the live state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from domain.errors import DomainError, NotFoundError, RuleViolationError, VersionMismatchError
from domain.pets import Pet, Vet
from domain.sealing import SecretSealer
from domain.service import CustomerService

SETTINGS = settings(max_examples=60, stateful_step_count=25, deadline=None)

names = st.sampled_from(["", "Rex", "Tom", " Bo "])
texts = st.sampled_from([None, "beagle", "calm"])
vets = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {},
        optional={
            "name": st.sampled_from(["Dr A", None]),
            "clinic": st.sampled_from(["Paws", None]),
        },
    ),
)


@dataclass
class Expected:
    name: str
    breed: str | None
    vet: dict[str, Any] = field(default_factory=dict)
    version: int = 1
    removed: bool = False


class PetRecords(RuleBasedStateMachine):
    """A few pets of one customer."""

    def __init__(self) -> None:
        super().__init__()
        self.service = CustomerService(sealer=SecretSealer(SecretSealer.generate_key()))
        self.expected: dict[UUID, Expected] = {}

    @initialize()
    def a_customer(self) -> None:
        self.customer_id = self.service.register_customer({"first_name": "Ann"}).aggregate_id

    @rule(name=names, breed=texts)
    def add(self, name: str, breed: str | None) -> None:
        fields = {"name": name, "species": "dog", "breed": breed}
        try:
            receipt = self.service.add_pet(self.customer_id, fields)
        except RuleViolationError as refused:
            assert not name.strip() and refused.field == "name"
            return
        assert name.strip()
        self.expected[receipt.aggregate_id] = Expected(name=name, breed=breed)

    @rule(data=st.data(), breed=texts, vet=vets, stale=st.booleans())
    def change(self, data: st.DataObject, breed: str | None, vet: Any, stale: bool) -> None:
        if not self.expected:
            return
        pet_id = data.draw(st.sampled_from(sorted(self.expected)))
        model = self.expected[pet_id]
        patch: dict[str, Any] = {"breed": breed, "vet": vet}
        version = model.version - 1 if stale else model.version
        try:
            receipt = self.service.change_pet(
                self.customer_id, pet_id, patch, expected_version=version
            )
        except DomainError as refused:
            expected = NotFoundError if model.removed else VersionMismatchError
            assert isinstance(refused, expected) and (model.removed or stale)
            return
        assert not model.removed and not stale
        merged = {} if vet is None else {**model.vet, **vet}
        merged = {k: v for k, v in merged.items() if v is not None}
        if breed != model.breed or merged != model.vet:
            model.version += 1
        model.breed, model.vet = breed, merged
        assert receipt.version == model.version

    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        if not self.expected:
            return
        pet_id = data.draw(st.sampled_from(sorted(self.expected)))
        model = self.expected[pet_id]
        try:
            self.service.remove_pet(self.customer_id, pet_id, expected_version=model.version)
        except NotFoundError:
            assert model.removed
            return
        assert not model.removed
        model.removed, model.version = True, model.version + 1

    @invariant()
    def every_pet_is_as_the_model_expects(self) -> None:
        for pet_id, model in self.expected.items():
            pet: Pet = self.service.repository.get(pet_id)
            assert (pet.name, pet.breed, pet.removed, pet.version) == (
                model.name.strip(),
                model.breed,
                model.removed,
                model.version,
            )
            assert pet.vet == (Vet(**model.vet) if model.vet else None)

    @invariant()
    def replaying_the_recorded_events_gives_the_live_state(self) -> None:
        for pet_id in self.expected:
            state: Any = None
            for event in self.service.events.get(pet_id):
                state = event.mutate(state)
            live = self.service.repository.get(pet_id)
            assert _state(state) == _state(live)


def _state(pet: Pet) -> dict[str, Any]:
    return {k: v for k, v in vars(pet).items() if k != "_pending_events"}


PetRecords.TestCase.settings = SETTINGS
TestPetRecords = PetRecords.TestCase
