"""iCalendar files (RFC 5545) for events: one event's file (attached to confirmations, offered on
the event page) and the feed of upcoming events. Built with the `icalendar` library; times are
written in UTC, so calendar programs need no time-zone definitions."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable, Iterable
from urllib.parse import urlsplit

from flask import current_app
from icalendar import Calendar, Event as VEvent

from membership.core.time import as_utc
from membership.events.models import Event

PRODID = "-//Samiti//Events//EN"


def _domain() -> str:
    base = current_app.config.get("BASE_URL") or "http://127.0.0.1:5000"
    return urlsplit(base).hostname or "samiti.localhost"


def event_uid(event: Event) -> str:
    """Stable per event (the calendar program updates its copy instead of adding another)."""
    return f"event-{event.id}@{_domain()}"


def _calendar(name: str | None = None) -> Calendar:
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    if name:
        cal.add("x-wr-calname", name)
    return cal


def _vevent(event: Event, url: str, stamp: datetime) -> VEvent:
    item = VEvent()
    item.add("uid", event_uid(event))
    item.add("dtstamp", stamp)
    item.add("dtstart", as_utc(event.starts_at))
    item.add("dtend", as_utc(event.ends_at))
    item.add("summary", event.title)
    description = (event.description or "").strip()
    if event.online_url:
        description = (description + "\n\n" if description else "") + f"Online: {event.online_url}"
    description = (description + "\n\n" if description else "") + url
    item.add("description", description)
    location = event.venue or event.online_url
    if location:
        item.add("location", location)
    item.add("url", url)
    item.add("status", "CANCELLED" if event.status == "cancelled" else "CONFIRMED")
    # Each edit bumps updated_at; its epoch in minutes since creation only grows, so calendar
    # programs take an edited (or cancelled) event as the newer version.
    created, updated = as_utc(event.created_at), as_utc(event.updated_at or event.created_at)
    item.add("sequence", max(0, int((updated - created).total_seconds() // 60)))
    item.add("last-modified", updated)
    item.add("created", created)
    return item


def event_ics(event: Event, *, url: str, now: datetime | None = None) -> bytes:
    """A VCALENDAR with one VEVENT for `event`; `url` is the event page's absolute address."""
    cal = _calendar()
    cal.add_component(_vevent(event, url, as_utc(now or event.updated_at or datetime.now(timezone.utc))))
    return cal.to_ical()


def feed_ics(events: Iterable[Event], *, url_for_event: Callable[[Event], str],
             now: datetime | None = None) -> bytes:
    """The feed of `events` (the caller picks them: published, upcoming), named after the association."""
    cal = _calendar(current_app.config.get("ASSOCIATION_NAME") or "Samiti")
    stamp = as_utc(now or datetime.now(timezone.utc))
    for event in events:
        cal.add_component(_vevent(event, url_for_event(event), stamp))
    return cal.to_ical()
