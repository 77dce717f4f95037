"""Data keys per data subject (a customer): what crypto-shredding encrypts personal data with.

Every customer has its own data key. Personal fields of the events about a customer, and
its equipment secrets, are encrypted with it; erasing the customer destroys the key, and
what was encrypted with it can no longer be read by anyone, while the events themselves
stay in the log, unchanged and replayable.

The domain only knows the `KeyRing` interface: where keys live (PostgreSQL, wrapped by a
key-encryption key) is infrastructure (`infrastructure.data_keys`). `InMemoryKeyRing`
serves the in-memory store of the unit tests.
"""

from __future__ import annotations

import base64
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable
from uuid import UUID, uuid4

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "SEALED_PREFIX",
    "DataKey",
    "InMemoryKeyRing",
    "KeyRing",
    "UnreadablePersonalDataError",
]

KEY_BYTES = 32
_NONCE_BYTES = 12
SEALED_PREFIX = "ck1:"
"""Marks a secret sealed with its customer's data key (older ones are Fernet tokens)."""


class UnreadablePersonalDataError(Exception):
    """Ciphertext that a live data key cannot open: damaged, or sealed for someone else."""


class DataKey:
    """One subject's AES-256-GCM key; the subject's id is bound into every ciphertext."""

    __slots__ = ("_aad", "_aead", "subject_id")

    def __init__(self, subject_id: UUID, key: bytes) -> None:
        self.subject_id = subject_id
        self._aead = AESGCM(key)
        # Authenticated data: a blob copied into another customer's event does not open.
        self._aad = subject_id.bytes

    @staticmethod
    def generate() -> bytes:
        return AESGCM.generate_key(bit_length=KEY_BYTES * 8)

    def encrypt(self, plaintext: bytes) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, self._aad)

    def decrypt(self, ciphertext: bytes) -> bytes:
        try:
            return self._aead.decrypt(
                ciphertext[:_NONCE_BYTES], ciphertext[_NONCE_BYTES:], self._aad
            )
        except InvalidTag:
            raise UnreadablePersonalDataError(
                f"personal data of {self.subject_id} does not open with its data key"
            ) from None

    def seal(self, secret: str) -> str:
        """A secret as text, for a field of an event."""
        return SEALED_PREFIX + base64.b64encode(self.encrypt(secret.encode())).decode()

    def unseal(self, sealed: str) -> str:
        return self.decrypt(base64.b64decode(sealed.removeprefix(SEALED_PREFIX))).decode()


class KeyRing(ABC):
    """Where data keys are kept: created on first use, destroyed by an erasure, for good."""

    @abstractmethod
    def data_key(self, subject_id: UUID, *, create: bool = False) -> DataKey | None:
        """The subject's key; None once destroyed, or when absent and not `create`."""

    @abstractmethod
    def prepare(self, subject_ids: Iterable[UUID], *, create: bool = True) -> None:
        """Make sure the keys of these subjects are at hand (created if new and `create`),
        in one go: a save of many aggregates, or a page of the log, then costs no round trip
        per event."""

    def new_subject(self) -> UUID:
        """A fresh subject id whose key exists already (a new customer's id): a store may
        create keys ahead, a block at a time, so registering costs no look-up."""
        subject_id = uuid4()
        self.prepare([subject_id])
        return subject_id

    @abstractmethod
    def destroy(self, subject_id: UUID) -> None:
        """Destroy the subject's key (idempotent); it is never created again."""

    @abstractmethod
    def forget(self, subject_id: UUID) -> None:
        """Look the subject's key up again next time: a store that caches keys drops its
        copy, so an erasure made by another process counts at once (past versions, audit)."""


class InMemoryKeyRing(KeyRing):
    """Keys in a dict: for the in-memory event store of tests and tools."""

    def __init__(self) -> None:
        self._keys: dict[UUID, DataKey | None] = {}
        self._lock = threading.Lock()

    def data_key(self, subject_id: UUID, *, create: bool = False) -> DataKey | None:
        with self._lock:
            if subject_id not in self._keys:
                if not create:
                    return None
                self._keys[subject_id] = DataKey(subject_id, DataKey.generate())
            return self._keys[subject_id]

    def prepare(self, subject_ids: Iterable[UUID], *, create: bool = True) -> None:
        for subject_id in subject_ids:
            self.data_key(subject_id, create=create)

    def destroy(self, subject_id: UUID) -> None:
        with self._lock:
            self._keys[subject_id] = None

    def forget(self, subject_id: UUID) -> None:
        """Nothing to forget: the dict is the store itself."""
