"""Registration's look-up of likely duplicates on a database no duplicates worker has set up."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from domain.duplicates import NewCustomer
from domain.values import Profile
from infrastructure.eventstore import read_model_datastore
from projections.duplicate_queries import DuplicateLookup


@pytest.fixture
def bare_database_url(database_url: str) -> Iterator[str]:
    """A new, empty database on the session's server: no schema, no pg_trgm."""
    name = f"bare_{secrets.token_hex(4)}"
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base, _, query = database_url.partition("?")
    yield f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_without_the_view_or_pg_trgm_the_lookup_answers_not_checked(
    bare_database_url: str, make_settings: Any
) -> None:
    """No duplicates view and not even its extension: None (`likely_duplicates: null`),
    never an error that would fail the registration."""
    settings = make_settings(database_url=bare_database_url)
    datastore = read_model_datastore(settings, "public")
    try:
        lookup = DuplicateLookup(datastore, "crm_duplicates")
        new = NewCustomer(None, Profile(first_name="Ada", mobile_phone="+14155550123"), [])
        assert lookup([new]) is None
    finally:
        datastore.close()
