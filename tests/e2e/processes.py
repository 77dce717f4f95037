"""Running the production processes in end-to-end tests: ports, waiting, readiness, stopping."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import time
from collections.abc import Callable

import aiohttp

__all__ = ["free_port", "ready", "stop", "wait_for"]


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
