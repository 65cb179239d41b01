"""At the door: whether it is too early to check people in.

Checking someone in records that they came; doing it days before the event (a wrong event chosen
on a phone, a test tap) makes attendance wrong. Staff are warned and must confirm when the
event's day (in the association's zone) has not come yet and it starts more than EARLY_HOURS
from now (the evening before a morning event is not "days before")."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from membership.core.time import as_utc, local_date
from membership.events.models import Event


EARLY_HOURS = 12


@dataclass
class EarlyCheckIn:
    days: int             # whole local days until the event's day (1 = tomorrow)
    starts_local: datetime


def early_check_in(event: Event, *, now: datetime, zone) -> EarlyCheckIn | None:
    """None on or after the event's local day; else how many days early a check-in would be."""
    starts = as_utc(event.starts_at)
    days = (local_date(starts, zone) - local_date(now, zone)).days
    if days <= 0 or starts - as_utc(now) <= timedelta(hours=EARLY_HOURS):
        return None
    return EarlyCheckIn(days=days, starts_local=starts.astimezone(zone))
