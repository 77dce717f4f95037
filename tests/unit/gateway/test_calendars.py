"""iCalendar files of appointments: RFC 5545 shape, stable UIDs, SEQUENCE, local texts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from gateway.calendars import CalendarEntry, render_calendar, uid

APPOINTMENT = UUID("5b0c6f7e-2a1d-4c3b-9e8f-7a6b5c4d3e2f")
SPRING = datetime(2025, 3, 30, 9, 0, tzinfo=UTC)
"""The morning Europe moved its clocks forward."""


def entry(**fields: object) -> CalendarEntry:
    values: dict[str, object] = {
        "id": APPOINTMENT,
        "status": "confirmed",
        "starts_at": SPRING,
        "ends_at": SPRING + timedelta(hours=1),
        "reschedules": 0,
        "updated_at": SPRING - timedelta(days=1),
        "staff_id": "pat",
        "service_id": "repair, screen; fast",
    }
    return CalendarEntry(**{**values, **fields})  # type: ignore[arg-type]


def unfolded(body: bytes) -> list[str]:
    text = body.decode()
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    return text.replace("\r\n ", "").split("\r\n")[:-1]


def test_one_event_with_utc_times_a_stable_uid_and_the_sequence() -> None:
    """DTSTART/DTEND in UTC, UID from the id, SEQUENCE = reschedules, VEVENT in VCALENDAR."""
    lines = unfolded(render_calendar([entry(reschedules=2)], name="A", time_zone="UTC"))
    assert lines[0] == "BEGIN:VCALENDAR" and lines[-1] == "END:VCALENDAR"
    assert "VERSION:2.0" in lines and any(line.startswith("PRODID:") for line in lines)
    assert f"UID:{uid(APPOINTMENT)}" in lines
    assert "SEQUENCE:2" in lines
    assert "DTSTART:20250330T090000Z" in lines and "DTEND:20250330T100000Z" in lines
    assert "DTSTAMP:20250329T090000Z" in lines
    assert "STATUS:CONFIRMED" in lines


def test_a_moved_appointment_keeps_its_uid_and_raises_its_sequence() -> None:
    """What lets a calendar update the event instead of adding a second one."""
    before = unfolded(render_calendar([entry()], name="A", time_zone="UTC"))
    moved = entry(
        starts_at=SPRING + timedelta(days=1),
        ends_at=SPRING + timedelta(days=1, hours=1),
        reschedules=1,
    )
    after = unfolded(render_calendar([moved], name="A", time_zone="UTC"))
    uids = [[line for line in lines if line.startswith("UID:")] for lines in (before, after)]
    assert uids[0] == uids[1]
    assert "SEQUENCE:0" in before and "SEQUENCE:1" in after


def test_statuses_map_to_icalendar_statuses() -> None:
    """A request is tentative, a cancellation cancelled."""
    for status, expected in (("requested", "TENTATIVE"), ("cancelled", "CANCELLED")):
        lines = unfolded(render_calendar([entry(status=status)], name="A", time_zone="UTC"))
        assert f"STATUS:{expected}" in lines


def test_text_is_escaped_and_long_lines_are_folded_at_75_octets() -> None:
    """Commas and semicolons are escaped; no physical line is longer than 75 octets."""
    body = render_calendar([entry(staff_id="Zoë " * 30)], name="Ünïcode, ça; va", time_zone="UTC")
    for line in body.decode().split("\r\n"):
        assert len(line.encode()) <= 75
    lines = unfolded(body)
    assert "X-WR-CALNAME:Ünïcode\\, ça\\; va" in lines
    assert any("repair\\, screen\\; fast" in line for line in lines)


def test_the_description_shows_the_business_local_time_across_daylight_saving() -> None:
    """09:00 UTC reads 11:00 CEST in Berlin on the day the clocks moved (10:00 CET the day
    before); the instant itself stays in UTC."""
    after = unfolded(render_calendar([entry()], name="A", time_zone="Europe/Berlin"))
    before = unfolded(
        render_calendar(
            [entry(starts_at=SPRING - timedelta(days=1), ends_at=SPRING - timedelta(hours=23))],
            name="A",
            time_zone="Europe/Berlin",
        )
    )
    [described_after] = [line for line in after if line.startswith("DESCRIPTION:")]
    [described_before] = [line for line in before if line.startswith("DESCRIPTION:")]
    assert "Sun 30 Mar 2025\\, 11:00 CEST" in described_after
    assert "Sat 29 Mar 2025\\, 10:00 CET" in described_before
    assert "X-WR-TIMEZONE:Europe/Berlin" in after
