"""The audit API: the global event log, page by page, and the check of its hash chain.

`GET /v1/events` pages every event of every aggregate in commit order (the global
position), for audit tools that mirror the log; `GET /v1/audit/verify` recomputes the
hash chain (`infrastructure.hash_chain`) of every stream, or one, and names the first
break. Both are for the admin and service roles: staff get 403, a customer token 404.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from aiohttp import web
from eventsourcing.persistence import Notification
from pydantic import BaseModel, ConfigDict, Field

from domain.base import qualname_event_name
from domain.errors import NotFoundError
from gateway.auth import requires
from gateway.commands import service_of
from gateway.operations import operation
from gateway.representations import event_out
from gateway.requests import json_response, parse_query
from gateway.threads import run_sync
from infrastructure.audit_log import Verification, verify_chain
from infrastructure.eventstore import recorder

__all__ = ["add_routes"]

MAX_LIMIT = 1000


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/events", global_log)
    app.router.add_get("/v1/audit/verify", verify)


class LogQuery(BaseModel):
    """The query string of `GET /v1/events`."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    after: int = Field(default=0, ge=0)
    """Events after this global position (0: from the start; a page's `next_cursor`)."""
    limit: int = Field(default=100, ge=1, le=MAX_LIMIT)
    """Events per page, at most 1000."""


class LogEventOut(BaseModel):
    """One event of the global log: the audit envelope, and which stream it belongs to."""

    position: int
    version: int
    type: str
    at: datetime | None = None
    """Null only when the event cannot be decoded."""
    actor: str | None = None
    correlation_id: str | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    stream_id: UUID
    """The aggregate (customer, appointment, ticket, or internal record) of the event."""
    error: str | None = None
    """Set when the stored event cannot be decoded (then `payload` is empty)."""


class LogPage(BaseModel):
    items: list[LogEventOut]
    """In commit order."""
    next_cursor: str | None
    """The last position of this page, to pass as `after`; null on the last page."""


@operation(
    "The global event log, in commit order",
    tag="audit",
    description=(
        "Every event of every aggregate, oldest first. Secrets and credential hashes are"
        " masked as `***`. Pass `next_cursor` as `after` for the next page."
    ),
    query=LogQuery,
    responses={200: LogPage},
)
@requires("admin", "service")
async def global_log(request: web.Request) -> web.Response:
    query = parse_query(request, LogQuery)
    service = service_of(request)

    def read_page() -> LogPage:
        notifications = service.recorder.select_notifications(
            start=query.after, limit=query.limit + 1, inclusive_of_start=False
        )
        page = notifications[: query.limit]
        more = len(notifications) > query.limit
        return LogPage(
            items=[_item(service, n) for n in page],
            next_cursor=str(page[-1].id) if more else None,
        )

    return json_response(await run_sync(request, read_page))


def _item(service: Any, notification: Notification) -> LogEventOut:
    try:
        event = service.mapper.to_domain_event(notification)
    except Exception as error:  # an edited or unknown row must not hide the rest of the page
        return LogEventOut(
            position=notification.id,
            version=notification.originator_version,
            type=qualname_event_name(notification.topic.rpartition(":")[2]),
            stream_id=UUID(str(notification.originator_id)),
            error=f"cannot decode the stored event: {type(error).__name__}",
        )
    shown = event_out(event, notification.id)
    return LogEventOut(**shown.model_dump(), stream_id=event.originator_id)


class VerifyQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    stream_id: UUID | None = None
    """Check only this stream (an aggregate id); default every stream."""


class ChainBreakOut(BaseModel):
    stream_id: UUID
    version: int
    reason: str


class HeadOut(BaseModel):
    position: int
    log_hash: str
    """Keep it: the last event of the log is vouched for only by a later head's history."""


class VerifyOut(BaseModel):
    """API.md's audit verify answer, with where the chain was back-filled and its head."""

    ok: bool
    streams_checked: int
    events_checked: int
    first_break: ChainBreakOut | None
    backfilled_through: int | None
    """Events up to this position were stored before the chain existed and were chained by
    the migration as it found them; null when every event was chained as it was written."""
    head: HeadOut | None
    """The last event verified (whole-log checks only)."""


@operation(
    "Verify the event store's hash chain",
    tag="audit",
    description=(
        "Recomputes each event's keyed links to the previous event of its stream and of the"
        " global log, and reports the first break (an edited, deleted, reordered or moved"
        " event, or one written around the service). With `stream_id`, that stream only"
        " (404 if it has no events); the deletion of a stream's last event shows in the"
        " whole-log check, which reads the whole log (about a minute per million events on"
        " a small machine): for a large store prefer `customers audit verify`."
    ),
    query=VerifyQuery,
    responses={200: VerifyOut},
)
@requires("admin", "service")
async def verify(request: web.Request) -> web.Response:
    query = parse_query(request, VerifyQuery)
    chained = recorder(service_of(request))
    key = chained.chain_key
    assert key is not None
    result: Verification = await run_sync(request, verify_chain, chained, key, query.stream_id)
    if query.stream_id is not None and result.events_checked == 0 and result.ok:
        raise NotFoundError("stream", query.stream_id)
    return json_response(
        VerifyOut(
            ok=result.ok,
            streams_checked=result.streams_checked,
            events_checked=result.events_checked,
            first_break=ChainBreakOut(**vars(result.first_break)) if result.first_break else None,
            backfilled_through=result.backfilled_through,
            head=HeadOut(**vars(result.head)) if result.head else None,
        )
    )
