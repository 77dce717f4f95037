"""The progress display: one bar per phase, advancing with time, with a live count."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

__all__ = ["Display", "PhaseHandle"]


class PhaseHandle:
    """One phase on screen; the load generators count completed operations into it."""

    def __init__(self, task_id: TaskID, seconds: float) -> None:
        self.task_id = task_id
        self.seconds = seconds
        self.started = time.monotonic()
        # Incremented from the event loop and from reference threads; a lost increment
        # would only make the on-screen count one lower, never a reported number.
        self.operations = 0

    def done(self, count: int = 1) -> None:
        self.operations += count


class Display:
    """A rich `Progress` whose bars a ticker thread moves by elapsed time."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description:<44}"),
            BarColumn(bar_width=30),
            TextColumn("{task.fields[info]:>18}"),
            TimeElapsedColumn(),
            console=console,
        )
        self._active: list[PhaseHandle] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="bench-display", daemon=True)

    def __enter__(self) -> Display:
        self.progress.start()
        self._ticker.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._ticker.join()
        self.progress.stop()

    def log(self, message: str) -> None:
        self.progress.console.print(message)

    @contextlib.contextmanager
    def phase(self, description: str, seconds: float) -> Iterator[PhaseHandle]:
        """A bar for `seconds` of work; it completes when the block exits."""
        task_id = self.progress.add_task(description, total=max(seconds, 0.001), info="")
        handle = PhaseHandle(task_id, seconds)
        with self._lock:
            self._active.append(handle)
        try:
            yield handle
        finally:
            with self._lock:
                self._active.remove(handle)
            self.progress.update(
                task_id, completed=handle.seconds, info=f"{handle.operations:,} ops"
            )

    def _tick(self) -> None:
        while not self._stop.wait(0.25):
            with self._lock:
                active = list(self._active)
            for handle in active:
                elapsed = min(time.monotonic() - handle.started, handle.seconds)
                self.progress.update(
                    handle.task_id, completed=elapsed, info=f"{handle.operations:,} ops"
                )
