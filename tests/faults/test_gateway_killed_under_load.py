"""The gateway process SIGKILLed mid-request under a write load, then started again."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def test_gateway_killed_mid_request_keeps_acknowledged_and_retries_give_one_customer(
    processes: Any, load: Any, audit: Any, wait_for: Any
) -> None:
    """SIGKILL of the gateway: 201s kept; each unanswered one, retried with its key, once."""
    processes.start("gateway")
    processes.start("all")
    running = load(clients=8, pause=0.0)
    wait_for(lambda: len(running.acknowledged) >= 40, 60, "the first registrations")

    processes.kill("gateway")
    acknowledged_at_kill = len(running.acknowledged)
    processes.start("gateway")  # the same port: the clients come back by themselves
    wait_for(
        lambda: len(running.acknowledged) >= acknowledged_at_kill + 40,
        60,
        "registrations through the new gateway",
    )
    running.finish()
    assert running.unexpected == [], running.unexpected[:5]
    assert running.unanswered, "no request was in flight at the kill: the test proved nothing"

    retried = running.retry_unanswered()
    print(f"\ngateway kill: {dict(running.statuses)}, {len(retried)} retried")
    assert set(retried).isdisjoint(running.acknowledged)
    running.acknowledged.update(retried)
    audit.assert_nothing_lost(running)
    # Nothing stored that neither an answer nor a retry accounts for: no orphan, no twin.
    assert set(audit.registered_ids()) == set(running.acknowledged)
