"""Versioned SQL migrations of the read models, one folder of numbered files per model.

`sql/common/` runs first in every read model's schema (dead letters); then
`sql/<name>/NNNN_*.sql`. Applied versions are recorded in the schema's
`schema_migrations`, so each file runs once, in order, inside one transaction with its
record. Files name tables as `{schema}.table`; the schema is filled in here.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from psycopg import sql

__all__ = ["apply_migrations", "migration_files"]


def migration_files(name: str) -> list[tuple[str, str]]:
    """(version, SQL text) of the common and the model's migrations, in order."""
    files: list[tuple[str, str]] = []
    for folder in ("common", name):
        root = resources.files("projections") / "sql" / folder
        if not root.is_dir():
            continue
        for entry in sorted(root.iterdir(), key=lambda e: e.name):
            if entry.name.endswith(".sql"):
                files.append((f"{folder}/{entry.name}", entry.read_text()))
    return files


def apply_migrations(datastore: Any, schema: str, name: str) -> list[str]:
    """Create `schema` and apply the files not yet recorded there; returns those applied."""
    applied: list[str] = []
    with datastore.transaction(commit=True) as cursor:
        # One migrator per schema at a time: two starting workers must not race.
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"migrate:{schema}",))
        cursor.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        cursor.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {}.schema_migrations"
                " (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            ).format(sql.Identifier(schema))
        )
        cursor.execute(
            sql.SQL("SELECT version FROM {}.schema_migrations").format(sql.Identifier(schema))
        )
        done = {row["version"] for row in cursor.fetchall()}
        for version, text in migration_files(name):
            if version in done:
                continue
            cursor.execute(text.replace("{schema}", _quoted(schema)))
            cursor.execute(
                sql.SQL("INSERT INTO {}.schema_migrations (version) VALUES (%s)").format(
                    sql.Identifier(schema)
                ),
                (version,),
            )
            applied.append(version)
    return applied


def _quoted(schema: str) -> str:
    # Schema names are validated identifiers (settings); quoting keeps them exact.
    return '"' + schema.replace('"', '""') + '"'
