"""What every measurement receives (`Context`) and returns (`Outcome`).

A measurement is one async function `measure_x(ctx) -> Outcome`; the runner calls them in
order and merges their outcomes into the results. A part not built yet is one such
function that returns its keys as `None` with the reason in `not_measured`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from bench.identities import Registrations
from bench.monitor import CpuMeter, CpuSnapshot
from bench.profiles import Profile
from bench.system import System
from bench.ui import Display, PhaseHandle

__all__ = ["Context", "Outcome", "Phase"]


@dataclass
class Outcome:
    """Headline values (None: not measured), the reasons for those missing, and details."""

    values: dict[str, float | None] = field(default_factory=dict)
    not_measured: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Phase:
    """One measured phase on screen, with the CPU it used inside its measured window."""

    handle: PhaseHandle
    meter: CpuMeter
    checkpointed: bool
    _before: CpuSnapshot | None = None
    _after: CpuSnapshot | None = None

    async def meter_window(self, start: float, end: float) -> None:
        """Snapshot CPU at `start` and `end` (perf_counter times): the measured window only."""
        await asyncio.sleep(max(0.0, start - time.perf_counter()))
        self._before = self.meter.snapshot()
        await asyncio.sleep(max(0.0, end - time.perf_counter()))
        self._after = self.meter.snapshot()

    def meter_window_blocking(self, start: float, end: float) -> None:
        """`meter_window` for a thread: the reference's 32 busy threads hold the GIL so much
        that the event loop would wake late, after their connections had closed."""
        time.sleep(max(0.0, start - time.perf_counter()))
        self._before = self.meter.snapshot()
        time.sleep(max(0.0, end - time.perf_counter()))
        self._after = self.meter.snapshot()

    def cpu(self, operations: int) -> dict[str, object]:
        """CPU used in the window; empty if the window never closed."""
        if self._before is None or self._after is None:
            return {}
        return CpuMeter.delta(self._before, self._after, operations)


@dataclass
class Context:
    """The running system and the run's shared state."""

    system: System
    profile: Profile
    display: Display
    meter: CpuMeter
    registrations: Registrations
    customer_ids: list[str] = field(default_factory=list)
    """Ids of the customers registered so far (what the update phases change)."""
    values: dict[str, float | None] = field(default_factory=dict)
    """Headline values measured so far (the half-peak phase reads the peak rate here)."""

    @contextlib.asynccontextmanager
    async def phase(self, description: str, seconds: float) -> AsyncIterator[Phase]:
        """A CHECKPOINT first (the phase must not pay for the previous one's dirty pages),
        then a progress bar for the phase."""
        checkpointed = await asyncio.to_thread(self.system.checkpoint)
        with self.display.phase(description, seconds) as handle:
            yield Phase(handle, self.meter, checkpointed)
