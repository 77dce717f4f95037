"""Sealing equipment secrets before they enter an event, so the store never holds them in clear."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken

__all__ = ["SecretSealer", "UnreadableSecretError"]


class UnreadableSecretError(Exception):
    """A sealed secret could not be opened with the configured key."""


class SecretSealer:
    """Authenticated symmetric encryption (Fernet: AES-128-CBC + HMAC-SHA256) with one key."""

    def __init__(self, key: bytes | str) -> None:
        self._fernet = Fernet(key)

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode()

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def unseal(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise UnreadableSecretError("the secret was sealed with another key") from None
