"""Control characters in request text are refused naming the field; odd text is kept."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

Client = TestClient[Any, Any]


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"first_name": "Ada\x00"}, "first_name"),
        ({"company_name": "\x1b[31mred"}, "company_name"),
        ({"addresses": [{"kind": "site", "line1": "1 Main\x1f St"}]}, "addresses.0.line1"),
        ({"custom_fields": {"gate\x00": "1234"}}, "custom_fields"),
        ({"assigned_staff_ids": ["bob\x7f"]}, "assigned_staff_ids"),
    ],
)
async def test_a_control_character_in_registration_is_422_naming_the_field(
    client: Client, bearer: Any, registration: Any, fields: dict[str, Any], named: str
) -> None:
    """NUL, escapes and other C0 controls are refused (a read table cannot even hold NUL)."""
    response = await client.post("/v1/customers", json=registration(**fields), headers=bearer())
    assert response.status == 422
    assert [e["field"] for e in (await response.json())["errors"]] == [named]


async def test_sql_and_right_to_left_text_is_stored_exactly(
    client: Client, bearer: Any, registration: Any
) -> None:
    """SQL fragments, RTL marks, astral and combining characters, tabs and line breaks: kept."""
    odd = "'; DROP TABLE customers; --\u202e\u0645\u0631\u062d\u0628\u0627\U0001f600e\u0301\tx\ny"
    created = await client.post(
        "/v1/customers", json=registration(company_name=odd), headers=bearer()
    )
    assert created.status == 201
    stored = await (await client.get(created.headers["Location"], headers=bearer())).json()
    assert stored["company_name"] == odd


async def test_a_control_character_in_a_patch_is_422_and_changes_nothing(
    client: Client, bearer: Any, registration: Any
) -> None:
    """A profile change carrying NUL is refused naming the field; the version stays."""
    created = await client.post("/v1/customers", json=registration(), headers=bearer())
    url = created.headers["Location"]
    response = await client.patch(
        url, json={"group": "vip\x00"}, headers={**bearer(), "If-Match": '"1"'}
    )
    assert response.status == 422
    assert [e["field"] for e in (await response.json())["errors"]] == ["group"]
    assert (await (await client.get(url, headers=bearer())).json())["version"] == 1
