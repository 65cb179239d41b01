"""Staff home: the association at a glance, each figure a link to the list behind it."""
from __future__ import annotations

from datetime import date, timedelta

from flask import render_template
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from membership.core.time import local_today, utcnow
from membership.extensions import db
from membership.members.models import Interaction, Member
from membership.members.queries import count_by_status
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


def month_bounds(day: date) -> tuple[date, date]:
    """First and last day of the month of `day`."""
    first = day.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return first, following - timedelta(days=1)


@bp.get("/")
def home():
    """A handful of aggregate queries (no query per row): status counts, joins this month,
    renewals due, recent payments, follow-ups due."""
    today = local_today()
    live = Member.erased_at.is_(None)

    by_status = count_by_status(db.session)
    status_counts = [(s, by_status.get(s, 0)) for s in HOME_STATUSES]
    total = sum(by_status.values())

    month_first, month_last = month_bounds(today)
    new_this_month = db.session.scalar(
        select(func.count()).select_from(Member).where(live, Member.joined_on.between(month_first, month_last)))

    due_until = today + timedelta(days=RENEWAL_WINDOW_DAYS)
    due = (live, Member.status.in_(("active", "grace")), Member.expires_on.between(today, due_until))
    renewals_count = db.session.scalar(select(func.count()).select_from(Member).where(*due))
    renewals = db.session.execute(
        select(Member, Plan.name).outerjoin(Plan, Plan.id == Member.plan_id).where(*due)
        .order_by(Member.expires_on, Member.last_name, Member.id).limit(LIST_SIZE)).all()

    payments = db.session.scalars(
        select(Payment).options(joinedload(Payment.member), joinedload(Payment.organization))
        .order_by(Payment.received_at.desc(), Payment.id.desc()).limit(LIST_SIZE)).all()

    follow_window = (Interaction.follow_up_on.between(today - timedelta(days=FOLLOW_UP_LOOKBACK_DAYS), today))
    follow_ups_count = db.session.scalar(
        select(func.count()).select_from(Interaction).join(Member, Member.id == Interaction.member_id)
        .where(follow_window, live))
    follow_ups = db.session.execute(
        select(Interaction, Member).join(Member, Member.id == Interaction.member_id)
        .options(joinedload(Interaction.staff)).where(follow_window, live)
        .order_by(Interaction.follow_up_on, Interaction.id).limit(FOLLOW_UP_LIST_SIZE)).all()

    return render_template(
        "staff/home.html", today=today, status_counts=status_counts, total=total,
        new_this_month=new_this_month, month_first=month_first, month_last=month_last,
        renewals_count=renewals_count, renewals=renewals, window_days=RENEWAL_WINDOW_DAYS,
        renewals_args={"status": ["active", "grace"], "expires_from": today.isoformat(),
                       "expires_to": due_until.isoformat(), "sort": "expires"},
        payments=payments, method_labels=METHOD_LABELS,
        follow_ups=follow_ups, follow_ups_count=follow_ups_count,
        help=help_figures(db.session, now=utcnow()), help_ages=AGE_BUCKETS, format_duration=format_duration)
