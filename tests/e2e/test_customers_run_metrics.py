"""`customers run` with CUSTOMERS_WORKER_METRICS_PORT: both worker processes can be scraped.

The workers process and the imports process each serve their own /metrics; they cannot
share one port, so the imports process takes the next one. The whole of `customers run`
runs here as a real process (on the session's PostgreSQL and NATS, in a schema of its
own), so a process that cannot bind its port stops the run, as it would for a person.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.processes import free_port, stop, wait_for

from infrastructure.database import drop_schema
from infrastructure.settings import Settings
from projections.base import read_model_schema
from projections.catalog import READ_MODELS
from workers.__main__ import child_environment

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture
def run_settings(
    make_settings: Any, database_url: str, nats_url: str, db_schema: str
) -> Iterator[Settings]:
    settings: Settings = make_settings(
        database_url=database_url, nats_url=nats_url, db_schema=f"{db_schema}_run_metrics"
    )
    yield settings
    for name in READ_MODELS:
        drop_schema(database_url, read_model_schema(settings.db_schema, name))
    drop_schema(database_url, settings.db_schema)


def _two_free_ports() -> int:
    """A port that is free, and the next one too."""
    while True:
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port


def _scrape(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
            text: str = answer.read().decode()
            return text
    except OSError:
        return None


def test_customers_run_serves_the_workers_and_the_imports_metrics_on_two_ports(
    run_settings: Settings, tmp_path: Path
) -> None:
    metrics_port = _two_free_ports()
    env = {
        **child_environment(run_settings),
        "CUSTOMERS_DATA_DIR": str(tmp_path / "data"),
        "CUSTOMERS_HTTP_HOST": "127.0.0.1",
        "CUSTOMERS_HTTP_PORT": str(free_port()),
        "CUSTOMERS_WORKER_METRICS_PORT": str(metrics_port),
    }
    log = tmp_path / "run.log"
    with log.open("wb") as output:
        run = subprocess.Popen(
            [sys.executable, "-m", "workers", "run"], env=env, stdout=output, stderr=output
        )
    try:
        scraped: dict[int, str] = {}

        def both_scraped() -> bool:
            assert run.poll() is None, f"customers run stopped:\n{log.read_text()[-3000:]}"
            for port in (metrics_port, metrics_port + 1):
                text = _scrape(port)
                if text is not None:
                    scraped[port] = text
            return len(scraped) == 2

        wait_for(both_scraped, 120, "both worker processes' /metrics")
        # Each child binds only the port its environment names, and `customers run` stops
        # every process once one exits: both answering, with the run going on, is both
        # processes serving (the imports process would have died on a shared port).
        time.sleep(2)
        assert run.poll() is None, log.read_text()[-3000:]
        assert all("process_start_time_seconds " in text for text in scraped.values())
    finally:
        stop(run)
