"""The engagement pages' reads (a member's scores and timeline, the at-risk list, segment counts)
and the few staff operations on them: the action taken on a risk alert, tags, saved segments.

The scores themselves are written by the daily scoring job (engagement.jobs); this module only
reads member_score, current_score and risk_alert. Operations take `actor=` and `now=`, add and
flush, and raise DomainError; the caller commits.
"""
from __future__ import annotations

from flask_babel import gettext as _

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Select, case, func, select
from sqlalchemy.orm import Session

from membership.core.errors import Conflict, ValidationError
from membership.core.models import Activity
from membership.core.services import record_audit
from membership.engagement.models import RISK_BANDS, CurrentScore, MemberScore, RiskAlert, Segment
from membership.members.models import Member, MemberTag
from membership.members.queries import normalize_tag

ENGAGEMENT_LABELS = {"highly_engaged": "Highly engaged", "engaged": "Engaged", "drifting": "Drifting",
                     "dormant": "Dormant"}
RISK_LABELS = {"high": "High", "medium": "Medium", "low": "Low"}
KIND_LABELS = {
    "joined": "Joined", "renewed": "Renewed", "lapsed": "Lapsed", "status_changed": "Status changed",
    "cancelled": "Cancelled", "payment": "Payment", "logged_in": "Signed in", "profile_updated": "Profile updated",
    "interaction": "Staff interaction", "event_registered": "Registered for an event",
    "event_attended": "Attended an event", "event_no_show": "Did not come to an event",
    "event_cancelled": "Cancelled an event registration", "feedback_given": "Gave feedback",
    "help_request": "Help request", "email_opened": "Opened an email", "email_clicked": "Clicked a link in an email",
    "survey_answered": "Answered a survey",
    "website_visit": "Visited the website", "external_contact": "Contact logged in another system",  # through the API
}
TREND_DAYS = 90
DAYS_CHOICES = (30, 60, 90)


# ---------------------------------------------------------------- the member page's card


@dataclass
class Engagement:
    """What the member page shows of a member's scores; `scored` is False before the first scoring."""
    scored: bool = False
    scored_on: date | None = None
    engagement: float | None = None
    band: str | None = None
    breakdown: list[tuple[str, float]] = field(default_factory=list)
    past: MemberScore | None = None
    trend: float | None = None
    churn_risk: float | None = None
    risk_band: str | None = None
    reasons: list[str] = field(default_factory=list)
    last_activity_at: datetime | None = None
    alert: RiskAlert | None = None

    @property
    def risk_percent(self) -> int | None:
        return None if self.churn_risk is None else round(self.churn_risk * 100)


def reason_texts(reasons: list[Any] | None, limit: int = 5) -> list[str]:
    """The plain-word reasons, most important first ([{"text", "weight"}] or plain strings)."""
    out = []
    for r in reasons or []:
        text = r.get("text") if isinstance(r, dict) else r
        if text:
            out.append(str(text))
    return out[:limit]


def member_engagement(session: Session, member_id: int) -> Engagement:
    """The member's current scores, breakdown, trend against ~90 days before and open alert: three
    small indexed queries."""
    current = session.get(CurrentScore, member_id)
    latest = session.scalar(select(MemberScore).where(MemberScore.member_id == member_id)
                            .order_by(MemberScore.scored_on.desc()).limit(1))
    alert = open_alert(session, member_id)
    if current is None and latest is None:
        return Engagement(alert=alert)
    src = current or latest
    e = Engagement(scored=True, scored_on=src.scored_on, engagement=src.engagement, band=src.engagement_band,
                   churn_risk=src.churn_risk, risk_band=src.risk_band, reasons=reason_texts(src.reasons),
                   last_activity_at=getattr(current, "last_activity_at", None), alert=alert)
    if latest is not None and latest.scored_on == src.scored_on and latest.breakdown:
        items = [(k, float(v)) for k, v in latest.breakdown.items() if isinstance(v, (int, float)) and v]
        e.breakdown = sorted(items, key=lambda kv: (-kv[1], kv[0]))
    e.past = session.scalar(select(MemberScore).where(
        MemberScore.member_id == member_id, MemberScore.scored_on <= src.scored_on - timedelta(days=TREND_DAYS))
        .order_by(MemberScore.scored_on.desc()).limit(1))
    if e.past is not None:
        e.trend = src.engagement - e.past.engagement
    return e


def open_alert(session: Session, member_id: int) -> RiskAlert | None:
    return session.scalar(select(RiskAlert).where(RiskAlert.member_id == member_id, RiskAlert.status == "open"))


def record_alert_action(session: Session, alert: RiskAlert, *, channel: str, summary: str, outcome: str | None,
                        actor, now: datetime):
    """Record what staff did about a member at risk: an interaction (members.services.add_interaction,
    which validates and records the activity) and the alert closed as "actioned" with it. Flushes;
    the caller commits both in one transaction. Raises Conflict when the alert is no longer open."""
    from membership.members import services as members

    if alert.status != "open":
        raise Conflict(_("This alert was already closed."), field=None)
    member = session.get(Member, alert.member_id)
    row = members.add_interaction(session, member, channel=channel, summary=summary, outcome=outcome,
                                  follow_up_on=None, occurred_at=now, actor=actor, now=now)
    alert.status = "actioned"
    alert.interaction_id = row.id
    alert.closed_by_id = getattr(actor, "id", None)
    alert.closed_at = now
    alert.close_reason = "action recorded by staff"
    record_audit(session, actor=actor, action="risk_alert.action", entity=alert, now=now, member_id=member.id,
                 summary=f"Closed the churn-risk alert: {channel}", changes={"status": ["open", "actioned"]})
    session.flush()
    return row


# ---------------------------------------------------------------- timeline


def timeline_query(member_id: int, kind: str | None = None) -> Select:
    stmt = select(Activity).where(Activity.member_id == member_id)
    if kind:
        stmt = stmt.where(Activity.kind == kind)
    return stmt.order_by(Activity.occurred_at.desc(), Activity.id.desc())


def kind_counts(session: Session, member_id: int) -> dict[str, int]:
    return dict(session.execute(select(Activity.kind, func.count()).where(Activity.member_id == member_id)
                                .group_by(Activity.kind)).all())


# ---------------------------------------------------------------- tags


def member_tags(session: Session, member_id: int) -> list[str]:
    return list(session.scalars(select(MemberTag.tag).where(MemberTag.member_id == member_id)
                                .order_by(MemberTag.tag)))


def add_tag(session: Session, member: Member, raw: str, *, actor, now: datetime) -> str | None:
    """Tag the member; returns the tag as stored, or None when the member already had it.
    Raises ValidationError for an empty tag."""
    tag = normalize_tag(raw)
    if not tag:
        raise ValidationError(_("Enter a tag."), field="tag")
    if session.get(MemberTag, (member.id, tag)) is not None:
        return None
    session.add(MemberTag(member_id=member.id, tag=tag))
    record_audit(session, actor=actor, action="member.tag_add", entity=member, now=now, member_id=member.id,
                 summary=f"Added tag “{tag}”", changes={"tag": [None, tag]})
    session.flush()
    return tag


def remove_tag(session: Session, member: Member, tag: str, *, actor, now: datetime) -> bool:
    row = session.get(MemberTag, (member.id, normalize_tag(tag)))
    if row is None:
        return False
    session.delete(row)
    record_audit(session, actor=actor, action="member.tag_remove", entity=member, now=now, member_id=member.id,
                 summary=f"Removed tag “{row.tag}”", changes={"tag": [row.tag, None]})
    session.flush()
    return True


def all_tags(session: Session, limit: int = 200) -> list[str]:
    return list(session.scalars(select(MemberTag.tag).distinct().order_by(MemberTag.tag).limit(limit)))


# ---------------------------------------------------------------- segments


def _clean_name(name: str | None) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise ValidationError(_("Enter a name."), field="name")
    if len(name) > 120:
        raise ValidationError(_("Use at most 120 characters."), field="name")
    return name


def _check_unique(session: Session, name: str, segment_id: int | None = None) -> None:
    stmt = select(Segment.id).where(func.lower(Segment.name) == name.lower())
    if segment_id is not None:
        stmt = stmt.where(Segment.id != segment_id)
    if session.scalar(stmt) is not None:
        raise Conflict(_("A segment called “%(name)s” exists already: choose another name.", name=name), field="name")


def save_segment(session: Session, name: str, filters: dict[str, Any], *, actor, now: datetime) -> Segment:
    """Save a member filter (MemberFilter.as_args()) under a unique name. Raises ValidationError
    (empty name) or Conflict (name taken, case-insensitively)."""
    name = _clean_name(name)
    _check_unique(session, name)
    row = Segment(name=name, filters=dict(filters), created_at=now, created_by_id=getattr(actor, "id", None))
    session.add(row)
    session.flush()
    record_audit(session, actor=actor, action="segment.create", entity=row, now=now,
                 summary=f"Saved segment “{name}”", changes={"filters": dict(filters)})
    return row


def rename_segment(session: Session, segment: Segment, name: str, *, actor, now: datetime) -> None:
    name = _clean_name(name)
    _check_unique(session, name, segment.id)
    old = segment.name
    segment.name = name
    record_audit(session, actor=actor, action="segment.rename", entity=segment, now=now,
                 summary=f"Renamed segment “{old}” to “{name}”", changes={"name": [old, name]})
    session.flush()


def delete_segment(session: Session, segment: Segment, *, actor, now: datetime) -> None:
    record_audit(session, actor=actor, action="segment.delete", entity=segment, now=now,
                 summary=f"Deleted segment “{segment.name}”", changes={"filters": segment.filters})
    session.delete(segment)
    session.flush()


def segment_count(session: Session, segment: Segment) -> int:
    """How many members the segment matches now (the member list's own query)."""
    from membership.members.queries import MemberFilter, member_query, resolve_segment

    f = resolve_segment(session, MemberFilter(segment=segment.id))
    stmt = member_query(f).order_by(None).with_only_columns(Member.id)
    return session.scalar(select(func.count()).select_from(stmt.subquery()))


# ---------------------------------------------------------------- the at-risk list


def dealt_with():
    """SQL: the member's latest alert was closed by staff ("actioned"): someone has acted on this
    risk episode, so the member leaves the at-risk list until a new episode opens a new alert
    (the risk falls below high and crosses back; issue 10)."""
    latest = (select(func.max(RiskAlert.id)).where(RiskAlert.member_id == Member.id)
              .correlate(Member).scalar_subquery())
    return (select(RiskAlert.id).where(RiskAlert.id == latest, RiskAlert.status == "actioned")
            .correlate(Member).exists())


def at_risk_query(*, band: str, today: date, plan_id: int | None = None, within_days: int | None = None) -> Select:
    """Members whose current risk band is `band`, with their open alert if any: newest alerts
    first, then the highest risk. A SELECT of Member rows (for db.paginate); `page_details` gives
    each one's score and alert."""
    if band not in RISK_BANDS:
        band = "high"
    stmt = (select(Member)
            .join(CurrentScore, CurrentScore.member_id == Member.id)
            .outerjoin(RiskAlert, (RiskAlert.member_id == Member.id) & (RiskAlert.status == "open"))
            .where(Member.erased_at.is_(None), CurrentScore.risk_band == band, ~dealt_with()))
    if plan_id:
        stmt = stmt.where(Member.plan_id == plan_id)
    if within_days:
        stmt = stmt.where(Member.expires_on >= today, Member.expires_on <= today + timedelta(days=within_days))
    return stmt.order_by(case((RiskAlert.id.is_(None), 1), else_=0), RiskAlert.opened_on.desc(),
                         CurrentScore.churn_risk.desc(), Member.id)


def page_details(session: Session, member_ids: list[int]) -> tuple[dict[int, CurrentScore], dict[int, RiskAlert]]:
    """The current scores and open alerts of a page of members: two queries by primary/indexed key."""
    if not member_ids:
        return {}, {}
    scores = {s.member_id: s for s in session.scalars(select(CurrentScore).where(CurrentScore.member_id.in_(member_ids)))}
    alerts = {a.member_id: a for a in session.scalars(select(RiskAlert).where(
        RiskAlert.member_id.in_(member_ids), RiskAlert.status == "open"))}
    return scores, alerts


def band_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(CurrentScore.risk_band, func.count()).join(Member, Member.id == CurrentScore.member_id)
                           .where(Member.erased_at.is_(None), CurrentScore.risk_band.in_(("high", "medium")))
                           .group_by(CurrentScore.risk_band)).all()
    return {b: n for b, n in rows}

