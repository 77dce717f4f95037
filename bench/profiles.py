"""How long and how hard each phase runs: the full run, and the quick smoke run."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FULL", "QUICK", "Profile"]


@dataclass(frozen=True)
class Profile:
    """The knobs of one run; every phase measures for `duration` after `warmup` seconds."""

    name: str
    warmup: float
    """Seconds each point runs before measuring: connections opened, statements prepared,
    caches warm, so the measured window sees the steady state."""
    duration: float
    """Seconds each point is measured for."""
    half_peak_duration: float
    reference_connections: tuple[int, ...] = (1, 8, 32)
    register_clients: tuple[int, ...] = (1, 8, 32, 64)
    update_clients: int = 32
    hot_customers: int = 10
    open_loop_connections: int = 64
    """Connections the open-loop generator may use at once: more than the arrival rate
    times the worst expected latency, so a slow answer delays no later arrival."""
    rss_interval: float = 0.1
    """Seconds between samples of the processes' resident memory."""


FULL = Profile(name="full", warmup=3.0, duration=25.0, half_peak_duration=30.0)
# Short enough for a smoke run (under 2 minutes with server start-up), long enough that
# every code path, counter and file write of the full run is exercised.
QUICK = Profile(name="quick", warmup=0.5, duration=3.0, half_peak_duration=5.0)
