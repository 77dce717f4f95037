"""The conversations read model: what passed between the business and each customer.

Three tables, one per tab: `interactions` (calls, visits, emails logged), `messages` (the
chat) and `satisfaction` (scores, with the customer's average). One read model, as the
three are read side by side on one page and share one rule on erasure: the customer's
words go (messages deleted, summaries and comments nulled) while what happened, when and
with whom stays. Rows are written once (their aggregates never change), so an event
applied twice is a no-op by its primary key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import Cursor, sql

from domain.chat import ChatMessage
from domain.customers import Customer
from domain.interactions import Interaction
from domain.satisfaction import SatisfactionScore
from projections.base import ReadModel
from projections.relinks import relink_row

__all__ = [
    "INTERACTION_COLUMNS",
    "MESSAGE_COLUMNS",
    "SATISFACTION_COLUMNS",
    "ConversationCriteria",
    "ConversationsModel",
    "interactions_statement",
    "messages_statement",
    "satisfaction_statement",
    "satisfaction_summary",
]

INTERACTION_COLUMNS = (
    "id",
    "customer_id",
    "kind",
    "direction",
    "summary",
    "at",
    "staff_id",
    "logged_at",
    "logged_by",
)
MESSAGE_COLUMNS = ("id", "customer_id", "sender", "author", "text", "sent_at")
SATISFACTION_COLUMNS = (
    "id",
    "customer_id",
    "score",
    "comment",
    "ticket_id",
    "given_at",
    "given_by",
)

_RELINKED_TABLES: dict[type[Any], str] = {
    Interaction.Relinked: "interactions",
    ChatMessage.Relinked: "messages",
    SatisfactionScore.Relinked: "satisfaction",
}


class ConversationsModel(ReadModel):
    """Interactions, chat messages and satisfaction scores, per customer."""

    name = "conversations"

    def wants(self, event_class: type[Any]) -> bool:
        return event_class in (
            Customer.Erased,
            Interaction.Logged,
            ChatMessage.Posted,
            SatisfactionScore.Given,
            Interaction.Relinked,
            ChatMessage.Relinked,
            SatisfactionScore.Relinked,
        )

    def apply(self, cursor: Cursor[Any], event: Any, position: int) -> None:
        if isinstance(event, Customer.Erased):
            customer = (event.originator_id,)
            for statement in (
                "DELETE FROM {messages} WHERE customer_id = %s",
                "UPDATE {interactions} SET summary = NULL WHERE customer_id = %s",
                "UPDATE {satisfaction} SET comment = NULL WHERE customer_id = %s",
            ):
                cursor.execute(
                    sql.SQL(statement).format(
                        messages=self.table("messages"),
                        interactions=self.table("interactions"),
                        satisfaction=self.table("satisfaction"),
                    ),
                    customer,
                )
            return
        relinked = _RELINKED_TABLES.get(type(event))
        if relinked is not None:  # a merge of its customer (or its undoing)
            relink_row(cursor, self.table(relinked), event, versioned=False)
            return
        common = {"id": event.originator_id, "customer_id": event.customer_id}
        if isinstance(event, Interaction.Logged):
            table, values = (
                "interactions",
                {
                    **common,
                    "kind": event.kind,
                    "direction": event.direction,
                    "summary": event.summary,
                    "at": event.at,
                    "staff_id": event.staff_id,
                    "logged_at": event.timestamp,
                    "logged_by": event.actor,
                },
            )
        elif isinstance(event, ChatMessage.Posted):
            table, values = (
                "messages",
                {
                    **common,
                    "sender": event.sender,
                    "author": event.actor,
                    "text": event.text,
                    "sent_at": event.timestamp,
                },
            )
        elif isinstance(event, SatisfactionScore.Given):
            table, values = (
                "satisfaction",
                {
                    **common,
                    "score": event.score,
                    "comment": event.comment,
                    "ticket_id": event.ticket_id,
                    "given_at": event.timestamp,
                    "given_by": event.actor,
                },
            )
        else:
            return
        cursor.execute(
            sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT (id) DO NOTHING").format(
                self.table(table),
                sql.SQL(", ").join(map(sql.Identifier, values)),
                sql.SQL(", ").join(sql.Placeholder(k) for k in values),
            ),
            values,
        )


@dataclass(frozen=True)
class ConversationCriteria:
    """Whose records a tab shows; `kinds` filters interactions."""

    customer_id: UUID
    kinds: tuple[str, ...] = ()


def _newest_first(
    table: str,
    columns: tuple[str, ...],
    key: str,
    schema: str,
    criteria: ConversationCriteria,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> tuple[sql.Composed, dict[str, Any]]:
    where: list[sql.Composable] = [sql.SQL("customer_id = %(customer_id)s")]
    params: dict[str, Any] = {"customer_id": criteria.customer_id, "limit": limit}
    if criteria.kinds:
        params["kinds"] = list(criteria.kinds)
        where.append(sql.SQL("kind = ANY(%(kinds)s)"))
    if after is not None:
        params["after_at"], params["after_id"] = after
        where.append(sql.SQL("({}, id) < (%(after_at)s, %(after_id)s)").format(sql.Identifier(key)))
    statement = sql.SQL(
        "SELECT {columns} FROM {table} WHERE {where} ORDER BY {key} DESC, id DESC LIMIT %(limit)s"
    ).format(
        columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
        table=sql.Identifier(schema, table),
        where=sql.SQL(" AND ").join(where),
        key=sql.Identifier(key),
    )
    return statement, params


def interactions_statement(
    schema: str,
    criteria: ConversationCriteria,
    *,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> tuple[sql.Composed, dict[str, Any]]:
    """One page of a customer's interactions, newest (by when they happened) first."""
    return _newest_first("interactions", INTERACTION_COLUMNS, "at", schema, criteria, after, limit)


def messages_statement(
    schema: str,
    criteria: ConversationCriteria,
    *,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> tuple[sql.Composed, dict[str, Any]]:
    """One page of a customer's chat, newest first (a chat view loads older pages upwards)."""
    return _newest_first("messages", MESSAGE_COLUMNS, "sent_at", schema, criteria, after, limit)


def satisfaction_statement(
    schema: str,
    criteria: ConversationCriteria,
    *,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> tuple[sql.Composed, dict[str, Any]]:
    """One page of a customer's satisfaction scores, newest first."""
    return _newest_first(
        "satisfaction", SATISFACTION_COLUMNS, "given_at", schema, criteria, after, limit
    )


def satisfaction_summary(schema: str, customer_id: UUID) -> tuple[sql.Composed, tuple[UUID]]:
    """How many scores the customer gave, and their average (null with none)."""
    return (
        sql.SQL(
            "SELECT count(*) AS count, round(avg(score), 2) AS average FROM {}"
            " WHERE customer_id = %s"
        ).format(sql.Identifier(schema, "satisfaction")),
        (customer_id,),
    )
