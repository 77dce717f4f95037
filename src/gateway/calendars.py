"""Appointments as iCalendar (RFC 5545): one appointment, or a staff member's feed.

Each appointment is one VEVENT whose UID is derived from the appointment's id and whose
SEQUENCE is the number of times it was rescheduled, so a calendar that imported it once
updates the same event when it moves (and shows it cancelled when it is) instead of
adding a second one.

DTSTART and DTEND are written in UTC (`...Z`), not with a TZID. An appointment is a
single instance, not a recurring series, so a UTC instant is exact on either side of a
daylight-saving change and every client shows it in its user's own zone; a TZID would
oblige the file to carry a VTIMEZONE with the zone's rules, which the standard library
cannot produce and which is a classic source of wrong hours. The business time zone is
still used where people read times as text: the DESCRIPTION gives the local wall-clock
time with its zone, and X-WR-TIMEZONE hints the feed's zone to clients that use it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from domain.appointments import Appointment
from domain.timezones import local_text

__all__ = ["CONTENT_TYPE", "CalendarEntry", "render_calendar", "uid"]

CONTENT_TYPE = "text/calendar"
PRODID = "-//customers//appointments//EN"
_STATUS = {"requested": "TENTATIVE", "cancelled": "CANCELLED"}
"""iCalendar STATUS per appointment status; the others (confirmed, completed, no-show)
are CONFIRMED: the time was agreed."""
_MAX_OCTETS = 75


@dataclass(frozen=True)
class CalendarEntry:
    """What a VEVENT shows of an appointment (from the aggregate or a read-model row)."""

    id: UUID
    status: str
    starts_at: datetime
    ends_at: datetime
    reschedules: int
    updated_at: datetime
    staff_id: str | None = None
    service_id: str | None = None

    @classmethod
    def of(cls, appointment: Appointment) -> CalendarEntry:
        return cls(
            id=appointment.id,
            status=appointment.status,
            starts_at=appointment.starts_at,
            ends_at=appointment.ends_at,
            reschedules=appointment.reschedules,
            updated_at=appointment.modified_on,
            staff_id=appointment.staff_id,
            service_id=appointment.service_id,
        )


def uid(appointment_id: UUID) -> str:
    """The VEVENT's UID: the same for every version of the appointment."""
    return f"appointment-{appointment_id}@customers"


def render_calendar(entries: Iterable[CalendarEntry], *, name: str, time_zone: str) -> bytes:
    """A VCALENDAR with one VEVENT per entry, CRLF line ends, lines folded at 75 octets."""
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{PRODID}",
        "CALSCALE:GREGORIAN",
        f"X-WR-CALNAME:{_text(name)}",
        f"X-WR-TIMEZONE:{time_zone}",
    ]
    for entry in entries:
        lines += _event(entry, time_zone)
    lines.append("END:VCALENDAR")
    return "".join(f"{folded}\r\n" for line in lines for folded in _fold(line)).encode()


def _event(entry: CalendarEntry, time_zone: str) -> list[str]:
    summary = f"Appointment: {entry.service_id}" if entry.service_id else "Appointment"
    when = f"{local_text(entry.starts_at, time_zone)} to {local_text(entry.ends_at, time_zone)}"
    description = [f"{when} ({time_zone})", f"Status: {entry.status.replace('_', ' ')}"]
    if entry.staff_id:
        description.append(f"Staff: {entry.staff_id}")
    return [
        "BEGIN:VEVENT",
        f"UID:{uid(entry.id)}",
        f"DTSTAMP:{_utc(entry.updated_at)}",
        f"LAST-MODIFIED:{_utc(entry.updated_at)}",
        f"SEQUENCE:{entry.reschedules}",
        f"DTSTART:{_utc(entry.starts_at)}",
        f"DTEND:{_utc(entry.ends_at)}",
        f"STATUS:{_STATUS.get(entry.status, 'CONFIRMED')}",
        f"SUMMARY:{_text(summary)}",
        f"DESCRIPTION:{_text(chr(10).join(description))}",
        "END:VEVENT",
    ]


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _text(value: str) -> str:
    """A TEXT value escaped as RFC 5545 §3.3.11 says."""
    return (
        value.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
    )


def _fold(line: str) -> list[str]:
    """Lines of at most 75 octets; continuations start with a space (never splitting a
    UTF-8 character)."""
    parts: list[str] = []
    current, size = "", 0
    for char in line:
        width = len(char.encode())
        if size + width > _MAX_OCTETS:
            parts.append(current)
            current, size = " ", 1
        current += char
        size += width
    parts.append(current)
    return parts
