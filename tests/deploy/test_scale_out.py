"""Scale-out on one machine: two gateways, two of every worker, a three-node NATS cluster.

Everything runs as the real processes production runs (`python -m gateway`,
`python -m workers worker NAME`, `customers migrate`, `deploy/scripts/nats_stream.py`)
against one PostgreSQL and a NATS cluster of three `nats-server`s from the wheel, with
JetStream and the CRM stream replicated three times, all on loopback ports.

While registrations and profile changes arrive through both gateways, the test SIGKILLs
the active runner of every follower (found by its advisory lock in `pg_locks`, matched to
the process by `application_name`, which each process gets from libpq's PGAPPNAME) and
then the NATS server that leads the CRM stream. It measures how long each standby takes
to get the lock and to move the follower past the head of the log as it was at the kill,
and how long the relay takes to publish again after the stream leader died. Then it
checks that nothing was lost: every accepted registration is in the search read model
with its change, every read model is at the head with nothing parked, and a fresh
JetStream consumer receives every message the log asks for exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import nats
import psycopg
import pytest
from psycopg import sql

from domain.service import CustomerService
from infrastructure.eventstore import build_service
from infrastructure.servers import EmbeddedPostgres, find_nats_server
from infrastructure.settings import Settings
from infrastructure.tokens import issue_token
from projections.base import read_model_schema
from projections.catalog import READ_MODELS, open_read_model
from projections.cloudevents import STREAM, SUBJECT_PREFIX, event_message
from projections.notifications import Lookups, notification_messages
from workers.__main__ import child_environment
from workers.follower import leader_lock_key
from workers.relay import RelayPositions
from workers.runners import follower_names

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
NATS_STREAM_SCRIPT = ROOT / "deploy" / "scripts" / "nats_stream.py"
HEALTHCHECK_SCRIPT = ROOT / "deploy" / "scripts" / "healthcheck.py"

CLIENTS = 4
"""Concurrent HTTP clients, alternating between the two gateways."""
PAUSE_SECONDS = 0.02
"""Each client's pause between commands: a steady load, not a benchmark."""
LOCK_TAKEOVER_LIMIT = 10.0
RESUME_LIMIT = 20.0
"""Seconds within which a standby must hold the lock / move past the head at the kill."""
MAX_CONNECTIONS = 400
CONNECTIONS_NEEDED = 150
"""Ten workers and two gateways as deploy/ sizes them hold about 100 connections (the
summary prints them); an embedded server gets MAX_CONNECTIONS, a configured one is checked."""
RELAY_RESUME_LIMIT = 45.0
"""The relay retries a batch for 15 s before its runner restarts it: a stream leader
election (about 5 s) fits in the first round; this allows for two."""


# ---- the NATS cluster ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class NatsNode:
    name: str
    client_port: int
    cluster_port: int
    store: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.client_port}"


@dataclass
class NatsCluster:
    """Three `nats-server`s with JetStream, routed to each other on loopback."""

    folder: Path
    nodes: list[NatsNode] = field(default_factory=list)

    @property
    def url(self) -> str:
        return ",".join(node.url for node in self.nodes)

    def start(self, size: int = 3) -> None:
        executable = find_nats_server()
        self.nodes = [
            NatsNode(f"nats-{i}", free_port(), free_port(), self.folder / f"nats-{i}")
            for i in range(1, size + 1)
        ]
        routes = ",".join(f"nats://127.0.0.1:{node.cluster_port}" for node in self.nodes)
        for node in self.nodes:
            node.store.mkdir(parents=True)
            command = [str(executable), "-a", "127.0.0.1", "-p", str(node.client_port)]
            command += ["-n", node.name, "-js", "-sd", str(node.store)]
            command += ["--cluster_name", "customers", "--routes", routes]
            command += ["--cluster", f"nats://127.0.0.1:{node.cluster_port}"]
            with (node.store / "server.log").open("ab") as log:
                node.process = subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=log, stderr=log
                )
        for node in self.nodes:
            wait_for(lambda n=node: _accepts(n.client_port), 15, f"{node.name} to listen")

    def kill(self, name: str) -> None:
        [node] = [n for n in self.nodes if n.name == name]
        assert node.process is not None
        node.process.send_signal(signal.SIGKILL)
        node.process.wait()

    def stop(self) -> None:
        for node in self.nodes:
            if node.process is not None:
                stop_process(node.process)

    def stream_cluster(self) -> Any:
        """The CRM stream's cluster info: its leader and the state of its replicas."""

        async def info() -> Any:
            live = [n.url for n in self.nodes if n.process and n.process.poll() is None]
            client = await nats.connect(live, connect_timeout=2)
            try:
                return (await client.jetstream(timeout=5).stream_info(STREAM)).cluster
            finally:
                await client.close()

        return asyncio.run(info())


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
            return connection.recv(4).startswith(b"INFO")
    except OSError:
        return False


# ---- the service's processes ---------------------------------------------------------------


@dataclass
class Service:
    """One process of the service: a gateway or a worker, with its own log file."""

    name: str
    kind: str
    process: subprocess.Popen[bytes]
    log: Path
    port: int | None = None


def start_service(
    name: str, kind: str, argv: list[str], env: dict[str, str], folder: Path, port: int | None
) -> Service:
    log = folder / f"{name}.log"
    # PGAPPNAME: libpq's application_name, so pg_stat_activity tells whose connection it is.
    # Thread pools (and so event-store connection pools) as deploy/ sizes them.
    environment = {**env, "PGAPPNAME": name, "CUSTOMERS_THREAD_POOL_SIZE": "2"}
    if port is not None:
        environment["CUSTOMERS_HTTP_PORT"] = str(port)
        environment["CUSTOMERS_THREAD_POOL_SIZE"] = "8"
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, *argv], env=environment, stdout=output, stderr=output
        )
    return Service(name, kind, process, log, port)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(25)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll `condition` until true; the monotonic time it first held."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.05)
    return time.monotonic()


LOCK_HOLDER = """
SELECT a.application_name
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.classid::bigint = ((hashtext(%(key)s)::bigint >> 32) & 4294967295)
  AND l.objid::bigint = (hashtext(%(key)s)::bigint & 4294967295)
"""
"""Who holds the follower's leader lock: `pg_try_advisory_lock(hashtext(leader_lock_key))`
(workers.follower.LeaderLock) is a lock on a bigint key, split by pg_locks into classid
(high 32 bits) and objid (low 32 bits), with objsubid 1."""


class Observer:
    """The test's own view of the database: lock holders, positions, the head of the log."""

    def __init__(self, settings: Settings, service: CustomerService) -> None:
        assert settings.database_url is not None
        self.settings = settings
        self.service = service
        self.connection = psycopg.connect(settings.database_url, autocommit=True)
        self.models = {name: open_read_model(settings, name) for name in READ_MODELS}
        self.relay_positions = RelayPositions(
            service.recorder.datastore,  # type: ignore[attr-defined]
            settings.db_schema,
        )
        self.relay_positions.create_table()  # as the relay does; it may not have started yet

    def close(self) -> None:
        self.connection.close()
        for model in self.models.values():
            model.datastore.close()

    def lock_holders(self, follower: str) -> list[str]:
        key = leader_lock_key(self.service, follower)
        rows = self.connection.execute(LOCK_HOLDER, {"key": key}).fetchall()
        return [str(row[0]) for row in rows]

    def holder(self, follower: str, candidates: list[Service]) -> Service | None:
        names = {s.name: s for s in candidates}
        held = [names[h] for h in self.lock_holders(follower) if h in names]
        return held[0] if held else None

    def connections_by_process(self) -> dict[str, int]:
        """Open PostgreSQL connections per application_name (capacity planning)."""
        rows = self.connection.execute(
            "SELECT application_name, count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() GROUP BY application_name"
        ).fetchall()
        return {str(name): int(count) for name, count in rows}

    def bytes_per_event(self) -> int:
        """The events table with its indexes, per stored event (storage planning)."""
        table = sql.Identifier(self.settings.db_schema, "crm_events")
        row = self.connection.execute(
            sql.SQL("SELECT pg_total_relation_size({}::regclass) / count(*) FROM {}").format(
                sql.Literal(f'"{self.settings.db_schema}".crm_events'), table
            )
        ).fetchone()
        return int(row[0]) if row else 0

    def head(self) -> int:
        return self.service.recorder.max_notification_id() or 0

    def position(self, follower: str) -> int:
        if follower in self.models:
            return self.models[follower].position()
        if follower == "relay":
            return self.relay_positions.load("relay")
        raise AssertionError(f"no way to read the position of {follower!r}: add it here")


# ---- the load ------------------------------------------------------------------------------


@dataclass
class Load:
    """Registrations, and a profile change of every third one, through both gateways."""

    bases: list[str]
    token: str
    stop: threading.Event = field(default_factory=threading.Event)
    registered: dict[str, str] = field(default_factory=dict)
    """customer id -> email of every 201."""
    changed: set[str] = field(default_factory=set)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    per_gateway: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self.thread.start()

    def finish(self) -> None:
        self.stop.set()
        assert self.thread is not None
        self.thread.join(60)
        assert not self.thread.is_alive(), "the load did not stop"

    async def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with aiohttp.ClientSession(headers=headers) as http:
            await asyncio.gather(*(self._client(http, i) for i in range(CLIENTS)))

    async def _client(self, http: aiohttp.ClientSession, number: int) -> None:
        sent = 0
        while not self.stop.is_set():
            base = self.bases[(number + sent) % len(self.bases)]
            sent += 1
            try:
                await self._register(http, base, change=sent % 3 == 0)
            except (aiohttp.ClientError, TimeoutError) as error:
                self.errors.append(f"{base}: {error!r}")
            await asyncio.sleep(PAUSE_SECONDS)

    async def _register(self, http: aiohttp.ClientSession, base: str, *, change: bool) -> None:
        email = f"{secrets.token_hex(8)}@example.com"
        body = {"first_name": "Scale", "last_name": "Out", "email": email}
        key = {"Idempotency-Key": secrets.token_hex(12)}
        timeout = aiohttp.ClientTimeout(total=30)
        async with http.post(f"{base}/v1/customers", json=body, headers=key, timeout=timeout) as r:
            self.statuses[("register", r.status)] += 1
            self.per_gateway[base] += 1
            if r.status != 201:
                self.errors.append(f"register via {base}: {r.status} {await r.text()}")
                return
            customer_id = (await r.json())["id"]
        self.registered[customer_id] = email
        if not change:
            return
        other = self.bases[(self.bases.index(base) + 1) % len(self.bases)]
        async with http.patch(
            f"{other}/v1/customers/{customer_id}",
            json={"group": "scale-out"},
            headers={"If-Match": '"1"'},
            timeout=timeout,
        ) as r:
            self.statuses[("change", r.status)] += 1
            if r.status != 200:
                self.errors.append(f"change via {other}: {r.status} {await r.text()}")
                return
        self.changed.add(customer_id)


# ---- checks --------------------------------------------------------------------------------


def expected_message_ids(service: CustomerService) -> set[str]:
    """Every message id the log asks the relay for, built as the relay builds them."""
    expected: set[str] = set()
    start = 1
    while True:
        notifications = service.recorder.select_notifications(start=start, limit=5000)
        if not notifications:
            return expected
        for n in notifications:
            event = service.mapper.to_domain_event(n)
            message = event_message(n.id, event)
            if message is not None:
                expected.add(message.msg_id)
                expected.update(m.msg_id for m in notification_messages(n.id, event, _NO_PROFILES))
        start = notifications[-1].id + 1


def _no_profile(*_: Any) -> None:
    return None


_NO_PROFILES = Lookups(_no_profile)


def consume_stream(url: str) -> list[tuple[str, str]]:
    """(Nats-Msg-Id, CloudEvents id) of every message in the stream, via a fresh consumer."""

    async def consume() -> list[tuple[str, str]]:
        client = await nats.connect(url.split(","), connect_timeout=5)
        try:
            js = client.jetstream(timeout=10)
            stored = (await js.stream_info(STREAM)).state.messages
            subscription = await js.pull_subscribe(f"{SUBJECT_PREFIX}.>", stream=STREAM)
            received: list[tuple[str, str]] = []
            while len(received) < stored:
                batch = await subscription.fetch(min(500, stored - len(received)), timeout=10)
                for message in batch:
                    headers = message.headers or {}
                    received.append(
                        (headers.get("Nats-Msg-Id", ""), json.loads(message.data)["id"])
                    )
                    await message.ack()
            return received
        finally:
            await client.close()

    return asyncio.run(consume())


def search_rows(settings: Settings) -> dict[str, str | None]:
    """customer id -> group, straight from the search read model's table."""
    assert settings.database_url is not None
    table = sql.Identifier(read_model_schema(settings.db_schema, "search"), "customers")
    with psycopg.connect(settings.database_url) as connection:
        rows = connection.execute(
            sql.SQL("SELECT id::text, customer_group FROM {}").format(table)
        ).fetchall()
    return {row[0]: row[1] for row in rows}


def readyz(base: str) -> tuple[int, Any]:
    async def ask() -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{base}/readyz", timeout=aiohttp.ClientTimeout(total=10)) as answer,
        ):
            return answer.status, await answer.json(content_type=None)

    return asyncio.run(ask())


# ---- the test ------------------------------------------------------------------------------


@pytest.fixture
def cluster(server_data_dir: Path) -> Iterator[NatsCluster]:
    nats_cluster = NatsCluster(server_data_dir / "nats")
    try:
        nats_cluster.start()
        yield nats_cluster
    finally:
        nats_cluster.stop()


@pytest.fixture
def scale_database(server_data_dir: Path) -> Iterator[str]:
    """A PostgreSQL database of this test's own, with room for every process's connections.

    Its own server (or, with CUSTOMERS_TEST_DATABASE_URL, its own database there), for two
    reasons: ten workers and two gateways sized as deploy/ sizes them hold about 100
    connections, the embedded server's whole default; and the followers' advisory locks
    are keyed by follower name within a database, so a runner of another test sharing the
    database would hold `follower:search` and keep these workers standing by.
    """
    configured = os.environ.get("CUSTOMERS_TEST_DATABASE_URL")
    if configured:
        yield from _database_on(configured)
        return
    server = EmbeddedPostgres(
        server_data_dir / "postgres", keep_data=False, max_connections=MAX_CONNECTIONS
    )
    try:
        server.start()
        yield server.url
    finally:
        server.close()


def _database_on(server_url: str) -> Iterator[str]:
    name = f"scale_{secrets.token_hex(4)}"
    with psycopg.connect(server_url, autocommit=True) as connection:
        row = connection.execute(
            "SELECT current_setting('max_connections')::int - count(*) FROM pg_stat_activity"
        ).fetchone()
        free = int(row[0]) if row else 0
        if free < CONNECTIONS_NEEDED:
            pytest.fail(
                f"the scale-out test needs about {CONNECTIONS_NEEDED} free PostgreSQL"
                f" connections; {server_url.split('@')[-1]} has {free}: raise max_connections"
            )
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(server_url, autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def scale_settings(make_settings: Any, scale_database: str, cluster: NatsCluster) -> Settings:
    settings: Settings = make_settings(
        database_url=scale_database, nats_url=cluster.url, log_format="json"
    )
    return settings


def test_two_gateways_and_standby_workers_survive_killed_leaders_and_a_nats_node(
    scale_settings: Settings, cluster: NatsCluster, server_data_dir: Path
) -> None:
    settings = scale_settings
    followers = follower_names()
    missing = {"search", "relay"} - set(followers)
    if missing:
        pytest.skip(f"followers not built yet: {sorted(missing)}")
    # child_environment passes the URLs and secrets; the rest is set here.
    env = {
        **child_environment(settings),
        "CUSTOMERS_DB_SCHEMA": settings.db_schema,
        "CUSTOMERS_LOG_FORMAT": "json",
        "CUSTOMERS_LOG_LEVEL": "INFO",
    }
    logs = server_data_dir / "logs"
    logs.mkdir()

    # The one-shot steps of a deployment, in their order: the stream, then the schema.
    created = subprocess.run(
        [sys.executable, str(NATS_STREAM_SCRIPT), "--replicas", "3", "--timeout", "60"],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert created.returncode == 0, created.stderr
    assert "3 replicas" in created.stdout
    migrated = subprocess.run(
        [sys.executable, "-m", "workers", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert migrated.returncode == 0, migrated.stderr

    processes: list[Service] = []
    service = build_service(settings)
    observer = Observer(settings, service)
    load: Load | None = None
    try:
        gateways = [
            start_service(f"gateway-{i}", "gateway", ["-m", "gateway"], env, logs, free_port())
            for i in (1, 2)
        ]
        workers = {
            name: [
                start_service(
                    f"{name}-{i}", name, ["-m", "workers", "worker", name], env, logs, None
                )
                for i in (1, 2)
            ]
            for name in followers
        }
        processes = gateways + [w for pair in workers.values() for w in pair]
        bases = [f"http://127.0.0.1:{g.port}" for g in gateways]

        for base, gateway in zip(bases, gateways, strict=True):
            wait_for(lambda b=base: _ready(b), 60, f"{gateway.name} to be ready")
            # The image's HEALTHCHECK script, against a real gateway.
            check = subprocess.run(
                [sys.executable, str(HEALTHCHECK_SCRIPT)],
                env={**env, "CUSTOMERS_HTTP_PORT": str(gateway.port)},
                capture_output=True,
                timeout=10,
            )
            assert check.returncode == 0, check.stderr
        for name, pair in workers.items():
            wait_for(lambda n=name, p=pair: observer.holder(n, p) is not None, 60, f"{name} leader")
        connections = observer.connections_by_process()
        assert settings.jwt_secret is not None
        token = issue_token(settings.jwt_secret.get_secret_value(), "scale@test", "admin")
        load = Load(bases, token)
        load.start()
        wait_for(lambda: len(load.registered) >= 50, 60, "the first registrations")

        takeovers: dict[str, dict[str, float]] = {}
        for name, pair in workers.items():
            active = observer.holder(name, pair)
            assert active is not None
            standby = next(w for w in pair if w is not active)
            os.kill(active.process.pid, signal.SIGKILL)
            killed_at = time.monotonic()
            active.process.wait()
            head_at_kill = observer.head()
            locked_at = wait_for(
                lambda n=name, s=standby: observer.holder(n, [s]) is s,
                LOCK_TAKEOVER_LIMIT,
                f"{standby.name} to take the {name} lock",
            )
            resumed_at = wait_for(
                lambda n=name, h=head_at_kill: observer.position(n) > h,
                RESUME_LIMIT,
                f"{standby.name} to process past position {head_at_kill}",
            )
            takeovers[name] = {
                "lock_s": round(locked_at - killed_at, 2),
                "resume_s": round(resumed_at - killed_at, 2),
            }

        # The NATS server leading the CRM stream dies; the stream has two replicas left.
        leader = cluster.stream_cluster().leader
        cluster.kill(leader)
        killed_at = time.monotonic()
        head_at_kill = observer.head()
        relay_resumed_at = wait_for(
            lambda: observer.position("relay") > head_at_kill,
            RELAY_RESUME_LIMIT,
            "the relay to publish again after the stream leader died",
        )
        new_leader = cluster.stream_cluster().leader
        takeovers["nats stream leader"] = {"resume_s": round(relay_resumed_at - killed_at, 2)}
        # One NATS server down is not an outage: both gateways stay ready.
        for base in bases:
            for _ in range(3):
                status, body = readyz(base)
                assert status == 200, (base, body)

        wait_for(lambda: len(load.registered) >= 300, 60, "300 registrations")
        load.finish()

        # Everything drains: every follower at the head of the log.
        head = observer.head()
        for name in followers:
            wait_for(lambda n=name: observer.position(n) >= head, 90, f"{name} to reach {head}")
        bytes_per_event = observer.bytes_per_event()
    except BaseException:
        _print_log_tails(processes, cluster)
        raise
    finally:
        if load is not None and not load.stop.is_set():
            load.stop.set()
        for process in processes:
            stop_process(process.process)
        observer.close()

    try:
        summary = {
            "registered": len(load.registered),
            "changed": len(load.changed),
            "per_gateway": dict(load.per_gateway),
            "log_head": head,
            "nats_leader_killed": leader,
            "nats_new_leader": new_leader,
            "takeover": takeovers,
            "postgres_connections": connections,
            "event_table_bytes_per_event": bytes_per_event,
        }
        print("\nscale-out:", json.dumps(summary, indent=2))
        assert load.errors == [], load.errors[:5]
        assert all(load.per_gateway[b] > 50 for b in bases), "commands went through both"
        assert new_leader != leader

        # Search: every accepted registration, with its change, and nothing else.
        rows = search_rows(settings)
        assert set(rows) == set(load.registered), "search lost or invented customers"
        assert {i for i, group in rows.items() if group == "scale-out"} == load.changed

        # Every read model at the head with nothing parked.
        for name in READ_MODELS:
            model = open_read_model(settings, name)
            try:
                assert model.position() == head, name
                assert model.parked_positions() == [], name
            finally:
                model.datastore.close()

        # JetStream: every message the log asks for, once, whatever the relay repeated.
        received = consume_stream(cluster.url)
        counts = Counter(event_id for _, event_id in received)
        assert [i for i, n in counts.items() if n > 1] == [], "a consumer saw duplicates"
        assert all(msg_id == event_id for msg_id, event_id in received)
        assert set(counts) == expected_message_ids(service), "messages missing or unexpected"
    finally:
        service.close()


def _ready(base: str) -> bool:
    try:
        status, _ = readyz(base)
    except (aiohttp.ClientError, OSError, TimeoutError):
        return False
    return status == 200


def _print_log_tails(processes: list[Service], cluster: NatsCluster) -> None:
    """What each process said last: the test's folder is deleted after a failure too."""
    logs = [(s.name, s.log) for s in processes]
    logs += [(n.name, n.store / "server.log") for n in cluster.nodes]
    for name, path in logs:
        with contextlib.suppress(OSError):
            lines = path.read_text(errors="replace").splitlines()[-15:]
            print(f"\n---- {name} (last {len(lines)} lines)\n" + "\n".join(lines))
