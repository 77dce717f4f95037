"""Appointments over HTTP on a real event store, with their read model kept by a follower.

The gateway's service here has a clock the tests can move forward (to let a start time
pass); a second gateway on the same database plays another process in the race tests.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from aiohttp.test_utils import TestClient
from tests.e2e.answers import ok, problem

from domain.service import CustomerService
from gateway import create_app
from infrastructure.eventstore import build_service
from infrastructure.settings import Settings

Client = TestClient[Any, Any]
Bearer = Callable[..., dict[str, str]]


class Clock:
    """Real time plus an offset the tests can move forward."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def services(
    api_settings: Settings, service: CustomerService, clock: Clock
) -> Iterator[list[CustomerService]]:
    """Two services on the session's (migrated) store: two gateway processes, one clock."""
    built = []
    for _ in range(2):
        one = build_service(api_settings)
        one.clock = clock
        built.append(one)
    yield built
    for one in built:
        one.close()


@pytest.fixture(scope="module", autouse=True)
def appointments_view(followed: Any, services: list[CustomerService]) -> Iterator[None]:
    """The appointments read model, kept current by a follower thread."""
    with followed("appointments", services[0]):
        yield


@pytest.fixture
async def api(
    aiohttp_client: Any, api_settings: Settings, services: list[CustomerService]
) -> Client:
    client: Client = await aiohttp_client(create_app(api_settings, service=services[0]))
    return client


@pytest.fixture
async def other_gateway(
    aiohttp_client: Any, api_settings: Settings, services: list[CustomerService]
) -> Client:
    client: Client = await aiohttp_client(create_app(api_settings, service=services[1]))
    return client


# ---- helpers ------------------------------------------------------------------------------


def at(hours: float) -> str:
    """An RFC 3339 time `hours` from now, on a whole minute."""
    moment = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(hours=hours)
    return moment.isoformat()


def fields(body: dict[str, Any]) -> list[str | None]:
    return [e["field"] for e in body.get("errors", [])]


async def customer(api: Client, bearer: Bearer, **fields: Any) -> str:
    body = {"first_name": "Mo", "email": f"mo.{secrets.token_hex(6)}@example.net", **fields}
    created = await ok(await api.post("/v1/customers", json=body, headers=bearer()), 201)
    return str(created["id"])


async def book(api: Client, headers: dict[str, str], customer_id: str, **body: Any) -> Any:
    body = {"customer_id": customer_id, "starts_at": at(24), "ends_at": at(25), **body}
    response = await api.post("/v1/appointments", json=body, headers=headers)
    created = await ok(response, 201)
    assert response.headers["Location"] == f"/v1/appointments/{created['id']}"
    assert response.headers["ETag"] == '"1"'
    created["position"] = int(response.headers["X-Event-Position"])
    return created


async def act(
    api: Client,
    headers: dict[str, str],
    appointment_id: str,
    action: str,
    version: int,
    **body: Any,
) -> Any:
    return await api.post(
        f"/v1/appointments/{appointment_id}/{action}",
        json=body or None,
        headers={**headers, "If-Match": f'"{version}"'},
    )


def staff_member() -> str:
    return f"staff-{secrets.token_hex(4)}"


# ---- booking ------------------------------------------------------------------------------


async def test_booking_forwards_to_the_preferred_staff_and_reads_back(
    api: Client, bearer: Bearer
) -> None:
    """No staff named: the preferred staff member is assigned; GET shows times in UTC and in
    the business time zone, with the allowed transitions."""
    pat = staff_member()
    customer_id = await customer(api, bearer, preferred_staff_id=pat)
    booked = await book(api, bearer(), customer_id, service_id="boiler-check", notes="gate 12")
    assert (booked["staff_id"], booked["conflicts"], booked["version"]) == (pat, [], 1)
    response = await api.get(f"/v1/appointments/{booked['id']}", headers=bearer())
    shown = await ok(response)
    assert response.headers["ETag"] == '"1"'
    assert (shown["staff_id"], shown["staff_source"], shown["status"]) == (
        pat,
        "preferred_staff",
        "requested",
    )
    assert shown["allowed_transitions"] == ["confirmed", "cancelled"]
    assert shown["time_zone"] == "UTC" and shown["starts_at_local"] == shown["starts_at"]
    assert (shown["service_id"], shown["notes"], shown["reschedules"]) == (
        "boiler-check",
        "gate 12",
        0,
    )


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        ({"starts_at": at(26), "ends_at": at(25)}, 422, "ends_at"),
        ({"starts_at": at(-2), "ends_at": at(-1)}, 422, "starts_at"),
        ({"customer_id": str(uuid4())}, 422, "customer_id"),
        ({"starts_at": "2030-01-01T09:00:00"}, 422, "starts_at"),
        ({"ends_at": None}, 422, "ends_at"),
        ({"colour": "red"}, 422, "colour"),
    ],
    ids=[
        "end-before-start",
        "in-the-past",
        "unknown-customer",
        "no-offset",
        "no-end",
        "unknown-field",
    ],
)
async def test_bookings_that_make_no_appointment_are_refused_naming_the_field(
    api: Client, bearer: Bearer, change: dict[str, Any], status: int, field: str
) -> None:
    """Each bad booking answers problem+json naming its field."""
    customer_id = await customer(api, bearer)
    body = {"customer_id": customer_id, "starts_at": at(24), "ends_at": at(25), **change}
    response = await api.post("/v1/appointments", json=body, headers=bearer())
    assert field in fields(await problem(response, status))


async def test_a_deleted_customer_cannot_book(api: Client, bearer: Bearer) -> None:
    """409 naming customer_id."""
    customer_id = await customer(api, bearer)
    deleted = await api.delete(
        f"/v1/customers/{customer_id}", headers={**bearer(), "If-Match": '"1"'}
    )
    assert deleted.status == 200
    body = {"customer_id": customer_id, "starts_at": at(24), "ends_at": at(25)}
    response = await api.post("/v1/appointments", json=body, headers=bearer())
    assert fields(await problem(response, 409)) == ["customer_id"]


async def test_a_retried_booking_is_answered_once(api: Client, bearer: Bearer) -> None:
    """The same Idempotency-Key and body: the same answer, one appointment."""
    customer_id = await customer(api, bearer)
    headers = {**bearer(), "Idempotency-Key": f"book-{uuid4()}"}
    body = {"customer_id": customer_id, "starts_at": at(24), "ends_at": at(25)}
    first = await ok(await api.post("/v1/appointments", json=body, headers=headers), 201)
    again = await api.post("/v1/appointments", json=body, headers=headers)
    assert await ok(again, 201) == first
    assert again.headers["Idempotent-Replayed"] == "true"


# ---- the status graph ------------------------------------------------------------------------


async def test_the_graph_over_http(api: Client, bearer: Bearer) -> None:
    """Confirm and complete with If-Match; off-graph moves answer 409 with the allowed ones;
    no If-Match is 428, a stale one 412."""
    customer_id = await customer(api, bearer)
    booked = await book(api, bearer(), customer_id, staff_id=staff_member())
    appointment = booked["id"]
    missing = await api.post(f"/v1/appointments/{appointment}/confirm", headers=bearer())
    await problem(missing, 428)
    off_graph = await problem(await act(api, bearer(), appointment, "complete", 1), 409)
    assert (off_graph["current"], off_graph["requested"]) == ("requested", "completed")
    assert off_graph["allowed"] == ["confirmed", "cancelled"]
    confirmed = await act(api, bearer(), appointment, "confirm", 1)
    assert (await ok(confirmed))["version"] == 2 and confirmed.headers["ETag"] == '"2"'
    await problem(await act(api, bearer(), appointment, "cancel", 1, reason="x"), 412)
    await problem(await act(api, bearer(), appointment, "no-show", 2), 409)  # not started
    completed = await act(api, bearer(), appointment, "complete", 2)
    assert completed.status == 200
    final = await problem(await act(api, bearer(), appointment, "cancel", 3, reason="x"), 409)
    assert final["allowed"] == []
    moved = await act(api, bearer(), appointment, "reschedule", 3, starts_at=at(30), ends_at=at(31))
    assert fields(await problem(moved, 409)) == ["status"]


async def test_cancel_needs_a_reason_and_keeps_it(api: Client, bearer: Bearer) -> None:
    """An empty reason is 422 naming it; the reason shows on the appointment."""
    booked = await book(api, bearer(), await customer(api, bearer))
    empty = await act(api, bearer(), booked["id"], "cancel", 1, reason="")
    assert fields(await problem(empty, 422)) == ["reason"]
    await ok(await act(api, bearer(), booked["id"], "cancel", 1, reason="flu"))
    shown = await ok(await api.get(f"/v1/appointments/{booked['id']}", headers=bearer()))
    assert (shown["status"], shown["cancel_reason"]) == ("cancelled", "flu")


async def test_reschedule_until_the_start_then_409_and_no_show_after_it(
    api: Client, bearer: Bearer, clock: Clock
) -> None:
    """Moving counts in the calendar's SEQUENCE; once the start passed (the clock moved),
    moving is refused and a no-show can be recorded."""
    booked = await book(api, bearer(), await customer(api, bearer), staff_id=staff_member())
    appointment = booked["id"]
    await ok(await act(api, bearer(), appointment, "reschedule", 1, starts_at=at(2), ends_at=at(3)))
    await ok(await act(api, bearer(), appointment, "confirm", 2))
    ics = await api.get(f"/v1/appointments/{appointment}.ics", headers=bearer())
    assert "SEQUENCE:1" in (await ics.text()).split("\r\n")
    clock.offset = timedelta(hours=2, minutes=10)
    try:
        late = await act(
            api, bearer(), appointment, "reschedule", 3, starts_at=at(5), ends_at=at(6)
        )
        refused = await problem(late, 409)
        assert fields(refused) == ["starts_at"] and "no longer" in refused["detail"]
        await ok(await act(api, bearer(), appointment, "no-show", 3))
    finally:
        clock.offset = timedelta(0)


# ---- staff overlaps and races ------------------------------------------------------------------


async def test_an_overlapping_confirmation_is_refused_naming_the_holder(
    api: Client, bearer: Bearer
) -> None:
    """Booking over a confirmed appointment is flagged; confirming it is a 409."""
    pat = staff_member()
    customer_id = await customer(api, bearer)
    first = await book(api, bearer(), customer_id, staff_id=pat, starts_at=at(24), ends_at=at(26))
    await ok(await act(api, bearer(), first["id"], "confirm", 1))
    second = await book(api, bearer(), customer_id, staff_id=pat, starts_at=at(25), ends_at=at(27))
    assert second["conflicts"] == [first["id"]]
    refused = await problem(await act(api, bearer(), second["id"], "confirm", 1), 409)
    assert fields(refused) == ["starts_at"] and first["id"] in refused["detail"]
    # With another staff member it fits.
    await ok(await act(api, bearer(), second["id"], "confirm", 1, staff_id=staff_member()))


async def test_two_staff_confirming_at_once_one_wins_one_gets_412(
    api: Client, other_gateway: Client, bearer: Bearer
) -> None:
    """Two gateway processes confirm the same version at the same moment."""
    booked = await book(api, bearer(), await customer(api, bearer), staff_id=staff_member())
    answers = await asyncio.gather(
        act(api, bearer(sub="alice@shop"), booked["id"], "confirm", 1),
        act(other_gateway, bearer(sub="bob@shop"), booked["id"], "confirm", 1),
    )
    assert sorted(a.status for a in answers) == [200, 412]
    shown = await ok(await api.get(f"/v1/appointments/{booked['id']}", headers=bearer()))
    assert (shown["status"], shown["version"]) == ("confirmed", 2)


async def test_two_overlapping_confirmations_at_once_cannot_both_win(
    api: Client, other_gateway: Client, bearer: Bearer
) -> None:
    """Two appointments of one staff member, confirmed at once through two processes: the
    schedule lets exactly one hold the time."""
    pat = staff_member()
    customer_id = await customer(api, bearer)
    first = await book(api, bearer(), customer_id, staff_id=pat, starts_at=at(24), ends_at=at(26))
    second = await book(api, bearer(), customer_id, staff_id=pat, starts_at=at(25), ends_at=at(27))
    answers = await asyncio.gather(
        act(api, bearer(), first["id"], "confirm", 1),
        act(other_gateway, bearer(), second["id"], "confirm", 1),
    )
    assert sorted(a.status for a in answers) == [200, 409]


# ---- lists and calendars ----------------------------------------------------------------------


async def test_list_by_staff_window_and_status_in_time_order_with_pages(
    api: Client, bearer: Bearer
) -> None:
    """The read model answers each filter; pages follow next_cursor; min_position waits."""
    pat = staff_member()
    customer_id = await customer(api, bearer)
    made = [
        await book(api, bearer(), customer_id, staff_id=pat, starts_at=at(h), ends_at=at(h + 1))
        for h in (50, 48, 52)
    ]
    confirmed = await act(api, bearer(), made[1]["id"], "confirm", 1)
    position = int(confirmed.headers["X-Event-Position"])
    query = {"staff_id": pat, "min_position": str(position)}
    listed = await ok(await api.get("/v1/appointments", params=query, headers=bearer()))
    assert [i["id"] for i in listed["items"]] == [made[1]["id"], made[0]["id"], made[2]["id"]]
    assert listed["items"][0]["status"] == "confirmed" and listed["next_cursor"] is None
    by_status = await ok(
        await api.get("/v1/appointments", params={**query, "status": "requested"}, headers=bearer())
    )
    assert [i["id"] for i in by_status["items"]] == [made[0]["id"], made[2]["id"]]
    window = {**query, "from": at(49.5), "to": at(51.5)}
    in_window = await ok(await api.get("/v1/appointments", params=window, headers=bearer()))
    assert [i["id"] for i in in_window["items"]] == [made[0]["id"]]
    seen, cursor = [], None
    while True:
        page_query = {**query, "limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await ok(await api.get("/v1/appointments", params=page_query, headers=bearer()))
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [i["id"] for i in listed["items"]]
    per_customer = await ok(
        await api.get(
            f"/v1/customers/{customer_id}/appointments",
            params={"min_position": str(position)},
            headers=bearer(),
        )
    )
    assert {i["id"] for i in per_customer["items"]} == {m["id"] for m in made}


@pytest.mark.parametrize(
    "params",
    [{"cursor": "not-a-cursor"}, {"status": "lost"}, {"colour": "red"}, {"from": "yesterday"}],
)
async def test_bad_list_parameters_are_422(
    api: Client, bearer: Bearer, params: dict[str, str]
) -> None:
    """Each names the parameter."""
    response = await api.get("/v1/appointments", params=params, headers=bearer())
    assert next(iter(params)) in str(fields(await problem(response, 422)))


async def test_calendars_keep_the_uid_and_count_reschedules(api: Client, bearer: Bearer) -> None:
    """The .ics of one appointment and the staff feed agree: same UID, SEQUENCE = moves."""
    pat = staff_member()
    booked = await book(api, bearer(), await customer(api, bearer), staff_id=pat)
    path = f"/v1/appointments/{booked['id']}.ics"
    first = await api.get(path, headers=bearer())
    assert first.status == 200 and first.headers["Content-Type"].startswith("text/calendar")
    assert first.headers["ETag"] == '"1"'
    lines = (await first.text()).split("\r\n")
    [uid] = [line for line in lines if line.startswith("UID:")]
    assert "SEQUENCE:0" in lines and "STATUS:TENTATIVE" in lines
    for version, hours in ((1, 30), (2, 32)):
        moved = await act(
            api,
            bearer(),
            booked["id"],
            "reschedule",
            version,
            starts_at=at(hours),
            ends_at=at(hours + 1),
        )
        position = int(moved.headers["X-Event-Position"])
    again = (await (await api.get(path, headers=bearer())).text()).split("\r\n")
    assert uid in again and "SEQUENCE:2" in again
    feed = await api.get(
        f"/v1/staff/{pat}/appointments.ics",
        params={"min_position": str(position)},
        headers=bearer(),
    )
    assert feed.status == 200
    feed_lines = (await feed.text()).replace("\r\n ", "").split("\r\n")
    assert uid in feed_lines and "SEQUENCE:2" in feed_lines


# ---- a customer's token -------------------------------------------------------------------------


@dataclass
class Scene:
    """A customer's token, one appointment of its own and one of another customer's."""

    me: dict[str, str]
    mine: str
    theirs: str
    own: dict[str, Any]
    other: dict[str, Any]


async def scene(api: Client, bearer: Bearer) -> Scene:
    mine, theirs = await customer(api, bearer), await customer(api, bearer)
    me = bearer("customer", sub=f"customer:{mine}", customer_id=mine)
    own = await book(api, me, mine, staff_id=staff_member())
    other = await book(api, bearer(), theirs, staff_id=staff_member())
    return Scene(me, mine, theirs, own, other)


async def test_a_customer_token_reaches_its_own_appointments(api: Client, bearer: Bearer) -> None:
    """Its own: book (above), read, calendar, list (only its own), reschedule, cancel."""
    s = await scene(api, bearer)
    assert (await api.get(f"/v1/appointments/{s.own['id']}", headers=s.me)).status == 200
    assert (await api.get(f"/v1/appointments/{s.own['id']}.ics", headers=s.me)).status == 200
    query = {"min_position": str(s.other["position"])}
    listed = await ok(await api.get("/v1/appointments", params=query, headers=s.me))
    assert [i["id"] for i in listed["items"]] == [s.own["id"]]
    mine = await ok(
        await api.get(f"/v1/customers/{s.mine}/appointments", params=query, headers=s.me)
    )
    assert [i["id"] for i in mine["items"]] == [s.own["id"]]
    moved = await act(api, s.me, s.own["id"], "reschedule", 1, starts_at=at(30), ends_at=at(31))
    await ok(moved)
    await ok(await act(api, s.me, s.own["id"], "cancel", 2, reason="on holiday"))


DENIED: dict[str, Callable[[Client, Scene], Any]] = {
    "GET /v1/appointments/{id}": lambda api, s: api.get(
        f"/v1/appointments/{s.other['id']}", headers=s.me
    ),
    "GET /v1/appointments/{id}.ics": lambda api, s: api.get(
        f"/v1/appointments/{s.other['id']}.ics", headers=s.me
    ),
    "GET /v1/appointments?customer_id": lambda api, s: api.get(
        "/v1/appointments", params={"customer_id": s.theirs}, headers=s.me
    ),
    "GET /v1/customers/{id}/appointments": lambda api, s: api.get(
        f"/v1/customers/{s.theirs}/appointments", headers=s.me
    ),
    "GET /v1/staff/{staff_id}/appointments.ics": lambda api, s: api.get(
        f"/v1/staff/{s.own['staff_id']}/appointments.ics", headers=s.me
    ),
    "POST /v1/appointments": lambda api, s: api.post(
        "/v1/appointments",
        json={"customer_id": s.theirs, "starts_at": at(24), "ends_at": at(25)},
        headers=s.me,
    ),
    "POST reschedule": lambda api, s: act(
        api, s.me, s.other["id"], "reschedule", 1, starts_at=at(30), ends_at=at(31)
    ),
    "POST cancel": lambda api, s: act(api, s.me, s.other["id"], "cancel", 1, reason="not mine"),
    "POST cancel, probing versions": lambda api, s: act(
        api, s.me, s.other["id"], "cancel", 99, reason="is it there?"
    ),
    "POST confirm (staff only)": lambda api, s: act(api, s.me, s.own["id"], "confirm", 1),
    "POST complete (staff only)": lambda api, s: act(api, s.me, s.own["id"], "complete", 1),
    "POST no-show (staff only)": lambda api, s: act(api, s.me, s.own["id"], "no-show", 1),
}


@pytest.mark.parametrize("endpoint", DENIED)
async def test_a_customer_token_gets_404_from(api: Client, bearer: Bearer, endpoint: str) -> None:
    """Another customer's appointment, or a staff-only action: 404, exactly as for an id that
    does not exist; and nothing changes."""
    s = await scene(api, bearer)
    await problem(await DENIED[endpoint](api, s), 404)
    for appointment in (s.own, s.other):
        shown = await ok(await api.get(f"/v1/appointments/{appointment['id']}", headers=bearer()))
        assert (shown["status"], shown["version"]) == ("requested", 1)
