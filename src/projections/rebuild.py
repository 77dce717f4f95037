"""Rebuild a read model from position 0 beside the live one, then swap it in atomically.

The rebuild fills a fresh schema (`<schema>__next`) from the start of the log in large
batches while the live read model keeps serving and updating. Once it has caught up, one
transaction takes the live tracking table's lock (the live runner's next batch waits),
applies the last few events, and renames the schemas: readers see the old tables or the
new ones, never a mix. The live runner then finds its tracking row ahead of it
(`PositionMovedError`), re-reads its position and goes on in the new tables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import structlog
from psycopg import Cursor, sql

from domain.service import CustomerService
from projections.base import Batch, ReadModel
from projections.reading import LogReader

__all__ = ["analyze_schema", "catch_up", "create_indexes", "drop_query_indexes", "rebuild"]

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
    for through, batch in _read_ahead(service, model, position, head, batch_size):
        model.process(batch, through=through)
        position = through
        if progress is not None:
            progress(position)
    return position


def _read_ahead(
    service: CustomerService, model: ReadModel, start: int, head: int, batch_size: int
) -> Iterator[tuple[int, Batch]]:
    """(last position read, wanted events) per batch up to `head`, each batch read and
    decoded in a thread while the caller applies the one before: the database's reading
    and the model's writing overlap. Batches still commit one at a time, in order."""
    log = LogReader(service, model.wants)

    def read(after: int) -> tuple[int, Batch] | None:
        found: tuple[int, Batch] | None = log.read(after, batch_size, stop=head)
        return found

    if start >= head:
        return
    with ThreadPoolExecutor(1, thread_name_prefix=f"read-{model.name}") as reader:
        pending: Future[tuple[int, Batch] | None] | None = reader.submit(read, start)
        while pending is not None:
            found = pending.result()
            if found is None:
                return
            through = found[0]
            pending = reader.submit(read, through) if through < head else None
            yield found


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
        # Most of the log, in big batches, while the live model keeps going; the indexes
        # that only queries use are built once at the end (a GIN index filled row by row
        # costs several times its one-pass build).
        deferred = drop_query_indexes(fresh)
        position = catch_up(service, fresh, progress=progress)
        create_indexes(fresh, deferred)
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
    """VACUUM (ANALYZE) every table of the model's schema: planner statistics for its
    queries, and a visibility map, without which index-only scans (the search's word
    table) read the heap too until autovacuum comes by."""
    with model.datastore.get_connection() as connection:  # autocommit: VACUUM needs it
        tables = connection.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY tablename",
            (model.schema,),
        ).fetchall()
        for row in tables:
            connection.execute(
                sql.SQL("VACUUM (ANALYZE) {}").format(
                    sql.Identifier(model.schema, row["tablename"])
                )
            )


def drop_query_indexes(model: ReadModel) -> list[str]:
    """Drop the model's indexes that back no constraint; their definitions, to recreate.

    Primary keys and unique constraints stay: the model's own writes look rows up by them.
    """
    with model.datastore.transaction(commit=True) as cursor:
        cursor.execute(
            "SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS ddl"
            " FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND NOT EXISTS"
            " (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)"
            " ORDER BY 1",
            (model.schema,),
        )
        found = cursor.fetchall()
        for row in found:
            cursor.execute(sql.SQL("DROP INDEX {}").format(sql.SQL(row["name"])))
    return [row["ddl"] for row in found]


def create_indexes(model: ReadModel, statements: list[str]) -> None:
    """Run the index definitions `drop_query_indexes` returned."""
    with model.datastore.transaction(commit=True) as cursor:
        # One build at a time gets all the memory a sort may use.
        cursor.execute("SET LOCAL maintenance_work_mem = '256MB'")
        for statement in statements:
            cursor.execute(statement.encode())


def _execute(model: ReadModel, statement: sql.Composed) -> None:
    with model.datastore.transaction(commit=True) as cursor:
        cursor.execute(statement)


def _catch_up_in(
    cursor: Cursor[Any], service: CustomerService, model: ReadModel, position: int
) -> int:
    """The last events, applied inside the swap's transaction (the live runner is paused)."""
    head = service.recorder.max_notification_id() or 0
    reader = LogReader(service, model.wants)
    while position < head:
        found = reader.read(position, REBUILD_BATCH, stop=head)
        if found is None:
            break
        position, batch = found
        model.apply_batch(cursor, batch, through=position)
    return position
