"""`python -m bench.files [--concurrent N]`: the gateway's memory while 25 MB files stream.

The system runs as `make run` runs it (`bench.system`). One customer gets a 25 MB file
(random bytes behind a PDF signature), uploaded as a chunked stream; then N clients
download it at once, each reading slowly enough that all N are in flight together. The
gateway's RSS is sampled every 50 ms: at rest, its peak during the upload and during the
downloads. Were a download held whole, the peak would grow by about 25 MB per concurrent
download; streamed chunk by chunk (1 MB rows), it should grow by a few MB in all.
Results go to bench/results/files.json. Not part of `make bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from bench.monitor import RssSampler
from bench.system import System, start_system

__all__ = ["main"]

_MB = 1024 * 1024
_SIZE = 25 * _MB
_RESULTS = Path("bench/results/files.json")
_SAMPLE_SECONDS = 0.05
_READ_PAUSE_SECONDS = 0.01
"""Between two 64 KB reads of a download: 25 MB take at least 4 s, so all overlap."""


def _rss_mb(process: psutil.Process) -> float:
    return float(process.memory_info().rss) / _MB


async def _customer(session: aiohttp.ClientSession) -> str:
    body = {"first_name": "Bench", "email": f"bench.{os.getpid()}.{time.time_ns()}@example.com"}
    async with session.post("/v1/customers", json=body) as response:
        created: dict[str, Any] = await response.json()
        if response.status != 201:
            raise RuntimeError(f"registration refused: {response.status} {created}")
    return str(created["id"])


async def _upload(session: aiohttp.ClientSession, customer_id: str, content: bytes) -> str:
    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(content), 1 << 18):
            yield content[start : start + (1 << 18)]

    headers = {"Content-Disposition": 'attachment; filename="backup.pdf"'}
    path = f"/v1/customers/{customer_id}/files"
    async with session.post(path, data=chunks(), headers=headers) as response:
        body: dict[str, Any] = await response.json()
        if response.status != 201:
            raise RuntimeError(f"upload refused: {response.status} {body}")
    return f"{path}/{body['id']}"


async def _download(session: aiohttp.ClientSession, path: str) -> str:
    digest = hashlib.sha256()
    async with session.get(path) as response:
        async for chunk in response.content.iter_chunked(1 << 16):
            digest.update(chunk)
            await asyncio.sleep(_READ_PAUSE_SECONDS)
    return digest.hexdigest()


async def _measure(system: System, concurrent: int) -> dict[str, Any]:
    gateway = system.processes["gateway"]
    content = b"%PDF-1.7\n" + os.urandom(_SIZE - 9)
    expected = hashlib.sha256(content).hexdigest()
    headers = {"Authorization": f"Bearer {system.token}"}
    timeout = aiohttp.ClientTimeout(total=900)
    async with aiohttp.ClientSession(system.base_url, headers=headers, timeout=timeout) as session:
        customer_id = await _customer(session)
        at_rest = _rss_mb(gateway)
        started = time.monotonic()
        with RssSampler({"gateway": gateway}, _SAMPLE_SECONDS) as upload_rss:
            path = await _upload(session, customer_id, content)
        upload_seconds = time.monotonic() - started
        before_downloads = _rss_mb(gateway)
        started = time.monotonic()
        with RssSampler({"gateway": gateway}, _SAMPLE_SECONDS) as download_rss:
            digests = await asyncio.gather(*(_download(session, path) for _ in range(concurrent)))
        download_seconds = time.monotonic() - started
    return {
        "file_mb": _SIZE / _MB,
        "concurrent_downloads": concurrent,
        "all_byte_exact": all(d == expected for d in digests),
        "gateway_rss_mb_at_rest": round(at_rest, 1),
        "upload_seconds": round(upload_seconds, 2),
        "gateway_peak_rss_mb_upload": round(upload_rss.peaks_mb["gateway"], 1),
        "gateway_rss_mb_before_downloads": round(before_downloads, 1),
        "download_seconds": round(download_seconds, 2),
        "gateway_peak_rss_mb_downloads": round(download_rss.peaks_mb["gateway"], 1),
        "load_average_1m": round(os.getloadavg()[0], 1),
    }


async def run(concurrent: int) -> dict[str, Any]:
    with start_system() as system:
        return await _measure(system, concurrent)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.files", description=__doc__)
    parser.add_argument("--concurrent", type=int, default=8)
    parser.add_argument("--out", type=Path, default=_RESULTS)
    arguments = parser.parse_args(argv)
    results = asyncio.run(run(arguments.concurrent))
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
