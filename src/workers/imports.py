"""The import worker: registers the pending rows of uploaded customer files.

It runs in its own process (`customers worker import`; `customers run` starts one), not in
the gateway: an import of 100,000 rows is minutes of CPU that would otherwise slow every
API request of the gateway that took the upload. The rows wait in PostgreSQL, so any
worker, including a restarted one, picks up where a crashed one stopped.

One worker holds an import at a time (a session advisory lock per import, so several
workers share the imports between them). It takes the pending rows a batch at a time and
registers them `SAVE_ROWS` at a time in ONE atomic save each (`register_customers`: the
customers and their reservations together; the rows that would conflict, found by one
look-up per batch, are registered alone after it, so a duplicate costs no failed save).
Each row's customer id is derived from the import and the row (`row_customer_id`), and
a new aggregate whose id exists refuses the save: a row whose customer was saved just
before a crash, but whose outcome was not, is found by that id on the next run instead
of being registered twice. Only rows a crashed run attempted are looked up.

Outcomes: `created`; `duplicate` when the email, mobile phone or customer number is
already reserved (by an earlier customer, or an earlier row of the same file), with the
holder's id; `invalid` when a domain rule refuses the row, naming the field.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import psycopg
import structlog

from domain.context import acting_as
from domain.errors import DomainError, UniqueValueTakenError
from domain.service import CustomerService
from domain.write_path import Receipt
from infrastructure.database import DATABASE_UNAVAILABLE
from infrastructure.imports import IMPORTS_CHANNEL, ImportStore, RowOutcome, row_customer_id

__all__ = ["ImportWorker"]

_log = structlog.get_logger("workers.imports")

BATCH_ROWS = 512
"""Rows registered between two saves of their outcomes (lost and redone in a crash)."""
SAVE_ROWS = 128
"""Rows registered in one atomic save (about 4 events each)."""
GIVE_UP_AFTER = 5
"""Failed attempts (errors that are neither a refusal nor an outage) before `failed`."""
IDLE_WAIT_SECONDS = 1.0


class ImportWorker:
    """Processes every running import, one at a time, until stopped."""

    def __init__(
        self,
        service: CustomerService,
        database_url: str,
        *,
        schema: str,
        save_rows: int = SAVE_ROWS,
        batch_rows: int = BATCH_ROWS,
        stop_event: threading.Event | None = None,
    ) -> None:
        self.service = service
        self.store = ImportStore(service.recorder.datastore, schema)  # type: ignore[attr-defined]
        self._database_url = database_url
        self._save_rows = save_rows
        self._batch_rows = batch_rows
        self._stop = stop_event or threading.Event()
        self._transcoder: Any = service.mapper.transcoder

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        """Wait for uploads (LISTEN, with a poll as a fallback) and process them."""
        with psycopg.connect(self._database_url, autocommit=True) as connection:
            connection.execute(f"LISTEN {IMPORTS_CHANNEL}")
            while not self._stop.is_set():
                if not self.run_once(connection):
                    for _ in connection.notifies(timeout=IDLE_WAIT_SECONDS, stop_after=1):
                        pass

    def run_once(self, connection: psycopg.Connection[Any]) -> bool:
        """Process each running import no other worker holds; whether there was any."""
        worked = False
        for import_id in self.store.running():
            if self._stop.is_set():
                break
            key = f"import:{self.store.schema}:{import_id}"
            row = connection.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (key,)).fetchone()
            if not (row and row[0]):
                continue
            try:
                worked = True
                self.process(import_id)
            finally:
                connection.execute("SELECT pg_advisory_unlock(hashtext(%s))", (key,))
        return worked

    def process(self, import_id: UUID) -> None:
        """Register the import's pending rows, batch by batch, until none is left."""
        summary = self.store.summary(import_id)
        if summary is None or summary.status != "running":
            return
        _log.info("import_started", import_id=str(import_id), pending=summary.pending)
        while not self._stop.is_set():
            rows = self.store.pending(import_id, limit=self._batch_rows)
            if not rows:
                break
            try:
                outcomes: list[RowOutcome] = []
                for start in range(0, len(rows), self._save_rows):
                    part = rows[start : start + self._save_rows]
                    outcomes += self._register(import_id, summary.created_by, part)
                self.store.record(import_id, outcomes)
            except DATABASE_UNAVAILABLE as error:
                # Not the import's fault: the next round tries again from the same rows.
                _log.warning("import_paused", import_id=str(import_id), error=repr(error))
                self._stop.wait(IDLE_WAIT_SECONDS)
                return
            except Exception as error:
                _log.exception("import_batch_failed", import_id=str(import_id))
                if self.store.fail(import_id, repr(error), give_up_after=GIVE_UP_AFTER):
                    _log.error("import_failed", import_id=str(import_id))
                return
        _log.info("import_stopped_or_done", import_id=str(import_id))

    def _register(
        self, import_id: UUID, actor: str, rows: Sequence[RowOutcome]
    ) -> list[RowOutcome]:
        """The rows' outcomes, their customers registered in one save where they can be."""
        ids = {row.row: row_customer_id(import_id, row.row) for row in rows}
        # Only a row a crashed run attempted can have its customer already.
        registered = self.service.existing_ids([ids[row.row] for row in rows if row.attempted])
        found: dict[int, RowOutcome] = {}
        registrations = []
        for row in rows:
            if ids[row.row] in registered:
                found[row.row] = RowOutcome(row.row, "created", customer_id=ids[row.row])
                continue
            assert row.fields is not None
            registrations.append((ids[row.row], self._transcoder.decode(row.fields)))
        with acting_as(actor, f"import:{import_id}"):
            results = iter(self.service.register_customers(registrations))
        return [found.get(row.row) or _outcome(row.row, next(results)) for row in rows]


def _outcome(row: int, result: Receipt | DomainError) -> RowOutcome:
    if isinstance(result, Receipt):
        likely = result.result.get("likely_duplicates")
        return RowOutcome(
            row,
            "created",
            customer_id=result.aggregate_id,
            likely_duplicates=[{**d, "customer_id": str(d["customer_id"])} for d in likely]
            if likely is not None
            else None,
        )
    errors = [{"field": result.field, "message": result.message}]
    if isinstance(result, UniqueValueTakenError):
        return RowOutcome(row, "duplicate", customer_id=result.holder_id, errors=errors)
    return RowOutcome(row, "invalid", errors=errors)
