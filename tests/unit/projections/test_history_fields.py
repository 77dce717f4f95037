"""The patterns naming a history's personal fields, as the erasure's SQL applies them."""

from __future__ import annotations

import re

from projections.history_fields import field_patterns


def test_part_ids_and_keys_match_and_nothing_else_does() -> None:
    pattern = re.compile(field_patterns(("pets[*].vet.*", "custom_fields.*", "email")))
    assert pattern.match("pets[6f1c3d52-2b7e-4f0c-9a43-6a1d7f0e9b21].vet.phone")
    assert pattern.match("custom_fields.po number")
    assert pattern.match("email")
    assert not pattern.match("pets[6f1c].species")
    assert not pattern.match("emails")
    assert not pattern.match("custom_fields.")


def test_no_patterns_match_no_field() -> None:
    assert not re.match(field_patterns(()), "anything")
    assert not re.match(field_patterns(()), "")
