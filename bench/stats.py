"""Latency samples and their percentiles; counts of answers by status."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Window", "percentile"]


def percentile(samples: list[float], fraction: float) -> float | None:
    """The nearest-rank percentile of `samples` (None when there are none)."""
    if not samples:
        return None
    ordered = sorted(samples)
    # Nearest rank: the smallest value with at least `fraction` of the samples at or below.
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Window:
    """What completed inside one measured window [start, end] (perf_counter seconds).

    Work that started before the window (warm-up) or ended after it is not counted, so the
    rate is completions per second of steady state.
    """

    start: float
    end: float
    latencies: list[float] = field(default_factory=list)
    """Seconds, of the successful operations that completed in the window."""
    statuses: Counter[int | str] = field(default_factory=Counter)
    counters: Counter[str] = field(default_factory=Counter)
    """Other events worth reporting (conflicts, retries...)."""
    examples: dict[str, str] = field(default_factory=dict)
    """The first answer body seen for each unexpected status, to say what went wrong."""

    def inside(self, moment: float) -> bool:
        return self.start <= moment <= self.end

    def record(self, finished: float, seconds: float, status: int | str, ok: bool) -> None:
        """Count one operation that finished at `finished` after `seconds`."""
        if not self.inside(finished):
            return
        self.statuses[status] += 1
        if ok:
            self.latencies.append(seconds)

    def note_unexpected(self, status: int | str, body: str) -> None:
        self.examples.setdefault(str(status), body[:300])

    @property
    def seconds(self) -> float:
        return self.end - self.start

    @property
    def completed(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.completed / self.seconds if self.seconds > 0 else 0.0

    def ms(self, fraction: float) -> float | None:
        value = percentile(self.latencies, fraction)
        return None if value is None else value * 1000

    def summary(self) -> dict[str, Any]:
        """The window as JSON-able details: rate, latency percentiles, statuses, counters."""
        return {
            "seconds": round(self.seconds, 3),
            "completed": self.completed,
            "rate_per_s": round(self.rate, 1),
            "p50_ms": _round(self.ms(0.50)),
            "p90_ms": _round(self.ms(0.90)),
            "p99_ms": _round(self.ms(0.99)),
            "max_ms": _round(self.ms(1.0)),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items(), key=str)},
            **({"counters": dict(self.counters)} if self.counters else {}),
            **({"unexpected_answers": self.examples} if self.examples else {}),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
