"""Portal passwords: argon2id hashes (RFC 9106), never the password itself.

Hashing costs on purpose (about a quarter of a second and 64 MiB with the default
parameters): a stolen hash is slow to guess. Tests pass cheaper parameters. A login for a
name nobody has still verifies against a dummy hash, so the answer's timing does not tell
which logins exist.
"""

from __future__ import annotations

import secrets

from argon2 import Parameters
from argon2 import PasswordHasher as Argon2Hasher
from argon2.exceptions import InvalidHashError, VerificationError

from domain.errors import RuleViolationError

__all__ = ["MAX_PASSWORD_LENGTH", "MIN_PASSWORD_LENGTH", "PasswordHasher", "check_password_rules"]

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256


def check_password_rules(password: str) -> None:
    """Refuse (422, field `password`) a password too short or too long to accept."""
    if len(password) < MIN_PASSWORD_LENGTH or not password.strip():
        raise RuleViolationError(
            "password", f"a password needs at least {MIN_PASSWORD_LENGTH} characters"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise RuleViolationError(
            "password", f"a password has at most {MAX_PASSWORD_LENGTH} characters"
        )


class PasswordHasher:
    """argon2id hashing and verification with one set of parameters."""

    def __init__(self, parameters: Parameters | None = None) -> None:
        self._argon2 = Argon2Hasher.from_parameters(parameters) if parameters else Argon2Hasher()
        self._dummy: str | None = None

    def hash(self, password: str) -> str:
        return self._argon2.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether `password` matches; with no hash, the same work for a certain False."""
        if self._dummy is None:  # made on first use: building a service stays cheap
            self._dummy = self._argon2.hash(secrets.token_urlsafe(16))
        try:
            return self._argon2.verify(password_hash or self._dummy, password) and bool(
                password_hash
            )
        except (VerificationError, InvalidHashError):
            return False
