"""Search queries over many rows, timed and counted by PostgreSQL itself, not over HTTP.

Wall times on a shared machine follow other people's jobs; the plan's buffer count does
not. This fills a search read model once in a schema of its own (the rows the bench's
search phase writes), then runs each query kind through `search_statement` under
`EXPLAIN (ANALYZE, BUFFERS, TIMING OFF)` in the gateway's transaction settings, and keeps
every query's rows (ids and ranks, in order) so that two runs can be compared: a change
meant to make search faster must not change what it finds.

    python -m bench.search_plans fill --database URL --schema perf_search [--customers N]
    python -m bench.search_plans run --database URL --schema perf_search --out a.json
    python -m bench.search_plans run ... --out b.json --compare a.json
    python -m bench.search_plans drop --database URL --schema perf_search
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import random
import re
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from eventsourcing.postgres import PostgresDatastore
from psycopg import sql
from psycopg.rows import dict_row

from bench.synthetic import GROUPS, SYSTEM_TYPES, Person, customer_events, people
from domain.customers import Customer
from domain.errors import RuleViolationError
from domain.values import normalise_phone
from infrastructure.database import parse_database_url
from projections.rebuild import analyze_schema, create_indexes, drop_query_indexes
from projections.search import (
    SESSION_SETTINGS,
    TRGM_SCHEMA_QUERY,
    SearchCriteria,
    SearchModel,
    digits,
    search_statement,
)

__all__ = ["main"]

_FIRST_NUMBER = 10_000_000
_SAMPLE = 2000
_PAGE = 51
"""What the gateway asks for: a page of 50 and one more to know there is a next page."""
_LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)
_PHONE_LIKE = re.compile(r"[\d\s()+\-./]+")


def fill(database: str, schema: str, customers: int) -> None:
    """The search model's rows for `customers` synthetic customers, as the bench writes them."""
    model = SearchModel(_datastore(database, schema))
    try:
        with model.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
            )
        model.migrate()
        started = time.perf_counter()
        deferred = drop_query_indexes(model)
        events = customer_events(_FIRST_NUMBER, customers)
        written = 0
        while batch := list(itertools.islice(events, 2000)):
            with model.datastore.transaction(commit=True) as cursor:
                model.apply_events(cursor, [(0, event) for event in batch])
            written += sum(type(e) is Customer.Registered for e in batch)
        create_indexes(model, deferred)
        analyze_schema(model)
        print(f"{written:,} customers in {schema} ({time.perf_counter() - started:.0f} s)")
    finally:
        model.datastore.close()


def run(database: str, schema: str, customers: int, per_kind: int) -> dict[str, Any]:
    """Each query kind `per_kind` times: server milliseconds, buffers and the rows found."""
    found: dict[str, list[dict[str, Any]]] = {}
    with psycopg.connect(database, row_factory=dict_row, autocommit=True) as connection:
        trgm = connection.execute(TRGM_SCHEMA_QUERY).fetchone()
        assert trgm is not None, "pg_trgm is not installed: fill the schema first"
        # Windows are counted back from the newest row, not from now: two runs at different
        # times ask the same questions.
        newest = connection.execute(
            sql.SQL("SELECT max(registered_at) AS at FROM {}").format(
                sql.Identifier(schema, "customers")
            )
        ).fetchone()
        assert newest is not None and newest["at"] is not None, f"{schema} has no customers"
        kinds = _kinds(_sample(customers), newest["at"])
        for name, make in kinds.items():
            for _ in range(per_kind):
                criteria, second_page = make()
                after = None
                if second_page:
                    rows = _rows(connection, schema, trgm["schema"], criteria, None)
                    if len(rows) > _PAGE - 1:
                        last = rows[_PAGE - 2]
                        after = (last["rank"], last["registered_at"], last["id"])
                ms, buffers = _explained(connection, schema, trgm["schema"], criteria, after)
                rows = _rows(connection, schema, trgm["schema"], criteria, after)
                found.setdefault(name, []).append(
                    {
                        "query": repr(criteria),
                        "ms": round(ms, 2),
                        "buffers": buffers,
                        "rows": [[str(r["id"]), r.get("rank")] for r in rows],
                    }
                )
            _print_kind(name, found[name])
    every = sorted(q["ms"] for queries in found.values() for q in queries)
    print(
        f"all {len(every)}: p50 {statistics.median(every):.1f} ms,"
        f" p99 {every[int(0.99 * (len(every) - 1))]:.1f} ms; load average {os.getloadavg()[0]:.1f}"
    )
    return {"schema": schema, "customers": customers, "kinds": found}


def compare(before: dict[str, Any], after: dict[str, Any]) -> int:
    """Print, per kind, how many queries found different rows; returns the total."""
    total = 0
    for name, queries in after["kinds"].items():
        earlier = before["kinds"].get(name, [])
        differing = sum(
            1
            for a, b in zip(earlier, queries, strict=False)
            if a["query"] != b["query"] or a["rows"] != b["rows"]
        )
        total += differing
        print(f"{name:16s} {differing}/{len(queries)} queries found different rows")
    return total


def _print_kind(name: str, queries: list[dict[str, Any]]) -> None:
    ms = sorted(q["ms"] for q in queries)
    buffers = sorted(q["buffers"] for q in queries)
    print(
        f"{name:16s} ms p50 {statistics.median(ms):7.1f} max {ms[-1]:7.1f}"
        f"   buffers p50 {statistics.median(buffers):7.0f} max {buffers[-1]:7d}",
        flush=True,
    )


def _statement(
    schema: str, trgm: str, criteria: SearchCriteria, after: tuple[Any, ...] | None
) -> tuple[sql.Composed, dict[str, Any]]:
    return search_statement(schema, trgm, criteria, after=after, limit=_PAGE)


def _rows(
    connection: psycopg.Connection[Any],
    schema: str,
    trgm: str,
    criteria: SearchCriteria,
    after: tuple[Any, ...] | None,
) -> list[dict[str, Any]]:
    statement, params = _statement(schema, trgm, criteria, after)
    with connection.transaction():
        connection.execute(SESSION_SETTINGS, ("60000",))
        rows: list[dict[str, Any]] = connection.execute(statement, params).fetchall()
        return rows


def _explained(
    connection: psycopg.Connection[Any],
    schema: str,
    trgm: str,
    criteria: SearchCriteria,
    after: tuple[Any, ...] | None,
) -> tuple[float, int]:
    """Planning plus execution milliseconds, and shared buffers hit or read."""
    statement, params = _statement(schema, trgm, criteria, after)
    explain = sql.SQL("EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, FORMAT JSON) ") + statement
    with connection.transaction():
        connection.execute(SESSION_SETTINGS, ("60000",))
        row = connection.execute(explain, params).fetchone()
    assert row is not None
    plan = next(iter(row.values()))[0]
    top = plan["Plan"]
    buffers = top.get("Shared Hit Blocks", 0) + top.get("Shared Read Blocks", 0)
    return plan["Planning Time"] + plan["Execution Time"], buffers


Kind = Callable[[], tuple[SearchCriteria, bool]]


def _sample(customers: int) -> list[Person]:
    """As bench.read_side picks the customers it searches for."""
    chooser = random.Random(7)
    sample: list[Person] = []
    for person in people(_FIRST_NUMBER, customers):
        if len(sample) < _SAMPLE or chooser.random() < _SAMPLE / customers:
            sample.append(person)
    return sample[-_SAMPLE:]


def _kinds(sample: list[Person], anchor: datetime) -> dict[str, Kind]:
    """The bench's query kinds (bench.read_side) as the gateway turns them into criteria;
    `first_name` is the second page of a first-name search (the bench's `next_page`)."""
    chooser = random.Random(3)
    companies = [p.company_name for p in sample if p.company_name]

    def pick() -> Person:
        return chooser.choice(sample)

    def typo(word: str) -> str:
        i = chooser.randrange(1, len(word) - 1)
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]

    def phone(person: Person) -> str:
        d = person.mobile_phone.removeprefix("+1")
        return f"({d[:3]}) {d[3:6]}-{d[6:]}" if len(d) == 10 else person.mobile_phone

    def q(text: str, second_page: bool = False) -> tuple[SearchCriteria, bool]:
        phones: tuple[str, ...] = ()
        if _PHONE_LIKE.fullmatch(text):
            candidates = [digits(text)]
            with contextlib.suppress(RuleViolationError):  # not a valid number: as typed
                candidates.append(digits(normalise_phone(text, "US", field_name="q")))
            phones = tuple(dict.fromkeys(candidates))
        return SearchCriteria(q=text, phone_digits=phones), second_page

    def within(
        days: int, *, system_type: str | None = None, group: str | None = None
    ) -> tuple[SearchCriteria, bool]:
        start = anchor - timedelta(days=days)
        return SearchCriteria(registered_from=start, system_type=system_type, group=group), False

    window = SearchCriteria(
        registered_from=anchor - timedelta(days=183), registered_to=anchor - timedelta(days=153)
    )

    return {
        "name_prefix": lambda: q(pick().last_name[:5]),
        "full_name": lambda: q(f"{(p := pick()).first_name} {p.last_name}"),
        "typo": lambda: q(typo(pick().last_name)),
        "company": lambda: q(chooser.choice(companies)),
        "email": lambda: q(pick().email),
        "phone": lambda: q(phone(pick())),
        "customer_number": lambda: q(str(pick().number)),
        "first_name": lambda: q(pick().first_name, second_page=True),
        "city": lambda: (SearchCriteria(registered_from=_LONG_AGO, city=pick().city), False),
        "system_type": lambda: within(30, system_type=chooser.choice(SYSTEM_TYPES)),
        "group": lambda: within(365, group=chooser.choice(GROUPS)),
        "default_list": lambda: within(30),
        "window": lambda: (window, False),
    }


def _datastore(database: str, schema: str) -> PostgresDatastore:
    params = parse_database_url(database)
    return PostgresDatastore(
        dbname=params["dbname"],
        host=params["host"],
        port=params.get("port") or "5432",
        user=params["user"],
        password=params.get("password", ""),
        schema=schema,
        pool_size=1,
        max_overflow=1,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.search_plans", description=__doc__)
    parser.add_argument("action", choices=("fill", "run", "drop"))
    parser.add_argument("--database", required=True)
    parser.add_argument("--schema", required=True)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--per-kind", type=int, default=30)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--compare", type=Path, help="an earlier --out: report differing rows")
    args = parser.parse_args(argv)
    if args.action == "fill":
        fill(args.database, args.schema, args.customers)
        return 0
    if args.action == "drop":
        with psycopg.connect(args.database, autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(args.schema))
            )
        return 0
    result = run(args.database, args.schema, args.customers, args.per_kind)
    if args.out is not None:
        args.out.write_text(json.dumps(result))
    if args.compare is not None:
        return 1 if compare(json.loads(args.compare.read_text()), result) else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
