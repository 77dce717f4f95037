"""PostgreSQL stopped and started again under a write load through a real gateway process."""

from __future__ import annotations

import time
from typing import Any

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

OUTAGE_SECONDS = 5.0


def test_postgres_outage_under_load_answers_503_and_loses_no_acknowledged_command(
    fault_servers: Any, processes: Any, load: Any, audit: Any, wait_for: Any
) -> None:
    """Postgres down mid-load: 503 + Retry-After, recovery in place, every 201/200 kept once."""
    processes.start("gateway")
    processes.start("all")
    running = load()
    wait_for(lambda: len(running.acknowledged) >= 40, 60, "the first registrations")

    before_outage = running.answered(503)
    fault_servers.postgres.stop("immediate")
    # Requests in flight wait for the pool's timeout before the first 503 (and the breaker).
    wait_for(lambda: running.answered(503) > before_outage, 45, "503s during the outage")
    time.sleep(OUTAGE_SECONDS)
    acknowledged_while_down = len(running.acknowledged)
    fault_servers.postgres.start()
    wait_for(
        lambda: len(running.acknowledged) >= acknowledged_while_down + 40,
        60,
        "registrations again after the restart",
    )
    running.finish()

    assert processes.running["gateway"].poll() is None, "the gateway had to restart"
    assert processes.running["all"].poll() is None, "the workers had to restart"
    assert running.unexpected == [], running.unexpected[:5]
    assert running.answered(503) > before_outage, "no 503 while PostgreSQL was down"
    print(f"\npostgres outage: {dict(running.statuses)}")
    audit.assert_nothing_lost(running)
