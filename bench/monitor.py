"""What the processes cost: peak resident memory, sampled; CPU seconds per phase.

Memory is sampled in a background thread for the whole run, so the peak of each process
is its highest RSS under any of the phases. CPU is read before and after each phase from
the kernel's counters, for the bench itself (the load generator), each service process
and PostgreSQL (the postmaster, its live backends and those already exited), plus the
machine's busy share: on a machine shared by client and server, that says whether a
phase was bound by CPU.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass

import psutil

__all__ = ["CpuMeter", "CpuSnapshot", "RssSampler", "tree_rss"]

_MB = 1024 * 1024


class RssSampler:
    """Peak RSS in MB of each named process (with its child processes), sampled every `interval`."""

    def __init__(self, processes: Mapping[str, psutil.Process], interval: float) -> None:
        self._processes = dict(processes)
        self._interval = interval
        self.peaks_mb: dict[str, float] = dict.fromkeys(self._processes, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-rss", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, process in self._processes.items():
                rss = tree_rss(process)
                if rss is not None:
                    self.peaks_mb[name] = max(self.peaks_mb[name], rss / _MB)
            self._stop.wait(self._interval)


def tree_rss(process: psutil.Process) -> int | None:
    try:
        total = int(process.memory_info().rss)
        for child in process.children(recursive=True):
            try:
                total += int(child.memory_info().rss)
            except psutil.NoSuchProcess:
                continue
    except psutil.NoSuchProcess:
        return None
    return total


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU seconds used so far by each party, and the machine's busy and total seconds."""

    seconds: dict[str, float]
    machine_busy: float
    machine_iowait: float
    machine_total: float


class CpuMeter:
    """Reads CPU counters of the bench, the service's processes and PostgreSQL."""

    def __init__(
        self, processes: Mapping[str, psutil.Process], postmaster: psutil.Process | None
    ) -> None:
        self._parties: dict[str, psutil.Process] = {"bench": psutil.Process(os.getpid())}
        self._parties.update(processes)
        self._postmaster = postmaster

    def snapshot(self) -> CpuSnapshot:
        seconds = {name: _own_cpu(process) for name, process in self._parties.items()}
        if self._postmaster is not None:
            seconds["postgres"] = _postgres_cpu(self._postmaster)
        times = psutil.cpu_times()
        idle = times.idle + getattr(times, "iowait", 0.0)
        total = sum(times)
        return CpuSnapshot(seconds, total - idle, getattr(times, "iowait", 0.0), total)

    @staticmethod
    def delta(before: CpuSnapshot, after: CpuSnapshot, operations: int) -> dict[str, object]:
        """CPU per party over a phase, per operation, and how busy the machine was."""
        used = {name: after.seconds[name] - before.seconds.get(name, 0.0) for name in after.seconds}
        total = after.machine_total - before.machine_total
        busy = after.machine_busy - before.machine_busy
        return {
            # CPU of everything else on the machine (other users' jobs, the kernel's own
            # threads, NATS): high values mean the phase competed with foreign load.
            "other_processes_cpu_pct": round(100 * (busy - sum(used.values())) / total, 1)
            if total
            else None,
            "cpu_s": {name: round(value, 3) for name, value in used.items()},
            "cpu_ms_per_op": (
                {name: round(value * 1000 / operations, 3) for name, value in used.items()}
                if operations
                else {}
            ),
            "machine_busy_pct": round(100 * (after.machine_busy - before.machine_busy) / total, 1)
            if total
            else None,
            "machine_iowait_pct": round(
                100 * (after.machine_iowait - before.machine_iowait) / total, 1
            )
            if total
            else None,
        }


def _own_cpu(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return float(times.user + times.system)


def _postgres_cpu(postmaster: psutil.Process) -> float:
    """The server's CPU: the postmaster, its running processes, and the exited ones it reaped."""
    try:
        times = postmaster.cpu_times()
        children = postmaster.children()
    except psutil.NoSuchProcess:
        return 0.0
    # A backend that exits during a phase moves its time into the postmaster's children_*
    # counters, so live + reaped stays a running total across connections opening and closing.
    total = times.user + times.system + times.children_user + times.children_system
    for child in children:
        total += _own_cpu(child)
    return float(total)
