"""What the hash chain costs the write path: registrations/s with and without it.

`python -m bench.chain_cost [--seconds 8] [--rounds 3] [--threads 8 32]`

Registers customers through the service (no HTTP: the gateway's own cost would only blur
the difference) from several threads, so group commit saves many aggregates per
transaction, as in production. Each round measures the library's plain recorder and the
chained one on fresh schemas, interleaved, and the medians are printed: on a shared
machine the load of other jobs moves both alike. Uses `CUSTOMERS_DATABASE_URL` (default
the machine's test server).
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from cryptography.fernet import Fernet

from domain.sealing import SecretSealer
from domain.service import CustomerService
from infrastructure.database import drop_schema, postgres_env
from infrastructure.eventstore import NumberSequence, build_service, migrate_event_store
from infrastructure.settings import Settings

_DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _service(settings: Settings, *, chained: bool) -> CustomerService:
    if chained:
        return build_service(settings)
    assert settings.database_url is not None and settings.secret_key is not None
    env = postgres_env(settings.database_url, settings.db_schema, pool_size=8, max_overflow=8)
    service = CustomerService(env, sealer=SecretSealer(settings.secret_key.get_secret_value()))
    service.next_customer_number = NumberSequence(
        service, settings.db_schema, "customer_number_seq"
    )
    service.next_ticket_number = NumberSequence(service, settings.db_schema, "ticket_number_seq")
    return service


def _rate(service: CustomerService, threads: int, seconds: float) -> float:
    """Registrations per second from `threads` threads for `seconds`."""
    stop = time.monotonic() + seconds
    done = [0] * threads

    def work(index: int) -> None:
        while time.monotonic() < stop:
            service.register_customer(
                {"first_name": "Bench", "email": f"{secrets.token_hex(8)}@example.com"}
            )
            done[index] += 1

    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(threads)))
    return sum(done) / (time.monotonic() - started)


def _measure(url: str, *, chained: bool, threads: int, seconds: float) -> float:
    settings = Settings(
        database_url=url,
        db_schema=f"bench_chain_{secrets.token_hex(4)}",
        jwt_secret=secrets.token_urlsafe(32),
        secret_key=Fernet.generate_key().decode(),
        thread_pool_size=8,
    )
    migrate_event_store(settings)
    service = _service(settings, chained=chained)
    try:
        _rate(service, threads, 1.0)  # warm the pool and the caches
        return _rate(service, threads, seconds)
    finally:
        service.close()
        drop_schema(url, settings.db_schema)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[8, 32])
    arguments = parser.parse_args()
    url = os.environ.get("CUSTOMERS_DATABASE_URL", _DEFAULT_URL)
    print(f"load average before: {os.getloadavg()[0]:.1f} (other jobs share the machine)")
    for threads in arguments.threads:
        rates: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(arguments.rounds):
            for chained in (False, True):
                rate = _measure(url, chained=chained, threads=threads, seconds=arguments.seconds)
                rates[chained].append(rate)
                label = "chained" if chained else "plain"
                print(f"  {threads} threads, {label}: {rate:,.0f} registrations/s", flush=True)
        before, after = (statistics.median(rates[k]) for k in (False, True))
        print(
            f"{threads} threads: plain {before:,.0f}/s, chained {after:,.0f}/s"
            f" (median of {arguments.rounds}; {100 * (after / before - 1):+.1f}%)"
        )
    print(f"load average after: {os.getloadavg()[0]:.1f}; threads alive {threading.active_count()}")


if __name__ == "__main__":
    main()
