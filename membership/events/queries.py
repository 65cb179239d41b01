"""Read-only queries for the events pages (staff lists, the check-in page, the member page).

Nothing here writes or decides a rule: seats, prices, validation and emails live in
membership.events.services. These only select rows to show, each in one or two indexed queries.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session, joinedload

from membership.events.models import SEATED_STATUSES, Event, EventFeedback, EventRegistration
from membership.members.models import Member
from membership.members.services import find_by_email

EVENT_TABS = ("upcoming", "past", "drafts", "cancelled")


def events_statement(tab: str, *, q: str = "", now: datetime) -> Select:
    """Events of one tab of the staff list: upcoming (published, not ended: soonest first), past
    (finished, or published and ended: latest first), drafts, cancelled; narrowed by title."""
    stmt = select(Event)
    if tab == "past":
        stmt = stmt.where(or_(Event.status == "finished",
                              and_(Event.status == "published", Event.ends_at <= now)))
        stmt = stmt.order_by(Event.starts_at.desc(), Event.id.desc())
    elif tab == "drafts":
        stmt = stmt.where(Event.status == "draft").order_by(Event.starts_at, Event.id)
    elif tab == "cancelled":
        stmt = stmt.where(Event.status == "cancelled").order_by(Event.starts_at.desc(), Event.id.desc())
    else:
        stmt = stmt.where(Event.status == "published", Event.ends_at > now).order_by(Event.starts_at, Event.id)
    if q:
        stmt = stmt.where(Event.title.icontains(q, autoescape=True))
    return stmt


def tab_counts(session: Session, *, q: str = "", now: datetime) -> dict[str, int]:
    return {tab: session.scalar(select(func.count()).select_from(events_statement(tab, q=q, now=now)
                                                                  .order_by(None).subquery()))
            for tab in EVENT_TABS}


def waitlist_counts(session: Session, event_ids: list[int]) -> dict[int, int]:
    if not event_ids:
        return {}
    return dict(session.execute(
        select(EventRegistration.event_id, func.count())
        .where(EventRegistration.event_id.in_(event_ids), EventRegistration.status == "waitlisted")
        .group_by(EventRegistration.event_id)).all())


def registrations_query(event: Event):
    """Everyone who registered (waitlisted ones apart), in the order they registered (a SELECT,
    for a page of them)."""
    return (select(EventRegistration).where(EventRegistration.event_id == event.id,
                                            EventRegistration.status != "waitlisted")
            .options(joinedload(EventRegistration.member))
            .order_by(EventRegistration.registered_at, EventRegistration.id))


def registrations(session: Session, event: Event) -> list[EventRegistration]:
    """Everyone who registered (waitlisted ones apart), in the order they registered."""
    return list(session.scalars(registrations_query(event)))


def waitlist(session: Session, event: Event) -> list[EventRegistration]:
    """The waitlist in the order seats are offered (waitlisted_at, then id: services.promote_next)."""
    return list(session.scalars(
        select(EventRegistration).where(EventRegistration.event_id == event.id,
                                        EventRegistration.status == "waitlisted")
        .options(joinedload(EventRegistration.member))
        .order_by(EventRegistration.waitlisted_at, EventRegistration.id)))


def _name_matches(q: str):
    like = {"autoescape": True}
    return or_(EventRegistration.guest_name.icontains(q, **like),
               EventRegistration.guest_email.icontains(q, **like),
               Member.first_name.icontains(q, **like), Member.last_name.icontains(q, **like),
               (Member.first_name + " " + Member.last_name).icontains(q, **like),
               Member.member_number.icontains(q, **like))


def attendees(session: Session, event: Event, *, q: str = "") -> list[EventRegistration]:
    """People holding a seat (confirmed, attended, no-show), for the check-in page: by name."""
    stmt = (select(EventRegistration).outerjoin(Member, EventRegistration.member_id == Member.id)
            .where(EventRegistration.event_id == event.id, EventRegistration.status.in_(SEATED_STATUSES))
            .options(joinedload(EventRegistration.member)))
    if q:
        stmt = stmt.where(_name_matches(q))
    rows = list(session.scalars(stmt))
    rows.sort(key=lambda r: (r.name.casefold(), r.id))
    return rows


@dataclass
class CheckInCounts:
    checked_in: int
    expected: int


def check_in_counts(session: Session, event: Event) -> CheckInCounts:
    """Checked in so far, out of everyone holding a seat."""
    expected, checked = session.execute(
        select(func.count(), func.count(EventRegistration.checked_in_at))
        .where(EventRegistration.event_id == event.id, EventRegistration.status.in_(SEATED_STATUSES))).one()
    return CheckInCounts(checked_in=int(checked or 0), expected=int(expected or 0))


def feedback_comments(session: Session, event: Event, *, limit: int = 200) -> list[EventFeedback]:
    """Feedback with a comment, newest first."""
    return list(session.scalars(
        select(EventFeedback).where(EventFeedback.event_id == event.id, EventFeedback.comment.is_not(None),
                                    EventFeedback.comment != "")
        .order_by(EventFeedback.submitted_at.desc(), EventFeedback.id.desc()).limit(limit)))


def member_registrations(session: Session, member_id: int, *, limit: int = 10) -> list[EventRegistration]:
    """A member's registrations, latest event first (for the staff member page)."""
    return list(session.scalars(
        select(EventRegistration).where(EventRegistration.member_id == member_id)
        .join(Event, EventRegistration.event_id == Event.id)
        .options(joinedload(EventRegistration.event))
        .order_by(Event.starts_at.desc(), EventRegistration.id.desc()).limit(limit)))


def find_member(session: Session, lookup: str) -> Member | None:
    """A member by number (M000123, case-insensitive) or email; None when nobody matches."""
    lookup = (lookup or "").strip()
    if not lookup:
        return None
    if "@" in lookup:
        return find_by_email(session, lookup)
    return session.scalar(select(Member).where(func.upper(Member.member_number) == lookup.upper()).limit(1))


NAME_MATCHES = 10


def find_members(session: Session, lookup: str, *, limit: int = NAME_MATCHES) -> list[Member]:
    """Who staff mean by `lookup`: the member with this number or email, else members whose name
    (or phone, or part of the email) matches, by name; at most `limit` + 1, so a caller can say
    there are more. Erased members are never found."""
    member = find_member(session, lookup)
    if member is not None:
        return [] if member.erased_at is not None else [member]
    lookup = (lookup or "").strip()
    if len(lookup) < 2:
        return []
    from membership.members.queries import MemberFilter, member_query
    stmt = (member_query(MemberFilter(q=lookup)).order_by(None)
            .order_by(Member.first_name, Member.last_name, Member.member_number).limit(limit + 1))
    return list(session.scalars(stmt))


def amounts_due(session: Session, registrations: list[EventRegistration]) -> dict[int, int]:
    """{registration id: price still to pay} for those that owe something (events.services.amount_due
    for many at once: one grouped query)."""
    from membership.plans.models import Payment
    priced = [r for r in registrations if r.price_minor and r.status != "cancelled"]
    if not priced:
        return {}
    paid = dict(session.execute(
        select(Payment.registration_id, func.sum(Payment.amount_minor))
        .where(Payment.registration_id.in_([r.id for r in priced])).group_by(Payment.registration_id)).all())
    due = {r.id: r.price_minor - int(paid.get(r.id) or 0) for r in priced}
    return {k: v for k, v in due.items() if v > 0}


@dataclass
class PeriodTotals:
    """The period report's bottom line, from its rows (rates over the summed counts)."""
    events: int
    registrations: int
    confirmed: int
    waitlisted: int
    cancelled: int
    attended: int
    no_shows: int
    attendance_rate: float | None
    no_show_rate: float | None
    revenue_minor: int
    member_share: float | None
    feedback_count: int
    feedback_average: float | None
    recommend_share: float | None


def summarise(rows) -> PeriodTotals:
    """Totals of services.period_report rows: counts add up; the member share is weighted by seats,
    the feedback figures by the number of answers."""
    def total(name):
        return sum(getattr(r, name) for r in rows)

    attended, no_shows = total("attended"), total("no_shows")
    shown = attended + no_shows
    seated = [r for r in rows if r.member_share is not None and r.confirmed]
    seats = sum(r.confirmed for r in seated)
    rated = [r for r in rows if r.feedback_count and r.feedback_average is not None]
    answers = sum(r.feedback_count for r in rated)
    recommended = [r for r in rows if r.feedback_count and r.recommend_share is not None]
    recommend_answers = sum(r.feedback_count for r in recommended)
    return PeriodTotals(
        events=len(rows), registrations=total("registrations"), confirmed=total("confirmed"),
        waitlisted=total("waitlisted"), cancelled=total("cancelled"), attended=attended, no_shows=no_shows,
        attendance_rate=attended / shown if shown else None, no_show_rate=no_shows / shown if shown else None,
        revenue_minor=total("revenue_minor"),
        member_share=sum(r.member_share * r.confirmed for r in seated) / seats if seats else None,
        feedback_count=total("feedback_count"),
        feedback_average=sum(r.feedback_average * r.feedback_count for r in rated) / answers if answers else None,
        recommend_share=(sum(r.recommend_share * r.feedback_count for r in recommended) / recommend_answers
                         if recommend_answers else None))
