"""Hostile strings in every text field of registration and of a profile change.

SQL fragments, control characters, NUL, right-to-left marks, astral and combining
characters, and strings at the length limit, each put into one text field at a time
(Hypothesis picks the field and the string). The answer is a 201/200 and the record then
holds exactly what was sent (less the surrounding whitespace the API strips), or a 422
naming that field (control characters are refused: gateway/text.py); never a 5xx.
Afterwards every read model must have applied every event
those requests caused: a string the event store took but a read table cannot hold would
be parked there, and is a bug of the gateway's validation.
"""

from __future__ import annotations

import secrets
import types
from typing import Annotated, Any, Union, get_args, get_origin

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, StringConstraints, TypeAdapter

from gateway.schemas import AddressIn, CustomerPatch, CustomerRegistration

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(600),
    # The live gateway runs in this process: its connection pools draw their retry jitter
    # from `random` in their own threads while Hypothesis draws, which Hypothesis takes
    # for a strategy using `random`. The strategies here use none.
    pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies"),
]

VALIDATED = {"email", "mobile_phone", "phone"}
"""Text fields the domain parses (and normalises when valid): 201 or 422, not equality."""

SAMPLES = [
    "'; DROP TABLE customers; --",
    "Robert'); DELETE FROM events WHERE ('1'='1",
    '" OR ""="',
    "%_\\",
    "$$ LANGUAGE plpgsql $$",
    "\\x00",
    "a\x00b",
    "\x00",
    "\x1b[31mred\x1b[0m",
    "line\nbreak\r\nand\ttab",
    "\x7f\x08\x0c",
    "\u202eevil\u202c",
    "\u200f\u200e\u061c",
    "\ufeffBOM",
    "\u0645\u0631\u062d\u0628\u0627",
    "\U0001f600" * 50,
    "e\u0301" * 99,
    "\U00010000\U0010fffd",
    "<script>alert(1)</script>",
    "{{7*7}}${jndi:ldap://127.0.0.1/a}",
]


def _text_fields(model: type[BaseModel]) -> dict[str, int]:
    """Top-level `str` fields of `model`, with their maximum length."""
    fields: dict[str, int] = {}
    for name, field in model.model_fields.items():
        annotation = field.annotation
        options = (
            get_args(annotation)
            if get_origin(annotation) in (Union, types.UnionType)
            else (annotation,)
        )
        if str in options:
            limits = [m.max_length for m in field.metadata if hasattr(m, "max_length")]
            fields[name] = next((limit for limit in limits if limit), 10_000)
    return fields


REGISTRATION_FIELDS = _text_fields(CustomerRegistration)
PATCH_FIELDS = {
    name: limit for name, limit in _text_fields(CustomerPatch).items() if name != "consent_channel"
}
ADDRESS_FIELDS = _text_fields(AddressIn)


def hostile(max_length: int) -> st.SearchStrategy[str]:
    """Strings an attacker or a broken client might send, up to `max_length` characters."""
    return st.one_of(
        st.sampled_from(SAMPLES),
        st.text(st.characters(codec="utf-8"), min_size=1, max_size=40),
        st.text(st.characters(min_codepoint=0x10000), min_size=max_length, max_size=max_length),
        st.text(st.characters(max_codepoint=0x1F), min_size=1, max_size=10),
    ).filter(lambda s: len(s) <= max_length)


@st.composite
def registration_field(draw: st.DrawFn) -> tuple[str, str]:
    where = draw(st.sampled_from(["top", "address", "custom_fields"]))
    if where == "top":
        name = draw(st.sampled_from(sorted(REGISTRATION_FIELDS)))
        return name, draw(hostile(REGISTRATION_FIELDS[name]))
    if where == "address":
        name = draw(st.sampled_from(sorted(ADDRESS_FIELDS)))
        return f"addresses.0.{name}", draw(hostile(ADDRESS_FIELDS[name]))
    return "custom_fields", draw(hostile(100))


@st.composite
def patch_field(draw: st.DrawFn) -> tuple[str, str]:
    name = draw(st.sampled_from(sorted(PATCH_FIELDS)))
    return name, draw(hostile(PATCH_FIELDS[name]))


HOSTILE_SETTINGS = settings(
    max_examples=60,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


def _registration(field: str, value: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "first_name": "Ada",
        "email": f"{secrets.token_hex(8)}@example.com",
        "addresses": [{"kind": "site", "line1": "1 Main St"}],
    }
    if field.startswith("addresses.0."):
        body["addresses"][0][field.rsplit(".", 1)[1]] = value
    elif field == "custom_fields":
        body["custom_fields"] = {value: value}
    elif field in {"username"}:
        body[field] = value + secrets.token_hex(4)  # unique, so no 409 from an earlier one
    else:
        body[field] = value
    return body


def _stored(customer: dict[str, Any], field: str) -> Any:
    if field.startswith("addresses.0."):
        return customer["addresses"][0][field.rsplit(".", 1)[1]]
    return customer[field]


def _expected(body: dict[str, Any], field: str) -> Any:
    """What the record should hold: what was sent, stripped as the API strips it."""
    if field.startswith("addresses.0."):
        sent = body["addresses"][0][field.rsplit(".", 1)[1]]
    else:
        sent = body[field]
    if isinstance(sent, dict):
        return {_strip(k): _strip(v) for k, v in sent.items()}
    return _strip(sent)


def _same(stored: Any, expected: Any) -> bool:
    # An empty string and no value are one thing to the record (a field left blank).
    return bool(stored == expected or (expected == "" and stored is None))


def _strip(text: str) -> str:
    return str(_STRIPPED.validate_python(text))


_STRIPPED: TypeAdapter[str] = TypeAdapter(Annotated[str, StringConstraints(strip_whitespace=True)])


def _refused_naming(answer: requests.Response, field: str) -> bool:
    named = [e["field"] or "" for e in answer.json().get("errors", [])]
    return answer.status_code == 422 and any(n.startswith(field) for n in named)


def test_hostile_strings_in_registration_are_stored_exactly_or_refused(live_gateway: Any) -> None:
    """Each hostile string in any registration text field: 201 and stored as sent, or 422."""
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {live_gateway.token('staff')}"
    base = live_gateway.base_url

    @HOSTILE_SETTINGS
    @given(registration_field())
    def register(field_and_value: tuple[str, str]) -> None:
        field, value = field_and_value
        body = _registration(field, value)
        answer = http.post(f"{base}/v1/customers", json=body, timeout=30)
        assert answer.status_code < 500, answer.text
        if answer.status_code != 201:
            assert _refused_naming(answer, field), (field, value, answer.text)
            return
        customer = http.get(f"{base}{answer.headers['Location']}", timeout=30).json()
        if field.split(".")[-1] not in VALIDATED:
            assert _same(_stored(customer, field), _expected(body, field)), (field, value)

    register()
    assert live_gateway.parked_after_catching_up() == []


def test_hostile_strings_in_a_profile_change_are_stored_exactly_or_refused(
    live_gateway: Any,
) -> None:
    """Each hostile string in any text field of a PATCH: 200 and stored as sent, or 422."""
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {live_gateway.token('staff')}"
    base = live_gateway.base_url
    created = http.post(f"{base}/v1/customers", json=_registration("group", "x"), timeout=30)
    assert created.status_code == 201
    url = f"{base}{created.headers['Location']}"

    @HOSTILE_SETTINGS
    @given(patch_field())
    def change(field_and_value: tuple[str, str]) -> None:
        field, value = field_and_value
        if field == "username":
            value += secrets.token_hex(4)
        version = http.get(url, timeout=30).headers["ETag"]
        answer = http.patch(url, json={field: value}, headers={"If-Match": version}, timeout=30)
        assert answer.status_code < 500, answer.text
        if answer.status_code != 200:
            # A username is set once (409 after); anything else refused names the field.
            if not (field == "username" and answer.status_code == 409):
                assert _refused_naming(answer, field), (field, value, answer.text)
            return
        if field not in VALIDATED:
            assert _same(answer.json()[field], _strip(value)), (field, value)

    change()
    assert live_gateway.parked_after_catching_up() == []
