"""Event moments as the association reads them (its time zone, the page's language)."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from membership.core import formats
from membership.core.time import as_utc, tz


def zone_of(zone) -> ZoneInfo:
    if zone is None:
        return tz()
    return ZoneInfo(zone) if isinstance(zone, str) else zone


def format_local(dt: datetime | None, zone=None, *, pattern: str = "EEEE d MMMM y, HH:mm") -> str:
    """A moment as the association reads it, e.g. "Tuesday 9 March 2027, 18:30"."""
    if dt is None:
        return ""
    return formats.datetime_pattern(as_utc(dt).astimezone(zone_of(zone)), pattern)
