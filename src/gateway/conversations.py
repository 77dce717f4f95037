"""What passes between the business and a customer: interactions, chat, satisfaction.

- Interactions (seed 001's Calls tab): staff log calls, visits, emails... that happened;
  `staff_id` defaults to the caller's `sub`. Staff only: a customer token gets 404.
- Chat (seed 002): staff and the customer (its portal token) post and read the customer's
  messages; each message notifies the other side on NATS (`crm.notify.email|sms` for the
  customer, `crm.notify.staff` for staff).
- Satisfaction (seed 001): a score 1-5 with a comment, about one of the customer's own
  tickets (one score per ticket: 409 for a second) or in general; the customer gives it in
  the portal or staff record it. The tab shows the scores and their average.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer

from domain.chat import MAX_MESSAGE_LENGTH
from gateway.auth import EVERYONE, STAFF, principal, requires
from gateway.commands import CREATED_HEADERS
from gateway.listing import PageQuery, fetch_page, fetch_row
from gateway.operations import operation
from gateway.requests import json_response, parse_query, read_json
from gateway.schemas import CommandOut, StaffId
from gateway.scopes import customer_scope
from gateway.tabs import Tab, tab_customer
from gateway.text import RequestModel
from projections.conversations import (
    ConversationCriteria,
    interactions_statement,
    messages_statement,
    satisfaction_statement,
    satisfaction_summary,
)

__all__ = ["add_routes"]

READ_MODEL = "conversations"
Kind = Literal["call", "visit", "email", "sms", "other"]


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/v1/customers/{id}/interactions", log_interaction)
    r.add_get("/v1/customers/{id}/interactions", list_interactions)
    r.add_post("/v1/customers/{id}/messages", post_message)
    r.add_get("/v1/customers/{id}/messages", list_messages)
    r.add_post("/v1/customers/{id}/satisfaction", give_satisfaction)
    r.add_get("/v1/customers/{id}/satisfaction", list_satisfaction)


# ---- shapes ------------------------------------------------------------------------------


class InteractionIn(RequestModel):
    kind: Kind
    direction: Literal["inbound", "outbound"]
    """inbound: the customer reached out; outbound: the business did."""
    summary: Annotated[str, Field(min_length=1, max_length=10_000)]
    at: AwareDatetime | None = None
    """When it happened (RFC 3339 with an offset); default now. Not in the future."""
    staff_id: StaffId | None = None
    """Who had it; default the caller (the token's `sub`)."""


class MessageIn(RequestModel):
    text: Annotated[str, Field(min_length=1, max_length=MAX_MESSAGE_LENGTH)]


class SatisfactionIn(RequestModel):
    score: Annotated[int, Field(ge=1, le=5, strict=True)]
    comment: Annotated[str, Field(max_length=10_000)] | None = None
    ticket_id: UUID | None = None
    """One of this customer's tickets (422 otherwise); a ticket takes one score (409)."""


class InteractionOut(BaseModel):
    id: UUID
    customer_id: UUID
    kind: Kind
    direction: Literal["inbound", "outbound"]
    summary: str | None
    """Null once the customer is erased."""
    at: datetime
    staff_id: str
    logged_at: datetime
    logged_by: str


class MessageOut(BaseModel):
    id: UUID
    customer_id: UUID
    sender: Literal["staff", "customer"]
    author: str
    """Who wrote it: the staff member's or the customer's token `sub`."""
    text: str
    sent_at: datetime


class ScoreOut(BaseModel):
    id: UUID
    customer_id: UUID
    score: int
    comment: str | None
    """Null once the customer is erased."""
    ticket_id: UUID | None
    given_at: datetime
    given_by: str


class InteractionPage(BaseModel):
    items: list[InteractionOut]
    next_cursor: str | None


class MessagePage(BaseModel):
    items: list[MessageOut]
    next_cursor: str | None


class SatisfactionPage(BaseModel):
    items: list[ScoreOut]
    next_cursor: str | None
    count: int
    """How many scores the customer gave (all pages)."""
    average: Annotated[Decimal, PlainSerializer(lambda d: format(d, "f"), return_type=str)] | None
    """Their average, a decimal string with two places ("4.50"); null with none."""


class InteractionsQuery(PageQuery):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    kind: list[Kind] | None = None
    """Any of these kinds (repeat the parameter for several)."""


class ConversationQuery(PageQuery):
    """Newest first."""


# ---- handlers ----------------------------------------------------------------------------


@operation(
    "Log a call, visit, email... with a customer",
    tag="interactions",
    description="409 when the customer is deleted or erased; `at` in the future: 422.",
    request=InteractionIn,
    responses={201: CommandOut},
    if_match="optional",
    response_headers=CREATED_HEADERS,
    errors=(409,),
)
@requires(*STAFF)
async def log_interaction(request: web.Request) -> web.Response:
    tab = Tab.of(request, if_match="optional")
    body = await read_json(request, InteractionIn)
    receipt = await tab.run(
        "log_interaction",
        kind=body.kind,
        direction=body.direction,
        summary=body.summary,
        at=body.at,
        staff_id=body.staff_id or principal(request).sub,
    )
    return tab.created(receipt, f"interactions?min_position={receipt.position}")


@operation(
    "A customer's interactions (read model)",
    tag="interactions",
    description="Newest first (by when they happened).",
    query=InteractionsQuery,
    responses={200: InteractionPage},
)
@requires(*STAFF)
async def list_interactions(request: web.Request) -> web.Response:
    customer_id = tab_customer(request)
    query = parse_query(request, InteractionsQuery)
    criteria = ConversationCriteria(customer_id, tuple(query.kind or ()))
    rows, next_cursor = await fetch_page(
        request, READ_MODEL, interactions_statement, criteria, query, key_column="at"
    )
    items = [InteractionOut(**row) for row in rows]
    return json_response(InteractionPage(items=items, next_cursor=next_cursor))


@operation(
    "Post a chat message to (or, with a customer token, from) the customer",
    tag="chat",
    description="Staff messages notify the customer on its notification channels;"
    " the customer's notify staff on `crm.notify.staff`. 409 for a deleted or erased customer.",
    request=MessageIn,
    responses={201: CommandOut},
    if_match="optional",
    response_headers=CREATED_HEADERS,
    errors=(409,),
)
@requires(*EVERYONE)
async def post_message(request: web.Request) -> web.Response:
    tab = Tab.of(request, if_match="optional")
    body = await read_json(request, MessageIn)
    sender = "staff" if customer_scope(request) is None else "customer"
    receipt = await tab.run("post_message", body.text, sender=sender)
    return tab.created(receipt, f"messages?min_position={receipt.position}")


@operation(
    "A customer's chat (read model)",
    tag="chat",
    description="Newest first. A customer token reads only its own.",
    query=ConversationQuery,
    responses={200: MessagePage},
)
@requires(*EVERYONE)
async def list_messages(request: web.Request) -> web.Response:
    customer_id = tab_customer(request)
    query = parse_query(request, ConversationQuery)
    rows, next_cursor = await fetch_page(
        request,
        READ_MODEL,
        messages_statement,
        ConversationCriteria(customer_id),
        query,
        key_column="sent_at",
    )
    items = [MessageOut(**row) for row in rows]
    return json_response(MessagePage(items=items, next_cursor=next_cursor))


@operation(
    "Give a satisfaction score (1-5), about one of the customer's tickets or in general",
    tag="satisfaction",
    description="`ticket_id` not one of this customer's tickets: 422; a second score for a"
    " ticket: 409; a deleted or erased customer: 409.",
    request=SatisfactionIn,
    responses={201: CommandOut},
    if_match="optional",
    response_headers=CREATED_HEADERS,
    errors=(409,),
)
@requires(*EVERYONE)
async def give_satisfaction(request: web.Request) -> web.Response:
    tab = Tab.of(request, if_match="optional")
    body = await read_json(request, SatisfactionIn)
    receipt = await tab.run("give_satisfaction", body.score, body.comment, ticket_id=body.ticket_id)
    return tab.created(receipt, f"satisfaction?min_position={receipt.position}")


@operation(
    "A customer's satisfaction scores and their average (read model)",
    tag="satisfaction",
    description="Newest first; `count` and `average` cover every score, not only the page.",
    query=ConversationQuery,
    responses={200: SatisfactionPage},
)
@requires(*EVERYONE)
async def list_satisfaction(request: web.Request) -> web.Response:
    customer_id = tab_customer(request)
    query = parse_query(request, ConversationQuery)
    rows, next_cursor = await fetch_page(
        request,
        READ_MODEL,
        satisfaction_statement,
        ConversationCriteria(customer_id),
        query,
        key_column="given_at",
    )
    summary = await fetch_row(request, READ_MODEL, satisfaction_summary, customer_id)
    assert summary is not None  # an aggregate query always answers one row
    return json_response(
        SatisfactionPage(
            items=[ScoreOut(**row) for row in rows],
            next_cursor=next_cursor,
            count=summary["count"],
            average=summary["average"],
        )
    )
