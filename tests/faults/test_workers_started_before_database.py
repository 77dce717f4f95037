"""Processes started while PostgreSQL is down (a host's reboot, `compose up`) wait for it."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from workers.runners import RESTART_PAUSE_SECONDS

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def test_workers_and_gateway_started_before_the_database_wait_for_it_then_serve(
    fault_servers: Any, processes: Any, load: Any, audit: Any, wait_for: Any
) -> None:
    fault_servers.postgres.stop("fast")
    workers = processes.start("all")  # fails if the process exits in its first seconds
    time.sleep(2 * RESTART_PAUSE_SECONDS)
    assert workers.poll() is None, "the workers died waiting for the database"
    # The gateway starts while the database is still down; start waits for its /readyz.
    threading.Timer(2 * RESTART_PAUSE_SECONDS, fault_servers.postgres.start).start()
    processes.start("gateway")
    running = load()
    wait_for(lambda: len(running.acknowledged) >= 30, 60, "registrations")
    running.finish()

    assert running.unexpected == [], running.unexpected[:5]
    assert workers.poll() is None, "the workers had to restart"
    audit.assert_nothing_lost(running)
    for name in ("all", "gateway"):
        assert '"database_unavailable"' in (processes.folder / f"{name}.log").read_text(), name
