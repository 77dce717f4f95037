"""Valid, unique registrations: a new email and mobile phone for every request of a run.

Numbers are US numbers in San Francisco's area code 415, `+1 415 NXX XXXX`, on real-looking
exchanges: N is 2-9, the N11 service codes and the fictional 555 are skipped, and each
exchange is checked once with `phonenumbers` (which the service validates with), so a
refusal during the run can only come from the service, never from the generator.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from typing import Any

import phonenumbers

__all__ = ["Registrations", "us_exchanges"]

_AREA_CODE = 415
_LINES_PER_EXCHANGE = 10_000


def us_exchanges(area_code: int = _AREA_CODE) -> Iterator[int]:
    """Exchanges (NXX) of `area_code` that are ordinary subscriber exchanges and valid."""
    for exchange in range(200, 1000):
        if exchange % 100 == 11 or exchange == 555:
            continue
        number = phonenumbers.parse(f"+1{area_code}{exchange}0000")
        if phonenumbers.is_valid_number(number):
            yield exchange


class Registrations:
    """Registration bodies numbered from 0, unique within the run `run_id`.

    Thread-safe and cheap: the open-loop generator asks for one per arrival.
    """

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._exchanges = list(us_exchanges())
        self._numbers = itertools.count()
        self._lock = threading.Lock()

    @property
    def capacity(self) -> int:
        """How many unique mobile numbers the run can hand out."""
        return len(self._exchanges) * _LINES_PER_EXCHANGE

    def next(self) -> tuple[str, dict[str, Any]]:
        """An idempotency key and the body of a new registration."""
        with self._lock:
            n = next(self._numbers)
        return f"bench-{self.run_id}-{n}", self.body(n)

    def body(self, n: int) -> dict[str, Any]:
        """Registration number `n`: shaped like the README's walk-through, with an address."""
        if n >= self.capacity:
            raise OverflowError(f"only {self.capacity} unique mobile numbers per run")
        exchange = self._exchanges[n // _LINES_PER_EXCHANGE]
        line = n % _LINES_PER_EXCHANGE
        return {
            "first_name": "Ada",
            "last_name": f"Bench{n}",
            # Distinct case on purpose: the service normalises emails before reserving them.
            "email": f"Ada.{self.run_id}.{n}@Example.com",
            "mobile_phone": f"+1 {_AREA_CODE} {exchange} {line:04d}",
            "company_name": "Analytical Engines",
            "addresses": [
                {
                    "kind": "billing",
                    "line1": f"{n % 9000 + 1} Market St",
                    "city": "San Francisco",
                    "postal_code": "94103",
                    "country": "US",
                }
            ],
        }
