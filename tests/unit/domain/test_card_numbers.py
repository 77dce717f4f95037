"""What counts as a full card number: the test cards of every network, however written;
not phone numbers, UUIDs or other long numbers people send."""

from __future__ import annotations

import json
import uuid
from typing import Any

import orjson
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from stdnum import luhn

from domain.card_numbers import (
    card_number_fields,
    json_card_number_fields,
    looks_like_card_number,
    redact_card_numbers,
)

TEST_CARDS = [
    "4111111111111111",  # Visa
    "4012888888881881",
    "4222222222222",  # Visa, 13 digits
    "5555555555554444",  # Mastercard
    "2223003122003222",  # Mastercard 2-series
    "378282246310005",  # Amex
    "6011111111111117",  # Discover
    "3566002020360505",  # JCB
    "30569309025904",  # Diners
    "6200000000000005",  # UnionPay
    "6759649826438453",  # Maestro
    "4111111111111111110",  # 19 digits
]


@pytest.mark.parametrize("number", TEST_CARDS)
def test_every_networks_test_card_is_found(number: str) -> None:
    assert looks_like_card_number(number)


@pytest.mark.parametrize(
    "written",
    [
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "3782 822463 10005",
        "card: 4111111111111111, exp 12/29",
        "please charge\n5555 5555 5555 4444 thanks",
        "Please charge 4111111111111111.",
        "4111111111111111.csv",
    ],
)
def test_numbers_as_people_write_them_are_found(written: str) -> None:
    assert looks_like_card_number(written)


@pytest.mark.parametrize(
    "text",
    [
        "4111111111111112",  # fails Luhn
        "7111111111111114",  # passes Luhn, 7 is no card range
        "411111111111",  # 12 digits
        "41111111111111111113",  # 20 digits
        "+4915112345678",  # a phone in E.164
        "4111 1111-1111 1111",  # mixed separators: not a copied card
        "order 4111111111111111x",  # part of a longer token
        "4111111111111111@example.com",  # an email's local part (an SMS gateway's, say)
        "4111111111111111.50",  # a decimal number
        "356938035643809",  # a phone's IMEI (15 digits, Luhn)
        "490154203237518",  # another IMEI: no Visa has 15 digits
    ],
)
def test_what_is_not_a_card_number(text: str) -> None:
    assert not looks_like_card_number(text)


@given(st.uuids())
def test_no_uuid_is_a_card_number(value: uuid.UUID) -> None:
    assert not looks_like_card_number(str(value))


@given(
    st.sampled_from("123456"),
    st.text("0123456789", min_size=11, max_size=17),
    st.sampled_from(["", " ", "-"]),
    st.text(" :,;\n", max_size=5),
)
def test_any_luhn_valid_issued_number_is_found(
    first: str, body: str, separator: str, around: str
) -> None:
    digits = luhn.calc_check_digit(first + body)
    number = first + body + digits
    # 15 digits: only UATP, Amex and Maestro issue them (an IMEI is 15 digits too).
    assume(len(number) != 15 or number.startswith(("1", "34", "37", "5", "6")))
    written = separator.join(number[i : i + 4] for i in range(0, len(number), 4))
    assert looks_like_card_number(f"{around}{written}{around}")


def test_fields_are_named_by_their_path() -> None:
    body = {
        "first_name": "Ada",
        "notes": [{"text": "ok"}, {"text": "4111 1111 1111 1111"}],
        "custom_fields": {"po": "5555555555554444"},
        "amount": 4111111111111111,
        "6011111111111117": "a key",
    }
    assert list(card_number_fields(body)) == [
        "notes[1].text",
        "custom_fields.po",
        "amount",
        "<key 4>",
    ]
    assert list(card_number_fields("4111111111111111")) == ["body"]
    assert list(card_number_fields({"ok": True, "n": 12})) == []


def test_a_key_that_looks_like_a_card_is_named_by_its_place_never_spelled_out() -> None:
    body = {"custom_fields": {"po": "1", "4111 1111 1111 1111": {"n": "5555555555554444"}}}
    paths = list(card_number_fields(body))
    assert paths == ["custom_fields.<key 1>", "custom_fields.<key 1>.n"]
    assert not any(looks_like_card_number(p) for p in paths)


def test_redaction_replaces_only_what_looks_like_a_card() -> None:
    text = "/v1/customers/4111-1111-1111-1111/x and order 4111111111111112"
    assert redact_card_numbers(text) == "/v1/customers/<card number>/x and order 4111111111111112"
    assert redact_card_numbers("/v1/customers") == "/v1/customers"


# Text that comes close to card numbers: digits, their separators, JSON's delimiters and
# what the boundary checks look at (a word, +, -, ., @), and test numbers whole.
_NEAR_CARDS = st.one_of(
    st.text('0123456789 -+.@ax"\\:,', max_size=40),
    st.sampled_from(TEST_CARDS).map(lambda n: f"x {n} y"),
    st.sampled_from(TEST_CARDS).map(lambda n: " ".join(n[i : i + 4] for i in range(0, len(n), 4))),
    st.sampled_from(TEST_CARDS),
)
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.sampled_from([int(n) for n in TEST_CARDS])
    | st.floats(allow_nan=False, allow_infinity=False)
    | _NEAR_CARDS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(_NEAR_CARDS, children, max_size=4)
    ),
    max_leaves=12,
)


@given(_JSON, st.booleans())
def test_the_json_text_search_names_what_the_walk_of_its_values_names(
    value: Any, ascii_only: bool
) -> None:
    """Cleared by its text or walked, a document gets the walk's answer, as orjson writes it
    and with every non-ASCII character escaped."""
    text = json.dumps(value) if ascii_only else orjson.dumps(value).decode()
    parsed = orjson.loads(text)
    assert json_card_number_fields(text, parsed) == list(card_number_fields(parsed))


def test_a_card_number_written_in_escapes_is_found() -> None:
    """`\\u0034` is a "4": the text holds no digits in a row, the value does."""
    text = '{"note": "\\u0034111 1111 1111 1111", "ok": "-"}'
    assert json_card_number_fields(text, orjson.loads(text)) == ["note"]


def test_a_document_without_a_candidate_is_cleared_by_its_text() -> None:
    """The walk is skipped when the text holds nothing: the value is not even looked at (here
    a value the walk would refuse, to show that the text decided)."""
    text = '{"phone": "+1 415 555 2671", "postal_code": "94103", "n": 12}'
    assert json_card_number_fields(text, {"n": "4111111111111111"}) == []
