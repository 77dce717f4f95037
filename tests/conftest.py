"""Fixtures shared by every test: real PostgreSQL and NATS, a private schema, settings.

The servers are the machine's when `CUSTOMERS_TEST_DATABASE_URL` / `CUSTOMERS_TEST_NATS_URL`
are set, else throwaway embedded ones started on first use: unit tests that ask for none
of these fixtures start nothing. Each session works in its own randomly named schema, so
parallel runs against one shared Postgres never see each other's tables.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from infrastructure.database import drop_schema, ensure_schema
from infrastructure.servers import ServerUrls, local_servers
from infrastructure.settings import Settings

MakeSettings = Callable[..., Settings]


class ExplicitSettings(Settings):
    """Settings from keyword arguments only: a developer's CUSTOMERS_* variables stay out."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def _scratch_dir() -> Path:
    # Not pytest's tmp_path: embedded Postgres runs as another system user when we are root
    # and opens every parent folder to it, and pytest closes /tmp/pytest-of-<user> again
    # at the start of any other session, which would cut a running server off its data.
    return Path(tempfile.mkdtemp(prefix="customers-test-"))


@pytest.fixture
def server_data_dir() -> Iterator[Path]:
    """A throwaway folder for a test's own embedded servers, deleted afterwards."""
    folder = _scratch_dir()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def _servers() -> Iterator[ServerUrls]:
    """The session's servers: the configured test servers, embedded ones for the others."""
    folder = _scratch_dir()
    configured = ExplicitSettings(
        data_dir=folder,
        database_url=os.environ.get("CUSTOMERS_TEST_DATABASE_URL") or None,
        nats_url=os.environ.get("CUSTOMERS_TEST_NATS_URL") or None,
    )
    try:
        with local_servers(configured, keep_data=False) as servers:
            yield servers
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(_servers: ServerUrls) -> str:
    """libpq URL of a real PostgreSQL for this session."""
    return _servers.database_url


@pytest.fixture(scope="session")
def nats_url(_servers: ServerUrls) -> str:
    """URL of a real NATS server with JetStream for this session."""
    return _servers.nats_url


@pytest.fixture(scope="session")
def db_schema(database_url: str) -> Iterator[str]:
    """A fresh schema for this session, dropped with everything in it at the end."""
    schema = f"t_{secrets.token_hex(6)}"
    ensure_schema(database_url, schema)
    yield schema
    drop_schema(database_url, schema)


@pytest.fixture(scope="session")
def key_encryption_key() -> str:
    """One key-encryption key per session: the session's schema holds keys wrapped by it."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


@pytest.fixture
def make_settings(tmp_path: Path, key_encryption_key: str) -> MakeSettings:
    """A factory of `Settings` from keyword arguments only, with fresh secrets by default."""

    def make(**values: Any) -> Settings:
        defaults: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "jwt_secret": secrets.token_urlsafe(32),
            "secret_key": Fernet.generate_key().decode(),
            "notification_key": Fernet.generate_key().decode(),
            "key_encryption_key": key_encryption_key,
            "log_format": "console",
        }
        return ExplicitSettings(**{**defaults, **values})

    return make


@pytest.fixture
def settings(
    make_settings: MakeSettings, database_url: str, nats_url: str, db_schema: str
) -> Settings:
    """Settings for the session's servers and schema, with generated secrets."""
    return make_settings(database_url=database_url, nats_url=nats_url, db_schema=db_schema)
