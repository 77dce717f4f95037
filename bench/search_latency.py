"""Search latency over HTTP per query kind, against a search read model filled once.

The bench's search phase (`bench.read_side.measure_search`) fills a million rows for every
run, which takes minutes; this runs the same query kinds, the same way (closed loop, two
clients, the kinds in turn, over HTTP), against a schema `bench.search_plans fill` wrote,
so a change can be measured A B A B on the same rows. It migrates `<schema>` (the event
store's tables and every read model's schema: a new search migration is applied to the
filled rows), starts the gateway alone on it, and prints each kind's p50 / p99, the
gateway's CPU per search and the load average.

    python -m bench.search_plans fill --database URL --schema perf_search
    python -m bench.search_latency --database URL --nats URL --schema perf [--seconds 25]

(`perf_search` is the search read model of service schema `perf`.)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import itertools
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta

import aiohttp
import psutil
from cryptography.fernet import Fernet
from pydantic import SecretStr

from bench.load import sessions
from bench.read_side import _SAMPLE, _query_kinds
from bench.stats import percentile
from bench.synthetic import Person, people
from infrastructure.settings import Settings
from infrastructure.tokens import issue_token
from workers.__main__ import child_environment, migrate_database

__all__ = ["main"]

_FIRST_NUMBER = 10_000_000
"""Where `bench.search_plans fill` (and the bench) number the rows they write."""
_LOOPBACK = "127.0.0.1"


def _sample(customers: int) -> list[Person]:
    """As bench.read_side picks the customers it searches for."""
    chooser = random.Random(7)
    sample: list[Person] = []
    for person in people(_FIRST_NUMBER, customers):
        if len(sample) < _SAMPLE or chooser.random() < _SAMPLE / customers:
            sample.append(person)
    return sample[-_SAMPLE:]


@contextlib.contextmanager
def _gateway(settings: Settings) -> Iterator[psutil.Process]:
    env = {**child_environment(settings), "CUSTOMERS_HTTP_PORT": str(settings.http_port)}
    env["CUSTOMERS_HTTP_HOST"] = _LOOPBACK
    env["CUSTOMERS_LOG_LEVEL"] = "WARNING"
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway"],
        env={**env, "PGAPPNAME": "search-latency"},
        stdin=subprocess.DEVNULL,
        process_group=0,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the gateway exited with {process.returncode}")
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(
                    f"http://{_LOOPBACK}:{settings.http_port}/healthz", timeout=1
                ) as answer,
            ):
                if answer.status == 200:
                    break
            time.sleep(0.1)
        else:
            raise TimeoutError("the gateway did not start in 60 s")
        yield psutil.Process(process.pid)
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _measure(
    base_url: str, token: str, customers: int, warmup: float, seconds: float, clients: int
) -> dict[str, list[float]]:
    sample = _sample(customers)
    cursors = []
    async with sessions(base_url, token, 1) as (session,):
        for person in sample[:40]:  # as bench.read_side._next_pages
            params = {"q": person.first_name}
            async with session.get("/v1/customers", params=params) as answer:
                answer.raise_for_status()
                cursor = (await answer.json()).get("next_cursor")
            if cursor:
                cursors.append({**params, "cursor": cursor})
    kinds = _query_kinds(sample, cursors)
    order = itertools.cycle(kinds)
    found: dict[str, list[float]] = {}
    start = time.perf_counter() + warmup
    end = start + seconds

    async def client(session: aiohttp.ClientSession) -> None:
        while time.perf_counter() < end:
            name, make = next(order)
            began = time.perf_counter()
            async with session.get("/v1/customers", params=make()) as answer:
                await answer.read()
                if answer.status != 200:
                    raise RuntimeError(f"{name}: {answer.status} {await answer.text()}")
            finished = time.perf_counter()
            if start <= finished <= end:
                found.setdefault(name, []).append(finished - began)

    async with sessions(base_url, token, clients) as opened:
        await asyncio.gather(*(client(s) for s in opened))
    return found


def _ms(values: list[float], fraction: float) -> float:
    return 1000 * (percentile(values, fraction) or 0.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.search_latency", description=__doc__)
    parser.add_argument("--database", required=True)
    parser.add_argument("--nats", required=True)
    parser.add_argument("--schema", required=True, help="the service schema; <schema>_search")
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=25.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=2)
    args = parser.parse_args(argv)
    with socket.socket() as probe:
        probe.bind((_LOOPBACK, 0))
        port = int(probe.getsockname()[1])
    settings = Settings(
        database_url=args.database,
        nats_url=args.nats,
        db_schema=args.schema,
        http_port=port,
        jwt_secret=SecretStr(secrets.token_urlsafe(48)),
        secret_key=SecretStr(Fernet.generate_key().decode()),
        # The same on every run: the first one's data keys are wrapped with it.
        key_encryption_key=SecretStr(
            base64.urlsafe_b64encode(hashlib.sha256(args.schema.encode()).digest()).decode()
        ),
    )
    migrate_database(settings)
    assert settings.jwt_secret is not None
    token = issue_token(settings.jwt_secret, "bench@local", "service", ttl=timedelta(hours=1))
    with _gateway(settings) as gateway:
        cpu_before = gateway.cpu_times()
        load_before = os.getloadavg()[0]
        found = asyncio.run(
            _measure(
                f"http://{_LOOPBACK}:{port}",
                token,
                args.customers,
                args.warmup,
                args.seconds,
                args.clients,
            )
        )
        cpu_after = gateway.cpu_times()
    cpu = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    every = [s for values in found.values() for s in values]
    for name, values in sorted(found.items()):
        print(
            f"{name:16s} n {len(values):5d}  p50 {_ms(values, 0.5):7.1f}"
            f"  p99 {_ms(values, 0.99):7.1f}  max {_ms(values, 1.0):7.1f} ms"
        )
    print(
        f"all {len(every)}: p50 {_ms(every, 0.5):.1f} ms, p99 {_ms(every, 0.99):.1f} ms,"
        f" mean {1000 * statistics.fmean(every):.1f} ms; gateway CPU"
        f" {1000 * cpu / len(every):.2f} ms a search (with warm-up);"
        f" load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
