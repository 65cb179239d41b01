"""Staff home: the dashboard staff open every morning, each figure a link to the list behind it.

The figures themselves live in membership.engagement.dashboard; this view gathers them, computes
today's snapshot when the daily job has not stored it yet, and shapes the chart data."""
from __future__ import annotations

from datetime import date, timedelta

from flask import current_app, render_template
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from membership.core.time import local_today, utcnow
from membership.engagement import dashboard
from membership.engagement.models import ENGAGEMENT_BANDS, RISK_BANDS
from membership.extensions import db
from membership.members.models import Interaction, Member
from membership.plans.models import Payment, Plan
from membership.staff import bp
from membership.staff.forms_members import METHOD_LABELS
from membership.support.figures import AGE_BUCKETS, format_duration, help_figures

# Order of the status figures: current members first.
HOME_STATUSES = ("active", "grace", "pending", "lapsed", "cancelled", "none")
RENEWAL_WINDOW_DAYS = 30
FOLLOW_UP_LOOKBACK_DAYS = 30
LIST_SIZE = 10
FOLLOW_UP_LIST_SIZE = 20
CURRENT = ["active", "grace"]
BAND_LABELS = {"highly_engaged": "Highly engaged", "engaged": "Engaged", "drifting": "Drifting",
               "dormant": "Dormant", "high": "High", "medium": "Medium", "low": "Low"}

month_bounds = dashboard.month_bounds


def _cached_figures(today: date) -> tuple[dict, dict]:
    """Today's dashboard snapshot and score figures: as the daily job stored them, or, when it has
    not (yet), computed by the first view and kept in this process's memory for the day (a GET
    writes nothing to the database; tests/test_security.py holds every page to that)."""
    memo = current_app.extensions.setdefault("samiti.dashboard", {})
    snapshot = dashboard.cached_snapshot(db.session, today)
    if snapshot is None:
        hit = memo.get("snapshot")
        if hit is not None and hit[0] == today:
            snapshot = hit[1]
        else:
            snapshot = dashboard.compute_snapshot(db.session, today)
            memo["snapshot"] = (today, snapshot)
    scored_at = dashboard.last_scoring_at(db.session)
    scores = dashboard.cached_scores(db.session, today, scored_at=scored_at)
    if scores is None:
        hit = memo.get("scores")
        if hit is not None and hit[0] == (today, scored_at):
            scores = hit[1]
        else:
            scores = dashboard.score_figures(db.session)
            memo["scores"] = ((today, scored_at), scores)
    return snapshot, scores


def _chart_data(snapshot: dict, live: dashboard.LiveFigures) -> dict:
    """What static/dashboard.js draws (embedded as JSON, never as script)."""
    months = [date.fromisoformat(m).strftime("%b %Y") for m in snapshot["months"]]
    return {
        "months": months,
        "status": snapshot["status_series"],
        "renewed": snapshot["renewed"],
        "lapsed": snapshot["lapsed"],
        "engagement": {"labels": [BAND_LABELS[b] for b in ENGAGEMENT_BANDS],
                       "counts": [live.engagement_bands.get(b, 0) for b in ENGAGEMENT_BANDS]},
        "risk": {"plans": [r["plan"] for r in live.risk_by_plan],
                 **{band: [r.get(band, 0) for r in live.risk_by_plan] for band in RISK_BANDS}},
    }


@bp.get("/")
def home():
    """A handful of aggregate queries (no query per row): status counts, joins this month,
    renewals due, recent payments, follow-ups due; the history-wide figures and the score
    figures come from the day's stored snapshot (membership.engagement.dashboard)."""
    today = local_today()
    snapshot, scores = _cached_figures(today)
    live = dashboard.live_figures(db.session, today, scores)
    live_member = Member.erased_at.is_(None)

    by_status = live.by_status
    status_counts = [(s, by_status.get(s, 0)) for s in HOME_STATUSES]
    total = sum(by_status.values())

    month_first, month_last = month_bounds(today)
    new_this_month = live.new_this_month

    due_until = today + timedelta(days=RENEWAL_WINDOW_DAYS)
    due = (live_member, Member.status.in_(("active", "grace")), Member.expires_on.between(today, due_until))
    renewals_count = live.due_to_renew
    renewals = db.session.execute(
        select(Member, Plan.name).outerjoin(Plan, Plan.id == Member.plan_id).where(*due)
        .order_by(Member.expires_on, Member.last_name, Member.id).limit(LIST_SIZE)).all()

    payments = db.session.scalars(
        select(Payment).options(joinedload(Payment.member), joinedload(Payment.organization))
        .order_by(Payment.received_at.desc(), Payment.id.desc()).limit(LIST_SIZE)).all()

    follow_window = (Interaction.follow_up_on.between(today - timedelta(days=FOLLOW_UP_LOOKBACK_DAYS), today))
    follow_ups_count = db.session.scalar(
        select(func.count()).select_from(Interaction).join(Member, Member.id == Interaction.member_id)
        .where(follow_window, live_member))
    follow_ups = db.session.execute(
        select(Interaction, Member).join(Member, Member.id == Interaction.member_id)
        .options(joinedload(Interaction.staff)).where(follow_window, live_member)
        .order_by(Interaction.follow_up_on, Interaction.id).limit(FOLLOW_UP_LIST_SIZE)).all()

    return render_template(
        "staff/home.html", today=today, status_counts=status_counts, total=total,
        new_this_month=new_this_month, month_first=month_first, month_last=month_last,
        renewals_count=renewals_count, renewals=renewals, window_days=RENEWAL_WINDOW_DAYS,
        renewals_args={"status": ["active", "grace"], "expires_from": today.isoformat(),
                       "expires_to": due_until.isoformat(), "sort": "expires"},
        payments=payments, method_labels=METHOD_LABELS,
        follow_ups=follow_ups, follow_ups_count=follow_ups_count,
        help=help_figures(db.session, now=utcnow()), help_ages=AGE_BUCKETS, format_duration=format_duration,
        live=live, snapshot=snapshot, chart_data=_chart_data(snapshot, live), current_statuses=CURRENT,
        year_ago=date.fromisoformat(snapshot["retention"]["since"]), band_labels=BAND_LABELS,
        engagement_bands=ENGAGEMENT_BANDS, risk_bands=RISK_BANDS, cohort_years=dashboard.COHORT_YEARS)
