"""An import worker killed with SIGKILL mid-import resumes, and creates each row exactly once.

The worker is the real process (`python -m workers worker import`). The file's rows have
no email and no phone, so nothing unique would stop a second registration of the same
row: only its customer id, derived from the import and the row, does. The kill is timed
for a moment when customers exist whose rows are not yet recorded as created (registered,
outcome not saved), which is exactly the window a resume must not register again.
"""

from __future__ import annotations

import io
import os
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from psycopg import sql

from domain.customers import Customer
from domain.service import CustomerService
from gateway.import_files import read_layout, read_rows
from infrastructure.database import drop_schema, ensure_schema
from infrastructure.eventstore import build_service, migrate_event_store
from infrastructure.imports import ImportStore, NewImport, import_id_of
from infrastructure.settings import Settings
from workers.__main__ import child_environment

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

ROWS = 3000
IN_FLIGHT_AT_KILL = 20
"""Customers registered but not yet recorded as created when the worker is killed."""


@pytest.fixture
def crash_settings(make_settings: Any, database_url: str, nats_url: str) -> Iterator[Settings]:
    """A schema of its own, so every customer in it comes from this test's file."""
    schema = f"t_crash_{secrets.token_hex(4)}"
    ensure_schema(database_url, schema)
    settings: Settings = make_settings(
        database_url=database_url, nats_url=nats_url, db_schema=schema
    )
    migrate_event_store(settings)
    yield settings
    drop_schema(database_url, schema)


def _upload(service: CustomerService, store: ImportStore, content: bytes) -> NewImport:
    """What the gateway does with an upload, done here: read, validate, save."""
    file = io.BytesIO(content)
    layout = read_layout(file, None)
    new = NewImport(
        import_id=import_id_of(secrets.token_hex(32)),
        sha256="test",
        created_by="crash-test",
        file_name=None,
        encoding=layout.encoding,
        delimiter=layout.delimiter,
        columns=layout.report(),
        send_registration_email=False,
    )
    rows = read_rows(file, layout, defaults={}, encode=service.mapper.transcoder.encode)
    assert store.create(new, rows)
    return new


def _worker(settings: Settings) -> subprocess.Popen[bytes]:
    env = {**child_environment(settings), "CUSTOMERS_LOG_FORMAT": "console"}
    return subprocess.Popen(
        [sys.executable, "-m", "workers", "worker", "import"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _registered(store: ImportStore, service: CustomerService) -> int:
    table = sql.Identifier(store.schema, service.recorder.events_table_name)  # type: ignore[attr-defined]
    with store.datastore.transaction(commit=False) as cursor:
        cursor.execute(
            sql.SQL("SELECT count(*) AS n FROM {} WHERE topic LIKE %s").format(table),
            ("%:Customer.Registered",),
        )
        return int(cursor.fetchone()["n"])


def test_a_killed_import_worker_resumes_and_creates_each_row_exactly_once(
    crash_settings: Settings,
) -> None:
    """SIGKILL mid-batch, restart: every row created once, and the report agrees."""
    service = build_service(crash_settings)
    store = ImportStore(service.recorder.datastore, crash_settings.db_schema)  # type: ignore[attr-defined]
    lines = [f"Row {i},{i}" for i in range(ROWS)]
    new = _upload(service, store, ("first_name,Row\n" + "\n".join(lines) + "\n").encode())
    worker = _worker(crash_settings)
    try:
        # Kill while customers exist whose outcomes are not recorded: the crash window.
        deadline = time.monotonic() + 120
        while True:
            summary = store.summary(new.import_id)
            assert summary is not None
            in_flight = _registered(store, service) - summary.counts["created"]
            if in_flight >= IN_FLIGHT_AT_KILL and summary.counts["created"] > 0:
                break
            assert summary.status == "running", "the import finished before the kill"
            assert time.monotonic() < deadline, "the worker made no progress"
            time.sleep(0.01)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
        after_kill = store.summary(new.import_id)
        assert after_kill is not None and after_kill.status == "running"
        assert after_kill.pending > 0

        worker = _worker(crash_settings)
        deadline = time.monotonic() + 180
        while (summary := store.summary(new.import_id)) and summary.status == "running":
            assert time.monotonic() < deadline, "the restarted worker did not finish"
            time.sleep(0.1)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(20)
    assert summary is not None and summary.status == "done"
    assert summary.counts == {"created": ROWS, "duplicate": 0, "invalid": 0}
    # Each row's customer exists once: counted from the event store itself.
    rows = Counter(
        event.profile.custom_fields["Row"]
        for notification in service.recorder.select_notifications(start=1, limit=10 * ROWS)
        if isinstance(event := service.mapper.to_domain_event(notification), Customer.Registered)
    )
    assert len(rows) == ROWS and set(rows.values()) == {1}
    report = store.rows(new.import_id, after=0, limit=ROWS)
    assert len({r.customer_id for r in report}) == ROWS
    service.close()
