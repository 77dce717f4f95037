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
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import Aggregate, DomainEvent
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
class _Decided:
    """A batch's command whose first attempt decided: its place, its change, its events."""

    index: int
    change: Change
    events: list[Any]


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
        self.existing_ids: Callable[[Collection[UUID]], set[UUID]] = self._existing_ids
        """Which of these aggregate ids exist; the infrastructure sets one query for all."""
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
        replay_on_conflict: bool = False,
    ) -> Receipt:
        """Run `attempt` and save what it decided; replay a keyed request's first outcome.

        `key` names the existing aggregate the command changes, if any.
        `replay_on_conflict`: the earlier outcome is not read before the first attempt, only
        once that attempt is refused. The record is saved with the command's own events, as
        version 1 of its stream, so a repeat's save is always refused and then replayed: for
        a command that only creates aggregates (a registration), whose repeat would do no
        more than take a customer number and a made-ahead data key it leaves unused, this
        saves the first-time request a read.
        """
        read_first = not replay_on_conflict
        if idempotency and read_first and (earlier := self._earlier_outcome(idempotency)):
            return earlier
        turn = self._turns[hash(key) % _TURN_STRIPES] if key else contextlib.nullcontext()
        with turn:
            return self._attempts(attempt, idempotency)

    def execute_batch(
        self, attempts: Sequence[Callable[[], Change]]
    ) -> list[Receipt | DomainError]:
        """Run many commands that create new aggregates, saved together: each one's receipt
        or refusal, in order.

        Every first attempt is decided without the others and all are saved in ONE atomic
        save (one lock, one flush, instead of one per command). A command that would
        create an aggregate that exists already (a value reserved before, a customer
        registered by an earlier run) or that an earlier command of the batch creates (two
        rows with one email) is kept out of it, found by one look-up for the whole batch,
        and goes through the ordinary retry path alone after the batch (a fresh read, then
        the precise refusal or a released value reclaimed): so the earlier of two commands
        wins, as if they had run one after the other. Should the save still be refused (a
        concurrent writer in between), the batch is split in halves down to the culprits.
        """
        outcomes: list[Receipt | DomainError | None] = [None] * len(attempts)
        decided: list[_Decided] = []
        for index, attempt in enumerate(attempts):
            try:
                change = attempt()
            except DomainError as refused:
                outcomes[index] = refused
                continue
            events = [e for aggregate in change.to_save for e in aggregate.collect_events()]
            decided.append(_Decided(index, change, events))
        created = {
            d.index: {e.originator_id for e in d.events if e.originator_version == 1}
            for d in decided
        }
        taken = self.existing_ids({i for ids in created.values() for i in ids})
        batch: list[_Decided] = []
        alone: list[int] = []
        for d in decided:
            if created[d.index] & taken:
                alone.append(d.index)
            else:
                batch.append(d)
            # Even a command that runs alone keeps its values from the later commands.
            taken |= created[d.index]
        self._save_or_split(batch, attempts, outcomes)
        for index in alone:
            outcomes[index] = self._alone(attempts[index])
        assert all(outcome is not None for outcome in outcomes)
        return outcomes  # type: ignore[return-value]

    def _alone(self, attempt: Callable[[], Change]) -> Receipt | DomainError:
        try:
            return self._attempts(attempt, None)
        except DomainError as refused:
            return refused

    def _existing_ids(self, ids: Collection[UUID]) -> set[UUID]:
        return {i for i in ids if self.recorder.select_events(i, limit=1)}

    def _save_or_split(
        self,
        group: list[_Decided],
        attempts: Sequence[Callable[[], Change]],
        outcomes: list[Receipt | DomainError | None],
    ) -> None:
        if not group:
            return
        try:
            recordings = self.group_commit.save([e for d in group for e in d.events])
        except IntegrityError:
            if len(group) > 1:
                half = len(group) // 2
                self._save_or_split(group[:half], attempts, outcomes)
                self._save_or_split(group[half:], attempts, outcomes)
                return
            outcomes[group[0].index] = self._alone(attempts[group[0].index])
            return
        by_event = {id(r.domain_event): r.notification.id for r in recordings}
        for d in group:
            position = max((by_event[id(e)] for e in d.events), default=0)
            outcomes[d.index] = Receipt(
                d.change.aggregate_id, d.change.version, position, d.change.result
            )

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

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        """`Application.save`; events already collected from their aggregates (every save
        of a command) skip its test of each object against the library's runtime-checkable
        `DomainEventProtocol` (on Python 3.11 some 10-50 us an object, four a
        registration), and go on as the library's save does (eventsourcing 9.5.6, pinned)."""
        if kwargs or not all(isinstance(obj, DomainEvent) for obj in objs):
            return super().save(*objs, **kwargs)
        processing_event: ProcessingEvent[Any] = ProcessingEvent()
        processing_event.events.extend(objs)
        recordings = self._record(processing_event)
        self._take_snapshots(processing_event)
        self._notify(recordings)
        self.notify(processing_event.events)  # deprecated, but the library still calls it
        return recordings

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
