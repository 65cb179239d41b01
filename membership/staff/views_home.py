"""Staff home: the dashboard staff open every morning, each figure a link to the list behind it.

The figures themselves live in membership.engagement.dashboard; this view gathers them, computes
today's snapshot when the daily job has not stored it yet, and shapes the chart data."""
from __future__ import annotations

from datetime import date, timedelta

from flask import current_app, render_template, url_for
from flask_babel import format_date, lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from membership.core.time import add_months, local_today, utcnow
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
BAND_LABELS = {"highly_engaged": _l('Highly engaged'), "engaged": _l('Engaged'), "drifting": _l('Drifting'),
               "dormant": _l('Dormant'), "high": _l('High'), "medium": _l('Medium'), "low": _l('Low')}

month_bounds = dashboard.month_bounds


def _cached_figures(today: date) -> tuple[dict, dict]:
    """The dashboard snapshot and score figures: as the daily job last stored them (today's, or
    yesterday's until this morning's run), or, when it has stored none this week (a new install,
    a scheduler long down), computed by the first view and kept in this process's memory for the
    day (a GET writes nothing to the database; tests/test_security.py holds every page to that)."""
    memo = current_app.extensions.setdefault("samiti.dashboard", {})
    snapshot = dashboard.latest_snapshot(db.session, today)
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


def _members_url(**args) -> str:
    return url_for("staff.members", **args)


def figure_links(snapshot: dict) -> dict:
    """The member list behind each of the snapshot's figures (members.term_history rebuilds the
    statuses and outcomes the snapshot counted, so each list holds exactly the members counted)."""
    as_of = snapshot["as_of"]
    renewal, retention = snapshot["renewal"], snapshot["retention"]
    months = [date.fromisoformat(m) for m in snapshot["months"]]
    ended = [{"ended_from": month_bounds(m)[0].isoformat(), "ended_to": month_bounds(m)[1].isoformat(),
              "as_of": as_of} for m in months]
    window = {"ended_from": renewal["from"], "ended_to": renewal["to"], "as_of": as_of, "sort": "-expires"}
    return {
        "renewed": _members_url(outcome="renewed", **window),
        "lapsed": _members_url(outcome="lapsed", **window),
        "due": _members_url(outcome="due", **window),
        "retention_base": _members_url(was=f"current:{retention['since']}"),
        "retained": _members_url(was=[f"current:{retention['since']}", f"current:{as_of}"]),
        "participation": _members_url(status=CURRENT, attended_from=add_months(date.fromisoformat(as_of), -12).isoformat(),
                                      attended_to=as_of),
        "status": {status: [_members_url(was=f"{status}:{m.isoformat()}") for m in months]
                   for status in ("active", "grace", "former")},
        "outcomes": {outcome: [_members_url(outcome=outcome, **e) for e in ended] for outcome in ("renewed", "lapsed")},
        "cohorts": [[_members_url(joined_from=c["from"], joined_to=c["to"], current_years=years, sort="joined")
                     for years in dashboard.COHORT_YEARS] for c in snapshot["cohorts"]],
    }


def _chart_data(snapshot: dict, live: dashboard.LiveFigures, links: dict) -> dict:
    """What static/dashboard.js draws (embedded as JSON, never as script), with the member list
    behind each bar and point (a click opens it)."""
    months = [format_date(date.fromisoformat(m), "MMM yyyy") for m in snapshot["months"]]
    return {
        "links": {
            "status": [links["status"][s] for s in ("active", "grace", "former")],
            "renewals": [links["outcomes"]["renewed"], links["outcomes"]["lapsed"]],
            "engagement": [[_members_url(engagement=b) for b in ENGAGEMENT_BANDS]],
            "risk": [[_members_url(plan_id=r["plan_id"], risk=band) if r["plan_id"] else None
                      for r in live.risk_by_plan] for band in RISK_BANDS],
        },
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
    links = figure_links(snapshot)
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
        live=live, snapshot=snapshot, chart_data=_chart_data(snapshot, live, links), links=links,
        current_statuses=CURRENT,
        year_ago=date.fromisoformat(snapshot["retention"]["since"]), band_labels=BAND_LABELS,
        engagement_bands=ENGAGEMENT_BANDS, risk_bands=RISK_BANDS, cohort_years=dashboard.COHORT_YEARS)
