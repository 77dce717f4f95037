"""Settings from the environment, local secrets, and the CLI's handling of both; no servers."""

from __future__ import annotations

import os
import stat
import uuid
from pathlib import Path

import jwt
import pytest
from cryptography.fernet import Fernet
from typer.testing import CliRunner

from infrastructure.local_secrets import secrets_dir, with_local_secrets
from infrastructure.settings import Settings, SettingsError, load_settings
from workers.__main__ import app
from workers.relay import check_relay_settings

JWT_SECRET = "a-test-secret-that-is-long-enough-for-hs256"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No CUSTOMERS_* variable of the developer's shell reaches these tests."""
    for key in list(os.environ):
        if key.upper().startswith("CUSTOMERS_"):
            monkeypatch.delenv(key)
    return monkeypatch


def test_defaults_need_no_environment() -> None:
    """With no variable set, the settings are local mode's defaults."""
    settings = load_settings()
    assert settings.database_url is None and settings.nats_url is None
    assert (settings.http_host, settings.http_port) == ("127.0.0.1", 8080)
    assert (settings.log_level, settings.log_format) == ("INFO", "json")
    assert (settings.db_schema, settings.default_phone_region) == ("customers", "US")
    assert settings.data_dir == Path(".data")
    assert settings.jwt_secret is None and settings.secret_key is None


def test_variables_are_read_and_normalised(clean_environment: pytest.MonkeyPatch) -> None:
    """Variables override defaults; the log level and region are accepted in any case."""
    key = Fernet.generate_key().decode()
    for name, value in {
        "CUSTOMERS_HTTP_PORT": "9000",
        "CUSTOMERS_LOG_LEVEL": "debug",
        "CUSTOMERS_DEFAULT_PHONE_REGION": "gb",
        "CUSTOMERS_NEWSLETTER_DEFAULT": "false",
        "CUSTOMERS_SECRET_KEY": key,
        "CUSTOMERS_DATABASE_URL": "postgresql://app:pw@db:5433/customers",
        "CUSTOMERS_NATS_URL": "nats://n1:4222,nats://n2:4222",
        "CUSTOMERS_THREAD_POOL_SIZE": "",
    }.items():
        clean_environment.setenv(name, value)
    settings = load_settings()
    assert (settings.http_port, settings.log_level) == (9000, "DEBUG")
    assert (settings.default_phone_region, settings.newsletter_default) == ("GB", False)
    assert settings.secret_key is not None and settings.secret_key.get_secret_value() == key
    # An empty variable counts as unset.
    assert settings.thread_pool_size == 8


def test_a_bad_variable_is_one_line_naming_it(clean_environment: pytest.MonkeyPatch) -> None:
    """An out-of-range port stops with one line: the variable, the rule, the value given."""
    clean_environment.setenv("CUSTOMERS_HTTP_PORT", "99999")
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert str(raised.value) == (
        "CUSTOMERS_HTTP_PORT: Input should be less than or equal to 65535 (got '99999')"
    )


def test_each_bad_variable_gets_its_line_and_secrets_are_not_echoed(
    clean_environment: pytest.MonkeyPatch,
) -> None:
    """Several bad variables give one line each; secret values and passwords never appear."""
    bad = {
        "CUSTOMERS_LOG_LEVEL": "verbose",
        "CUSTOMERS_DB_SCHEMA": "Robert'); DROP",
        "CUSTOMERS_DEFAULT_PHONE_REGION": "XX",
        "CUSTOMERS_THREAD_POOL_SIZE": "0",
        "CUSTOMERS_LOG_FORMAT": "xml",
        "CUSTOMERS_JWT_SECRET": "short-hunter2",
        "CUSTOMERS_SECRET_KEY": "not-a-fernet-key-hunter2",
        "CUSTOMERS_DATABASE_URL": "postgresql://app:hunter2@db/x?sslmode=require",
    }
    for name, value in bad.items():
        clean_environment.setenv(name, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    lines = str(raised.value).splitlines()
    assert sorted(line.split(":")[0] for line in lines) == sorted(bad)
    assert "hunter2" not in str(raised.value)
    assert "CUSTOMERS_LOG_LEVEL: Input should be 'DEBUG', 'INFO', 'WARNING' or 'ERROR'" in (
        str(raised.value)
    )
    assert "(got 'verbose')" in str(raised.value)


def test_local_secrets_are_generated_once_privately_and_reused(tmp_path: Path) -> None:
    """Unset secrets are generated into the data folder (mode 0600) and read back next time."""
    settings = Settings.model_validate({"data_dir": tmp_path})
    first = with_local_secrets(settings)
    second = with_local_secrets(settings)
    assert first.jwt_secret is not None and first.secret_key is not None
    assert first.jwt_secret == second.jwt_secret and first.secret_key == second.secret_key
    assert first.notification_key is not None
    assert first.notification_key == second.notification_key != first.secret_key
    Fernet(first.secret_key.get_secret_value().encode())
    Fernet(first.notification_key.get_secret_value().encode())
    for name in ("jwt_secret", "secret_key", "notification_key"):
        assert stat.S_IMODE((secrets_dir(tmp_path) / name).stat().st_mode) == 0o600
    assert stat.S_IMODE(secrets_dir(tmp_path).stat().st_mode) == 0o700


def test_given_secrets_win_and_none_are_generated_for_a_configured_database(
    tmp_path: Path,
) -> None:
    """A secret from the environment is kept; with a database URL, a missing one is an error."""
    given = Settings.model_validate({"data_dir": tmp_path, "jwt_secret": JWT_SECRET})
    filled = with_local_secrets(given)
    assert filled.jwt_secret is not None and filled.jwt_secret.get_secret_value() == JWT_SECRET
    assert not (secrets_dir(tmp_path) / "jwt_secret").exists()

    production = given.model_copy(update={"database_url": "postgresql://u@db/x"})
    with pytest.raises(SettingsError, match=r"^CUSTOMERS_SECRET_KEY: required when"):
        with_local_secrets(production)


def test_the_relay_refuses_to_start_without_a_notification_key() -> None:
    """Only the relay needs CUSTOMERS_NOTIFICATION_KEY: without it, it stops naming it."""
    settings = Settings.model_validate(
        {"database_url": "postgresql://u@db/x", "jwt_secret": JWT_SECRET}
    )
    with pytest.raises(SettingsError, match=r"^CUSTOMERS_NOTIFICATION_KEY: required by the relay"):
        check_relay_settings(settings)
    key = Fernet.generate_key().decode()
    configured = Settings.model_validate({**settings.model_dump(), "notification_key": key})
    assert check_relay_settings(configured) == key


def test_customers_worker_relay_stops_at_once_without_a_notification_key(
    clean_environment: pytest.MonkeyPatch,
) -> None:
    """`customers worker relay` exits naming the variable before it starts any follower."""
    clean_environment.setenv("CUSTOMERS_DATABASE_URL", "postgresql://u@db.invalid/x")
    clean_environment.setenv("CUSTOMERS_JWT_SECRET", JWT_SECRET)
    clean_environment.setenv("CUSTOMERS_SECRET_KEY", Fernet.generate_key().decode())
    result = CliRunner().invoke(app, ["worker", "relay"])
    assert result.exit_code == 1
    assert "CUSTOMERS_NOTIFICATION_KEY: required by the relay" in str(result.exception)


def test_a_notification_key_that_is_not_a_fernet_key_is_refused_without_echoing_it(
    clean_environment: pytest.MonkeyPatch,
) -> None:
    """A bad key names the variable and does not print the value."""
    clean_environment.setenv("CUSTOMERS_NOTIFICATION_KEY", "not-a-key-123")
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert str(raised.value).startswith("CUSTOMERS_NOTIFICATION_KEY: should be a Fernet key")
    assert "not-a-key-123" not in str(raised.value)


def test_cli_stops_on_a_bad_setting_with_exit_status_2(
    clean_environment: pytest.MonkeyPatch,
) -> None:
    """`customers run` with a bad variable prints its line and exits 2 before starting anything."""
    clean_environment.setenv("CUSTOMERS_HTTP_PORT", "99999")
    result = CliRunner().invoke(app, ["run"])
    assert result.exit_code == 2
    assert "CUSTOMERS_HTTP_PORT: Input should be less than or equal to 65535" in result.stderr


def test_cli_token_is_signed_with_the_configured_secret(
    clean_environment: pytest.MonkeyPatch,
) -> None:
    """`customers token` prints an HS256 token with the role, subject and customer id asked."""
    clean_environment.setenv("CUSTOMERS_JWT_SECRET", JWT_SECRET)
    customer_id = uuid.uuid4()
    result = CliRunner().invoke(
        app, ["token", "--role", "customer", "--customer-id", str(customer_id), "--days", "2"]
    )
    assert result.exit_code == 0, result.output
    claims = jwt.decode(result.stdout.strip(), JWT_SECRET, algorithms=["HS256"])
    assert claims["role"] == "customer" and claims["sub"] == "customer@local"
    assert claims["customer_id"] == str(customer_id)
    assert 2 * 86400 - 60 < claims["exp"] - claims["iat"] <= 2 * 86400

    refused = CliRunner().invoke(app, ["token", "--role", "customer"])
    assert refused.exit_code == 2
