"""The appointment resource: booking, the status graph, lists and calendars.

Each handler only translates: it validates, scopes a customer token to its own customer,
calls one service method in the thread pool and answers with ETag and X-Event-Position.
A customer may book for itself, see, reschedule and cancel its own appointments, and
read their calendar file; confirming, completing and no-shows are for staff.
"""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from aiohttp import web

from domain.appointments import Appointment
from domain.errors import NotFoundError
from domain.timezones import DEFAULT_TIME_ZONE
from gateway.appointment_schemas import (
    AppointmentIn,
    AppointmentItem,
    AppointmentOut,
    AppointmentPage,
    AppointmentsQuery,
    BookedOut,
    CancelIn,
    ConfirmIn,
    FeedPath,
    RescheduleIn,
    appointment_out,
)
from gateway.auth import EVERYONE, STAFF, requires
from gateway.calendars import CONTENT_TYPE, CalendarEntry, render_calendar
from gateway.commands import CHANGED_HEADERS, CREATED_HEADERS, answer, idempotency_of, service_of
from gateway.keys import SETTINGS_KEY
from gateway.listing import PageQuery, fetch_page
from gateway.operations import Body, operation
from gateway.reads import ReadQuery
from gateway.requests import json_response, parse_query, path_uuid, read_json, require_if_match
from gateway.schemas import CommandOut
from gateway.scopes import customer_scope, listed_customer, require_visible_customer
from gateway.tabs import tab_customer
from gateway.threads import run_sync
from projections.appointments import AppointmentCriteria, appointments_statement

__all__ = ["add_routes"]

FEED_PAST = timedelta(days=31)
FEED_FUTURE = timedelta(days=366)
FEED_LIMIT = 200
ICS = Body(
    media_type=CONTENT_TYPE,
    schema={"type": "string", "description": "An iCalendar (RFC 5545) file."},
)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/v1/appointments", book)
    r.add_get("/v1/appointments", list_appointments)
    # Before /{id}: the plain pattern would also match "<id>.ics".
    r.add_get("/v1/appointments/{id}.ics", appointment_calendar)
    r.add_get("/v1/appointments/{id}", get_appointment)
    r.add_post("/v1/appointments/{id}/confirm", confirm)
    r.add_post("/v1/appointments/{id}/reschedule", reschedule)
    r.add_post("/v1/appointments/{id}/cancel", cancel)
    r.add_post("/v1/appointments/{id}/complete", complete)
    r.add_post("/v1/appointments/{id}/no-show", no_show)
    r.add_get("/v1/customers/{id}/appointments", customer_appointments)
    r.add_get("/v1/staff/{staff_id}/appointments.ics", staff_calendar)


# ---- commands ----------------------------------------------------------------------------


@operation(
    "Book an appointment (as a request)",
    tag="appointments",
    description="Without `staff_id`, the customer's preferred staff member is assigned. "
    "A customer token books only for its own customer.",
    request=AppointmentIn,
    responses={201: BookedOut},
    response_headers=CREATED_HEADERS,
    errors=(409,),
)
@requires(*EVERYONE)
async def book(request: web.Request) -> web.Response:
    body = await read_json(request, AppointmentIn)
    require_visible_customer(request, body.customer_id)
    receipt = await run_sync(
        request,
        service_of(request).book_appointment,
        body.customer_id,
        body.starts_at,
        body.ends_at,
        staff_id=body.staff_id,
        service_id=body.service_id,
        notes=body.notes,
        idempotency=await idempotency_of(request),
    )
    location = f"/v1/appointments/{receipt.aggregate_id}"
    return answer(receipt, BookedOut, status=201, location=location)


@operation(
    "Confirm an appointment",
    tag="appointments",
    description="Takes the staff member's time: refused (409) when another of their "
    "confirmed appointments overlaps it.",
    request=Body(model=ConfirmIn, required=False),
    responses={200: CommandOut},
    if_match="required",
    response_headers=CHANGED_HEADERS,
    errors=(409,),
)
@requires(*STAFF)
async def confirm(request: web.Request) -> web.Response:
    appointment_id = path_uuid(request)
    expected = require_if_match(request)
    body = await read_json(request, ConfirmIn, allow_empty=True)
    receipt = await run_sync(
        request,
        service_of(request).confirm_appointment,
        appointment_id,
        expected_version=expected,
        staff_id=body.staff_id,
        idempotency=await idempotency_of(request),
    )
    return answer(receipt)


@operation(
    "Move an appointment",
    tag="appointments",
    description="Refused (409) once the current start time has passed.",
    request=RescheduleIn,
    responses={200: CommandOut},
    if_match="required",
    response_headers=CHANGED_HEADERS,
    errors=(409,),
)
@requires(*EVERYONE)
async def reschedule(request: web.Request) -> web.Response:
    appointment_id = path_uuid(request)
    expected = require_if_match(request)
    body = await read_json(request, RescheduleIn)
    receipt = await run_sync(
        request,
        service_of(request).reschedule_appointment,
        appointment_id,
        body.starts_at,
        body.ends_at,
        expected_version=expected,
        customer_scope=customer_scope(request),
        idempotency=await idempotency_of(request),
    )
    return answer(receipt)


@operation(
    "Cancel an appointment, with a reason",
    tag="appointments",
    request=CancelIn,
    responses={200: CommandOut},
    if_match="required",
    response_headers=CHANGED_HEADERS,
    errors=(409,),
)
@requires(*EVERYONE)
async def cancel(request: web.Request) -> web.Response:
    appointment_id = path_uuid(request)
    expected = require_if_match(request)
    body = await read_json(request, CancelIn)
    receipt = await run_sync(
        request,
        service_of(request).cancel_appointment,
        appointment_id,
        body.reason,
        expected_version=expected,
        customer_scope=customer_scope(request),
        idempotency=await idempotency_of(request),
    )
    return answer(receipt)


@operation(
    "Mark an appointment completed",
    tag="appointments",
    responses={200: CommandOut},
    if_match="required",
    response_headers=CHANGED_HEADERS,
    errors=(409,),
)
@requires(*STAFF)
async def complete(request: web.Request) -> web.Response:
    return await _transition(request, "complete_appointment")


@operation(
    "Mark an appointment a no-show",
    tag="appointments",
    description="Only once the appointment has started.",
    responses={200: CommandOut},
    if_match="required",
    response_headers=CHANGED_HEADERS,
    errors=(409,),
)
@requires(*STAFF)
async def no_show(request: web.Request) -> web.Response:
    return await _transition(request, "mark_appointment_no_show")


# ---- reads -------------------------------------------------------------------------------


@operation(
    "Get an appointment",
    tag="appointments",
    responses={200: AppointmentOut},
    response_headers=("ETag",),
)
@requires(*EVERYONE)
async def get_appointment(request: web.Request) -> web.Response:
    appointment = await _appointment(request)
    return json_response(
        appointment_out(appointment, _time_zone(request)),
        headers={"ETag": f'"{appointment.version}"'},
    )


@operation(
    "An appointment as an iCalendar file",
    tag="appointments",
    description="Stable UID; SEQUENCE is the number of reschedules, so a calendar that "
    "imported it updates the event when it moves.",
    responses={200: ICS},
    response_headers=("ETag",),
)
@requires(*EVERYONE)
async def appointment_calendar(request: web.Request) -> web.Response:
    appointment = await _appointment(request)
    body = render_calendar(
        [CalendarEntry.of(appointment)], name="Appointment", time_zone=_time_zone(request)
    )
    return _calendar_response(body, f"appointment-{appointment.id}.ics", appointment.version)


@operation(
    "List appointments (read model)",
    tag="appointments",
    description="In start-time order. A customer token lists only its own customer's.",
    query=AppointmentsQuery,
    responses={200: AppointmentPage},
)
@requires(*EVERYONE)
async def list_appointments(request: web.Request) -> web.Response:
    query = parse_query(request, AppointmentsQuery)
    return await _page(request, query, listed_customer(request, query.customer_id))


@operation(
    "A customer's appointments (read model)",
    tag="appointments",
    query=AppointmentsQuery,
    responses={200: AppointmentPage},
)
@requires(*EVERYONE)
async def customer_appointments(request: web.Request) -> web.Response:
    path_customer = tab_customer(request)
    query = parse_query(request, AppointmentsQuery)
    customer_id = listed_customer(request, query.customer_id, path_customer)
    return await _page(request, query, customer_id)


@operation(
    "A staff member's calendar feed",
    tag="appointments",
    description="Their appointments from a month ago to a year ahead (cancelled ones too, so "
    "a subscribed calendar removes them), as iCalendar.",
    path=FeedPath,
    query=ReadQuery,
    responses={200: ICS},
)
@requires(*STAFF)
async def staff_calendar(request: web.Request) -> web.Response:
    staff_id = request.match_info["staff_id"]
    if not 1 <= len(staff_id) <= 100:
        raise NotFoundError("staff member", staff_id)
    query = parse_query(request, ReadQuery)
    now = service_of(request).clock()
    criteria = AppointmentCriteria(
        staff_id=staff_id, ends_after=now - FEED_PAST, starts_before=now + FEED_FUTURE
    )
    rows, _ = await fetch_page(
        request,
        "appointments",
        appointments_statement,
        criteria,
        PageQuery(limit=FEED_LIMIT, **query.model_dump()),
        key_column="starts_at",
    )
    entries = [
        CalendarEntry(
            id=row["id"],
            status=row["status"],
            starts_at=row["starts_at"],
            ends_at=row["ends_at"],
            reschedules=row["reschedules"],
            updated_at=row["updated_at"],
            staff_id=row["staff_id"],
            service_id=row["service_id"],
        )
        for row in rows
    ]
    body = render_calendar(
        entries, name=f"Appointments of {staff_id}", time_zone=_time_zone(request)
    )
    return _calendar_response(body, "appointments.ics")


# ---- helpers -----------------------------------------------------------------------------


def _time_zone(request: web.Request) -> str:
    zone: str = getattr(request.app[SETTINGS_KEY], "business_time_zone", DEFAULT_TIME_ZONE)
    return zone


async def _appointment(request: web.Request) -> Appointment:
    return await run_sync(
        request,
        service_of(request).get_appointment,
        path_uuid(request),
        customer_scope=customer_scope(request),
    )


async def _transition(request: web.Request, command: str) -> web.Response:
    appointment_id = path_uuid(request)
    expected = require_if_match(request)
    receipt = await run_sync(
        request,
        getattr(service_of(request), command),
        appointment_id,
        expected_version=expected,
        idempotency=await idempotency_of(request),
    )
    return answer(receipt)


async def _page(
    request: web.Request, query: AppointmentsQuery, customer_id: UUID | None
) -> web.Response:
    criteria = AppointmentCriteria(
        staff_id=query.staff_id,
        customer_id=customer_id,
        statuses=tuple(query.status or ()),
        ends_after=query.from_,
        starts_before=query.to,
    )
    rows, next_cursor = await fetch_page(
        request, "appointments", appointments_statement, criteria, query, key_column="starts_at"
    )
    page = AppointmentPage(
        items=[AppointmentItem.model_validate(row) for row in rows], next_cursor=next_cursor
    )
    return json_response(page)


def _calendar_response(body: bytes, filename: str, version: int | None = None) -> web.Response:
    headers = {"Content-Disposition": f'inline; filename="{filename}"'}
    if version is not None:
        headers["ETag"] = f'"{version}"'
    return web.Response(body=body, content_type=CONTENT_TYPE, charset="utf-8", headers=headers)
