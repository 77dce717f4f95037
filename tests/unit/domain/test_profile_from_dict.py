"""Profile.from_dict: what a stored profile decodes to, by whichever way it is built."""

from __future__ import annotations

import dataclasses
from datetime import date
from uuid import uuid4

import pytest

from domain.values import Profile


def full_profile() -> Profile:
    return Profile(
        first_name="Ada",
        last_name="Lovelace",
        email="ada@example.com",
        birthday=date(1815, 12, 10),
        assigned_staff_ids=(str(uuid4()),),
        custom_fields={"gate_code": "4711"},
    )


def test_a_stored_profile_with_every_field_decodes_to_an_equal_frozen_profile() -> None:
    profile = full_profile()
    stored = {name: getattr(profile, name) for name in Profile.field_names()}
    stored["assigned_staff_ids"] = list(profile.assigned_staff_ids)  # JSON has no tuples

    decoded = Profile.from_dict(stored)

    assert decoded == profile
    assert decoded.assigned_staff_ids == profile.assigned_staff_ids
    assert isinstance(decoded.assigned_staff_ids, tuple)
    assert vars(decoded) == vars(profile)
    with pytest.raises(dataclasses.FrozenInstanceError):
        decoded.first_name = "Eve"  # type: ignore[misc]


def test_a_profile_stored_before_a_field_existed_gets_its_default() -> None:
    stored = {name: getattr(full_profile(), name) for name in Profile.field_names()}
    del stored["custom_fields"], stored["assigned_staff_ids"]

    decoded = Profile.from_dict(stored)

    assert decoded.custom_fields == {}
    assert decoded.assigned_staff_ids == ()


def test_an_unknown_field_is_refused() -> None:
    stored = {name: getattr(full_profile(), name) for name in Profile.field_names()}
    with pytest.raises(TypeError, match="colour"):
        Profile.from_dict({**stored, "colour": "red"})
