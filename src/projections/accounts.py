"""The accounts read model: a customer's loyalty ledger, stored cards and prepaid packages.

The tabs of the customer page (`GET /v1/customers/{id}/loyalty|cards|packages`), newest
first, one keyset page at a time. Inserts are keyed by the entry's, card's or package's id
and updates guarded by the aggregate version, so applying an event twice changes nothing.

Erasure: a `Customer.Erased` nulls the reasons of the customer's loyalty entries and
deletes its cards (a token is of no use without the customer, and personal data with
it); points, balances and packages stay (no personal data). The customer is remembered as
erased, so an event about it that reaches the model after the erasure (committed in the
moment between the two) keeps nothing personal either.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import Cursor, sql

from domain.cards import CardWallet
from domain.customers import Customer
from domain.loyalty import LoyaltyLedger
from domain.packages import Package
from projections.base import ReadModel

__all__ = [
    "CARD_COLUMNS",
    "ENTRY_COLUMNS",
    "PACKAGE_COLUMNS",
    "AccountsModel",
    "CustomerCriteria",
    "PackageCriteria",
    "balance_statement",
    "cards_statement",
    "entries_statement",
    "packages_statement",
    "wallet_statement",
]

ENTRY_COLUMNS = ("id", "customer_id", "points", "reason", "balance", "recorded_at", "recorded_by")
CARD_COLUMNS = (
    "id",
    "customer_id",
    "provider",
    "token",
    "brand",
    "last4",
    "exp_month",
    "exp_year",
    "added_at",
    "added_by",
)
PACKAGE_COLUMNS = (
    "id",
    "customer_id",
    "name",
    "service_id",
    "sessions",
    "sessions_left",
    "expires_at",
    "price",
    "bought_at",
    "updated_at",
    "version",
)
_STATUS = sql.SQL(
    "CASE WHEN deactivated THEN 'deactivated' WHEN sessions_left = 0 THEN 'used_up'"
    " WHEN expires_at <= now() THEN 'expired' ELSE 'active' END"
)
_NOTHING = sql.SQL("")
_EVENTS = frozenset(
    {
        Customer.Erased,
        LoyaltyLedger.Opened,
        LoyaltyLedger.PointsRecorded,
        LoyaltyLedger.PointsMoved,
        CardWallet.Opened,
        CardWallet.CardAdded,
        CardWallet.CardRemoved,
        CardWallet.CardMovedIn,
        CardWallet.CardsMovedOut,
        Package.Bought,
        Package.SessionUsed,
        Package.Deactivated,
        Package.Relinked,
    }
)


class AccountsModel(ReadModel):
    """Loyalty entries and balances, cards and packages, per customer."""

    name = "accounts"

    def wants(self, event_class: type[Any]) -> bool:
        return event_class in _EVENTS

    def apply(self, cursor: Cursor[Any], event: Any, position: int) -> None:
        values = {
            "customer_id": event.customer_id
            if not isinstance(event, Customer.Event)
            else event.originator_id,
            "at": event.timestamp,
            "version": event.originator_version,
        }
        match event:
            case Customer.Erased():
                self._erased(cursor, values)
            case LoyaltyLedger.Opened():
                self._execute(
                    cursor,
                    "INSERT INTO {loyalty_balances} (customer_id, balance, version, updated_at)"
                    " VALUES (%(customer_id)s, 0, %(version)s, %(at)s)"
                    " ON CONFLICT (customer_id) DO NOTHING",
                    values,
                )
            case LoyaltyLedger.PointsRecorded() | LoyaltyLedger.PointsMoved():
                self._points(cursor, event, values)
            case CardWallet.Opened():
                self._execute(
                    cursor,
                    "INSERT INTO {card_wallets} (customer_id, version)"
                    " VALUES (%(customer_id)s, %(version)s) ON CONFLICT (customer_id) DO NOTHING",
                    values,
                )
            case CardWallet.CardAdded() | CardWallet.CardMovedIn():
                self._card_added(cursor, event, values)
            case CardWallet.CardsMovedOut():  # a merge (or its undoing): see CardMovedIn
                self._execute(
                    cursor,
                    "DELETE FROM {cards} WHERE id = ANY(%(ids)s) AND customer_id = %(customer_id)s",
                    {**values, "ids": event.card_ids},
                )
                self._wallet_version(cursor, values)
            case CardWallet.CardRemoved():
                self._execute(
                    cursor, "DELETE FROM {cards} WHERE id = %(id)s", {"id": event.card_id}
                )
                self._wallet_version(cursor, values)
            case Package.Bought():
                self._execute(
                    cursor,
                    "INSERT INTO {packages} (id, customer_id, name, service_id, sessions,"
                    " sessions_left, expires_at, price, bought_at, updated_at, version)"
                    " VALUES (%(id)s, %(customer_id)s, %(name)s, %(service_id)s, %(sessions)s,"
                    " %(sessions)s, %(expires_at)s, %(price)s, %(at)s, %(at)s, %(version)s)"
                    " ON CONFLICT (id) DO NOTHING",
                    {
                        **values,
                        "id": event.originator_id,
                        "name": event.name,
                        "service_id": event.service_id,
                        "sessions": event.sessions,
                        "expires_at": event.expires_at,
                        "price": event.price,
                    },
                )
            case Package.SessionUsed():
                self._package_change(
                    cursor, "sessions_left = %(left)s", event, left=event.sessions_left
                )
            case Package.Deactivated():
                self._package_change(cursor, "deactivated = true", event)
            case Package.Relinked():  # a merge of its customer (or its undoing)
                self._package_change(cursor, "customer_id = %(customer_id)s", event, **values)

    # ---- the statements ---------------------------------------------------------------------

    def _execute(self, cursor: Cursor[Any], statement: str, values: dict[str, Any]) -> None:
        tables = {
            name: self.table(name)
            for name in (
                "loyalty_entries",
                "loyalty_balances",
                "cards",
                "card_wallets",
                "packages",
                "erased_customers",
            )
        }
        cursor.execute(sql.SQL(statement).format(**tables), values)

    def _erased(self, cursor: Cursor[Any], values: dict[str, Any]) -> None:
        self._execute(
            cursor,
            "INSERT INTO {erased_customers} (customer_id) VALUES (%(customer_id)s)"
            " ON CONFLICT DO NOTHING",
            values,
        )
        self._execute(
            cursor,
            "UPDATE {loyalty_entries} SET reason = NULL WHERE customer_id = %(customer_id)s",
            values,
        )
        self._execute(cursor, "DELETE FROM {cards} WHERE customer_id = %(customer_id)s", values)

    def _points(self, cursor: Cursor[Any], event: Any, values: dict[str, Any]) -> None:
        if not event.points:  # a merge's mark on a ledger without points: no entry
            self._balance(cursor, {**values, "balance": event.balance})
            return
        values = {
            **values,
            "id": event.entry_id,
            "points": event.points,
            "reason": event.reason or None,
            "balance": event.balance,
            "actor": event.actor,
        }
        self._execute(
            cursor,
            "INSERT INTO {loyalty_entries} (id, customer_id, points, reason, balance,"
            " recorded_at, recorded_by, version)"
            " SELECT %(id)s, %(customer_id)s, %(points)s,"
            " CASE WHEN EXISTS (SELECT 1 FROM {erased_customers}"
            " WHERE customer_id = %(customer_id)s) THEN NULL ELSE %(reason)s END,"
            " %(balance)s, %(at)s, %(actor)s, %(version)s ON CONFLICT (id) DO NOTHING",
            values,
        )
        self._balance(cursor, values)

    def _balance(self, cursor: Cursor[Any], values: dict[str, Any]) -> None:
        self._execute(
            cursor,
            "INSERT INTO {loyalty_balances} AS b (customer_id, balance, version, updated_at)"
            " VALUES (%(customer_id)s, %(balance)s, %(version)s, %(at)s)"
            " ON CONFLICT (customer_id) DO UPDATE SET balance = EXCLUDED.balance,"
            " version = EXCLUDED.version, updated_at = EXCLUDED.updated_at"
            " WHERE b.version < EXCLUDED.version",
            values,
        )

    def _card_added(self, cursor: Cursor[Any], event: Any, values: dict[str, Any]) -> None:
        moved = isinstance(event, CardWallet.CardMovedIn)
        if moved:  # keeps its id, first added_at and added_by: its row changes customer
            values = {**values, "at": event.added_at}
        if event.token is not None:  # None: read after the erasure, nothing to show
            self._execute(
                cursor,
                "INSERT INTO {cards} (id, customer_id, provider, token, brand, last4,"
                " exp_month, exp_year, added_at, added_by)"
                " SELECT %(id)s, %(customer_id)s, %(provider)s, %(token)s, %(brand)s,"
                " %(last4)s, %(exp_month)s, %(exp_year)s, %(at)s, %(actor)s"
                " WHERE NOT EXISTS (SELECT 1 FROM {erased_customers}"
                " WHERE customer_id = %(customer_id)s) ON CONFLICT (id) DO "
                + ("UPDATE SET customer_id = EXCLUDED.customer_id" if moved else "NOTHING"),
                {
                    **values,
                    "id": event.card_id,
                    "provider": event.provider,
                    "token": event.token,
                    "brand": event.brand,
                    "last4": event.last4,
                    "exp_month": event.exp_month,
                    "exp_year": event.exp_year,
                    "actor": event.added_by if moved else event.actor,
                },
            )
        self._wallet_version(cursor, values)

    def _wallet_version(self, cursor: Cursor[Any], values: dict[str, Any]) -> None:
        self._execute(
            cursor,
            "UPDATE {card_wallets} SET version = %(version)s"
            " WHERE customer_id = %(customer_id)s AND version < %(version)s",
            values,
        )

    def _package_change(
        self, cursor: Cursor[Any], assignments: str, event: Any, **extra: Any
    ) -> None:
        self._execute(
            cursor,
            f"UPDATE {{packages}} SET {assignments}, updated_at = %(at)s, version = %(version)s"
            " WHERE id = %(id)s AND version < %(version)s",
            {
                "id": event.originator_id,
                "at": event.timestamp,
                "version": event.originator_version,
                **extra,
            },
        )


# ---- the queries of the tabs ------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerCriteria:
    """One customer's rows."""

    customer_id: UUID


@dataclass(frozen=True)
class PackageCriteria:
    """One customer's packages, of any of these statuses (all when none is given)."""

    customer_id: UUID
    statuses: tuple[str, ...] = ()


def entries_statement(
    schema: str, criteria: CustomerCriteria, *, after: tuple[datetime, UUID] | None, limit: int
) -> tuple[sql.Composed, dict[str, Any]]:
    """A page of the customer's loyalty entries, newest first."""
    return _page(schema, "loyalty_entries", ENTRY_COLUMNS, "recorded_at", criteria, after, limit)


def cards_statement(
    schema: str, criteria: CustomerCriteria, *, after: tuple[datetime, UUID] | None, limit: int
) -> tuple[sql.Composed, dict[str, Any]]:
    """A page of the customer's stored cards, newest first."""
    return _page(schema, "cards", CARD_COLUMNS, "added_at", criteria, after, limit)


def packages_statement(
    schema: str, criteria: PackageCriteria, *, after: tuple[datetime, UUID] | None, limit: int
) -> tuple[sql.Composed, dict[str, Any]]:
    """A page of the customer's packages, newest first, with each one's status now."""
    extra = None
    params: dict[str, Any] = {}
    if criteria.statuses:
        extra = sql.SQL("{} = ANY(%(statuses)s)").format(_STATUS)
        params["statuses"] = list(criteria.statuses)
    return _page(
        schema,
        "packages",
        PACKAGE_COLUMNS,
        "bought_at",
        criteria,
        after,
        limit,
        extra=extra,
        params=params,
        computed=sql.SQL(", {} AS status").format(_STATUS),
    )


def balance_statement(schema: str, customer_id: UUID) -> tuple[sql.Composed, dict[str, Any]]:
    """The customer's balance and ledger version (no row: no entry yet)."""
    statement = sql.SQL(
        "SELECT balance, version FROM {} WHERE customer_id = %(customer_id)s"
    ).format(sql.Identifier(schema, "loyalty_balances"))
    return statement, {"customer_id": customer_id}


def wallet_statement(schema: str, customer_id: UUID) -> tuple[sql.Composed, dict[str, Any]]:
    """The customer's wallet version (no row: no card ever)."""
    statement = sql.SQL("SELECT version FROM {} WHERE customer_id = %(customer_id)s").format(
        sql.Identifier(schema, "card_wallets")
    )
    return statement, {"customer_id": customer_id}


def _page(
    schema: str,
    table: str,
    columns: tuple[str, ...],
    key: str,
    criteria: CustomerCriteria | PackageCriteria,
    after: tuple[datetime, UUID] | None,
    limit: int,
    *,
    extra: sql.Composable | None = None,
    params: dict[str, Any] | None = None,
    computed: sql.Composable = _NOTHING,
) -> tuple[sql.Composed, dict[str, Any]]:
    values: dict[str, Any] = {"limit": limit, "customer_id": criteria.customer_id, **(params or {})}
    where: list[sql.Composable] = [sql.SQL("customer_id = %(customer_id)s")]
    if extra is not None:
        where.append(extra)
    if after is not None:
        values["after_at"], values["after_id"] = after
        where.append(sql.SQL("({}, id) < (%(after_at)s, %(after_id)s)").format(sql.Identifier(key)))
    statement = sql.SQL(
        "SELECT {columns}{computed} FROM {table} WHERE {where}"
        " ORDER BY {key} DESC, id DESC LIMIT %(limit)s"
    ).format(
        columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
        computed=computed,
        table=sql.Identifier(schema, table),
        where=sql.SQL(" AND ").join(where),
        key=sql.Identifier(key),
    )
    return statement, values
