"""Member-list conditions on the history of terms: who was current on a past day, whose term
ended and was renewed or lapsed, who was current N years after joining.

They are the SQL twins of the dashboard's Python rules (engagement.dashboard: Span, status_at,
term_outcome), so that every dashboard figure links to exactly the members it counts; the tests
check the two against each other. The rules, as there:

* a term counts when it is paid and approved and was not cancelled on or before its first day;
* it is active from its start to its end and current (active or in grace) to its end plus its
  grace days; a cancellation cuts both at the day before it;
* a term that ended was renewed when another counted term starts after it and no later than the
  day after its grace period; it lapsed when its grace period is over without one. Cancelled and
  lifetime terms have no outcome.
Organisations' own terms are not members' terms and are not looked at.
"""
from __future__ import annotations

from datetime import date

from sqlalchemy import Date, Interval, and_, cast, case, exists, func, literal, not_, or_, select
from sqlalchemy.orm import aliased

from membership.members.models import Member
from membership.plans.models import Membership

HISTORY_STATUSES = ("active", "grace", "current", "former")
OUTCOMES = ("renewed", "lapsed", "due")


def _dialect() -> str:
    from membership.extensions import db
    return db.engine.dialect.name


def _plus_days(day, days):
    """day + days (both SQL expressions), as a date."""
    if _dialect() == "sqlite":
        return func.date(day, func.printf("+%d days", days), type_=Date)
    return day + days  # PostgreSQL: date + integer is a date


def _plus_years(day, years: int):
    """The same day `years` later, 29 February becoming 28 February in a common year (like
    core.time.add_months)."""
    if _dialect() == "sqlite":
        shifted = func.date(day, f"+{years} years", type_=Date)
        # from 29 February SQLite rolls on to 1 March when the year is a common one
        return case((and_(func.strftime("%m-%d", day) == "02-29", func.strftime("%m-%d", shifted) == "03-01"),
                     func.date(shifted, "-1 day", type_=Date)), else_=shifted)
    return cast(day + func.make_interval(literal(years), type_=Interval), Date)


def _counted(term, *, correlated: bool = True):
    """A term the dashboard counts: paid, approved, not cancelled on or before its first day (of
    the member row being filtered when `correlated`, else of any member)."""
    owner = term.member_id == Member.id if correlated else term.member_id.is_not(None)
    return and_(owner, term.starts_on.is_not(None),
                term.awaiting_payment.is_(False), term.awaiting_approval.is_(False),
                or_(term.cancelled_on.is_(None), term.cancelled_on > term.starts_on))


def _covers(term, day, *, with_grace: bool):
    end = _plus_days(term.ends_on, func.coalesce(term.grace_days, 0)) if with_grace else term.ends_on
    return and_(term.starts_on <= day, or_(term.ends_on.is_(None), day <= end),
                or_(term.cancelled_on.is_(None), term.cancelled_on > day))


def _members_with_a_term(day, *, with_grace: bool | None):
    """Members with a counted term covering `day` (with_grace None: begun by `day`). For a fixed
    day, an IN over one pass of the terms (PostgreSQL and SQLite both do it as a semi-join, 10-20
    times faster at 100,000 members than a correlated EXISTS per member); for a day that depends
    on the member row (N years after joining), a correlated EXISTS."""
    t = aliased(Membership)
    cover = t.starts_on <= day if with_grace is None else _covers(t, day, with_grace=with_grace)
    if isinstance(day, date):
        return Member.id.in_(select(t.member_id).where(_counted(t, correlated=False), cover))
    return exists().where(_counted(t), cover)


def status_on(status: str, day):
    """The member's status on `day` (a date or a date expression of the member row), rebuilt from
    the terms: "active", "grace", "current" (active or grace) or "former" (had begun, not current)."""
    active = _members_with_a_term(day, with_grace=False)
    current = _members_with_a_term(day, with_grace=True)
    if status == "active":
        return active
    if status == "current":
        return current
    if status == "grace":
        return and_(current, not_(active))
    return and_(_members_with_a_term(day, with_grace=None), not_(current))


def current_years_after_joining(years: int):
    """Current (active or in grace) on the day `years` years after the member's joined_on."""
    return and_(Member.joined_on.is_not(None), status_on("current", _plus_years(Member.joined_on, years)))


def term_outcome(outcome: str, ended_from: date | None, ended_to: date | None, today: date):
    """Had a term ending between the dates that was "renewed", "lapsed", or either ("due"), as of
    `today`."""
    t = aliased(Membership)
    nxt = aliased(Membership)
    renewed = exists().where(
        _counted(nxt, correlated=False), nxt.member_id == t.member_id, nxt.starts_on > t.starts_on,
        nxt.starts_on <= _plus_days(t.ends_on, func.coalesce(t.grace_days, 0) + 1))
    lapsed = and_(not_(renewed), _plus_days(t.ends_on, func.coalesce(t.grace_days, 0)) < today)
    conditions = [_counted(t, correlated=False), t.ends_on.is_not(None), t.cancelled_on.is_(None)]
    if ended_from is not None:
        conditions.append(t.ends_on >= ended_from)
    if ended_to is not None:
        conditions.append(t.ends_on <= ended_to)
    conditions.append({"renewed": renewed, "lapsed": lapsed, "due": or_(renewed, lapsed)}[outcome])
    return Member.id.in_(select(t.member_id).where(*conditions))
