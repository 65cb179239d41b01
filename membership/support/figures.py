"""The figures customer-service teams track, computed as of an explicit `now`.

- median first-response time: from a request's creation to the first staff reply, over the
  requests whose first reply fell in the window (the last `window_days` days up to `now`);
- median time to resolution: from creation to the (last) resolution, over the requests resolved
  in the window and still resolved;
- first-reply resolution: the share of those resolved requests that had exactly one staff reply;
- open requests by age: every request not yet resolved (waiting for staff or for the member),
  by the time since it was opened: under 1 day, 1 to 3 days, 3 to 7 days, 7 days or more.
  Each bucket includes its lower bound ("1 to 3 days" is 24 h <= age < 72 h).

Times are calendar time (no business hours). Requests closed because the member's account was
closed count in the figures of the replies and resolutions they had, never as open.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from membership.core.time import as_utc
from membership.support.models import UNRESOLVED, HelpRequest

WINDOW_DAYS = 90
# (key, label, lower bound, upper bound) of the age buckets; bounds in days, lower inclusive.
AGE_BUCKETS = (("lt1", "Under 1 day", 0, 1), ("1to3", "1 to 3 days", 1, 3), ("3to7", "3 to 7 days", 3, 7),
               ("gt7", "7 days or more", 7, None))
AGE_KEYS = tuple(b[0] for b in AGE_BUCKETS)


@dataclass
class HelpFigures:
    now: datetime
    window_days: int
    first_responses: int = 0
    median_first_response: timedelta | None = None
    resolved: int = 0
    median_resolution: timedelta | None = None
    resolved_first_reply: int = 0
    open_by_age: dict[str, int] = field(default_factory=dict)
    waiting_for_staff: int = 0

    @property
    def first_reply_share(self) -> float | None:
        """Resolved with exactly one staff reply / resolved (None when nothing was resolved)."""
        return self.resolved_first_reply / self.resolved if self.resolved else None

    @property
    def open_total(self) -> int:
        return sum(self.open_by_age.values())


def _median(durations: list[timedelta]) -> timedelta | None:
    if not durations:
        return None
    return timedelta(seconds=statistics.median(d.total_seconds() for d in durations))


def age_bounds(key: str, now: datetime) -> tuple[datetime | None, datetime | None]:
    """(created after or at, created before) of the requests in age bucket `key` as of `now`:
    an age of at least `low` days means created at or before now - low."""
    for k, _label, low, high in AGE_BUCKETS:
        if k == key:
            newest = now - timedelta(days=low)  # created at or before this
            oldest = now - timedelta(days=high) if high is not None else None  # created after this
            return oldest, newest
    raise ValueError(f"unknown age bucket {key!r}")


def age_condition(key: str, now: datetime):
    """SQL condition on HelpRequest.created_at for age bucket `key` (lower bound inclusive)."""
    oldest, newest = age_bounds(key, now)
    conditions = [HelpRequest.created_at <= newest]
    if oldest is not None:
        conditions.append(HelpRequest.created_at > oldest)
    return and_(*conditions)


def help_figures(session: Session, *, now: datetime, window_days: int = WINDOW_DAYS) -> HelpFigures:
    """The staff home's help-request figures as of `now` (three small aggregate queries)."""
    now = as_utc(now)
    since = now - timedelta(days=window_days)
    figures = HelpFigures(now=now, window_days=window_days)

    firsts = session.execute(
        select(HelpRequest.created_at, HelpRequest.first_response_at)
        .where(HelpRequest.first_response_at > since, HelpRequest.first_response_at <= now)).all()
    figures.first_responses = len(firsts)
    figures.median_first_response = _median([as_utc(f) - as_utc(c) for c, f in firsts])

    resolved = session.execute(
        select(HelpRequest.created_at, HelpRequest.resolved_at, HelpRequest.staff_reply_count)
        .where(HelpRequest.status == "resolved", HelpRequest.resolved_at > since,
               HelpRequest.resolved_at <= now)).all()
    figures.resolved = len(resolved)
    figures.median_resolution = _median([as_utc(r) - as_utc(c) for c, r, _n in resolved])
    figures.resolved_first_reply = sum(1 for _c, _r, n in resolved if n == 1)

    columns = [func.coalesce(func.sum(case((age_condition(key, now), 1), else_=0)), 0) for key in AGE_KEYS]
    columns.append(func.coalesce(func.sum(case((HelpRequest.status == "open", 1), else_=0)), 0))
    row = session.execute(select(*columns).where(HelpRequest.status.in_(UNRESOLVED),
                                                 HelpRequest.created_at <= now)).one()
    figures.open_by_age = {key: int(n) for key, n in zip(AGE_KEYS, row[:-1])}
    figures.waiting_for_staff = int(row[-1])
    return figures


def format_duration(value: timedelta | None) -> str:
    """A duration the way people say it: "45 min", "3 h 20 min", "2 days 4 h"."""
    if value is None:
        return "–"
    minutes = int(value.total_seconds() // 60)
    if minutes < 1:
        return "under 1 min"
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    unit = "day" if days == 1 else "days"
    return f"{days} {unit} {hours} h" if hours else f"{days} {unit}"
