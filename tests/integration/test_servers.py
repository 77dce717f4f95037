"""The real servers every other test stands on: PostgreSQL, NATS JetStream, and their restarts."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

import nats
import psycopg
import pytest
from psycopg import sql

from infrastructure.database import check_postgres
from infrastructure.servers import MAX_CONNECTIONS, local_servers
from infrastructure.settings import Settings


def test_postgres_answers_queries_in_the_session_schema(database_url: str, db_schema: str) -> None:
    """A table created in the session's schema can be written and read back."""
    table = sql.Identifier(db_schema, "probe")
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, name text)").format(table))
        connection.execute(sql.SQL("INSERT INTO {} VALUES (1, 'ada')").format(table))
        row = connection.execute(sql.SQL("SELECT name FROM {} WHERE id = 1").format(table))
        assert row.fetchone() == ("ada",)
    assert check_postgres(database_url)


async def test_jetstream_stores_publishes_and_acks(nats_url: str) -> None:
    """A JetStream stream accepts a publish, acknowledges it, and delivers it to a consumer."""
    name = f"T_{secrets.token_hex(4).upper()}"
    subject = f"test.{name.lower()}.created"
    client = await nats.connect(nats_url, connect_timeout=5, max_reconnect_attempts=0)
    try:
        jetstream = client.jetstream()
        await jetstream.add_stream(name=name, subjects=[f"test.{name.lower()}.>"])
        try:
            ack = await jetstream.publish(subject, b"hello", headers={"Nats-Msg-Id": "m-1"})
            duplicate = await jetstream.publish(subject, b"hello", headers={"Nats-Msg-Id": "m-1"})
            assert (ack.stream, ack.seq, duplicate.duplicate) == (name, 1, True)

            subscription = await jetstream.pull_subscribe(subject, durable="probe", stream=name)
            [message] = await subscription.fetch(1, timeout=5)
            assert message.data == b"hello"
            await message.ack_sync()
        finally:
            await jetstream.delete_stream(name)
    finally:
        await client.close()


def test_local_servers_start_nothing_when_urls_are_configured(
    make_settings: Callable[..., Settings], database_url: str, nats_url: str, tmp_path: Path
) -> None:
    """With both URLs configured, local_servers hands them back and starts no server."""
    configured = make_settings(data_dir=tmp_path, database_url=database_url, nats_url=nats_url)
    with local_servers(configured, keep_data=True) as servers:
        assert (servers.database_url, servers.nats_url) == (database_url, nats_url)
        assert servers.postgres is None and servers.nats is None
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_embedded_postgres_keeps_its_data_across_a_stop_and_restart(
    server_data_dir: Path,
) -> None:
    """Stopped (cleanly or as in a crash) and started again, embedded Postgres has its rows."""
    with local_servers(server_data_dir, keep_data=False) as servers:
        postgres = servers.postgres
        assert postgres is not None
        with psycopg.connect(servers.database_url, autocommit=True) as connection:
            connection.execute("CREATE TABLE kept (n int)")
            connection.execute("INSERT INTO kept VALUES (42)")

        for mode in ("fast", "immediate"):
            postgres.stop(mode)
            assert not postgres.running
            assert not check_postgres(servers.database_url, timeout=1)
            postgres.start()
            # Same unix socket: URLs handed out before the stop still work.
            assert postgres.url == servers.database_url
            with psycopg.connect(servers.database_url) as connection:
                assert connection.execute("SELECT n FROM kept").fetchall() == [(42,)]
    assert not (server_data_dir / "postgres").exists()


@pytest.mark.slow
def test_embedded_postgres_allows_the_connections_every_follower_needs(
    server_data_dir: Path,
) -> None:
    """The default 100 is less than the gateway and a workers' process with every follower
    hold; the embedded server starts with MAX_CONNECTIONS, also after a restart."""
    with local_servers(server_data_dir, keep_data=False) as servers:
        assert servers.postgres is not None
        for _ in range(2):
            with psycopg.connect(servers.database_url) as connection:
                row = connection.execute("SHOW max_connections").fetchone()
                assert row is not None and int(row[0]) == MAX_CONNECTIONS
            servers.postgres.stop()
            servers.postgres.start()


@pytest.mark.slow
async def test_embedded_nats_keeps_streams_and_port_across_a_kill_and_restart(
    server_data_dir: Path,
) -> None:
    """Killed and started again, embedded NATS is back on its port with its stored messages."""
    with local_servers(server_data_dir, keep_data=False) as servers:
        embedded = servers.nats
        assert embedded is not None and embedded.port not in (None, 4222)
        assert servers.nats_url.startswith("nats://127.0.0.1:")

        client = await nats.connect(servers.nats_url, max_reconnect_attempts=0)
        await client.jetstream().add_stream(name="KEPT", subjects=["kept.>"])
        await client.jetstream().publish("kept.one", b"1")
        await client.close()

        embedded.stop(kill=True)
        assert not embedded.running
        embedded.start()

        client = await nats.connect(servers.nats_url, max_reconnect_attempts=0)
        try:
            info = await client.jetstream().stream_info("KEPT")
            assert info.state.messages == 1
        finally:
            await client.close()
    assert not (server_data_dir / "nats").exists()
