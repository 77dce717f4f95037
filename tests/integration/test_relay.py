"""The relay on real NATS JetStream and PostgreSQL: every event once, through crashes and outages.

Each test has its own NATS server (so the stream holds only its messages) and its own
schema (so positions start at 1). The fault tests run the relay, and for the outage the
gateway, as real processes, and compare what a JetStream consumer receives with what the
event log says should have been published: every id exactly once.
"""

from __future__ import annotations

import asyncio
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
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import nats
import psycopg
import pytest
from nats.js.api import StorageType, StreamConfig
from psycopg import sql

from domain.service import CustomerService
from infrastructure.database import drop_schema
from infrastructure.eventstore import build_service
from infrastructure.servers import EmbeddedNats
from infrastructure.settings import Settings
from infrastructure.tokens import issue_token
from projections.asyncapi import asyncapi_document
from projections.cloudevents import event_message
from projections.notifications import Lookups, notification_messages
from workers.__main__ import child_environment, migrate_database
from workers.follower import Follower
from workers.jetstream import DUPLICATE_WINDOW_SECONDS
from workers.relay import RetryPolicy, open_relay

Stack = tuple[Settings, CustomerService, EmbeddedNats]


# ---- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture
def stack(make_settings: Any, database_url: str, server_data_dir: Path) -> Iterator[Stack]:
    """A NATS server and a migrated schema of this test's own, and the service on them."""
    nats_server = EmbeddedNats(server_data_dir / "nats", keep_data=False)
    nats_server.start()
    settings = make_settings(
        database_url=database_url,
        nats_url=nats_server.url,
        db_schema=f"r_{secrets.token_hex(5)}",
        log_format="json",
    )
    migrate_database(settings)
    service = build_service(settings)
    yield settings, service, nats_server
    service.close()
    nats_server.close()
    drop_schema(database_url, settings.db_schema)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def relay_position(settings: Settings, service: CustomerService) -> int:
    """The relay's saved position (0 before its table exists)."""
    with psycopg.connect(settings.database_url or "", autocommit=True) as connection:
        try:
            row = connection.execute(
                sql.SQL("SELECT position FROM {} WHERE relay = 'relay'").format(
                    sql.Identifier(settings.db_schema, "relay_positions")
                )
            ).fetchone()
        except psycopg.errors.UndefinedTable:
            return 0
    return int(row[0]) if row else 0


def head(service: CustomerService) -> int:
    return service.recorder.max_notification_id() or 0


def expected_messages(service: CustomerService) -> dict[str, str]:
    """Every message the log asks for, id → subject, built as the relay builds them."""
    expected: dict[str, str] = {}
    notifications = service.recorder.select_notifications(start=1, limit=1_000_000)
    for n in notifications:
        event = service.mapper.to_domain_event(n)
        message = event_message(n.id, event)
        if message is not None:
            for m in [message, *notification_messages(n.id, event, Lookups(lambda *_: None))]:
                expected[m.msg_id] = m.subject
    return expected


async def _consume(url: str) -> list[tuple[str, dict[str, str], dict[str, Any]]]:
    client = await nats.connect(url, connect_timeout=5)
    try:
        js = client.jetstream()
        stored = (await js.stream_info("CRM")).state.messages
        subscription = await js.pull_subscribe("crm.>", stream="CRM")
        received: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        while len(received) < stored:
            for message in await subscription.fetch(min(500, stored - len(received)), timeout=5):
                received.append((message.subject, message.headers or {}, json.loads(message.data)))
                await message.ack()
        return received
    finally:
        await client.close()


def consume_all(url: str) -> list[tuple[str, dict[str, str], dict[str, Any]]]:
    """Everything in the CRM stream, as a fresh JetStream consumer receives it."""
    return asyncio.run(_consume(url))


def check_exactly_once(service: CustomerService, url: str) -> list[dict[str, Any]]:
    """The consumer receives each expected message once, each valid against the AsyncAPI."""
    received = consume_all(url)
    expected = expected_messages(service)
    counts = Counter(body["id"] for _, _, body in received)
    assert [i for i, n in counts.items() if n > 1] == [], "duplicates reached the consumer"
    assert set(counts) == set(expected), "missing or unexpected messages"
    document = asyncapi_document()
    channels = {c["address"]: c for c in document["channels"].values()}
    for subject, headers, body in received:
        assert headers["Nats-Msg-Id"] == body["id"] and expected[body["id"]] == subject
        [ref] = channels[subject]["messages"].values()
        payload = document["components"]["messages"][ref["$ref"].rsplit("/", 1)[1]]["payload"]
        schema = {"$ref": payload["$ref"], "components": document["components"]}
        jsonschema.Draft202012Validator(schema).validate(body)
    positions = [body["position"] for _, _, body in received]
    assert positions == sorted(positions), "the stream is in log order"
    return [body for _, _, body in received]


def register_many(service: CustomerService, count: int, threads: int = 4) -> None:
    def register(share: int) -> None:
        for _ in range(share):
            service.register_customer(
                {"first_name": "Ada", "email": f"{secrets.token_hex(8)}@example.com"}
            )

    workers = [threading.Thread(target=register, args=(count // threads,)) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def process_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment `customers run` gives its processes, on this test's schema."""
    return {
        **child_environment(settings),
        "CUSTOMERS_DB_SCHEMA": settings.db_schema,
        "CUSTOMERS_LOG_FORMAT": "json",
        **extra,
    }


def start_relay(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    """`python -m workers worker relay`, as `customers run` starts the workers."""
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "workers", "worker", "relay"],
            env=process_env(settings),
            stdout=output,
            stderr=output,
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(25)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ---- in-process ----------------------------------------------------------------------------


def test_the_relay_publishes_each_event_once_and_creates_the_stream(stack: Stack) -> None:
    """Registrations and a secret-bearing system reach JetStream once each, valid, secret-free."""
    settings, service, nats_server = stack
    customer = service.register_customer(
        {"first_name": "Ada", "email": "ada@example.com", "notification_channels": ["email"]}
    ).aggregate_id
    service.install_system(customer, {"system_type": "alarm", "secret": "hunter2"})
    register_many(service, 20)
    relay = open_relay(settings, service)
    follower = Follower("relay", service, relay, settings.database_url or "")
    thread = threading.Thread(target=follower.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: relay_position(settings, service) == head(service), 20, "the relay")
    finally:
        follower.stop()
        thread.join(10)
        relay.close()
    bodies = check_exactly_once(service, nats_server.url)
    assert len(bodies) == 1 + 1 + 20 + 1 + 20  # registrations, system, and welcome emails
    assert not any("hunter2" in json.dumps(b) or "sealed_secret" in json.dumps(b) for b in bodies)

    async def stream() -> StreamConfig:
        client = await nats.connect(nats_server.url)
        try:
            return (await client.jetstream().stream_info("CRM")).config
        finally:
            await client.close()

    config = asyncio.run(stream())
    assert config.subjects == ["crm.>"] and config.storage == StorageType.FILE
    assert config.duplicate_window == DUPLICATE_WINDOW_SECONDS >= 120


def test_an_existing_stream_is_brought_to_the_relay_s_settings(stack: Stack) -> None:
    """A CRM stream made by hand with a short window gets the relay's subjects and window."""
    settings, service, nats_server = stack

    async def make_stream() -> None:
        client = await nats.connect(nats_server.url)
        try:
            await client.jetstream().add_stream(
                name="CRM", subjects=["crm.customer.>"], duplicate_window=10, num_replicas=1
            )
        finally:
            await client.close()

    asyncio.run(make_stream())
    service.register_customer({"first_name": "Ada"})
    relay = open_relay(settings, service)
    try:
        batch = [
            (n.id, service.mapper.to_domain_event(n))
            for n in service.recorder.select_notifications(start=1, limit=10)
        ]
        relay.process(batch)
    finally:
        relay.close()
    check_exactly_once(service, nats_server.url)


def test_a_relay_started_while_nats_is_down_publishes_once_it_is_up(stack: Stack) -> None:
    """No NATS at start: the batch waits, its position unmoved, and goes out when NATS starts."""
    settings, service, nats_server = stack
    service.register_customer({"first_name": "Ada", "email": "ada@example.com"})
    nats_server.stop()
    relay = open_relay(settings, service)
    relay.retry = RetryPolicy(first_delay=0.2, max_delay=0.5, give_up_after=60)
    batch = [
        (n.id, service.mapper.to_domain_event(n))
        for n in service.recorder.select_notifications(start=1, limit=100)
    ]
    worker = threading.Thread(target=relay.process, args=(batch,))
    worker.start()
    time.sleep(3)
    assert relay.position() == 0
    nats_server.start()
    worker.join(30)
    relay.close()
    assert relay.position() == batch[-1][0]
    check_exactly_once(service, nats_server.url)


def test_tail_prints_the_events_after_a_position(stack: Stack) -> None:
    """`customers tail SUBJECT --from-position N --count K --json` prints the K events after N."""
    settings, service, nats_server = stack
    register_many(service, 8, threads=1)
    relay = open_relay(settings, service)
    try:
        batch = [
            (n.id, service.mapper.to_domain_event(n))
            for n in service.recorder.select_notifications(start=1, limit=1000)
        ]
        relay.process(batch)
    finally:
        relay.close()
    registered = [b for b in consume_all(nats_server.url) if b[0] == "crm.customer.registered"]
    after = registered[2][2]["position"]
    tail = ["tail", "crm.customer.>", "--from-position", str(after), "--count", "3", "--json"]
    printed = subprocess.run(
        [sys.executable, "-m", "workers", *tail],
        env=process_env(settings),
        capture_output=True,
        timeout=30,
        check=True,
    )
    lines = [json.loads(line) for line in printed.stdout.decode().splitlines()]
    assert [b["id"] for b in lines] == [b[2]["id"] for b in registered[3:6]]


# ---- real processes, real faults -----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
def test_nats_down_for_ten_seconds_during_a_burst_loses_and_repeats_nothing(
    stack: Stack, server_data_dir: Path
) -> None:
    """1,000 registrations over HTTP, NATS down for 10 s: all accepted, each published once."""
    settings, service, nats_server = stack
    port = free_port()
    env = process_env(settings, CUSTOMERS_HTTP_PORT=str(port))
    gateway_log = (server_data_dir / "gateway.log").open("ab")
    gateway = subprocess.Popen(
        [sys.executable, "-m", "gateway"], env=env, stdout=gateway_log, stderr=gateway_log
    )
    relay = start_relay(settings, server_data_dir / "relay.log")
    base = f"http://127.0.0.1:{port}"
    assert settings.jwt_secret is not None
    token = issue_token(settings.jwt_secret.get_secret_value(), "burst@test", "service")
    headers = {"Authorization": f"Bearer {token}"}
    outage: dict[str, Any] = {}

    async def burst() -> None:
        async with aiohttp.ClientSession(base, headers=headers) as http:
            deadline = time.monotonic() + 30
            while True:  # the gateway is up
                try:
                    async with http.get("/healthz") as answer:
                        if answer.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                assert time.monotonic() < deadline, "the gateway did not start"
                await asyncio.sleep(0.2)
            done = 0
            statuses: Counter[int] = Counter()

            async def register(n: int) -> None:
                nonlocal done
                body = {"first_name": f"Burst {n}", "email": f"{secrets.token_hex(8)}@example.com"}
                async with http.post("/v1/customers", json=body) as answer:
                    statuses[answer.status] += 1
                done += 1

            async def client(numbers: range) -> None:
                for n in numbers:
                    await register(n)
                    if done == 300 and "stopped" not in outage:
                        # Mid-burst: NATS goes away; the commands keep coming.
                        outage["stopped"] = time.monotonic()
                        await asyncio.to_thread(nats_server.stop)
                        async with http.get("/readyz") as ready:
                            outage["readyz"] = (ready.status, await ready.json())

            await asyncio.gather(*(client(range(i, 1000, 8)) for i in range(8)))
            outage["statuses"] = statuses
            outage["burst_done"] = time.monotonic()
            # The backlog grows while NATS is down: the relay's position stands still.
            outage["backlog"] = head(service) - relay_position(settings, service)
            await asyncio.sleep(max(0.0, outage["stopped"] + 10 - time.monotonic()))
            await asyncio.to_thread(nats_server.start)
            async with http.get("/readyz") as ready:
                outage["readyz_after"] = ready.status

    try:
        asyncio.run(burst())
        assert outage["statuses"] == {201: 1000}, "the write side kept accepting commands"
        status, problem = outage["readyz"]
        assert status == 503
        assert (problem["checks"]["nats"], problem["checks"]["postgres"]) == ("down", "up")
        assert outage["readyz_after"] == 200
        assert outage["backlog"] > 1000
        # NATS is back: the backlog drains.
        wait_for(lambda: relay_position(settings, service) == head(service), 60, "the drain")
    finally:
        stop(relay)
        stop(gateway)
        gateway_log.close()
    bodies = check_exactly_once(service, nats_server.url)
    assert len([b for b in bodies if b["type"] == "crm.customer.registered.v1"]) == 1000
    log = (server_data_dir / "relay.log").read_text()
    assert "relay_publish_failed" in log, "the outage was logged"


_HELD_RELAY = """
import os, runpy, sys, time
from pathlib import Path
from workers import relay

marker, hold_at = Path(os.environ["HOLD_MARKER"]), int(os.environ["HOLD_AT_SAVE"])
save, saves = relay.RelayPositions.save, []

def held_save(self, name, position, last_event_at=None, **also):
    # Relay.process saves only after every ack of the batch: holding here keeps the relay
    # exactly between JetStream's acks and its saved position, until the test kills it.
    saves.append(position)
    if len(saves) == hold_at:
        marker.write_text(str(position))
        time.sleep(3600)
    save(self, name, position, last_event_at, **also)

relay.RelayPositions.save = held_save
sys.argv = ["workers", "worker", "relay"]
runpy.run_module("workers", run_name="__main__")
"""


def start_held_relay(settings: Settings, log: Path, marker: Path, at_save: int) -> Any:
    """The relay process of `start_relay`, held forever before its `at_save`-th position save."""
    env = process_env(settings, HOLD_MARKER=str(marker), HOLD_AT_SAVE=str(at_save))
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-c", _HELD_RELAY], env=env, stdout=output, stderr=output
        )


@pytest.mark.slow
def test_a_relay_killed_mid_batch_republishes_and_jetstream_drops_the_repeats(
    stack: Stack, server_data_dir: Path
) -> None:
    """SIGKILL between JetStream's acks and the saved position: repeats that nobody sees."""
    settings, service, nats_server = stack
    register_many(service, 1500)  # 4,500 events: nine batches of 500
    log = server_data_dir / "relay.log"
    marker = server_data_dir / "held-at"

    async def newest_published_position() -> int:
        client = await nats.connect(nats_server.url)
        try:
            js = client.jetstream()
            last = (await js.stream_info("CRM")).state.last_seq
            return int(json.loads((await js.get_msg("CRM", last)).data or b"{}")["position"])
        finally:
            await client.close()

    # Two batches saved, the third acknowledged by JetStream and not yet saved: killed there.
    relay = start_held_relay(settings, log, marker, at_save=3)
    try:
        wait_for(marker.exists, 60, "the relay to ack its third batch")
        held_at = int(marker.read_text())
        saved = relay_position(settings, service)
        assert 0 < saved < held_at < head(service), "two batches saved, the third not"
        # The batch's last events may be internal (no message): its newest message is the mark.
        assert saved < asyncio.run(newest_published_position()) <= held_at, "the batch is acked"
    finally:
        os.kill(relay.pid, signal.SIGKILL)
        relay.wait()
    assert relay_position(settings, service) == saved

    relay = start_relay(settings, log)
    try:
        wait_for(lambda: relay_position(settings, service) == head(service), 60, "the restart")
    finally:
        stop(relay)
    check_exactly_once(service, nats_server.url)
    assert "relay_duplicates_dropped" in log.read_text(), "the restart did republish"
