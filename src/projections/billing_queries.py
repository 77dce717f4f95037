"""The queries of the billing read model: a customer's invoices and payments, and the price
exception report, newest first, one keyset page at a time (`gateway.listing`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import sql

__all__ = [
    "INVOICE_COLUMNS",
    "PAYMENT_COLUMNS",
    "PRICE_EXCEPTION_COLUMNS",
    "BillingCriteria",
    "invoices_statement",
    "payments_statement",
    "price_exceptions_statement",
]

INVOICE_COLUMNS = (
    "id",
    "customer_id",
    "number",
    "currency",
    "total",
    "paid",
    "credited",
    "open_amount",
    "status",
    "line_count",
    "issued_at",
    "due_at",
    "updated_at",
    "version",
)
PAYMENT_COLUMNS = (
    "id",
    "customer_id",
    "number",
    "kind",
    "amount",
    "currency",
    "method",
    "reference",
    "invoice_id",
    "invoice_number",
    "paid_at",
    "recorded_at",
)
PRICE_EXCEPTION_COLUMNS = (
    "id",
    "invoice_id",
    "line_index",
    "customer_id",
    "invoice_number",
    "invoice_status",
    "currency",
    "service_id",
    "description",
    "quantity",
    "unit_price",
    "list_price",
    "custom_price_at_issue",
    "issued_at",
)


@dataclass(frozen=True)
class BillingCriteria:
    """Which rows a list shows; every given filter applies."""

    customer_id: UUID | None = None
    statuses: tuple[str, ...] = ()
    """Invoices: any of these statuses."""
    service_id: str | None = None
    """Price exceptions: lines of this service."""
    issued_from: datetime | None = None
    """Price exceptions: issued at or after."""
    issued_before: datetime | None = None
    """Price exceptions: issued before."""


def invoices_statement(
    schema: str, criteria: BillingCriteria, *, after: tuple[datetime, UUID] | None, limit: int
) -> tuple[sql.Composed, dict[str, Any]]:
    """One page of a customer's invoices, newest issued first."""
    where, params = _where(criteria, after, "issued_at")
    if criteria.statuses:
        params["statuses"] = list(criteria.statuses)
        where.append(sql.SQL("status = ANY(%(statuses)s)"))
    return _select(schema, "invoices", INVOICE_COLUMNS, where, "issued_at", params, limit)


def payments_statement(
    schema: str, criteria: BillingCriteria, *, after: tuple[datetime, UUID] | None, limit: int
) -> tuple[sql.Composed, dict[str, Any]]:
    """One page of a customer's payments and refunds, newest paid first."""
    where, params = _where(criteria, after, "paid_at")
    return _select(schema, "payments", PAYMENT_COLUMNS, where, "paid_at", params, limit)


def price_exceptions_statement(
    schema: str, criteria: BillingCriteria, *, after: tuple[datetime, UUID] | None, limit: int
) -> tuple[sql.Composed, dict[str, Any]]:
    """One page of the report, newest issued first, with each customer's custom price for
    the service today beside the one in force when the invoice was issued."""
    where, params = _where(criteria, after, "issued_at", alias="e")
    if criteria.service_id is not None:
        params["service_id"] = criteria.service_id
        where.append(sql.SQL("e.service_id = %(service_id)s"))
    if criteria.issued_from is not None:
        params["issued_from"] = criteria.issued_from
        where.append(sql.SQL("e.issued_at >= %(issued_from)s"))
    if criteria.issued_before is not None:
        params["issued_before"] = criteria.issued_before
        where.append(sql.SQL("e.issued_at < %(issued_before)s"))
    params["limit"] = limit
    statement = sql.SQL(
        "SELECT {columns}, p.price AS custom_price FROM {exceptions} AS e"
        " LEFT JOIN {prices} AS p ON p.customer_id = e.customer_id"
        " AND p.service_id = e.service_id"
        " WHERE {where} ORDER BY e.issued_at DESC, e.id DESC LIMIT %(limit)s"
    ).format(
        columns=sql.SQL(", ").join(sql.Identifier("e", c) for c in PRICE_EXCEPTION_COLUMNS),
        exceptions=sql.Identifier(schema, "price_exceptions"),
        prices=sql.Identifier(schema, "custom_prices"),
        where=sql.SQL(" AND ").join(where) if where else sql.SQL("true"),
    )
    return statement, params


def _where(
    criteria: BillingCriteria,
    after: tuple[datetime, UUID] | None,
    key: str,
    *,
    alias: str | None = None,
) -> tuple[list[sql.Composable], dict[str, Any]]:
    def column(name: str) -> sql.Identifier:
        return sql.Identifier(alias, name) if alias else sql.Identifier(name)

    where: list[sql.Composable] = []
    params: dict[str, Any] = {}
    if criteria.customer_id is not None:
        params["customer_id"] = criteria.customer_id
        where.append(sql.SQL("{} = %(customer_id)s").format(column("customer_id")))
    if after is not None:
        params["after_at"], params["after_id"] = after
        where.append(
            sql.SQL("({}, {}) < (%(after_at)s, %(after_id)s)").format(column(key), column("id"))
        )
    return where, params


def _select(
    schema: str,
    table: str,
    columns: tuple[str, ...],
    where: list[sql.Composable],
    key: str,
    params: dict[str, Any],
    limit: int,
) -> tuple[sql.Composed, dict[str, Any]]:
    params["limit"] = limit
    statement = sql.SQL(
        "SELECT {columns} FROM {table} WHERE {where} ORDER BY {key} DESC, id DESC LIMIT %(limit)s"
    ).format(
        columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
        table=sql.Identifier(schema, table),
        where=sql.SQL(" AND ").join(where) if where else sql.SQL("true"),
        key=sql.Identifier(key),
    )
    return statement, params
