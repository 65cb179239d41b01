"""Features of many members as of one day, computed in SQL in batches: one query per feature
family (activities, terms, emails) for a batch of member ids, never one query per member.

No leakage: only what was known on `day` is read - activities that occurred before the end of the
local day, terms that had started (or been paid for) by then with their state of that day
(payments after it, cancellations after it and staff overrides are ignored), emails sent before
the end of the day. A back-test as of a past day therefore sees what the job would have seen.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Iterable, Mapping

from sqlalchemy import DateTime, and_, bindparam, case, func, literal, select
from sqlalchemy.orm import Session

from membership.core.models import Activity
from membership.core.time import local_midnight_utc
from membership.notifications.models import OutboxMessage
from membership.plans.models import Membership, Plan
from membership.plans.status import CURRENT, governing_term, status_on

LN2 = 0.6931471805599453
# Kinds that are the system talking, not the member: they do not count as activity.
PASSIVE_KINDS = frozenset({"status_changed", "lapsed", "cancelled", "event_no_show", "event_cancelled"})
LAST_EMAILS = 6


@dataclass(frozen=True)
class TermSnapshot:
    """A term as it stood on the scoring day (quacks like plans.status.TermLike)."""
    id: int
    member_id: int
    plan_code: str
    starts_on: date
    ends_on: date | None
    grace_days: int
    paid_on: date | None
    awaiting_payment: bool
    awaiting_approval: bool
    cancelled_on: date | None
    override_status: None = None
    override_until: None = None


@dataclass
class MemberFeatures:
    member_id: int
    features: dict[str, Any]              # raw, JSON-able (stored on MemberScore.features)
    decayed: dict[str, float] = field(default_factory=dict)  # per kind: sum of 0.5 ** (age / half-life)
    last_activity_at: datetime | None = None
    term: TermSnapshot | None = None      # the current term (None: not a current member, or lifetime)
    renewed: bool = False                 # a later term was already known on the day


def day_end(day: date, zone) -> datetime:
    """The first moment after `day` (local midnight, in UTC): what is known on `day` is before it."""
    return local_midnight_utc(day + timedelta(days=1), zone)


def _age_days(session: Session, end: datetime):
    """SQL for the age in days of an activity at `end`."""
    col = Activity.__table__.c.occurred_at
    if session.get_bind().dialect.name == "sqlite":
        stamp = end.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
        return func.julianday(literal(stamp)) - func.julianday(col)
    return func.extract("epoch", bindparam("age_end", end, type_=DateTime(timezone=True)) - col) / 86400.0


def activity_family(session: Session, ids: list[int], *, end: datetime, half_life_days: float):
    """Per member and kind: decayed sum, counts in 0-90, 90-180 and 0-365 days, youngest age and
    latest moment - one grouped query. The age is computed once per activity (a materialised CTE:
    otherwise the database evaluates the date arithmetic in each of the six aggregates)."""
    a = Activity.__table__
    # amounts: the amount of payments (the app's and imported ones), read from the JSON detail of
    # those rows only
    amount = case((a.c.kind == "payment", Activity.detail["amount_minor"].as_float()), else_=None)
    rows = (select(a.c.member_id, a.c.kind, Activity.occurred_at.label("occurred_at"),
                   _age_days(session, end).label("age"), amount.label("amount"))
            .where(a.c.member_id.in_(ids), Activity.occurred_at < end)
            .cte("known_activity").prefix_with("MATERIALIZED"))
    age = rows.c.age
    stmt = (select(rows.c.member_id, rows.c.kind,
                   func.sum(func.exp(-LN2 * age / float(half_life_days))),
                   func.sum(case((age < 90, 1), else_=0)),
                   func.sum(case((and_(age >= 90, age < 180), 1), else_=0)),
                   func.sum(case((age < 365, 1), else_=0)),
                   func.min(age),
                   func.max(rows.c.occurred_at),
                   func.sum(case((age < 30, 1), else_=0)),
                   func.sum(case((and_(age >= 365, age < 730), 1), else_=0)),
                   func.count(),
                   func.max(age),
                   func.sum(case((age < 365, rows.c.amount), else_=0)),
                   func.sum(case((and_(age >= 365, age < 730), rows.c.amount), else_=0)),
                   func.sum(rows.c.amount))
            .group_by(rows.c.member_id, rows.c.kind))
    return session.execute(stmt).all()


def email_family(session: Session, ids: list[int], *, end: datetime) -> dict[int, tuple[int, int]]:
    """Per member: (emails sent among the last 6 before `end`, how many of them were opened -
    opens recorded since the earliest of those emails, at most one per email)."""
    o = OutboxMessage.__table__
    a = Activity.__table__
    rn = func.row_number().over(partition_by=o.c.member_id, order_by=(o.c.sent_at.desc(), o.c.id.desc())).label("rn")
    inner = (select(o.c.member_id, OutboxMessage.sent_at.label("sent_at"), rn)
             .where(o.c.member_id.in_(ids), o.c.status == "sent", OutboxMessage.sent_at < end).subquery())
    last = (select(inner.c.member_id, func.count().label("sent"), func.min(inner.c.sent_at).label("first"))
            .where(inner.c.rn <= LAST_EMAILS).group_by(inner.c.member_id).subquery())
    stmt = (select(last.c.member_id, last.c.sent, func.count(a.c.id))
            .select_from(last.outerjoin(a, and_(a.c.member_id == last.c.member_id, a.c.kind == "email_opened",
                                                a.c.occurred_at >= last.c.first, Activity.occurred_at < end)))
            .group_by(last.c.member_id, last.c.sent))
    return {mid: (int(sent), min(int(opened), int(sent))) for mid, sent, opened in session.execute(stmt)}


def term_family(session: Session, ids: list[int]) -> dict[int, list[Any]]:
    m, p = Membership.__table__, Plan.__table__
    stmt = (select(m.c.id, m.c.member_id, p.c.code, m.c.starts_on, m.c.ends_on, m.c.grace_days, m.c.paid_on,
                   m.c.awaiting_payment, m.c.awaiting_approval, m.c.cancelled_on)
            .join(p, p.c.id == m.c.plan_id).where(m.c.member_id.in_(ids)))
    out: dict[int, list[Any]] = {}
    for row in session.execute(stmt):
        out.setdefault(row.member_id, []).append(row)
    return out


def known_terms(rows: Iterable[Any], day: date) -> list[TermSnapshot]:
    """The terms known on `day`, as they stood then: paid by then, or (unpaid) started by then.
    A term paid after `day` did not exist yet for the scorer (a late renewal); a cancellation
    after `day` had not happened; overrides are staff's present-day view and are ignored."""
    out = []
    for r in rows:
        if r.paid_on is not None:
            if r.paid_on > day:
                continue
            pending = bool(r.awaiting_approval)
        else:
            if r.starts_on > day:
                continue
            pending = bool(r.awaiting_payment or r.awaiting_approval)
        cancelled = r.cancelled_on if r.cancelled_on is not None and r.cancelled_on <= day else None
        out.append(TermSnapshot(r.id, r.member_id, r.code, r.starts_on, r.ends_on, r.grace_days or 0, r.paid_on,
                                pending, False, cancelled))
    out.sort(key=lambda t: (t.starts_on, t.id))
    return out


def term_history(terms: list[TermSnapshot], day: date) -> tuple[int, int]:
    """(previous lapses, late renewals) among paid terms that had started by `day`: a lapse is a
    gap after the grace period before the next term; a late renewal is a next term paid after the
    previous one ended (but within grace)."""
    paid = [t for t in terms if not t.awaiting_payment and t.cancelled_on is None and t.starts_on <= day]
    lapses = late = 0
    for prev, t in zip(paid, paid[1:]):
        if prev.ends_on is None:
            continue
        if t.starts_on > prev.ends_on + timedelta(days=prev.grace_days + 1):
            lapses += 1
        elif t.paid_on is not None and t.paid_on > prev.ends_on:
            late += 1
    return lapses, late


def compute_features(session: Session, members: Iterable[tuple[int, date | None]], *, day: date, zone,
                     half_life_days: float, target_terms: Mapping[int, int] | None = None
                     ) -> dict[int, MemberFeatures]:
    """Features of `members` [(member_id, joined_on)] as of the end of local `day`. With
    `target_terms` {member_id: term_id}, that term is the one scored (back-tests, training);
    otherwise the term governing `day` if it is current and has an end."""
    members = list(members)
    ids = [mid for mid, _ in members]
    if not ids:
        return {}
    end = day_end(day, zone)
    acts: dict[int, list[Any]] = {}
    for row in activity_family(session, ids, end=end, half_life_days=half_life_days):
        acts.setdefault(row[0], []).append(row)
    emails = email_family(session, ids, end=end)
    terms = term_family(session, ids)
    out: dict[int, MemberFeatures] = {}
    for mid, joined_on in members:
        decayed: dict[str, float] = {}
        a90 = prev90 = a365 = events365 = clicks365 = 0
        a30 = prev365 = total = payments = 0
        amount365 = amount_prev365 = amount_total = 0.0
        first_age: float | None = None
        last_age: float | None = None
        event_age: float | None = None
        last_at: datetime | None = None
        for (_, kind, dec, n90, n90_180, n365, min_age, max_at, n30, n365_730, n_all, max_age, amt365,
             amt_prev, amt_all) in acts.get(mid, ()):
            decayed[kind] = float(dec or 0.0)
            if kind == "payment":
                payments = int(n_all)
                amount365, amount_prev365, amount_total = (float(amt365 or 0) / 100, float(amt_prev or 0) / 100,
                                                           float(amt_all or 0) / 100)
            if kind == "event_attended":
                events365 = int(n365)
                event_age = float(min_age)
            elif kind == "email_clicked":
                clicks365 = int(n365)
            if kind in PASSIVE_KINDS:
                continue
            a90 += int(n90)
            prev90 += int(n90_180)
            a365 += int(n365)
            a30 += int(n30)
            prev365 += int(n365_730)
            total += int(n_all)
            if first_age is None or max_age > first_age:
                first_age = float(max_age)
            if last_age is None or min_age < last_age:
                last_age = float(min_age)
            if max_at is not None and (last_at is None or max_at > last_at):
                last_at = max_at
        sent, opened = emails.get(mid, (0, 0))
        snapshots = known_terms(terms.get(mid, ()), day)
        current = None
        if target_terms is not None and mid in target_terms:
            current = next((t for t in snapshots if t.id == target_terms[mid]), None)
        if current is None:
            gov = governing_term(snapshots, day)
            if gov is not None and gov.ends_on is not None and status_on(gov, day) in CURRENT:
                current = gov
        renewed = current is not None and any(
            t.starts_on > current.starts_on and t.cancelled_on is None and not t.awaiting_payment for t in snapshots)
        lapses, late = term_history(snapshots, day)
        tenure = max(0.0, (day - joined_on).days / 365.25) if joined_on else 0.0
        features = {
            "days_since_last_activity": None if last_age is None else int(last_age),
            "activities_90d": a90, "activities_prev_90d": prev90, "activities_365d": a365,
            "trend": round((a90 - prev90) / (a90 + prev90), 3) if a90 + prev90 else 0.0,
            "events_attended_365d": events365,
            "days_since_last_event": None if event_age is None else int(event_age),
            "emails_sent": sent, "emails_opened": opened,
            "emails_opened_ratio": round(opened / sent, 3) if sent else None,
            "clicks_365d": clicks365,
            "tenure_years": round(tenure, 2),
            "previous_lapses": lapses, "late_renewals": late,
            "days_to_end": (current.ends_on - day).days if current is not None else None,
            "plan": current.plan_code if current is not None else (snapshots[-1].plan_code if snapshots else None),
            # issue 10: frequency over more windows and the whole history, amounts, the first activity
            "activities_30d": a30, "activities_prev_365d": prev365, "activities_total": total,
            "days_since_first_activity": None if first_age is None else int(first_age),
            "days_since_joined": (day - joined_on).days if joined_on else None,
            "payments_total": payments, "amount_365d": round(amount365, 2),
            "amount_prev_365d": round(amount_prev365, 2), "amount_total": round(amount_total, 2),
            "has_term": current is not None,
        }
        out[mid] = MemberFeatures(mid, features, decayed, last_at, current, renewed)
    return out
