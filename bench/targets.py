"""The headline keys of latest.json, in report order, and the issue's target for each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["KEYS", "TARGETS", "Target", "status", "unit"]

# Every key latest.json must hold (issue 11), in the order the tables list them.
KEYS: tuple[str, ...] = (
    "reference_insert_rate_1",
    "reference_insert_rate_8",
    "reference_insert_rate_32",
    "register_rate_1",
    "register_rate_8",
    "register_rate_32",
    "register_rate_64",
    "ratio_register_to_reference_32",
    "register_p50_ms_half_peak",
    "register_p99_ms_half_peak",
    "update_rate_spread",
    "update_rate_hot",
    "update_conflicts_hot",
    "projection_lag_p50_ms",
    "projection_lag_p99_ms",
    "relay_lag_p50_ms",
    "relay_lag_p99_ms",
    "rebuild_events_per_s",
    "search_p50_ms_1m",
    "search_p99_ms_1m",
    "gateway_rss_mb",
    "worker_rss_mb",
)

UNITS: dict[str, str] = {
    "reference_insert_rate": "inserts/s",
    "register_rate": "registrations/s",
    "update_rate": "updates/s",
    "update_conflicts": "412 answers",
    "_ms": "ms",
    "rebuild": "events/s",
    "_rss_mb": "MB",
    "ratio": "",
}


@dataclass(frozen=True)
class Target:
    text: str
    met: Callable[[float], bool]


TARGETS: dict[str, Target] = {
    "ratio_register_to_reference_32": Target("≥ 0.25", lambda v: v >= 0.25),
    "register_p99_ms_half_peak": Target("< 25 ms", lambda v: v < 25),
    "projection_lag_p99_ms": Target("< 100 ms", lambda v: v < 100),
    "relay_lag_p99_ms": Target("< 100 ms", lambda v: v < 100),
    "rebuild_events_per_s": Target("≥ 30,000/s", lambda v: v >= 30_000),
    "search_p99_ms_1m": Target("< 20 ms", lambda v: v < 20),
    "gateway_rss_mb": Target("< 200 MB", lambda v: v < 200),
    "worker_rss_mb": Target("< 200 MB", lambda v: v < 200),
}


def status(key: str, value: float | None) -> str:
    """met / not met / not measured yet; empty for a key without a target."""
    if value is None:
        return "not measured yet"
    target = TARGETS.get(key)
    if target is None:
        return ""
    return "met" if target.met(value) else "not met"


def unit(key: str) -> str:
    for fragment, name in UNITS.items():
        if fragment in key:
            return name
    return ""
