"""Customer files: backups of a customer's equipment, site maps, anything kept for them.

A file is an aggregate of its own, one per upload. Its events carry what is known about
the file (its name, size, sniffed content type, SHA-256 and who uploaded it), never its
bytes: the content is kept once per SHA-256 outside the event store, so the same backup
uploaded for two customers (or twice) is stored once, and an erasure can destroy it,
which it could not do to an event. The name is the customer's personal data
(`domain.personal_data`): "Smith house alarm backup.cfg".

Deleting a file is soft: the file is hidden and its content goes once no live file
names it; the stream stays.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from uuid import UUID

from domain.base import TracedAggregate
from domain.errors import ConflictError, RuleViolationError
from domain.relinking import Relinkable

__all__ = ["MAX_NAME_LENGTH", "CustomerFile"]

MAX_NAME_LENGTH = 255
"""As long as the file systems people download to allow."""
_SHA256 = re.compile(r"[0-9a-f]{64}")
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\]")


class CustomerFile(Relinkable, TracedAggregate):
    """One uploaded file of one customer."""

    if TYPE_CHECKING:  # annotations at run time would make the library build a dataclass
        customer_id: UUID
        name: str
        size: int
        content_type: str
        """As sniffed from the content, not as the client declared it."""
        sha256: str
        """Hex SHA-256 of the content: where the content store keeps it."""
        uploader: str
        deleted: bool

    class Uploaded(TracedAggregate.Created):
        customer_id: UUID
        name: str
        size: int
        content_type: str
        sha256: str
        uploader: str

        def apply(self, file: CustomerFile) -> None:
            file.customer_id, file.name, file.size = self.customer_id, self.name, self.size
            file.content_type, file.sha256 = self.content_type, self.sha256
            file.uploader = self.uploader
            file.deleted = False

    class Deleted(TracedAggregate.Event):
        customer_id: UUID

        def apply(self, file: CustomerFile) -> None:
            file.deleted = True

    # ---- merges of its customer ------------------------------------------------------------

    class Relinked(Relinkable.Relinked):
        pass

    @classmethod
    def upload(
        cls,
        *,
        file_id: UUID,
        customer_id: UUID,
        name: str,
        size: int,
        content_type: str,
        sha256: str,
        uploader: str,
    ) -> CustomerFile:
        """Record an upload whose content is stored: a name without path or control
        characters, a non-empty content, its hash."""
        name = name.strip()
        if not name:
            raise RuleViolationError("filename", "a file needs a name")
        if len(name) > MAX_NAME_LENGTH:
            raise RuleViolationError("filename", f"at most {MAX_NAME_LENGTH} characters")
        if _UNSAFE_NAME.search(name):
            raise RuleViolationError("filename", "no path separators or control characters")
        if size <= 0:
            raise RuleViolationError("file", "the file is empty")
        if not _SHA256.fullmatch(sha256):
            raise RuleViolationError("sha256", "not a hex SHA-256")
        return cls._create(
            cls.Uploaded,
            id=file_id,
            customer_id=customer_id,
            name=name,
            size=size,
            content_type=content_type,
            sha256=sha256,
            uploader=uploader,
        )

    def delete(self) -> None:
        """Hide the file (its content goes when no live file names it)."""
        if self.deleted:
            raise ConflictError("the file is deleted already", field="file_id")
        self.trigger_event(self.Deleted, customer_id=self.customer_id)
