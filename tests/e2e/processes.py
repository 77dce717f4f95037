"""Running the production processes in end-to-end tests: ports, waiting, readiness, stopping."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

from infrastructure.eventstore import build_service
from infrastructure.settings import Settings
from projections.catalog import READ_MODELS, open_read_model
from workers.__main__ import child_environment
from workers.relay import RelayPositions

__all__ = ["free_port", "ready", "run_stack_logged", "stop", "wait_for"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def ready(base: str) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1])), timeout=1):
            pass
    except OSError:
        return False

    async def ask() -> int:
        async with aiohttp.ClientSession() as http, http.get(f"{base}/readyz") as answer:
            return answer.status

    try:
        return asyncio.run(ask()) == 200
    except aiohttp.ClientError:
        return False


def run_stack_logged(
    settings: Settings, folder: Path, scenario: Callable[[str], None]
) -> dict[str, Path]:
    """Migrate, start the gateway and one workers' process with every follower (JSON logs
    at INFO, each into a file in `folder`), run `scenario(base_url)`, wait until the relay
    and every read model have handled the whole log, stop both; the log files by process."""
    env = {
        **child_environment(settings),
        "CUSTOMERS_LOG_FORMAT": "json",
        "CUSTOMERS_LOG_LEVEL": "INFO",
    }
    migrated = subprocess.run(
        [sys.executable, "-m", "workers", "migrate"], env=env, capture_output=True, timeout=120
    )
    assert migrated.returncode == 0, migrated.stderr
    port = free_port()
    logs = {name: folder / f"{name}.log" for name in ("gateway", "workers")}
    commands = {
        "gateway": [sys.executable, "-m", "gateway"],
        "workers": [sys.executable, "-m", "workers", "worker", "all"],
    }
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, command in commands.items():
            with logs[name].open("wb") as output:
                processes[name] = subprocess.Popen(
                    command,
                    env={**env, "CUSTOMERS_HTTP_PORT": str(port)},
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: ready(base), 60, "the gateway to be ready")
        scenario(base)
        service = build_service(settings)
        try:
            head = service.recorder.max_notification_id() or 0
            relay = RelayPositions(service.recorder.datastore, settings.db_schema)  # type: ignore[attr-defined]
            wait_for(lambda: relay.load("relay") >= head, 60, "the relay to publish")
        finally:
            service.close()
        for name in READ_MODELS:
            model = open_read_model(settings, name)
            try:
                wait_for(lambda m=model: m.position() >= head, 60, f"{name} to catch up")
            finally:
                model.datastore.close()
    finally:
        for process in processes.values():
            stop(process)
    return logs
