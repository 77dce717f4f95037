"""The workers process (every follower, as `make run` runs them) SIGKILLed mid-batch.

tests/deploy/test_scale_out.py kills the active runner of each follower while a standby
waits; this is the one-process case, where nothing takes over: the process is started
again, and each follower resumes from the position committed with its rows.
"""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

KILLS = 3


def test_workers_killed_mid_batch_resume_without_loss_or_duplicates(
    processes: Any, load: Any, audit: Any, wait_for: Any
) -> None:
    """SIGKILL of the followers' process, thrice under load: read models and NATS exact."""
    processes.start("gateway")
    processes.start("all")
    running = load()
    for kill in range(1, KILLS + 1):
        wait_for(lambda k=kill: len(running.acknowledged) >= 40 * k, 60, "more registrations")
        # Killed while it has work: the log's head is ahead of some follower.
        wait_for(lambda: min(audit.positions().values()) < audit.head(), 30, "a backlog")
        processes.kill("all")
        processes.start("all")
    running.finish()

    print(f"\nworkers killed {KILLS} times: {dict(running.statuses)}")
    assert running.unexpected == [], running.unexpected[:5]
    audit.assert_nothing_lost(running)
