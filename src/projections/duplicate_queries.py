"""The queries of the duplicates read model: registration's look-up and the two lists.

`DuplicateLookup` answers, while a registration (or an import's batch) is decided, which
known customers the new ones are likely duplicates of: their match keys are looked up in
`match_keys` (an index lookup per key, one statement for a whole batch) and each customer
found is scored by `domain.duplicates.assess`, as the read model scores its pairs. It
counts no key already held by `MAX_HOLDERS` customers (it would be common), so a
registration looks at no more than that many candidates per key. It reads the read model
as it is: a customer registered a moment ago in another request may not be in it yet
(eventually consistent). With no read model built yet (or the database in trouble)
the answer is None ("not checked").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
import structlog
from eventsourcing.persistence import PersistenceError
from psycopg import sql

from domain.duplicates import NewCustomer, assess, full_name, match_keys
from domain.service import CustomerService
from projections.base import read_model_schema
from projections.duplicates import COMPARED_FIELDS, holder_limits, holders_count, trgm_schema

__all__ = [
    "MAX_LIKELY",
    "SUMMARY",
    "DuplicateLookup",
    "PairCriteria",
    "attach_duplicate_lookup",
    "pairs_statement",
]

MAX_LIKELY = 10
"""Likely duplicates a registration reports, best first."""
SUMMARY = ("customer_number", "first_name", "last_name", "email", "mobile_phone", "city")
"""What a list shows of each customer of a pair (with its id)."""

_log = structlog.get_logger("projections.duplicates")


class DuplicateLookup:
    """Registration's look-up of likely duplicates (`domain.duplicates.DuplicateLookup`)."""

    def __init__(self, datastore: Any, schema: str) -> None:
        self._datastore = datastore
        self._schema = schema
        self._statement: bytes | None = None

    def __call__(self, customers: Sequence[NewCustomer]) -> list[list[dict[str, Any]]] | None:
        keys, names = [], []
        for row, new in enumerate(customers):
            profile = new.profile
            values = {name: getattr(profile, name) for name in COMPARED_FIELDS}
            addresses = [(a.line1, a.postal_code, a.city) for a in new.addresses]
            for key in match_keys(values, addresses=addresses):
                keys.append({"row": row, "kind": key.kind, "key": key.key, "source": key.source})
            name = full_name(profile.first_name, profile.last_name)
            names.append({"row": row, "name": name, "id": new.customer_id})
        found: list[list[dict[str, Any]]] = [[] for _ in customers]
        if not keys:
            return found
        try:
            # One statement, no transaction around it: one round trip on the registration's
            # path. It needs no time limit: it reads at most a few index entries per key.
            with self._datastore.cursor() as cursor:
                cursor.execute(
                    self._select(cursor),
                    {
                        "keys": _json(keys),
                        "names": _json(names),
                        **holder_limits(),
                    },
                )
                rows = cursor.fetchall()
        except (PersistenceError, LookupError) as error:
            # Not built yet (no table, or not even pg_trgm: `trgm_schema`'s LookupError),
            # or the database in trouble: the registration goes on and says its duplicates
            # were not checked.
            _log.warning("duplicates_not_checked", error=str(error).splitlines()[0])
            return None
        for match in rows:
            assessment = assess(map(tuple, match["matches"]), match["name_similarity"])
            if assessment is not None:
                found[match["row"]].append(
                    {
                        "customer_id": match["customer_id"],
                        "score": assessment.score,
                        "reasons": assessment.reasons,
                    }
                )
        return [
            sorted(likely, key=lambda d: (-d["score"], str(d["customer_id"])))[:MAX_LIKELY]
            for likely in found
        ]

    def _select(self, cursor: Any) -> bytes:
        # Composed once, as bytes: psycopg would compose a `sql.Composed` again at every
        # execution (some 30 us of this registration's CPU for this one).
        if self._statement is None:
            statement = sql.SQL(
                "WITH q AS (SELECT * FROM jsonb_to_recordset(%(keys)s::jsonb)"
                " AS q(row integer, kind text, key text, source text)),"
                # A key that would be common once this customer holds it pairs nobody.
                " usable AS MATERIALIZED (SELECT * FROM q WHERE {holders} < %(max)s)"
                " SELECT u.row, k.customer_id,"
                " jsonb_agg(DISTINCT jsonb_build_array(k.kind, u.source, k.source)) AS matches,"
                " {trgm}.similarity(n.name, c.full_name) AS name_similarity"
                " FROM usable u CROSS JOIN LATERAL (SELECT customer_id, kind, source FROM {keys} k"
                " WHERE k.kind = u.kind AND k.key = u.key LIMIT %(rows)s) k"
                " JOIN {customers} c ON c.customer_id = k.customer_id"
                " JOIN jsonb_to_recordset(%(names)s::jsonb) AS n(row integer, name text, id uuid)"
                " ON n.row = u.row"
                # An import's row run again after a crash may find its own customer.
                " WHERE n.id IS NULL OR k.customer_id <> n.id"
                " GROUP BY u.row, k.customer_id, n.name, c.full_name"
            ).format(
                trgm=sql.Identifier(trgm_schema(cursor)),
                keys=sql.Identifier(self._schema, "match_keys"),
                customers=sql.Identifier(self._schema, "customers"),
                holders=holders_count(sql.Identifier(self._schema, "match_keys"), "q"),
            )
            self._statement = statement.as_bytes(cursor)
        return self._statement


def attach_duplicate_lookup(service: CustomerService, service_schema: str) -> None:
    """Make the service's registrations look up their likely duplicates in this database's
    duplicates read model, on the service's own connections (no pool of its own)."""
    datastore = service.recorder.datastore  # type: ignore[attr-defined]
    service.duplicate_lookup = DuplicateLookup(
        datastore, read_model_schema(service_schema, "duplicates")
    )


@dataclass(frozen=True)
class PairCriteria:
    """Which pairs a list shows: those of one customer, or all; at least `min_score`."""

    customer_id: UUID | None = None
    min_score: Decimal = Decimal(0)


def pairs_statement(
    schema: str,
    criteria: PairCriteria,
    *,
    after: tuple[Decimal, UUID, UUID] | None,
    limit: int,
) -> tuple[sql.Composed, dict[str, Any]]:
    """One page of pairs, highest score first, after the previous page's last key (k1, k2).

    Each row has both customers' summaries, as `one_*` and `two_*`. A customer's list has
    that customer as `one` and is keyed by (score, the other's id, the customer's id); the
    list of all pairs has the lower id as `one` and is keyed by (score, low, high).
    """
    table = sql.Identifier(schema, "pairs")
    params: dict[str, Any] = {"limit": limit, "min_score": criteria.min_score}
    if criteria.customer_id is not None:
        params["id"] = criteria.customer_id
        pairs = sql.SQL(
            "SELECT score, reasons, low AS one, high AS two, high AS k1, low AS k2"
            " FROM {t} WHERE low = %(id)s"
            " UNION ALL SELECT score, reasons, high AS one, low AS two, low AS k1, high AS k2"
            " FROM {t} WHERE high = %(id)s"
        ).format(t=table)
    else:
        pairs = sql.SQL(
            "SELECT score, reasons, low AS one, high AS two, low AS k1, high AS k2 FROM {t}"
        ).format(t=table)
    where = [sql.SQL("p.score >= %(min_score)s")]
    if after is not None:
        params["after_score"], params["after_k1"], params["after_k2"] = after
        where.append(
            sql.SQL("(p.score, p.k1, p.k2) < (%(after_score)s, %(after_k1)s, %(after_k2)s)")
        )
    columns = sql.SQL(", ").join(
        sql.SQL("{}.{} AS {}").format(
            sql.Identifier(side), sql.Identifier(column), sql.Identifier(f"{side}_{column}")
        )
        for side in ("one", "two")
        for column in SUMMARY
    )
    statement = sql.SQL(
        "SELECT p.score, p.reasons, p.k1, p.k2, p.one AS one_id, p.two AS two_id, {columns}"
        " FROM ({pairs}) p"
        ' JOIN {c} "one" ON "one".customer_id = p.one'
        ' JOIN {c} "two" ON "two".customer_id = p.two'
        " WHERE {where} ORDER BY p.score DESC, p.k1 DESC, p.k2 DESC LIMIT %(limit)s"
    ).format(
        columns=columns,
        pairs=pairs,
        c=sql.Identifier(schema, "customers"),
        where=sql.SQL(" AND ").join(where),
    )
    return statement, params


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()
