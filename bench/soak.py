"""`python -m bench.soak --minutes 10`: half the peak load for a long time, memory sampled.

The service runs as `make run` runs it (`bench.system.start_system`: embedded servers, a
fresh schema, `workers.__main__.children()` as real processes). One operation is a
registration followed by a profile change of that customer (If-Match "1"). First the peak
rate of that pair is found with 32 closed-loop clients for `--peak-seconds` (or given
with `--rate`); then pairs arrive at half that rate, Poisson-spaced, for `--minutes`,
while the RSS of every service process (with its children) is sampled every
`--interval` seconds. After the warm-up (the first `--warmup` fraction of the run) the
median of the first three samples is compared with the median of the last three: a
process whose RSS grew more than `--limit` percent fails the run (exit status 1).
Not part of CI: it runs for minutes. Results go to bench/results/soak.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psutil

from bench.identities import Registrations
from bench.load import sessions
from bench.monitor import tree_rss
from bench.system import start_system

__all__ = ["main"]

_MB = 1024 * 1024
_PEAK_CLIENTS = 32
_POOL = 64
_OUT = Path("bench/results/soak.json")


@dataclass
class Counts:
    statuses: Counter[str] = field(default_factory=Counter)
    pairs: int = 0


async def _pair(
    session: aiohttp.ClientSession, registrations: Registrations, counts: Counts
) -> None:
    """Register a customer, then change its profile; count every answer."""
    key, body = registrations.next()
    headers = {"Content-Type": "application/json", "Idempotency-Key": key}
    try:
        async with session.post("/v1/customers", data=orjson.dumps(body), headers=headers) as r:
            counts.statuses[f"register {r.status}"] += 1
            if r.status != 201:
                return
            customer_id = orjson.loads(await r.read())["id"]
        async with session.patch(
            f"/v1/customers/{customer_id}", json={"group": "soak"}, headers={"If-Match": '"1"'}
        ) as r:
            counts.statuses[f"change {r.status}"] += 1
            if r.status == 200:
                counts.pairs += 1
    except (aiohttp.ClientError, TimeoutError) as error:
        counts.statuses[type(error).__name__] += 1


async def _peak(base: str, token: str, registrations: Registrations, seconds: float) -> float:
    """Pairs per second with _PEAK_CLIENTS closed-loop clients."""
    counts = Counts()
    async with sessions(base, token, _PEAK_CLIENTS) as pool:
        end = time.monotonic() + seconds

        async def client(session: aiohttp.ClientSession) -> None:
            while time.monotonic() < end:
                await _pair(session, registrations, counts)

        await asyncio.gather(*(client(s) for s in pool))
    return counts.pairs / seconds


async def _steady(
    base: str, token: str, registrations: Registrations, rate: float, seconds: float
) -> Counts:
    """Pairs arriving at `rate`/s (Poisson) for `seconds`, on a pool of _POOL connections."""
    counts = Counts()
    arrivals = random.Random(7)
    async with sessions(base, token, _POOL) as pool:
        free: asyncio.Queue[aiohttp.ClientSession] = asyncio.Queue()
        for session in pool:
            free.put_nowait(session)

        async def fire() -> None:
            session = await free.get()
            try:
                await _pair(session, registrations, counts)
            finally:
                free.put_nowait(session)

        tasks: set[asyncio.Task[None]] = set()
        due, end = time.monotonic(), time.monotonic() + seconds
        while (due := due + arrivals.expovariate(rate)) < end:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            task = asyncio.create_task(fire())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
    return counts


class Sampler:
    """RSS in MB of each process (with its children) every `interval` seconds."""

    def __init__(self, processes: dict[str, psutil.Process], interval: float) -> None:
        self.processes = processes
        self.interval = interval
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._began = time.monotonic()

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            now = {
                name: rss / _MB
                for name, process in self.processes.items()
                if (rss := tree_rss(process)) is not None
            }
            self.samples.append((time.monotonic() - self._began, now))
            self._stop.wait(self.interval)


def growth(
    samples: list[tuple[float, dict[str, float]]], warmup_s: float
) -> dict[str, dict[str, float]]:
    """Per process: RSS just after the warm-up and at the end (medians of 3), and growth %."""
    after = [values for at, values in samples if at >= warmup_s]
    if len(after) < 6:
        raise SystemExit(f"only {len(after)} samples after the warm-up: run longer")
    report = {}
    for name in after[0]:
        start = statistics.median(s[name] for s in after[:3] if name in s)
        end = statistics.median(s[name] for s in after[-3:] if name in s)
        report[name] = {
            "after_warmup_mb": round(start, 1),
            "end_mb": round(end, 1),
            "growth_pct": round(100 * (end - start) / start, 1),
        }
    return report


def main(argv: list[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    seconds = arguments.minutes * 60
    registrations = Registrations(secrets.token_hex(3))
    with start_system() as system:
        print(f"service on {system.base_url}: {', '.join(system.processes)}", flush=True)
        rate = (
            arguments.rate
            or asyncio.run(
                _peak(system.base_url, system.token, registrations, arguments.peak_seconds)
            )
            / 2
        )
        print(f"driving {rate:.1f} register+change pairs/s for {arguments.minutes} min", flush=True)
        with Sampler(system.processes, arguments.interval) as sampler:
            counts = asyncio.run(
                _steady(system.base_url, system.token, registrations, rate, seconds)
            )
        exited = {n: p.pid for n, p in system.processes.items() if not p.is_running()}
    memory = growth(sampler.samples, seconds * arguments.warmup)
    worst = max(m["growth_pct"] for m in memory.values())
    results: dict[str, Any] = {
        "minutes": arguments.minutes,
        "pairs_per_s_offered": round(rate, 1),
        "pairs_completed": counts.pairs,
        "statuses": dict(counts.statuses),
        "warmup_s": round(seconds * arguments.warmup),
        "interval_s": arguments.interval,
        "rss": memory,
        "limit_pct": arguments.limit,
        "passed": worst <= arguments.limit and not exited,
        "exited": exited,
        "samples": [
            (round(at, 1), {k: round(v, 1) for k, v in s.items()}) for at, s in sampler.samples
        ],
    }
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "samples"}, indent=2))
    print(f"wrote {arguments.out}; worst growth {worst:.1f}% (limit {arguments.limit}%)")
    return 0 if results["passed"] else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the steady load")
    parser.add_argument("--rate", type=float, help="pairs/s to offer (default: half the peak)")
    parser.add_argument("--peak-seconds", type=float, default=15.0, help="length of the peak probe")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between RSS samples")
    parser.add_argument("--warmup", type=float, default=0.2, help="fraction of the run ignored")
    parser.add_argument("--limit", type=float, default=10.0, help="allowed RSS growth, percent")
    parser.add_argument("--out", type=Path, default=_OUT)
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
