"""Throwaway schemas (tests, benchmarks) go with their read models' schemas."""

from __future__ import annotations

import secrets

import psycopg

from infrastructure.database import drop_schema, ensure_schema
from projections.base import read_model_schema


def schemas_named(database_url: str, *names: str) -> set[str]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s)", (list(names),)
        ).fetchall()
    return {row[0] for row in rows}


def test_dropping_a_service_schema_drops_its_read_models_schemas_and_no_other(
    database_url: str,
) -> None:
    service = f"d_{secrets.token_hex(5)}"
    read_models = [read_model_schema(service, "search"), read_model_schema(service, "history")]
    # Names that only look alike: a longer service name, and LIKE's wildcard in place of `_`.
    neighbours = [f"{service}x_search", f"{service}xsearch"]
    for schema in [service, *read_models, *neighbours]:
        ensure_schema(database_url, schema)
    try:
        drop_schema(database_url, service)
        assert schemas_named(database_url, service, *read_models) == set()
        assert schemas_named(database_url, *neighbours) == set(neighbours)
    finally:
        for schema in neighbours:
            drop_schema(database_url, schema)
