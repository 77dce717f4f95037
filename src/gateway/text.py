"""The base of every JSON request body: unknown fields refused, text stripped and clean.

Control characters (U+0000-U+001F except tab, line feed and carriage return, and U+007F)
are refused in every string of a request body, keys included, with a 422 that names the
field. None is legitimate in a name, an address or a note; NUL cannot be stored in a
PostgreSQL text column at all, so a read model would park the event that carried it; and
escape sequences turn a log line or a terminal into the attacker's. Other text, however
odd (right-to-left marks, astral or combining characters, SQL), is stored as sent.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

__all__ = ["CONTROL_CHARACTERS", "RequestModel"]

CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class RequestModel(BaseModel):
    """A request body: extra fields forbidden, strings stripped, control characters refused."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    # After validation, so that a nested model's strings are judged by that model, and the
    # refusal names their full path (addresses.0.line1).
    @field_validator("*", mode="after")
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        if _has_control_character(value):
            raise ValueError(
                "must not contain control characters (U+0000-U+001F other than tab and line"
                " breaks, U+007F)"
            )
        return value


def _has_control_character(value: Any) -> bool:
    if isinstance(value, str):
        return CONTROL_CHARACTERS.search(value) is not None
    if isinstance(value, list | tuple):
        return any(_has_control_character(item) for item in value)
    if isinstance(value, dict):
        return any(_has_control_character(k) or _has_control_character(v) for k, v in value.items())
    return False
