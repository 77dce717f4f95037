"""`customers files sweep` on a real event store: what failed uploads left goes, the live stays."""

from __future__ import annotations

import hashlib
import io
import secrets
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import pytest
from psycopg import sql
from typer.testing import CliRunner

from domain.service import CustomerService
from infrastructure.database import drop_schema
from infrastructure.eventstore import build_service, migrate_event_store
from infrastructure.file_contents import FileContents
from infrastructure.settings import Settings
from workers.__main__ import app


@pytest.fixture
def store(make_settings: Any, database_url: str) -> Iterator[tuple[CustomerService, Settings]]:
    settings = make_settings(database_url=database_url, db_schema=f"f_{secrets.token_hex(5)}")
    migrate_event_store(settings)
    service = build_service(settings)
    yield service, settings
    service.close()
    drop_schema(database_url, settings.db_schema)


def stored_hashes(service: CustomerService, schema: str) -> set[str]:
    with service.recorder.datastore.transaction(commit=False) as cursor:  # type: ignore[attr-defined]
        cursor.execute(
            sql.SQL("SELECT sha256 FROM {}").format(sql.Identifier(schema, "file_contents"))
        )
        return {row["sha256"] for row in cursor.fetchall()}


def test_the_sweep_collects_an_upload_whose_event_was_never_saved(
    store: tuple[CustomerService, Settings],
) -> None:
    """Content stored for a file the event store does not know goes; a live file's stays."""
    service, settings = store
    contents = FileContents(
        service.recorder.datastore,  # type: ignore[attr-defined]
        settings.db_schema,
        service.recorder.events_table_name,  # type: ignore[attr-defined]
    )
    customer_id = service.register_customer({"first_name": "Ada"}).aggregate_id
    live, orphan = b"live backup", b"never recorded"
    live_sha, orphan_sha = (hashlib.sha256(b).hexdigest() for b in (live, orphan))
    live_id = uuid4()
    contents.put(live_id, customer_id, live_sha, len(live), io.BytesIO(live))
    service.upload_file(
        customer_id,
        live_id,
        name="panel.cfg",
        size=len(live),
        content_type="application/octet-stream",
        sha256=live_sha,
        uploader="bob",
    )
    contents.put(uuid4(), customer_id, orphan_sha, len(orphan), io.BytesIO(orphan))
    assert stored_hashes(service, settings.db_schema) == {live_sha, orphan_sha}

    assert settings.jwt_secret and settings.secret_key and settings.key_encryption_key
    env = {
        "CUSTOMERS_DATABASE_URL": settings.database_url,
        "CUSTOMERS_DB_SCHEMA": settings.db_schema,
        "CUSTOMERS_JWT_SECRET": settings.jwt_secret.get_secret_value(),
        "CUSTOMERS_SECRET_KEY": settings.secret_key.get_secret_value(),
        "CUSTOMERS_KEY_ENCRYPTION_KEY": settings.key_encryption_key.get_secret_value(),
        "CUSTOMERS_LOG_FORMAT": "console",
    }
    young = CliRunner().invoke(app, ["files", "sweep"], env=env)
    assert young.exit_code == 0, young.output
    assert stored_hashes(service, settings.db_schema) == {live_sha, orphan_sha}, "grace"
    swept = CliRunner().invoke(app, ["files", "sweep", "--grace-minutes", "0"], env=env)
    assert swept.exit_code == 0, swept.output
    assert "references dropped: 1, contents deleted: 1" in swept.stdout
    assert stored_hashes(service, settings.db_schema) == {live_sha}
