"""Read-only queries for the public events pages and the members' "My events": listings, a member's
own registrations and a waitlist position. Nothing here changes a row; the rules live in services."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session, joinedload

from membership.events.models import LIVE_STATUSES, Event, EventRegistration

# Shown in the public lists: a cancelled event stays listed (with a badge), so people who planned
# to come learn about it; drafts never show.
LISTED_STATUSES = ("published", "cancelled")
PAST_STATUSES = ("published", "finished")
FEED_LIMIT = 500


def upcoming(now: datetime) -> Select:
    """Published (and cancelled) events that have not ended, soonest first."""
    return (select(Event).where(Event.status.in_(LISTED_STATUSES), Event.ends_at > now)
            .order_by(Event.starts_at, Event.id))


def past(now: datetime) -> Select:
    """Events that took place, the most recent first."""
    return (select(Event).where(or_(Event.status == "finished",
                                    and_(Event.status.in_(PAST_STATUSES), Event.ends_at <= now)))
            .order_by(Event.starts_at.desc(), Event.id.desc()))


def feed_events(session: Session, now: datetime) -> list[Event]:
    """Every upcoming published event, for the calendar feed."""
    return list(session.scalars(select(Event).where(Event.status == "published", Event.ends_at > now)
                                .order_by(Event.starts_at, Event.id).limit(FEED_LIMIT)))


def visible_event(session: Session, event_id: int) -> Event | None:
    """The event as the public may see it: anything but a draft."""
    event = session.get(Event, event_id)
    if event is None or event.status == "draft":
        return None
    return event


def live_registration(session: Session, event: Event, member) -> EventRegistration | None:
    """The member's live registration for the event (at most one, by the unique index)."""
    if member is None:
        return None
    return session.scalar(select(EventRegistration)
                          .where(EventRegistration.event_id == event.id,
                                 EventRegistration.member_id == member.id,
                                 EventRegistration.status.in_(LIVE_STATUSES))
                          .order_by(EventRegistration.id.desc()).limit(1))


def owned_registration(session: Session, member, registration_id: int) -> EventRegistration | None:
    """The registration if it is the member's own; None otherwise (someone else's is "not found")."""
    if member is None:
        return None
    registration = session.get(EventRegistration, registration_id)
    if registration is None or registration.member_id != member.id:
        return None
    return registration


def waitlist_position(session: Session, registration: EventRegistration) -> int | None:
    """1 for the first waitlisted person, in the order services promote (waitlisted_at, then id)."""
    if registration.status != "waitlisted":
        return None
    r = EventRegistration
    ahead = session.scalar(select(func.count()).select_from(r).where(
        r.event_id == registration.event_id, r.status == "waitlisted",
        or_(r.waitlisted_at < registration.waitlisted_at,
            and_(r.waitlisted_at == registration.waitlisted_at, r.id < registration.id))))
    return (ahead or 0) + 1


def my_registrations(session: Session, member, now: datetime) -> tuple[list[EventRegistration],
                                                                         list[EventRegistration]]:
    """The member's registrations: (upcoming, past). Upcoming: live ones for events that have not
    ended, and those of cancelled events (so the member sees the cancellation); past: the events
    that ended, where the member held a seat or was on the waitlist."""
    rows = list(session.scalars(
        select(EventRegistration).join(Event)
        .where(EventRegistration.member_id == member.id, Event.status != "draft")
        .options(joinedload(EventRegistration.event), joinedload(EventRegistration.feedback))
        .order_by(Event.starts_at, EventRegistration.id)))
    upcoming_rows, past_rows = [], []
    for r in rows:
        ended = r.event.status == "finished" or r.event.ends_at <= now
        if not ended and (r.status in LIVE_STATUSES or r.cancelled_by == "event"):
            upcoming_rows.append(r)
        elif ended and r.status in ("confirmed", "attended", "no_show"):
            past_rows.append(r)
    past_rows.reverse()
    return upcoming_rows, past_rows
