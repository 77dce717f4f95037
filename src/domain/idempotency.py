"""Requests sent with an Idempotency-Key, remembered with the effect they had.

The record is saved in the same atomic save as the command's events, so either both the
effect and the memory of it exist or neither does: a retry after a crash, a timeout or a
dropped connection finds the record and gets the first answer instead of a second effect.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid5

from domain.base import TracedAggregate
from domain.errors import RuleViolationError

__all__ = ["IdempotencyKeyReusedError", "IdempotentRequest", "idempotency_id"]

_NAMESPACE = UUID("0b9a4f8e-51d3-4c7a-8f6e-2d4c1b7a9e30")


def idempotency_id(actor: str, key: str) -> UUID:
    """Keys are scoped to the caller: two clients cannot collide on a key."""
    return uuid5(_NAMESPACE, f"{actor}\n{key}")


class IdempotencyKeyReusedError(RuleViolationError):
    """The key was first used for a different request."""

    def __init__(self) -> None:
        super().__init__(
            "Idempotency-Key", "this Idempotency-Key was already used for a different request"
        )


class IdempotentRequest(TracedAggregate):
    """The first outcome of a keyed request."""

    if TYPE_CHECKING:  # annotations at run time would make the library build a dataclass
        fingerprint: str
        """A hash of method, path and body: a retry must match it."""
        aggregate_id: UUID
        aggregate_version: int
        result: dict[str, Any]

    class Recorded(TracedAggregate.Created):
        fingerprint: str
        aggregate_id: UUID
        aggregate_version: int
        result: dict[str, Any]

        def apply(self, request: IdempotentRequest) -> None:
            request.fingerprint = self.fingerprint
            request.aggregate_id = self.aggregate_id
            request.aggregate_version = self.aggregate_version
            request.result = self.result

    @classmethod
    def record(
        cls,
        record_id: UUID,
        fingerprint: str,
        aggregate_id: UUID,
        aggregate_version: int,
        result: dict[str, Any],
    ) -> IdempotentRequest:
        return cls._create(
            cls.Recorded,
            id=record_id,
            fingerprint=fingerprint,
            aggregate_id=aggregate_id,
            aggregate_version=aggregate_version,
            result=result,
        )

    def check_same_request(self, fingerprint: str) -> None:
        if fingerprint != self.fingerprint:
            raise IdempotencyKeyReusedError()
