"""Synthetic customers for the read-side phases: a log written through the service in large
saves, and registrations for rows written straight into the search read model.

Names come from a fixed vocabulary (common first names, generated surnames and company
words), so searches meet what a real list meets: common words that match thousands of
rows and rare ones that match a few. Everything is seeded: two runs write the same data.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from domain.customers import Customer
from domain.reservations import Reservation
from domain.service import CustomerService
from domain.values import Address, Profile

__all__ = ["Person", "customer_events", "people", "write_log"]


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


FIRST_NAMES = _words(
    "James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara"
    " Richard Susan Joseph Jessica Thomas Sarah Charles Karen Daniel Lisa Matthew Nancy"
    " Anthony Betty Mark Sandra Donald Ashley Steven Emily Andrew Donna Joshua Michelle"
    " Kenneth Carol Kevin Amanda Brian Melissa George Deborah Timothy Stephanie Ronald Rebecca"
    " Jason Laura Edward Helen Jeffrey Sharon Ryan Cynthia Jacob Kathleen Gary Amy Nicholas"
    " Shirley Eric Angela Jonathan Anna Stephen Ruth Larry Brenda Justin Pamela Scott Nicole"
    " Brandon Ada Zoë Ángel Søren Chloé José Renée François Björn Müller"
)
_SYLLABLES = "an ber ca del fin gor hal is jen kor lov man nel or pet quin ros sal tor ul ven wil"
_ENDINGS = ("", "son", "ton", "ley", "ez", "ski", "ace", "ard", "berg", "ford")
COMPANY_WORDS = _words(
    "Acme Analytical Apex Blue Bright Capital Cedar City Coastal Delta Eagle Evergreen First"
    " Golden Granite Harbor Highland Iron Lake Liberty Maple Metro North Oak Pacific Peak"
    " Pioneer Prime Quality Red River Rock Silver Summit Sun Union Valley Vista West"
)
COMPANY_KINDS = ("Repairs", "Plumbing", "Electric", "Security", "Pets", "Motors", "IT", "Ltd")
CITIES = _words(
    "London Paris Berlin Madrid Rome Boston Chicago Denver Austin Seattle Portland Dublin"
    " Lisbon Vienna Prague Oslo Helsinki Warsaw Zürich Köln"
)
SYSTEM_TYPES = ("alarm", "camera", "nas", "router", "boiler", "gate")
GROUPS = ("vip", "gold", "trade", "new")


@dataclasses.dataclass(frozen=True)
class Person:
    """One synthetic customer's searchable values."""

    number: int
    first_name: str
    last_name: str
    email: str
    mobile_phone: str
    company_name: str | None
    city: str


def _surname(rng: random.Random, syllables: list[str]) -> str:
    parts = rng.sample(syllables, rng.choice((2, 2, 3)))
    return ("".join(parts) + rng.choice(_ENDINGS)).capitalize()


def people(first_number: int, count: int, seed: int = 11) -> Iterator[Person]:
    """`count` customers numbered from `first_number`; every email and phone unique."""
    rng = random.Random(seed * 1_000_003 + first_number)
    syllables = _SYLLABLES.split()
    for number in range(first_number, first_number + count):
        first, last = rng.choice(FIRST_NAMES), _surname(rng, syllables)
        company = None
        if rng.random() < 0.4:
            company = f"{rng.choice(COMPANY_WORDS)} {rng.choice(COMPANY_KINDS)}"
        yield Person(
            number=number,
            first_name=first,
            last_name=last,
            email=f"{first.lower()}.{last.lower()}{number}@example.com".encode(
                "ascii", "ignore"
            ).decode(),
            # Unique for numbers under 8,000,000 (reservations are kept by value), E.164.
            mobile_phone=f"+1{200 + number // 10_000 % 800:03d}555{number % 10_000:04d}"
            if number < 8_000_000
            else f"+44{7_000_000_000 + number}",
            company_name=company,
            city=rng.choice(CITIES),
        )


def _profile(person: Person) -> Profile:
    return Profile(
        first_name=person.first_name,
        last_name=person.last_name,
        email=person.email,
        mobile_phone=person.mobile_phone,
        company_name=person.company_name,
    )


def _address(person: Person) -> Address:
    return Address(
        UUID(int=person.number), "billing", f"{person.number} High Street", city=person.city
    )


def customer_events(
    first_number: int, count: int, *, spread_days: int = 730, seed: int = 11
) -> Iterator[Any]:
    """Events of `count` customers, not saved anywhere: each registration (registered at a
    time over the last `spread_days`; a fifth of them in a group), and for every third
    customer the installation of a system."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    for person in people(first_number, count, seed):
        profile = _profile(person)
        if person.number % 5 == 0:
            profile = dataclasses.replace(profile, group=GROUPS[person.number % len(GROUPS)])
        customer = Customer.register(
            customer_number=person.number, profile=profile, addresses=[_address(person)]
        )
        if person.number % 3 == 0:
            system_type = SYSTEM_TYPES[person.number % len(SYSTEM_TYPES)]
            customer.install_system(system_type=system_type)
        registered, *later = customer.collect_events()
        at = now - timedelta(seconds=rng.uniform(0, spread_days * 86_400))
        yield dataclasses.replace(registered, timestamp=at)  # type: ignore[type-var]
        yield from later


_CHANGES: tuple[Callable[[Customer, int], object], ...] = (
    lambda c, n: c.change_profile({"group": GROUPS[n % len(GROUPS)]}, consent_channel="staff"),
    lambda c, n: c.add_note("called about the invoice", urgent=n % 7 == 0),
    lambda c, n: c.install_system(system_type=SYSTEM_TYPES[n % len(SYSTEM_TYPES)]),
    lambda c, n: c.add_credit(Decimal("5.00"), "goodwill"),
)


def write_log(
    service: CustomerService,
    events: int,
    *,
    per_save: int = 40,
    first_number: int = 1,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write at least `events` events through `service.save`, `per_save` customers a save.

    A customer is what a registration over HTTP saves (its Registered event and the
    reservations of its email, mobile phone and number) plus one later change (group,
    note, equipment or credit): five events, of which search wants two at most.
    """
    written, number = 0, first_number
    while written < events:
        aggregates: list[Customer | Reservation] = []
        for person in people(number, per_save):
            customer = Customer.register(
                customer_number=person.number,
                profile=_profile(person),
                addresses=[_address(person)],
            )
            _CHANGES[person.number % len(_CHANGES)](customer, person.number)
            aggregates.append(customer)
            for field in ("email", "mobile_phone"):
                value = getattr(person, field)
                aggregates.append(Reservation.claim_new(field, value, customer.id))
            aggregates.append(Reservation.claim_new("customer_number", person.number, customer.id))
        service.save(*aggregates)
        number += per_save
        written += per_save * 5
        if progress is not None:
            progress(written)
    return written
