"""The service as real processes on servers of the test's own, a write load, and the audit.

Each fault test breaks something on purpose while `Load` sends registrations (every third
followed by a profile change) through a real gateway process, then `audit` checks what
the issue asks for: every acknowledged command is in the event store, every customer of
the event store is in the search read model once, every read model reached the head
with nothing parked, and a fresh JetStream consumer receives every message the log asks
for exactly once. The servers are the test's own (`fault_servers`), so stopping them
hurts no other test.

Faults tested elsewhere, not repeated here: NATS stopped for 10 s during 1,000 commands
and the relay SIGKILLed (tests/integration/test_relay.py); two gateways with standby
workers whose active runners are SIGKILLed, and a NATS cluster node
(tests/deploy/test_scale_out.py); an import worker SIGKILLed mid-file
(tests/deploy/test_import_crash.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import aiohttp
import nats
import psycopg
import pytest
from psycopg import sql
from tests.faults.write_load import TIMEOUT, Load

from domain.service import CustomerService
from infrastructure.eventstore import build_service
from infrastructure.servers import EmbeddedNats, EmbeddedPostgres
from infrastructure.settings import Settings
from infrastructure.tokens import issue_token
from projections.base import read_model_schema
from projections.catalog import READ_MODELS, open_read_model
from projections.cloudevents import STREAM, SUBJECT_PREFIX, event_message
from projections.notifications import Lookups, notification_messages
from workers.__main__ import child_environment, migrate_database
from workers.relay import RelayPositions
from workers.runners import follower_names

REGISTERED_TOPIC = "domain.customers:Customer.Registered"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll `condition` until true; the monotonic time it first held."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.1)
    return time.monotonic()


@pytest.fixture(name="wait_for")
def wait_for_fixture() -> Callable[[Callable[[], bool], float, str], float]:
    """`wait_for(condition, timeout, what)` for the tests: conftest is no importable module."""
    return wait_for


@dataclass
class FaultServers:
    postgres: EmbeddedPostgres
    nats: EmbeddedNats


@pytest.fixture
def fault_servers(server_data_dir: Path) -> Iterator[FaultServers]:
    """An embedded PostgreSQL and NATS of this test's own, which it may stop and start."""
    postgres = EmbeddedPostgres(server_data_dir / "postgres", keep_data=False)
    broker = EmbeddedNats(server_data_dir / "nats", keep_data=False)
    try:
        postgres.start()
        broker.start()
        yield FaultServers(postgres, broker)
    finally:
        broker.close()
        postgres.close()


@pytest.fixture
def fault_settings(make_settings: Any, fault_servers: FaultServers) -> Settings:
    """Settings for those servers, migrated as `customers run` migrates."""
    settings: Settings = make_settings(
        database_url=fault_servers.postgres.url,
        nats_url=fault_servers.nats.url,
        db_schema="faults",
        log_format="json",
    )
    migrate_database(settings)
    return settings


# ---- the service's processes ---------------------------------------------------------------


class Processes:
    """The gateway and the workers as `customers run` starts them, each logging to a file."""

    def __init__(self, settings: Settings, folder: Path) -> None:
        self.settings = settings
        self.folder = folder
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            **child_environment(settings),
            "CUSTOMERS_HTTP_HOST": "127.0.0.1",
            "CUSTOMERS_HTTP_PORT": str(self.port),
            "CUSTOMERS_LOG_FORMAT": "json",
        }
        self.running: dict[str, subprocess.Popen[bytes]] = {}
        folder.mkdir(parents=True, exist_ok=True)

    def start(self, name: str) -> subprocess.Popen[bytes]:
        """Start `gateway` or the worker `name` (`all` for every follower in one process)."""
        gateway = name == "gateway"
        argv = ["-m", "gateway"] if gateway else ["-m", "workers", "worker", name]
        # Connection pools as deploy/ sizes them (one per thread of the process's pool).
        threads = "8" if gateway else "2"
        with (self.folder / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, *argv],
                env={**self.env, "PGAPPNAME": name, "CUSTOMERS_THREAD_POOL_SIZE": threads},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        self.running[name] = process
        if gateway:
            wait_for(self.gateway_ready, 60, "the gateway to be ready")
        else:
            time.sleep(3)  # a worker that cannot start exits within its first seconds
            assert process.poll() is None, f"{name} exited at start:\n{self.log_tails()}"
        return process

    def gateway_ready(self) -> bool:
        try:
            status, _ = asyncio.run(_get(f"{self.base}/readyz"))
        except (aiohttp.ClientError, OSError, TimeoutError):
            return False
        return status == 200

    def kill(self, name: str) -> None:
        process = self.running[name]
        process.send_signal(signal.SIGKILL)
        process.wait()

    def stop_all(self) -> None:
        for process in self.running.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.running.values():
            try:
                process.wait(25)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def log_tails(self) -> str:
        tails = []
        for name in self.running:
            with contextlib.suppress(OSError):
                text = (self.folder / f"{name}.log").read_text(errors="replace")
                # The access log would push out what went wrong.
                lines = [line for line in text.splitlines() if '"gateway.access"' not in line]
                tails.append(f"---- {name}\n" + "\n".join(lines[-60:]))
        return "\n".join(tails)


async def _get(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.get(url, timeout=TIMEOUT) as answer:
        return answer.status, await answer.text()


@pytest.fixture
def processes(fault_settings: Settings, server_data_dir: Path) -> Iterator[Processes]:
    """The service's processes for the test to start; stopped (and their logs shown) after."""
    started = Processes(fault_settings, server_data_dir / "logs")
    try:
        yield started
    finally:
        started.stop_all()
        # Captured output: pytest shows it for a failed test only.
        print(started.log_tails())


@pytest.fixture
def admin_token(fault_settings: Settings) -> str:
    """A bearer token the gateway of `processes` accepts."""
    assert fault_settings.jwt_secret is not None
    return issue_token(fault_settings.jwt_secret.get_secret_value(), "faults@test", "admin")


@pytest.fixture
def load(processes: Processes, admin_token: str) -> Iterator[Callable[..., Load]]:
    """Start a `Load` on the gateway of `processes`; it is stopped after the test anyway."""
    started: list[Load] = []
    token = admin_token

    def begin(**options: Any) -> Load:
        started.append(Load(processes.base, token, **options).start())
        return started[-1]

    yield begin
    for running in started:
        running.stop.set()


# ---- the audit -----------------------------------------------------------------------------


@dataclass
class Audit:
    """What the store, the read models and the stream hold once the followers drained."""

    settings: Settings
    service: CustomerService

    def registered_ids(self) -> Counter[str]:
        """Customer id -> how many Registered events the event store holds for it."""
        table = sql.Identifier(self.settings.db_schema, self.service.recorder.events_table_name)  # type: ignore[attr-defined]
        statement = sql.SQL("SELECT originator_id::text FROM {} WHERE topic = %s").format(table)
        with self._connect() as connection:
            rows = connection.execute(statement, (REGISTERED_TOPIC,)).fetchall()
        return Counter(str(row[0]) for row in rows)

    def search_rows(self) -> Counter[str]:
        """Customer id -> rows in the search read model's table."""
        schema = read_model_schema(self.settings.db_schema, "search")
        statement = sql.SQL("SELECT id::text FROM {}").format(sql.Identifier(schema, "customers"))
        with self._connect() as connection:
            return Counter(str(row[0]) for row in connection.execute(statement).fetchall())

    def head(self) -> int:
        return self.service.recorder.max_notification_id() or 0

    def positions(self) -> dict[str, int]:
        found = {}
        for name in READ_MODELS:
            model = open_read_model(self.settings, name)
            try:
                found[name] = model.position()
                assert model.parked_positions() == [], f"{name} parked events"
            finally:
                model.datastore.close()
        relay = RelayPositions(self.service.recorder.datastore, self.settings.db_schema)  # type: ignore[attr-defined]
        found["relay"] = relay.load("relay")
        return found

    def wait_until_drained(self, timeout: float = 90) -> None:
        head = self.head()
        wanted = set(follower_names()) & (set(READ_MODELS) | {"relay"})
        try:
            wait_for(
                lambda: all(p >= head for n, p in self.positions().items() if n in wanted),
                timeout,
                f"every follower to reach {head}",
            )
        except AssertionError as error:
            raise AssertionError(f"{error}: at {self.positions()}") from None

    def expected_message_ids(self) -> set[str]:
        """Every message id the log asks the relay for, built as the relay builds them."""
        expected: set[str] = set()
        start = 1
        lookups = Lookups(lambda *_: None)
        while notifications := self.service.recorder.select_notifications(start=start, limit=5000):
            for n in notifications:
                event = self.service.mapper.to_domain_event(n)
                message = event_message(n.id, event)
                if message is not None:
                    expected.add(message.msg_id)
                    expected.update(m.msg_id for m in notification_messages(n.id, event, lookups))
            start = notifications[-1].id + 1
        return expected

    def stream_ids(self) -> Counter[str]:
        """CloudEvents id -> how often a fresh JetStream consumer receives it."""
        assert self.settings.nats_url is not None
        return Counter(asyncio.run(_consume(self.settings.nats_url)))

    def assert_nothing_lost(self, load: Load) -> None:
        """Every acknowledged command stored; search, every read model and NATS agree, once."""
        self.wait_until_drained()
        stored = self.registered_ids()
        assert [i for i, n in stored.items() if n > 1] == [], "a customer registered twice"
        assert set(load.acknowledged) <= set(stored), "an acknowledged registration was lost"
        for customer_id, version in load.changed.items():
            customer = self.service.get_customer(UUID(customer_id))
            assert customer.version >= version, customer_id
            assert customer.profile.group == "faults", customer_id
        rows = self.search_rows()
        assert [i for i, n in rows.items() if n > 1] == [], "a search row twice"
        assert set(rows) == set(stored), "search lost or invented customers"
        received = self.stream_ids()
        assert [i for i, n in received.items() if n > 1] == [], "a consumer saw duplicates"
        assert set(received) == self.expected_message_ids(), "messages missing or unexpected"

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        assert self.settings.database_url is not None
        return psycopg.connect(self.settings.database_url, autocommit=True)


async def _consume(url: str) -> list[str]:
    client = await nats.connect(url, connect_timeout=5)
    try:
        js = client.jetstream(timeout=10)
        stored = (await js.stream_info(STREAM)).state.messages
        subscription = await js.pull_subscribe(f"{SUBJECT_PREFIX}.>", stream=STREAM)
        received: list[str] = []
        while len(received) < stored:
            for message in await subscription.fetch(min(500, stored - len(received)), timeout=10):
                received.append(json.loads(message.data)["id"])
                await message.ack()
        return received
    finally:
        await client.close()


@pytest.fixture
def audit(fault_settings: Settings) -> Iterator[Audit]:
    """The test's own view of the store, the read models and the stream."""
    service = build_service(fault_settings)
    # As the relay does at its start: the audit may look before the relay has started.
    RelayPositions(service.recorder.datastore, fault_settings.db_schema).create_table()  # type: ignore[attr-defined]
    try:
        yield Audit(fault_settings, service)
    finally:
        service.close()
