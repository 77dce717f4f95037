"""`customers audit verify|replay|export` on a real event store, through typer's runner."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg import sql
from typer.testing import CliRunner

from domain.service import CustomerService
from infrastructure.database import drop_schema
from infrastructure.eventstore import build_service, migrate_event_store
from infrastructure.settings import Settings
from workers.__main__ import app


@pytest.fixture
def store(make_settings: Any, database_url: str) -> Iterator[tuple[CustomerService, Settings]]:
    """A service on a fresh schema of its own (the verify test tampers with it)."""
    settings = make_settings(database_url=database_url, db_schema=f"a_{secrets.token_hex(5)}")
    migrate_event_store(settings)
    service = build_service(settings)
    yield service, settings
    service.close()
    drop_schema(database_url, settings.db_schema)


def _run(settings: Settings, *args: str) -> Any:
    assert settings.jwt_secret is not None and settings.secret_key is not None
    assert settings.key_encryption_key is not None
    env = {
        "CUSTOMERS_DATABASE_URL": settings.database_url,
        "CUSTOMERS_DB_SCHEMA": settings.db_schema,
        "CUSTOMERS_JWT_SECRET": settings.jwt_secret.get_secret_value(),
        "CUSTOMERS_SECRET_KEY": settings.secret_key.get_secret_value(),
        "CUSTOMERS_KEY_ENCRYPTION_KEY": settings.key_encryption_key.get_secret_value(),
        "CUSTOMERS_LOG_FORMAT": "console",
    }
    return CliRunner().invoke(app, ["audit", *args], env=env)


def test_verify_prints_ok_then_the_break_after_tampering(
    store: tuple[CustomerService, Settings],
) -> None:
    """`audit verify` exits 0 with ok on an untouched store, and 1 naming the edited event."""
    service, settings = store
    customer_id = service.register_customer({"first_name": "Ada"}).aggregate_id
    service.add_note(customer_id, "gate code 1234", False)
    clean = _run(settings, "verify")
    assert clean.exit_code == 0, clean.output
    assert json.loads(clean.stdout)["ok"] is True
    with psycopg.connect(str(settings.database_url), autocommit=True) as connection:
        connection.execute(
            sql.SQL(
                "UPDATE {} SET state = overlay(state PLACING '\\x21'::bytea FROM 3)"
                " WHERE originator_id = %s AND originator_version = 2"
            ).format(sql.Identifier(settings.db_schema, "crm_events")),
            (customer_id,),
        )
    for args in (["verify"], ["verify", "--stream-id", str(customer_id)]):
        broken = _run(settings, *args)
        assert broken.exit_code == 1, broken.output
        first_break = json.loads(broken.stdout)["first_break"]
        assert (first_break["stream_id"], first_break["version"]) == (str(customer_id), 2)


def test_replay_prints_each_event_and_the_state_at_a_version_or_time(
    store: tuple[CustomerService, Settings],
) -> None:
    """`audit replay` prints every event then the state; --version and --as-of stop early."""
    service, settings = store
    customer_id = service.register_customer({"first_name": "Ada"}).aggregate_id
    time.sleep(0.01)
    between = datetime.now(UTC)
    time.sleep(0.01)
    service.change_profile(customer_id, {"first_name": "Grace"}, expected_version=1)
    service.add_note(customer_id, "urgent: call first", True)

    full = _run(settings, "replay", str(customer_id))
    assert full.exit_code == 0, full.output
    lines = full.stdout.splitlines()
    assert [line.split()[0] for line in lines[:3]] == ["v1", "v2", "v3"]
    assert "customer.registered" in lines[0] and "customer.note_added" in lines[2]
    assert lines[3] == "state at version 3:"
    state = json.loads("\n".join(lines[4:]))
    assert state["profile"]["first_name"] == "Grace" and state["version"] == 3

    for args in (["--version", "1"], ["--as-of", between.isoformat()]):
        early = _run(settings, "replay", str(customer_id), *args)
        assert early.exit_code == 0, early.output
        early_lines = early.stdout.splitlines()
        assert early_lines[1] == "state at version 1:"
        assert json.loads("\n".join(early_lines[2:]))["profile"]["first_name"] == "Ada"


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--version", "1", "--as-of", "2026-01-01T00:00:00+00:00"], 2),
        (["--as-of", "yesterday"], 2),
        (["--as-of", "2026-01-01T00:00:00"], 2),
        (["--version", "0"], 2),
    ],
)
def test_replay_refuses_bad_options(
    store: tuple[CustomerService, Settings], args: list[str], code: int
) -> None:
    """Both stopping points at once, a time without an offset or a version 0 exit 2."""
    service, settings = store
    customer_id = service.register_customer({"first_name": "Ada"}).aggregate_id
    assert _run(settings, "replay", str(customer_id), *args).exit_code == code


def test_replay_of_an_unknown_stream_exits_1(store: tuple[CustomerService, Settings]) -> None:
    """A stream with no events is reported, not printed as an empty state."""
    _, settings = store
    result = _run(settings, "replay", str(uuid4()))
    assert result.exit_code == 1 and "no events" in result.output


def _positions(path: Path) -> list[int]:
    return [json.loads(line)["position"] for line in path.read_text().splitlines()]


def test_export_writes_the_log_from_a_position_and_resumes_after_a_crash(
    store: tuple[CustomerService, Settings], tmp_path: Path
) -> None:
    """The export writes one event per line after --after; re-run after a crash that left
    half a line, it cuts that line off and continues: every position once, in order."""
    service, settings = store
    first = service.register_customer({"first_name": "Ada"}).aggregate_id
    after = service.recorder.max_notification_id() or 0
    service.add_note(first, "one", False)
    out = tmp_path / "log.ndjson"
    exported = _run(settings, "export", "--after", str(after), "--out", str(out))
    assert exported.exit_code == 0, exported.output
    assert _positions(out) == [after + 1]
    line = json.loads(out.read_text())
    assert line["stream_id"] == str(first) and line["type"] == "customer.note_added"
    assert line["payload"]["text"] == "one" and len(bytes.fromhex(line["log_hash"])) == 32

    # A crash mid-line, then more events; the re-run continues from the last whole line.
    with out.open("a") as file:
        file.write('{"position": 999, "stream_')
    second = service.register_customer({"first_name": "Bob"}).aggregate_id
    resumed = _run(settings, "export", "--out", str(out))
    assert resumed.exit_code == 0, resumed.output
    assert "resumed after position" in resumed.stdout
    head = service.recorder.max_notification_id() or 0
    assert _positions(out) == list(range(after + 1, head + 1))
    streams = {UUID(json.loads(line)["stream_id"]) for line in out.read_text().splitlines()}
    assert second in streams

    again = _run(settings, "export", "--out", str(out))
    assert again.exit_code == 0 and "exported 0 events" in again.stdout
    assert _positions(out) == list(range(after + 1, head + 1))


def test_export_refuses_a_file_that_is_not_an_export(
    store: tuple[CustomerService, Settings], tmp_path: Path
) -> None:
    """Appending to some other file would corrupt it: the export stops with status 2."""
    _, settings = store
    out = tmp_path / "notes.txt"
    out.write_text("shopping list\n")
    assert _run(settings, "export", "--out", str(out)).exit_code == 2
    assert out.read_text() == "shopping list\n"
