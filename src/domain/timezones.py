"""The business's time zone: how the instants the service stores are shown to people.

Every time is stored and compared as an aware UTC instant; a wall-clock reading exists only
on the way out (calendar texts, notifications, the `*_local` fields of an appointment).
Converting an instant with `zoneinfo` gives the right offset on both sides of a daylight-
saving change, so "09:00 UTC" is 10:00 in Berlin in winter and 11:00 in summer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["DEFAULT_TIME_ZONE", "business_zone", "check_time_zone", "in_zone", "local_text"]

DEFAULT_TIME_ZONE = "UTC"


def business_zone(name: str) -> ZoneInfo:
    """The IANA zone `name` (such as Europe/Berlin); ValueError for an unknown one."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{name!r} is not an IANA time zone name such as Europe/Berlin or America/New_York"
        ) from None


def check_time_zone(name: str) -> str:
    """`name` if it is a known IANA zone (a validator for settings)."""
    business_zone(name)
    return name


def in_zone(moment: datetime, zone: ZoneInfo | str) -> datetime:
    """The same instant as a wall-clock time of `zone`, with that day's offset."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(business_zone(zone) if isinstance(zone, str) else zone)


def local_text(moment: datetime, zone: ZoneInfo | str) -> str:
    """How a person reads the instant in `zone`: `Sun 30 Mar 2025, 11:00 CEST`."""
    local = in_zone(moment, zone)
    return f"{local:%a} {local.day} {local:%b %Y, %H:%M} {local.tzname()}"
