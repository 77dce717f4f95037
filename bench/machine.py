"""The machine and the servers a run measured on: what makes numbers comparable."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from bench.system import System

__all__ = ["describe"]

_SETTINGS = (
    "server_version",
    "fsync",
    "synchronous_commit",
    "wal_sync_method",
    "full_page_writes",
    "shared_buffers",
    "max_wal_size",
    "max_connections",
)


def describe(system: System) -> dict[str, Any]:
    """CPU, memory, disk, versions and PostgreSQL's durability settings."""
    with system.connect() as connection:
        postgres = {
            name: str(row[0])
            for name in _SETTINGS
            if (row := connection.execute(f"SHOW {name}").fetchone()) is not None
        }
    return {
        "nproc": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgres": postgres,
        "postgres_embedded": system.postmaster is not None,
        "data_filesystem": _filesystem(system.settings.data_dir),
        "packages": {name: _version(name) for name in ("eventsourcing", "aiohttp", "psycopg")},
        "gateway_thread_pool": system.settings.thread_pool_size,
        "git_commit": _git_commit(),
        "client_and_server_share_the_machine": True,
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _filesystem(path: Path) -> str:
    """The device and file system type the data folder (PostgreSQL's, when local) is on."""
    best = None
    resolved = str(path.resolve())
    for partition in psutil.disk_partitions(all=False):
        if resolved.startswith(partition.mountpoint) and (
            best is None or len(partition.mountpoint) > len(best.mountpoint)
        ):
            best = partition
    return "unknown" if best is None else f"{best.device} ({best.fstype})"


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git_commit() -> str | None:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+uncommitted changes" if dirty.stdout.strip() else "")
