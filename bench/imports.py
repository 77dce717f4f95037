"""`python -m bench.imports [--rows N]`: a generated customer file imported, then exported.

The system runs as `make run` runs it (`bench.system`: the gateway, the followers and the
import worker as processes of their own, on a fresh schema). The file has N rows (100,000
by default) in the shape an old system exports: semicolons, "First Name", "E-mail",
"Mobile", a street address, an unknown column; 1% of the rows repeat an earlier email
(duplicates) and 1% have a broken email (invalid).

Measured, each with the peak RSS of the process doing the work (sampled every 50 ms):
  - upload: streaming the file and the gateway reading and validating every row;
  - import: the import worker registering the rows, in rows/s from the 202 to `done`, and
    the worker's CPU time per row (user + system), which depends far less than the rate
    on what else the machine runs;
  - export: the whole search view (`registered_after=1970-01-01`) streamed as CSV, after
    the search follower caught up; the gateway's RSS before, at its peak during, and at
    each quarter of the stream shows whether memory stays flat.
Results go to bench/results/imports.json. Not part of `make bench`: it takes minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from psycopg import sql

from bench.monitor import RssSampler
from bench.system import System, start_system

__all__ = ["main"]

_MB = 1024 * 1024
_RESULTS = Path("bench/results/imports.json")
_SAMPLE_SECONDS = 0.05


def generate(path: Path, rows: int, seed: int = 7) -> dict[str, int]:
    """Write the file; how many rows should come out created, duplicate and invalid."""
    rng = random.Random(seed)
    expected = {"created": 0, "duplicate": 0, "invalid": 0}
    created: list[int] = []
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("First Name;Last Name;E-mail;Mobile;Company;Street;City;Zip;Loyalty tier\r\n")
        for i in range(rows):
            email = f"customer{i}@example.com"
            kind = "created"
            if created and rng.random() < 0.01:
                email, kind = f"customer{rng.choice(created)}@example.com", "duplicate"
            elif rng.random() < 0.01:
                email, kind = f"customer{i}.example.com", "invalid"
            else:
                created.append(i)
            expected[kind] += 1
            # Mobile numbers from a valid US range, unique per row.
            mobile = f"(415) {200 + i // 10_000:03d}-{i % 10_000:04d}"
            out.write(
                f"Name{i};Surname{i % 997};{email};{mobile};Company {i % 101};"
                f'"{i} Main St";City{i % 53};{10000 + i % 89999};{rng.choice("abc")}\r\n'
            )
    return expected


def _rss_mb(process: psutil.Process) -> float:
    return float(process.memory_info().rss) / _MB


async def _upload(system: System, path: Path) -> tuple[str, float]:
    async def chunks() -> AsyncIterator[bytes]:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 18):
                yield chunk

    headers = {"Authorization": f"Bearer {system.token}", "Content-Type": "text/csv"}
    started = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=600)
    async with (
        aiohttp.ClientSession(system.base_url, timeout=timeout) as session,
        session.post("/v1/customers/imports", data=chunks(), headers=headers) as response,
    ):
        body = await response.json()
        if response.status != 202:
            raise RuntimeError(f"upload refused: {response.status} {body}")
    return body["import_id"], time.monotonic() - started


async def _until_done(system: System, import_id: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {system.token}"}
    started = shown = time.monotonic()
    async with aiohttp.ClientSession(system.base_url, headers=headers) as session:
        while True:
            path = f"/v1/customers/imports/{import_id}"
            async with session.get(path, params={"limit": "0"}) as response:
                report: dict[str, Any] = await response.json()
            if report["status"] != "running":
                return report
            if time.monotonic() - shown >= 15:
                # Progress on the way, so a run cut short still says something.
                done = report["total_rows"] - report["counts"]["pending"]
                print(f"{done:,} rows in {time.monotonic() - started:.0f} s", flush=True)
                shown = time.monotonic()
            await asyncio.sleep(0.2)


def _search_position(system: System) -> int:
    table = sql.Identifier(f"{system.schema}_search", "tracking")
    with system.connect() as connection:
        row = connection.execute(sql.SQL("SELECT max(notification_id) FROM {}").format(table))
        found = row.fetchone()
    return int(str(found[0])) if found and found[0] is not None else 0


async def _export(system: System, gateway: psutil.Process) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {system.token}"}
    quarters: list[float] = []
    rows = size = 0
    started = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=None, sock_read=120)
    async with (
        aiohttp.ClientSession(system.base_url, headers=headers, timeout=timeout) as session,
        session.get("/v1/customers/export", params={"registered_after": "1970-01-01"}) as response,
    ):
        total = int(response.headers["X-Total-Count"])
        async for chunk in response.content.iter_chunked(1 << 16):
            size += len(chunk)
            rows += chunk.count(b"\n")
            if len(quarters) < 4 and rows >= total * (len(quarters) + 1) / 4 - 1:
                quarters.append(round(_rss_mb(gateway), 1))
    seconds = time.monotonic() - started
    return {
        "rows": rows - 1,
        "announced": total,
        "megabytes": round(size / _MB, 1),
        "seconds": round(seconds, 2),
        "rows_per_second": round((rows - 1) / seconds),
        "gateway_rss_mb_at_quarters": quarters,
    }


async def run(rows: int) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="bench-imports-"))
    path = folder / "customers.csv"
    expected = generate(path, rows)
    results: dict[str, Any] = {"rows": rows, "file_mb": round(path.stat().st_size / _MB, 1)}
    with start_system() as system:
        gateway, importer = system.processes["gateway"], system.processes["imports"]
        results["rss_mb_at_start"] = {
            "gateway": round(_rss_mb(gateway), 1),
            "imports": round(_rss_mb(importer), 1),
        }
        with RssSampler({"gateway": gateway}, _SAMPLE_SECONDS) as upload_rss:
            import_id, upload_seconds = await _upload(system, path)
        accepted = time.monotonic()
        cpu_before = importer.cpu_times()
        with RssSampler({"imports": importer, "gateway": gateway}, _SAMPLE_SECONDS) as rss:
            report = await _until_done(system, import_id)
        import_seconds = time.monotonic() - accepted
        cpu_after = importer.cpu_times()
        cpu_seconds = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
        results["upload"] = {
            "seconds": round(upload_seconds, 2),
            "rows_per_second": round(rows / upload_seconds),
            "gateway_peak_rss_mb": round(upload_rss.peaks_mb["gateway"], 1),
        }
        results["import"] = {
            "status": report["status"],
            "counts": report["counts"],
            "expected": expected,
            "seconds": round(import_seconds, 2),
            "rows_per_second": round(rows / import_seconds),
            "worker_cpu_ms_per_row": round(1000 * cpu_seconds / rows, 2),
            "load_average_1m_at_done": round(os.getloadavg()[0], 1),
            "worker_peak_rss_mb": round(rss.peaks_mb["imports"], 1),
            "gateway_peak_rss_mb": round(rss.peaks_mb["gateway"], 1),
        }
        head = system.max_position()
        caught_up = time.monotonic()
        while _search_position(system) < head:  # noqa: ASYNC110 (another process's progress)
            await asyncio.sleep(0.5)
        results["search_catch_up_seconds_after_done"] = round(time.monotonic() - caught_up, 1)
        before = _rss_mb(gateway)
        with RssSampler({"gateway": gateway}, _SAMPLE_SECONDS) as export_rss:
            export = await _export(system, gateway)
        export["gateway_rss_mb_before"] = round(before, 1)
        export["gateway_peak_rss_mb"] = round(export_rss.peaks_mb["gateway"], 1)
        results["export"] = export
    shutil.rmtree(folder)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.imports", description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=_RESULTS)
    arguments = parser.parse_args(argv)
    results = asyncio.run(run(arguments.rows))
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
