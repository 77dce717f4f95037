"""The service's settings, read from `CUSTOMERS_*` environment variables.

`Settings` holds every knob with its default and its validation; `load_settings` reads the
environment and turns a validation failure into `SettingsError`, one line per bad variable,
so a typo stops the process with a message a person can act on instead of a traceback.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

import phonenumbers
from cryptography.fernet import Fernet
from pydantic import AfterValidator, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.timezones import DEFAULT_TIME_ZONE, check_time_zone
from infrastructure.tokens import MIN_SECRET_BYTES

__all__ = [
    "ENV_PREFIX",
    "BusinessType",
    "LogFormat",
    "LogLevel",
    "Settings",
    "SettingsError",
    "load_settings",
]

ENV_PREFIX = "CUSTOMERS_"

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
LogFormat = Literal["json", "console"]
BusinessType = Literal[
    "general", "pet_care", "repair", "field_service", "home_services", "dealer", "it_services"
]
"""The kinds of service business the help pages show (seeds 000-004)."""

# Lower case only: Postgres folds unquoted names, so a mixed-case schema would need quoting
# everywhere the event store or a projection names it. `pg_` names are reserved by Postgres.
_SCHEMA_NAME = re.compile(r"^(?!pg_)[a-z_][a-z0-9_]{0,62}$")


# Fields whose value must never be echoed back in an error message.
_SECRET_FIELDS = frozenset(
    {
        "jwt_secret",
        "secret_key",
        "notification_key",
        "audit_key",
        "key_encryption_key",
        "previous_key_encryption_keys",
    }
)
# URLs are shown with their password masked.
_URL_FIELDS = frozenset({"database_url", "nats_url"})
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@/\s]*@")


class SettingsError(SystemExit):
    """The environment holds invalid settings; the message names each bad variable."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class Settings(BaseSettings):
    """Every setting of the service; each field is read from `CUSTOMERS_<FIELD NAME>`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_ignore_empty=True,
        frozen=True,
        extra="ignore",
    )

    database_url: str | None = None
    """libpq URL of PostgreSQL; unset means an embedded server in `data_dir` (local mode)."""
    nats_url: str | None = None
    """NATS URL (comma-separated for a cluster); unset means an embedded `nats-server`."""
    data_dir: Path = Path(".data")
    """Local mode's folder: embedded servers' data and generated secrets."""
    http_host: str = "127.0.0.1"
    http_port: Annotated[int, Field(ge=1, le=65535)] = 8080
    jwt_secret: SecretStr | None = None
    """HS256 key of the bearer tokens; generated into `data_dir` in local mode."""
    secret_key: SecretStr | None = None
    """Fernet key encrypting equipment secrets at rest; generated into `data_dir` in local mode."""
    notification_key: SecretStr | None = None
    """Fernet key sealing portal link tokens in notification requests, held by the relay and
    the notification consumer only (not the service's `secret_key`); generated in local mode."""
    audit_key: Annotated[SecretStr, Field(min_length=32)] | None = None
    """HMAC key of the events' hash chain (tamper evidence); unset: derived from `secret_key`.
    Changing it makes every event written before fail verification."""
    key_encryption_key: SecretStr | None = None
    """Wraps every customer's data key (32 bytes, url-safe base64); generated into
    `data_dir` in local mode. Losing it loses all personal data: keep it apart from backups."""
    previous_key_encryption_keys: SecretStr | None = None
    """During a rotation only: the old key-encryption key(s), comma-separated, which still
    open data keys until `customers keys rewrap` has wrapped them all with the new one."""
    log_level: LogLevel = "INFO"
    log_format: LogFormat = "json"
    db_schema: str = "customers"
    """Postgres schema holding the event store and the read models."""
    default_phone_region: str = "US"
    """Region assumed for phone numbers written without a country code."""
    newsletter_default: bool = True
    business_time_zone: Annotated[str, AfterValidator(check_time_zone)] = DEFAULT_TIME_ZONE
    """IANA zone (Europe/Berlin) in which calendars and notifications show times to people."""
    business_type: BusinessType = "general"
    """What kind of business runs the service: `pet_care` shows the customer's pets and
    their vets (the pets routes exist, a customer's GET lists `pets`); the others do not."""
    worker_metrics_port: Annotated[int, Field(ge=1, le=65534)] | None = None
    """Where a worker process serves its own /metrics (relay ack latency...); unset: none.
    `customers run`'s imports process serves its own on the next port."""
    stop_on_poison: bool = False
    """A read model that parks an event it cannot apply stops (True) or goes on (False)."""
    thread_pool_size: Annotated[int, Field(ge=1, le=64)] = 8
    """Threads running the synchronous event store calls of one gateway process."""
    max_body_bytes: Annotated[int, Field(ge=1)] = 1_048_576
    max_import_bytes: Annotated[int, Field(ge=1)] = 50 * 1024 * 1024
    """Largest customer file `POST /v1/customers/imports` takes (streamed, never held whole)."""
    max_file_bytes: Annotated[int, Field(ge=1)] = 25 * 1024 * 1024
    """Largest customer file `POST /v1/customers/{id}/files` takes (streamed, never held whole)."""
    body_timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0
    """A request body not fully received this long after its headers answers 408."""

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        # Imported here: the database module imports psycopg, which settings users may not need.
        from infrastructure.database import parse_database_url

        parse_database_url(value)
        return value

    @field_validator("nats_url")
    @classmethod
    def _check_nats_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        for server in value.split(","):
            if not re.match(r"^(nats|tls|ws|wss)://[^/\s]+/?$", server.strip()):
                raise ValueError("should be nats://host:port (comma-separated for several servers)")
        return value

    @field_validator("jwt_secret")
    @classmethod
    def _check_jwt_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"should be at least {MIN_SECRET_BYTES} bytes long for HS256")
        return value

    @field_validator("secret_key", "notification_key")
    @classmethod
    def _check_fernet_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                Fernet(value.get_secret_value().encode())
            except ValueError:
                raise ValueError(
                    "should be a Fernet key: 32 bytes in url-safe base64"
                    " (make one with: python -c 'from cryptography.fernet import Fernet;"
                    " print(Fernet.generate_key().decode())')"
                ) from None
        return value

    @field_validator("key_encryption_key", "previous_key_encryption_keys")
    @classmethod
    def _check_key_encryption_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            from infrastructure.data_keys import decode_key_encryption_key

            try:
                for key in value.get_secret_value().split(","):
                    decode_key_encryption_key(key)
            except ValueError as error:
                raise ValueError(
                    f"{error} (make one with: python -c 'import base64, os;"
                    " print(base64.urlsafe_b64encode(os.urandom(32)).decode())')"
                ) from None
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case_log_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("db_schema")
    @classmethod
    def _check_db_schema(cls, value: str) -> str:
        if not _SCHEMA_NAME.match(value):
            raise ValueError(
                "should be a lower-case SQL identifier (a-z, 0-9, _; not starting with a digit"
                " or pg_; at most 63 characters)"
            )
        return value

    @field_validator("default_phone_region", mode="before")
    @classmethod
    def _check_phone_region(cls, value: object) -> object:
        if isinstance(value, str):
            region = value.strip().upper()
            if region not in phonenumbers.SUPPORTED_REGIONS:
                raise ValueError("should be a two-letter region known to phonenumbers, like US")
            return region
        return value


def load_settings() -> Settings:
    """Read the settings from the environment, or raise `SettingsError` naming each bad one."""
    try:
        return Settings()
    except ValidationError as error:
        raise SettingsError(_describe(error, os.environ)) from None


def _describe(error: ValidationError, environ: Mapping[str, str]) -> str:
    """One line per failed field: the variable, pydantic's message and the value as given."""
    lines = []
    for item in error.errors(include_url=False):
        field = str(item["loc"][0]) if item["loc"] else ""
        variable = ENV_PREFIX + field.upper()
        message = item["msg"].removeprefix("Value error, ")
        if field in _SECRET_FIELDS:
            lines.append(f"{variable}: {message}")
            continue
        # Show what the person typed, not the value after normalisation (upper-casing...).
        raw = _lookup(environ, variable, default=item.get("input"))
        if field in _URL_FIELDS and isinstance(raw, str):
            raw = _URL_PASSWORD.sub(r"\1***@", raw)
        lines.append(f"{variable}: {message} (got {raw!r})")
    return "\n".join(lines)


def _lookup(environ: Mapping[str, str], variable: str, *, default: object) -> object:
    # pydantic-settings matches names case-insensitively, so the lookup does too.
    for key, value in environ.items():
        if key.upper() == variable:
            return value
    return default
