"""The repair-ticket resource: opening, the repair status graph, comments and lists.

Staff open tickets, move them along the graph and comment publicly or internally. A
customer token follows its own tickets: it sees them with public comments only (and the
timeline without staff notes), lists them, and may add a (public) comment.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from domain.errors import RuleViolationError
from domain.tickets import Ticket
from gateway.auth import EVERYONE, STAFF, requires
from gateway.commands import CHANGED_HEADERS, CREATED_HEADERS, answer, idempotency_of, service_of
from gateway.listing import PageQuery, fetch_page
from gateway.operations import operation
from gateway.requests import (
    json_response,
    optional_if_match,
    parse_query,
    path_uuid,
    read_json,
    require_if_match,
)
from gateway.schemas import CommandOut, LongText, Name, ShortText
from gateway.scopes import customer_scope, listed_customer
from gateway.tabs import tab_customer
from gateway.text import RequestModel
from gateway.threads import run_sync
from projections.tickets import TicketCriteria, tickets_statement

__all__ = ["add_routes"]

Status = Literal[
    "new", "diagnosing", "awaiting_parts", "in_repair", "ready_for_pickup", "closed", "cancelled"
]


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/v1/tickets", open_ticket)
    r.add_get("/v1/tickets", list_tickets)
    r.add_get("/v1/tickets/{id}", get_ticket)
    r.add_post("/v1/tickets/{id}/status", change_status)
    r.add_post("/v1/tickets/{id}/comments", add_comment)
    r.add_get("/v1/customers/{id}/tickets", customer_tickets)


# ---- shapes ------------------------------------------------------------------------------


class _In(RequestModel):
    """Extra fields forbidden, strings stripped, control characters refused."""


class DeviceIn(_In):
    type: Name
    make: ShortText | None = None
    model: ShortText | None = None
    serial: ShortText | None = None


class TicketIn(_In):
    """POST /v1/tickets."""

    customer_id: UUID
    subject: Name
    problem: Annotated[str, Field(min_length=1, max_length=10_000)]
    device: DeviceIn


class StatusIn(_In):
    status: Status
    note: LongText | None = None
    """For staff only: a customer token never sees it."""
    customer_note: LongText | None = None
    """What to tell the customer with this step: shown in the portal's timeline."""


class CommentIn(_In):
    text: Annotated[str, Field(min_length=1, max_length=10_000)]
    public: bool | None = None
    """Shown to the customer? Staff comments are internal unless true; a customer's are
    always public."""


class DeviceOut(BaseModel):
    type: str
    make: str | None
    model: str | None
    serial: str | None


class CommentOut(BaseModel):
    comment_id: UUID
    text: str
    public: bool
    added_at: datetime
    added_by: str


class StatusChangeOut(BaseModel):
    status: Status
    previous_status: Status | None
    note: str | None
    """Staff only: a customer token sees null."""
    customer_note: str | None
    """The message to the customer with this step (null before tickets had one)."""
    at: datetime
    by: str


class TicketOut(BaseModel):
    id: UUID
    number: int | None
    """The ticket number people say; null for tickets opened before numbers existed."""
    customer_id: UUID
    subject: str
    problem: str
    device: DeviceOut
    status: Status
    allowed_transitions: list[Status]
    comments: list[CommentOut]
    """A customer token sees public comments only."""
    timeline: list[StatusChangeOut]
    opened_at: datetime
    updated_at: datetime
    version: int


class TicketOpenedOut(CommandOut):
    number: int
    """The new ticket's number, to tell the customer."""


class TicketItem(BaseModel):
    id: UUID
    number: int | None
    customer_id: UUID
    subject: str
    status: Status
    device: DeviceOut
    public_comments: int
    opened_at: datetime
    status_changed_at: datetime
    updated_at: datetime
    version: int


class TicketPage(BaseModel):
    items: list[TicketItem]
    next_cursor: str | None


class TicketsQuery(PageQuery):
    """The filters of a ticket list; every given one applies."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    status: list[Status] | None = None
    """Any of these statuses (repeat the parameter for several)."""
    customer_id: UUID | None = None


# ---- handlers ----------------------------------------------------------------------------


@operation(
    "Open a repair ticket",
    tag="tickets",
    request=TicketIn,
    responses={201: TicketOpenedOut},
    response_headers=CREATED_HEADERS,
    errors=(409,),
)
@requires(*STAFF)
async def open_ticket(request: web.Request) -> web.Response:
    body = await read_json(request, TicketIn)
    receipt = await run_sync(
        request,
        service_of(request).open_ticket,
        body.customer_id,
        body.subject,
        body.problem,
        body.device.model_dump(),
        idempotency=await idempotency_of(request),
    )
    return answer(receipt, status=201, location=f"/v1/tickets/{receipt.aggregate_id}")


@operation(
    "Change a ticket's status",
    tag="tickets",
    description="A transition not in the repair graph answers 409 listing the allowed ones.",
    request=StatusIn,
    responses={200: CommandOut},
    if_match="required",
    response_headers=CHANGED_HEADERS,
    errors=(409,),
)
@requires(*STAFF)
async def change_status(request: web.Request) -> web.Response:
    ticket_id = path_uuid(request)
    expected = require_if_match(request)
    body = await read_json(request, StatusIn)
    receipt = await run_sync(
        request,
        service_of(request).change_ticket_status,
        ticket_id,
        body.status,
        body.note,
        customer_note=body.customer_note,
        expected_version=expected,
        idempotency=await idempotency_of(request),
    )
    return answer(receipt)


@operation(
    "Comment on a ticket (public or internal)",
    tag="tickets",
    description="Not on a closed or cancelled ticket (409).",
    request=CommentIn,
    responses={201: CommandOut},
    if_match="optional",
    response_headers=CHANGED_HEADERS,
    errors=(409,),
)
@requires(*EVERYONE)
async def add_comment(request: web.Request) -> web.Response:
    ticket_id = path_uuid(request)
    expected = optional_if_match(request)
    body = await read_json(request, CommentIn)
    scope = customer_scope(request)
    if scope is not None and body.public is False:
        raise RuleViolationError("public", "a customer's comments are public")
    receipt = await run_sync(
        request,
        service_of(request).comment_on_ticket,
        ticket_id,
        body.text,
        public=scope is not None or bool(body.public),
        expected_version=expected,
        customer_scope=scope,
        idempotency=await idempotency_of(request),
    )
    return answer(receipt, status=201)


@operation(
    "Get a ticket with its comments and timeline",
    tag="tickets",
    responses={200: TicketOut},
    response_headers=("ETag",),
)
@requires(*EVERYONE)
async def get_ticket(request: web.Request) -> web.Response:
    scope = customer_scope(request)
    ticket = await run_sync(
        request, service_of(request).get_ticket, path_uuid(request), customer_scope=scope
    )
    return json_response(
        _ticket_out(ticket, for_customer=scope is not None),
        headers={"ETag": f'"{ticket.version}"'},
    )


@operation(
    "List tickets (read model)",
    tag="tickets",
    description="Newest first. A customer token lists only its own customer's.",
    query=TicketsQuery,
    responses={200: TicketPage},
)
@requires(*EVERYONE)
async def list_tickets(request: web.Request) -> web.Response:
    query = parse_query(request, TicketsQuery)
    return await _page(request, query, listed_customer(request, query.customer_id))


@operation(
    "A customer's tickets (read model)",
    tag="tickets",
    query=TicketsQuery,
    responses={200: TicketPage},
)
@requires(*EVERYONE)
async def customer_tickets(request: web.Request) -> web.Response:
    path_customer = tab_customer(request)
    query = parse_query(request, TicketsQuery)
    customer_id = listed_customer(request, query.customer_id, path_customer)
    return await _page(request, query, customer_id)


# ---- helpers -----------------------------------------------------------------------------


async def _page(
    request: web.Request, query: TicketsQuery, customer_id: UUID | None
) -> web.Response:
    criteria = TicketCriteria(customer_id=customer_id, statuses=tuple(query.status or ()))
    rows, next_cursor = await fetch_page(
        request, "tickets", tickets_statement, criteria, query, key_column="opened_at"
    )
    items = [
        TicketItem(
            **{k: v for k, v in row.items() if not k.startswith("device_")},
            device=DeviceOut(
                type=row["device_type"],
                make=row["device_make"],
                model=row["device_model"],
                serial=row["device_serial"],
            ),
        )
        for row in rows
    ]
    return json_response(TicketPage(items=items, next_cursor=next_cursor))


def _ticket_out(ticket: Ticket, *, for_customer: bool) -> TicketOut:
    comments = ticket.public_comments() if for_customer else ticket.comments
    return TicketOut.model_validate(
        {
            "id": ticket.id,
            "number": ticket.number,
            "customer_id": ticket.customer_id,
            "subject": ticket.subject,
            "problem": ticket.problem,
            "device": vars(ticket.device),
            "status": ticket.status,
            "allowed_transitions": list(ticket.allowed_transitions),
            "comments": [vars(c) for c in comments],
            "timeline": [
                {**vars(step), "note": None if for_customer else step.note}
                for step in ticket.timeline
            ],
            "opened_at": ticket.created_on,
            "updated_at": ticket.modified_on,
            "version": ticket.version,
        }
    )
