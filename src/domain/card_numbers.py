"""What looks like a full payment card number: never stored, never logged, refused on sight.

The service keeps cards only as a payment provider's token with brand, last 4 digits and
expiry. A full number (PAN) in any text it is sent is a mistake to refuse, not to store:
once in an event it would live in the log for ever.

"Looks like" means 13 to 19 digits that pass the Luhn check and start as issued cards do
(1 UATP, 2-6 the card networks: 0, 7, 8 and 9 are not card ranges; of 15 digits only UATP,
Amex and Maestro, so a phone's IMEI is no card), written either as one
run of digits or in the groups people copy from a card (4-4-4-4[-3], Amex's 4-6-5), with
single spaces or dashes. A run inside a longer token (a UUID's groups, a word, a `+49...`
phone number) is not a card: the false refusals cost a user more than the rule gains.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from stdnum import luhn

__all__ = [
    "card_number_fields",
    "json_card_number_fields",
    "looks_like_card_number",
    "redact_card_numbers",
]

_CANDIDATE = re.compile(
    r"(?<![\w+\-.])"  # not the tail of a longer token, a phone's + or a decimal
    r"(?:\d{13,19}"
    r"|\d{4}(?P<sep>[ -])\d{4}(?P=sep)\d{4}(?P=sep)\d{1,4}(?:(?P=sep)\d{1,3})?"
    r"|\d{4}(?P<amex>[ -])\d{6}(?P=amex)\d{5})"
    # nor the head of one, an email's local part or a decimal's integer part; a full stop
    # may follow
    r"(?![\w\-@]|\.\d)"
)
_ISSUED = frozenset("123456")
_FIFTEEN_DIGITS = ("1", "34", "37", "5", "6")
"""How cards of 15 digits start: UATP, Amex, Maestro. An IMEI, a phone's 15-digit serial
that passes Luhn too and which a repair shop writes down daily, starts otherwise (35, 49,
01, 86...)."""


def looks_like_card_number(text: str) -> bool:
    """Whether `text` holds, anywhere, something that looks like a full card number."""
    if len(text) < 13:
        return False
    for match in _CANDIDATE.finditer(text):
        digits = re.sub(r"[ -]", "", match.group())
        if _issued(digits) and luhn.is_valid(digits):
            return True
    return False


def _issued(digits: str) -> bool:
    if not 13 <= len(digits) <= 19 or digits[0] not in _ISSUED:
        return False
    return len(digits) != 15 or digits.startswith(_FIFTEEN_DIGITS)


def redact_card_numbers(text: str) -> str:
    """`text` with everything that looks like a full card number replaced by `<card number>`,
    for what must be written down anyway (a log line's path)."""
    if len(text) < 13:
        return text
    return _CANDIDATE.sub(_redacted, text)


def _redacted(match: re.Match[str]) -> str:
    found = match.group()
    return "<card number>" if looks_like_card_number(found) else found


def card_number_fields(value: Any, path: str = "") -> Iterator[str]:
    """The paths (`notes[0].text`, `custom_fields.po`) of a JSON value's strings, integers
    and keys that look like card numbers, in document order.

    A key that looks like one is named by its place among its object's keys
    (`custom_fields.<key 2>`, counting from 0), as is everything under it: a path is
    shown to the client and may be logged, so it must never spell the number out."""
    if isinstance(value, str):
        if looks_like_card_number(value):
            yield path or "body"
    elif isinstance(value, int) and not isinstance(value, bool):
        if looks_like_card_number(str(value)):
            yield path or "body"
    elif isinstance(value, dict):
        for place, (key, item) in enumerate(value.items()):
            is_card = looks_like_card_number(str(key))
            name = f"<key {place}>" if is_card else str(key)
            child = f"{path}.{name}" if path else name
            if is_card:
                yield child
            yield from card_number_fields(item, child)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from card_number_fields(item, f"{path}[{index}]")


def json_card_number_fields(text: str, value: Any) -> list[str]:
    """`card_number_fields` of a JSON document, given as its text and its parsed `value`;
    most documents are cleared by one search of the text instead of a walk of every value.

    Without a backslash (an escape) in the text, each string, key and integer of the
    document is written in it character for character, between delimiters (a quote, a
    comma, a colon, a bracket, whitespace) that neither a card number's pattern can
    include nor its boundary checks refuse. So a text in which nothing looks like a card
    number holds no value that does. An escaped document (`"\\u0034111..."` is a card
    number written in escapes) and any text with a candidate are walked value by value, for
    the paths to name."""
    if "\\" not in text and not looks_like_card_number(text):
        return []
    return list(card_number_fields(value))
