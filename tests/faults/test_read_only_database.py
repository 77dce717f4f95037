"""The database turned read-only under a write load (as a full disk or a failed-over
replica would leave it), then writable again."""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

READ_ONLY_SECONDS = 4.0


def _set_read_only(url: str, on: bool) -> None:
    """Every session's default, existing ones too: a reload re-reads it for all of them."""
    with psycopg.connect(url, autocommit=True) as connection:
        # This session's own value wins over the server's, so it can undo the fault.
        connection.execute("SET default_transaction_read_only = off")
        value = "on" if on else "off"
        connection.execute(f"ALTER SYSTEM SET default_transaction_read_only = {value}")
        connection.execute("SELECT pg_reload_conf()")


def test_read_only_database_answers_503_and_writes_resume_when_it_is_writable(
    fault_servers: Any, processes: Any, load: Any, audit: Any, wait_for: Any
) -> None:
    """Read-only Postgres mid-load: commands 503 + Retry-After (no 500), nothing lost after."""
    processes.start("gateway")
    processes.start("all")
    running = load()
    wait_for(lambda: len(running.acknowledged) >= 40, 60, "the first registrations")

    before = running.answered(503)
    _set_read_only(fault_servers.postgres.url, True)
    try:
        wait_for(lambda: running.answered(503) > before + 10, 30, "503s while read-only")
        time.sleep(READ_ONLY_SECONDS)
        acknowledged_while_read_only = len(running.acknowledged)
    finally:
        _set_read_only(fault_servers.postgres.url, False)
    wait_for(
        lambda: len(running.acknowledged) >= acknowledged_while_read_only + 40,
        60,
        "registrations once the database is writable",
    )
    running.finish()

    print(f"\nread-only database: {dict(running.statuses)}")
    assert running.unexpected == [], running.unexpected[:5]
    assert processes.running["gateway"].poll() is None
    assert processes.running["all"].poll() is None
    audit.assert_nothing_lost(running)
