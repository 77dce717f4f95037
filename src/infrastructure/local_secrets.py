"""Secrets for local mode: generated once into the data folder and reused on later runs.

A new user runs the service without choosing a JWT secret or an encryption key; the keys
must still survive restarts, or yesterday's tokens and encrypted equipment secrets would
stop working. With a configured database (production) nothing is generated: every
gateway of that database must share the same secrets, so they have to be given.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from cryptography.fernet import Fernet
from pydantic import SecretStr

from infrastructure.data_keys import decode_key_encryption_key
from infrastructure.settings import ENV_PREFIX, Settings, SettingsError

__all__ = ["secrets_dir", "with_local_secrets"]

_REQUIRED = ("jwt_secret", "secret_key", "key_encryption_key")
"""What every process needs, so must be given with a database URL (production)."""


def secrets_dir(data_dir: Path) -> Path:
    """The folder of the generated secrets under `data_dir`."""
    return data_dir / "secrets"


def with_local_secrets(settings: Settings) -> Settings:
    """`settings` with `jwt_secret`, `secret_key`, `notification_key` and
    `key_encryption_key` filled: as given, else from the data folder.

    Raises `SettingsError` when a database URL is configured and the JWT secret, the
    secret key or the key-encryption key is missing; the notification key is checked by
    the relay, the one process that needs it.
    """
    missing = [name for name in _REQUIRED if getattr(settings, name) is None]
    if settings.database_url is not None:
        if missing:
            raise SettingsError(
                "\n".join(
                    f"{ENV_PREFIX}{name.upper()}: required when {ENV_PREFIX}DATABASE_URL is set"
                    for name in missing
                )
            )
        return settings
    folder = secrets_dir(settings.data_dir)
    updates: dict[str, SecretStr] = {}
    if settings.jwt_secret is None:
        updates["jwt_secret"] = SecretStr(
            _read_or_create(folder / "jwt_secret", lambda: secrets.token_urlsafe(48))
        )
    if settings.secret_key is None:
        key = _read_or_create(folder / "secret_key", lambda: Fernet.generate_key().decode())
        try:
            Fernet(key.encode())
        except ValueError:
            raise SettingsError(
                f"{folder / 'secret_key'}: is not a Fernet key; restore it from a backup"
                " (deleting it makes the equipment secrets stored so far unreadable)"
            ) from None
        updates["secret_key"] = SecretStr(key)
    if settings.notification_key is None:
        # Shared with the notification consumer (it opens the portal links' tokens).
        updates["notification_key"] = SecretStr(
            _read_or_create(folder / "notification_key", lambda: Fernet.generate_key().decode())
        )
    if settings.key_encryption_key is None:
        path = folder / "key_encryption_key"
        kek = _read_or_create(path, lambda: base64.urlsafe_b64encode(os.urandom(32)).decode())
        try:
            decode_key_encryption_key(kek)
        except ValueError:
            raise SettingsError(
                f"{path}: is not a key-encryption key; restore it from a backup"
                " (without it no customer's personal data can be read)"
            ) from None
        updates["key_encryption_key"] = SecretStr(kek)
    return settings.model_copy(update=updates)


def _read_or_create(path: Path, make: Callable[[], str]) -> str:
    """The secret in `path`, after writing `make()` there if the file does not exist yet."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o700)
        # Written under a private name, then linked into place: two first runs racing each
        # other both end up reading the one secret that won, never a half-written file.
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(make() + "\n")
        try:
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            temporary.unlink()
    return path.read_text().strip()
