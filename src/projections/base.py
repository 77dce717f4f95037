"""What every read model shares: its own schema, versioned DDL, and exactly-once batches.

A read model is a `PostgresTrackingRecorder` (the `eventsourcing` library's tracking table)
whose rows and tracking position are written in ONE transaction per batch of events: a
crash before the commit loses the batch and its position together, so it is simply done
again; a batch already tracked is refused by the library's tracking insert. Each read
model lives in a schema of its own (`<service schema>_<name>`), so a rebuild can fill a
fresh schema and swap it in with two renames in one transaction.

An event a read model cannot apply is parked in its `dead_letters` table, with the
error, in the same transaction as the tracking position that steps over it: nothing is
skipped silently, and `customers projections retry NAME` replays the parked events.
"""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import structlog
from eventsourcing.persistence import IntegrityError, Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from psycopg import Cursor, sql

from domain.base import event_name
from projections.migrations import apply_migrations

__all__ = [
    "PROGRESS_CHANNEL",
    "UPSTREAM",
    "Batch",
    "PoisonEventError",
    "PoisonPolicy",
    "PositionMovedError",
    "ReadModel",
    "read_model_schema",
]

PROGRESS_CHANNEL = "read_model_progress"
"""NOTIFY channel: payload `<schema>:<position>` when a batch commits (read-your-writes)."""

UPSTREAM = "crm"
"""The application whose log every read model follows (its name in tracking rows)."""

_log = structlog.get_logger("projections")

Batch = Sequence[tuple[int, Any]]
"""Events with their global positions, in log order."""


def read_model_schema(service_schema: str, name: str) -> str:
    return f"{service_schema}_{name}"


@dataclass(frozen=True)
class PoisonPolicy:
    """What to do after parking an event the read model cannot apply."""

    stop: bool = False
    """Stop the runner (an operator looks first) instead of going on with the next event."""


class PoisonEventError(Exception):
    """An event was parked and the policy says stop."""


class PositionMovedError(Exception):
    """The read model's saved position moved on under this runner: read it again."""


class ReadModel(PostgresTrackingRecorder):
    """Base of the read models: subclasses name themselves and apply events to their tables."""

    name: ClassVar[str]
    """Short name: the worker's name, the schema suffix, the metrics label."""

    def __init__(self, datastore: PostgresDatastore, *, poison: PoisonPolicy | None = None) -> None:
        super().__init__(datastore, tracking_table_name="tracking")
        self.poison = poison or PoisonPolicy()
        self.schema = datastore.schema

    # ---- what subclasses write -------------------------------------------------------------

    def apply(self, cursor: Cursor[Any], event: Any, position: int) -> None:
        """Write what `event` means for this read model's tables."""
        raise NotImplementedError

    def apply_events(self, cursor: Cursor[Any], batch: Batch) -> None:
        """Write a batch's events (models that write set-wise override this)."""
        for position, event in batch:
            self.apply(cursor, event, position)

    def wants(self, event_class: type[Any]) -> bool:
        """Whether events of this class can change the model: the others are not even
        decoded (most of a rebuild's cost is decoding). Every class, unless overridden."""
        return True

    def table(self, name: str) -> sql.Composed:
        """A table of this read model, schema-qualified."""
        return sql.Identifier(self.schema, name)  # type: ignore[return-value]

    # ---- the machinery ---------------------------------------------------------------------

    def migrate(self) -> None:
        """Create the schema, the library's tracking table, dead letters and the model's DDL."""
        apply_migrations(self.datastore, self.schema, self.name)
        self.create_table()

    def position(self) -> int:
        """The last position this read model has processed (0 before the first event)."""
        return self.max_tracking_id(UPSTREAM) or 0

    def process(self, batch: Batch, *, through: int | None = None) -> None:
        """Apply a batch and advance the position, in one transaction; park poison events.

        `through`: the last position read, when it is past the batch's last event (the
        events in between were of no interest and not decoded): the position moves there,
        so a reader waiting for one of those positions is not kept waiting.
        """
        try:
            self._commit(batch, through)
        except (PoisonEventError, PositionMovedError):
            raise
        except Exception:
            if not batch:
                raise
            if len(batch) == 1:
                self._park(*batch[0])
            else:
                # Find the culprit without losing its neighbours: one event per transaction.
                for item in batch:
                    self.process([item])
            if through is not None and through > batch[-1][0]:
                self.process([], through=through)

    def apply_batch(self, cursor: Cursor[Any], batch: Batch, *, through: int | None = None) -> None:
        """Apply a batch and advance the position on `cursor` (the caller's transaction)."""
        if batch:
            self.apply_events(cursor, batch)
        last = max(batch[-1][0] if batch else 0, through or 0)
        try:
            self._advance(cursor, last)
        except IntegrityError:
            # The tracking row is already past this batch: a rebuild was swapped in, or
            # another runner got here first. Not a poison event: re-read and go on.
            raise PositionMovedError(self.name) from None

    def _commit(self, batch: Batch, through: int | None) -> None:
        with self.datastore.transaction(commit=True) as cursor:
            # A read model can lose its last commits in a crash without harm: they carry
            # their own tracking position, so the runner simply does them again. Not
            # waiting for the disk flush halves the cost of a small batch.
            cursor.execute("SET LOCAL synchronous_commit = off")
            self.apply_batch(cursor, batch, through=through)

    def _park(self, position: int, event: Any) -> None:
        error = traceback.format_exc(limit=5)
        _log.error("event_parked", read_model=self.name, position=position, type=event_name(event))
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                sql.SQL(
                    "INSERT INTO {} (position, event_type, originator_id, error)"
                    " VALUES (%s, %s, %s, %s) ON CONFLICT (position) DO UPDATE"
                    " SET error = EXCLUDED.error, parked_at = now(), retried_at = NULL"
                ).format(self.table("dead_letters")),
                (position, event_name(event), event.originator_id, error),
            )
            self._advance(cursor, position)
        if self.poison.stop:
            raise PoisonEventError(f"{self.name}: event at position {position} parked")

    def _advance(self, cursor: Cursor[Any], position: int) -> None:
        self._insert_tracking(cursor, Tracking(UPSTREAM, position))
        cursor.execute("SELECT pg_notify(%s, %s)", (PROGRESS_CHANNEL, f"{self.schema}:{position}"))

    def parked_positions(self) -> list[int]:
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                sql.SQL(
                    "SELECT position FROM {} WHERE retried_at IS NULL ORDER BY position"
                ).format(self.table("dead_letters"))
            )
            return [row["position"] for row in cursor.fetchall()]

    def retry_parked(self, events: Batch) -> list[int]:
        """Apply parked events again (after a fix); returns the positions that still fail."""
        failing = []
        for position, event in events:
            try:
                with self.datastore.transaction(commit=True) as cursor:
                    self.apply(cursor, event, position)
                    cursor.execute(
                        sql.SQL("UPDATE {} SET retried_at = now() WHERE position = %s").format(
                            self.table("dead_letters")
                        ),
                        (position,),
                    )
            except Exception:
                failing.append(position)
        return failing
