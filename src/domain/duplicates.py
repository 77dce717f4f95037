"""Likely duplicates: which facts make two customer records probably one person, how sure.

Every business ends up with a person entered twice: a landline typed without its country
code, a second email, an import. Two records are compared through their match keys, the
values that identify someone once normalised: a phone's E.164 digits, an email case-folded
(plus-addressing kept: `ada+shop@` is another mailbox), a tax id's letters and digits, a
postal address, a company name without its legal form. Records sharing a key are
candidates; `assess` then weighs the keys with how alike the full names are (a trigram
similarity from 0 to 1, computed by PostgreSQL's pg_trgm where the names are stored):

  reason                      weight
  same_tax_id                 0.9
  same_email                  0.85 x (0.5 + 0.5 x name similarity)
  same_phone                  0.75 x (0.5 + 0.5 x name similarity)
  similar_name_same_address   0.5 + 0.4 x similarity, when similarity >= 0.55
  similar_name_same_company   0.4 + 0.4 x similarity, when similarity >= 0.55

An email or phone shared by people whose names differ (a household's landline, an
office's address) counts for less; an address or a company shared by different names
counts for nothing ("John Smith" and "Jane Smith" at one address are 0.47 alike). The
score, from 0 to 1, combines the weights as independent evidence: 1 - prod(1 - w).

Pure: the read model (`projections.duplicates`) and registration's look-up both call it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from domain.values import Address, Profile

__all__ = [
    "NAME_SIMILARITY_THRESHOLD",
    "Assessment",
    "DuplicateLookup",
    "MatchKey",
    "NewCustomer",
    "assess",
    "full_name",
    "match_keys",
    "not_checked",
]

NAME_SIMILARITY_THRESHOLD = 0.55
"""Names at least this alike (pg_trgm similarity) count as similar: "Jon Smith" is 0.62
from "John Smith", "Katharine" 0.71 from "Katherine Johnson"; "Jane Smith" 0.47."""

_EXACT_WEIGHTS = {"tax": 0.9, "email": 0.85, "phone": 0.75}
_REASONS = {
    "tax": "same_tax_id",
    "email": "same_email",
    "phone": "same_phone",
    "address": "similar_name_same_address",
    "company": "similar_name_same_company",
}
_LEGAL_FORMS = frozenset(
    {
        "inc",
        "incorporated",
        "llc",
        "ltd",
        "limited",
        "corp",
        "corporation",
        "co",
        "company",
        "gmbh",
        "ag",
        "sa",
        "sarl",
        "sas",
        "bv",
        "nv",
        "plc",
        "llp",
        "lp",
        "pty",
        "srl",
        "spa",
        "oy",
        "ab",
        "as",
        "kg",
    }
)
_STREET_WORDS = {
    "street": "st",
    "avenue": "ave",
    "av": "ave",
    "road": "rd",
    "square": "sq",
    "drive": "dr",
    "lane": "ln",
    "boulevard": "blvd",
    "place": "pl",
    "court": "ct",
    "apartment": "apt",
    "suite": "ste",
    "north": "n",
    "south": "s",
    "east": "e",
    "west": "w",
}
_NOT_WORD = re.compile(r"[^\w]+")
_NOT_ALNUM = re.compile(r"[^0-9A-Za-z]+")
_MIN_TAX_ID = 4


@dataclass(frozen=True, order=True)
class MatchKey:
    """A normalised identifying value of a record, and which field it came from."""

    kind: str
    """phone, email, tax, address or company."""
    key: str
    source: str
    """The field: mobile_phone, phone, contact_phone, email, contact_email, tax_id,
    address, company_name or dba_name."""


@dataclass(frozen=True)
class Assessment:
    """Why two records look like one customer, and how sure (0 to 1)."""

    score: float
    reasons: list[dict[str, str]]
    """[{"reason": "same_phone", "detail": "mobile_phone ~ phone"}, ...]: field names and
    the name similarity, never the values (this reaches responses and import reports)."""


@dataclass(frozen=True)
class NewCustomer:
    """A registration about to be saved, for the look-up of its likely duplicates."""

    customer_id: UUID | None
    profile: Profile
    addresses: Sequence[Address]


DuplicateLookup = Callable[[Sequence[NewCustomer]], list[list[dict[str, Any]]] | None]
"""Each new customer's likely duplicates among the customers known so far, as
`{"customer_id", "score", "reasons"}` best first; None when they could not be looked up."""


def not_checked(_: Sequence[NewCustomer]) -> None:
    """The look-up of a service with no duplicates read model: nothing was checked."""
    return None


def full_name(first_name: str | None, last_name: str | None) -> str:
    """The name as compared: case-folded, accents stripped, whitespace collapsed."""
    return _plain(" ".join(part for part in (first_name, last_name) if part))


def match_keys(
    values: Mapping[str, Any],
    contacts: Iterable[tuple[str | None, str | None]] = (),
    addresses: Iterable[tuple[str | None, str | None, str | None]] = (),
) -> set[MatchKey]:
    """The keys of a record: `values` holds its profile fields, `contacts` (email, phone)
    pairs, `addresses` (line1, postal_code, city) triples. Phones and emails arrive as the
    domain stores them (E.164, domain lower-cased); this only makes them comparable."""
    keys: set[MatchKey] = set()
    for source in ("mobile_phone", "phone"):
        if phone := _phone(values.get(source)):
            keys.add(MatchKey("phone", phone, source))
    if email := _email(values.get("email")):
        keys.add(MatchKey("email", email, "email"))
    for contact_email, contact_phone in contacts:
        if email := _email(contact_email):
            keys.add(MatchKey("email", email, "contact_email"))
        if phone := _phone(contact_phone):
            keys.add(MatchKey("phone", phone, "contact_phone"))
    tax = _NOT_ALNUM.sub("", values.get("tax_id") or "").upper()
    if len(tax) >= _MIN_TAX_ID:
        keys.add(MatchKey("tax", tax, "tax_id"))
    for source in ("company_name", "dba_name"):
        if company := _company(values.get(source)):
            keys.add(MatchKey("company", company, source))
    for line1, postal_code, city in addresses:
        keys.update(MatchKey("address", a, "address") for a in _address(line1, postal_code, city))
    return keys


def assess(matches: Iterable[tuple[str, str, str]], name_similarity: float) -> Assessment | None:
    """How likely two records are one customer, from the keys they share, as (kind, field of
    one, field of the other), and their names' similarity; None when not likely at all."""
    fields: dict[str, set[str]] = {}
    for kind, one, other in matches:
        fields.setdefault(kind, set()).add(" ~ ".join(sorted({one, other})))
    similar = name_similarity >= NAME_SIMILARITY_THRESHOLD
    weights: list[float] = []
    reasons: list[dict[str, str]] = []
    for kind in ("tax", "email", "phone", "address", "company"):
        if kind not in fields:
            continue
        if kind in _EXACT_WEIGHTS:
            weight = _EXACT_WEIGHTS[kind]
            if kind != "tax":
                weight *= 0.5 + 0.5 * name_similarity
            detail = ", ".join(sorted(fields[kind]))
        elif similar:
            weight = (0.5 if kind == "address" else 0.4) + 0.4 * name_similarity
            detail = f"name similarity {name_similarity:.2f}"
        else:
            continue
        weights.append(weight)
        reasons.append({"reason": _REASONS[kind], "detail": detail})
    if not reasons:
        return None
    doubt = 1.0
    for weight in weights:
        doubt *= 1.0 - weight
    return Assessment(round(1.0 - doubt, 3), reasons)


# ---- normalising the values compared -----------------------------------------------------


def _plain(text: str) -> str:
    if not text.isascii():
        decomposed = unicodedata.normalize("NFKD", text)
        text = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(text.casefold().split())


def _words(text: str | None) -> list[str]:
    return _NOT_WORD.sub(" ", _plain(text or "")).replace("_", " ").split()


def _phone(value: str | None) -> str | None:
    # Stored E.164 ("+14155552671"): its digits identify the line.
    digits = re.sub(r"\D", "", value or "")
    return digits or None


def _email(value: str | None) -> str | None:
    # The domain is lower-cased when stored; mailboxes are compared case-insensitively too
    # (nearly every provider treats them so).
    return value.strip().casefold() if value and value.strip() else None


def _company(value: str | None) -> str | None:
    words = [w for w in _words(value) if w not in _LEGAL_FORMS]
    return " ".join(words) or None


def _address(line1: str | None, postal_code: str | None, city: str | None) -> list[str]:
    """Street with postal code, and street with city: one typed only the city, another
    only the code. A street alone names one in many towns: no key."""
    street = " ".join(_STREET_WORDS.get(w, w) for w in _words(line1))
    places = (_NOT_ALNUM.sub("", postal_code or "").upper(), " ".join(_words(city)))
    return [f"{street}|{place}" for place in places if street and place]
