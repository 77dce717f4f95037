"""The write path every command shares: decide on fresh state, save atomically, retry lost races.

Each command loads what it needs, lets the aggregates decide, and saves everything it
changed in ONE atomic save: the aggregate's events, the reservations of unique values,
and the memory of an idempotent request. A save that loses a race (another writer got
the version or the reservation first) is retried from a fresh read a few times; the
fresh read then either succeeds or gives the precise refusal (taken, stale version).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from domain.errors import ConflictError, DomainError, NotFoundError, VersionMismatchError
from domain.group_commit import GroupCommit
from domain.idempotency import IdempotentRequest
from domain.key_ring import KeyRing
from domain.personal_data import personal_subject

__all__ = ["Change", "Idempotency", "Receipt", "WritePath"]

MAX_ATTEMPTS = 5
_TURN_STRIPES = 256


@dataclass(frozen=True)
class Idempotency:
    """A request's Idempotency-Key, scoped to its caller, and the fingerprint of its content."""

    record_id: UUID
    fingerprint: str
    first_use: bool = False
    """The caller knows no earlier request used this key (an import row never tried
    before): the lookup of an earlier outcome is skipped; the record is still saved."""


@dataclass(frozen=True)
class Receipt:
    """What a command answers with."""

    aggregate_id: UUID
    version: int
    """The aggregate's version after the command (its ETag)."""
    position: int
    """Global position of the command's last event (X-Event-Position); for a replayed
    request, the head of the log when it was replayed, which is never before the first."""
    result: dict[str, Any] = field(default_factory=dict)
    replayed: bool = False


@dataclass
class Change:
    """What one attempt of a command decided: the aggregates to save and what to answer."""

    aggregate_id: UUID
    version: int
    result: dict[str, Any]
    to_save: list[Aggregate]


class WritePath(Application[UUID]):
    """An application whose commands go through `execute`."""

    key_ring: KeyRing

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        super().__init__(env)
        self.group_commit = GroupCommit(self._save_with_keys)
        # Commands on one aggregate take turns inside this process, so a hot customer
        # costs waiting instead of failed attempts; across processes the event store's
        # version check still decides.
        self._turns = [threading.RLock() for _ in range(_TURN_STRIPES)]

    def execute(
        self,
        attempt: Callable[[], Change],
        idempotency: Idempotency | None,
        *,
        key: UUID | None = None,
    ) -> Receipt:
        """Run `attempt` and save what it decided; replay a keyed request's first outcome.

        `key` names the existing aggregate the command changes, if any.
        """
        known_new = idempotency is not None and idempotency.first_use
        if idempotency and not known_new and (earlier := self._earlier_outcome(idempotency)):
            return earlier
        turn = self._turns[hash(key) % _TURN_STRIPES] if key else contextlib.nullcontext()
        with turn:
            return self._attempts(attempt, idempotency)

    def _attempts(self, attempt: Callable[[], Change], idempotency: Idempotency | None) -> Receipt:
        for _ in range(MAX_ATTEMPTS):
            try:
                change = attempt()
            except DomainError:
                # A concurrent twin of this keyed request may have just won: its effect
                # (say, the email now taken) is then no refusal but the answer to replay.
                if idempotency and (earlier := self._earlier_outcome(idempotency)):
                    return earlier
                raise
            to_save = list(change.to_save)
            if idempotency:
                to_save.append(
                    IdempotentRequest.record(
                        idempotency.record_id,
                        idempotency.fingerprint,
                        change.aggregate_id,
                        change.version,
                        change.result,
                    )
                )
            events = [e for aggregate in to_save for e in aggregate.collect_events()]
            # The data keys the events need, fetched (or created) here, in the command's own
            # thread: in parallel with other commands, not in the group commit's serial path.
            self._prepare_keys(events)
            try:
                recordings = self.group_commit.save(events)
            except IntegrityError:
                # Lost a race: a concurrent identical request, a newer version, or a
                # reservation taken meanwhile. The next attempt reads again and decides.
                if idempotency and (earlier := self._earlier_outcome(idempotency)):
                    return earlier
                continue
            position = max((r.notification.id for r in recordings), default=0)
            return Receipt(change.aggregate_id, change.version, position, change.result)
        raise ConflictError("the customer kept changing while this command ran; try again")

    def _prepare_keys(self, events: Any) -> None:
        """Fetch (or create) the data keys of every customer whose personal data the events
        hold, in one look-up (none when cached): never a round trip per event."""
        subjects = {s for s in map(personal_subject, events) if s is not None}
        if subjects:
            self.key_ring.prepare(subjects)

    def _save_with_keys(self, *events: Any) -> Any:
        """Save, with the keys at hand (a cache hit when the command prepared them)."""
        self._prepare_keys(events)
        return self.save(*events)

    def _earlier_outcome(self, idempotency: Idempotency) -> Receipt | None:
        try:
            record: Aggregate = self.repository.get(idempotency.record_id)
        except AggregateNotFoundError:
            return None
        assert isinstance(record, IdempotentRequest)
        record.check_same_request(idempotency.fingerprint)
        return Receipt(
            record.aggregate_id,
            record.aggregate_version,
            self.recorder.max_notification_id() or 0,
            record.result,
            replayed=True,
        )

    def load(self, aggregate_id: UUID, kind: type[Aggregate], expected_version: int | None) -> Any:
        """The aggregate of that kind, checked against the version the caller saw."""
        try:
            aggregate: Aggregate = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            raise NotFoundError(kind.__name__.lower(), aggregate_id) from None
        if not isinstance(aggregate, kind):
            raise NotFoundError(kind.__name__.lower(), aggregate_id)
        if expected_version is not None and expected_version != aggregate.version:
            raise VersionMismatchError(expected_version, aggregate.version)
        return aggregate
