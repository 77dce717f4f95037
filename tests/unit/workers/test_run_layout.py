"""`customers run`'s processes: every follower runs in exactly one of them."""

from __future__ import annotations

from collections import Counter

from workers.__main__ import children
from workers.runners import IMPORT_WORKER, follower_names


def _workers_started() -> Counter[str]:
    started: Counter[str] = Counter()
    for child in children():
        argv = list(child.argv)
        if "worker" in argv:
            named = argv[argv.index("worker") + 1 :]
            started.update(follower_names() if named == ["all"] else named)
    return started


def test_every_follower_and_the_import_worker_start_once_in_customers_run() -> None:
    """A follower added to the code runs without a change here, and none runs twice (a
    second runner would only stand by)."""
    assert _workers_started() == Counter([*follower_names(), IMPORT_WORKER])
