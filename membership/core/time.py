"""Time is explicit: UTC is stored, the association's zone decides what "today" is.

Domain code never calls these to find out the time: views, the CLI and the scheduler
call them once and pass `now`/`today` down.
"""
from __future__ import annotations

import calendar
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from flask import current_app


def utcnow() -> datetime:
    """The current moment as an aware UTC datetime."""
    return datetime.now(timezone.utc)


def tz() -> ZoneInfo:
    return ZoneInfo(current_app.config["TIMEZONE"])


def as_utc(dt: datetime) -> datetime:
    """Aware UTC datetime; naive values (SQLite gives them back) are taken as UTC."""
    if dt.tzinfo is None:
        return dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def local_date(now: datetime, zone: ZoneInfo | str) -> date:
    """The calendar date in `zone` at the moment `now`."""
    if isinstance(zone, str):
        zone = ZoneInfo(zone)
    return as_utc(now).astimezone(zone).date()


def local_today(now: datetime | None = None) -> date:
    """Today in the association's time zone."""
    return local_date(now or utcnow(), tz())


def local_midnight_utc(day: date, zone: ZoneInfo | str) -> datetime:
    """The UTC instant at which `day` begins in `zone`."""
    if isinstance(zone, str):
        zone = ZoneInfo(zone)
    return datetime.combine(day, time.min, tzinfo=zone).astimezone(timezone.utc)


def to_local(dt: datetime) -> datetime:
    return as_utc(dt).astimezone(tz())


def add_months(day: date, months: int) -> date:
    """`day` moved by `months`, clamped to the end of a shorter month (31 Jan + 1 = 28/29 Feb)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def period_end(start: date, months: int) -> date:
    """Last day of a period of `months` that begins on `start`.

    One day before the same day `months` later; when that day does not exist in the target
    month (a term from 31 January, or from 29 February for a year), the period runs to the
    end of the target month, so nobody loses the last days of a short month.
    """
    index = start.month - 1 + months
    year, month = start.year + index // 12, index % 12 + 1
    last = calendar.monthrange(year, month)[1]
    if start.day > last:
        return date(year, month, last)
    return date(year, month, start.day) - timedelta(days=1)
