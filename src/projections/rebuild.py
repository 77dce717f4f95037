"""Rebuild a read model from position 0 beside the live one, then swap it in atomically.

The rebuild fills a fresh schema (`<schema>__next`) from the start of the log in large
batches while the live read model keeps serving and updating. Once it has caught up, one
transaction takes the live tracking table's lock (the live runner's next batch waits),
applies the last few events, and renames the schemas: readers see the old tables or the
new ones, never a mix. The live runner then finds its tracking row ahead of it
(`PositionMovedError`), re-reads its position and goes on in the new tables.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from psycopg import Cursor, sql

from domain.service import CustomerService
from projections.base import ReadModel, TopicFilter

__all__ = ["analyze_schema", "catch_up", "rebuild"]

_log = structlog.get_logger("projections.rebuild")

REBUILD_BATCH = 2000


def catch_up(
    service: CustomerService,
    model: ReadModel,
    *,
    until: int | None = None,
    batch_size: int = REBUILD_BATCH,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Apply every event after the model's position up to `until` (default: the head)."""
    head = until if until is not None else (service.recorder.max_notification_id() or 0)
    position = model.position()
    wanted = TopicFilter(service.mapper, model.wants)
    while position < head:
        notifications = service.recorder.select_notifications(
            start=position, limit=batch_size, stop=head, inclusive_of_start=False
        )
        if not notifications:
            break
        position = notifications[-1].id
        model.process(wanted.events(notifications), through=position)
        if progress is not None:
            progress(position)
    return position


def rebuild(
    service: CustomerService,
    open_model: Callable[[str], ReadModel],
    live_schema: str,
    *,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Rebuild into `<live_schema>__next` and swap it in; returns the position reached."""
    next_schema = f"{live_schema}__next"
    old_schema = f"{live_schema}__old"
    fresh = open_model(next_schema)
    try:
        _execute(
            fresh, sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(next_schema))
        )
        fresh.migrate()
        # Most of the log, in big batches, while the live model keeps going.
        position = catch_up(service, fresh, progress=progress)
        # Fresh tables have no statistics: swapped in so, the planner would guess them
        # empty and scan them whole (a trigram search took 600 ms instead of a few).
        analyze_schema(fresh)
        with fresh.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                "SELECT to_regclass(%s) IS NOT NULL AS live", (f'"{live_schema}".tracking',)
            )
            row = cursor.fetchone()
            has_live = bool(row and row["live"])
            if has_live:
                # The live runner's next batch waits here until the swap commits.
                cursor.execute(
                    sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
                        sql.Identifier(live_schema, "tracking")
                    )
                )
            position = _catch_up_in(cursor, service, fresh, position)
            cursor.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(old_schema))
            )
            if has_live:
                cursor.execute(
                    sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(
                        sql.Identifier(live_schema), sql.Identifier(old_schema)
                    )
                )
            cursor.execute(
                sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(
                    sql.Identifier(next_schema), sql.Identifier(live_schema)
                )
            )
        _execute(
            fresh, sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(old_schema))
        )
        _log.info("read_model_rebuilt", read_model=fresh.name, position=position)
        return position
    finally:
        fresh.datastore.close()


def analyze_schema(model: ReadModel) -> None:
    """ANALYZE every table of the model's schema (planner statistics for its queries)."""
    with model.datastore.transaction(commit=True) as cursor:
        cursor.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY tablename",
            (model.schema,),
        )
        for row in cursor.fetchall():
            cursor.execute(
                sql.SQL("ANALYZE {}").format(sql.Identifier(model.schema, row["tablename"]))
            )


def _execute(model: ReadModel, statement: sql.Composed) -> None:
    with model.datastore.transaction(commit=True) as cursor:
        cursor.execute(statement)


def _catch_up_in(
    cursor: Cursor[Any], service: CustomerService, model: ReadModel, position: int
) -> int:
    """The last events, applied inside the swap's transaction (the live runner is paused)."""
    head = service.recorder.max_notification_id() or 0
    wanted = TopicFilter(service.mapper, model.wants)
    while position < head:
        notifications = service.recorder.select_notifications(
            start=position, limit=REBUILD_BATCH, stop=head, inclusive_of_start=False
        )
        if not notifications:
            break
        position = notifications[-1].id
        model.apply_batch(cursor, wanted.events(notifications), through=position)
    return position
