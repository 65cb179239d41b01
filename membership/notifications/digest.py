"""The daily staff digest: what happened yesterday and what waits for staff, one email per staff
user and day (the scheduler's "staff-digest" job). Nothing to say, no email. Members who crossed
into high churn risk are listed once per risk episode (engagement.alerts)."""
from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from flask_babel import ngettext

from membership.accounts.models import User
from membership.core import formats
from membership.core.i18n import default_language, in_language, language_of
from membership.core.models import Activity
from membership.core.time import local_midnight_utc
from membership.engagement.alerts import alerts_to_notify, digest_alert_lines, mark_notified
from membership.members.models import Member
from membership.notifications.models import OutboxMessage
from membership.plans.models import Membership, Payment
from membership.privacy.models import ClosureRequest
from membership.support.models import HelpRequest

RENEWAL_WINDOW_DAYS = 30


def _n(n: int) -> str:
    return formats.number(n)


def digest_lines(session: Session, *, today: date, zone) -> list[str]:
    """The digest of the local day before `today`, and what waits today; only lines with
    something to say."""
    day = today - timedelta(days=1)
    start, end = local_midnight_utc(day, zone), local_midnight_utc(today, zone)
    count = lambda stmt: session.scalar(stmt) or 0  # noqa: E731
    live = Member.erased_at.is_(None)
    lines: list[str] = []

    joined = count(select(func.count()).select_from(Member).where(live, Member.joined_on == day))
    if joined:
        lines.append(ngettext("%(count)s new member joined on %(day)s.", "%(count)s new members joined on %(day)s.",
                              joined, count=_n(joined), day=formats.strftime(day, "%d %b %Y")))
    lapsed = count(select(func.count()).select_from(Activity)
                   .where(Activity.kind == "lapsed", Activity.occurred_at >= start, Activity.occurred_at < end))
    if lapsed:
        lines.append(ngettext("%(count)s membership lapsed.", "%(count)s memberships lapsed.", lapsed,
                              count=_n(lapsed)))
    paid = session.execute(select(func.count(), func.coalesce(func.sum(Payment.amount_minor), 0))
                           .where(Payment.received_at >= start, Payment.received_at < end)).one()
    if paid[0]:
        lines.append(ngettext("%(count)s payment recorded.", "%(count)s payments recorded.", paid[0],
                              count=_n(paid[0])))
    due = count(select(func.count()).select_from(Member).where(
        live, Member.status.in_(("active", "grace")),
        Member.expires_on.between(today, today + timedelta(days=RENEWAL_WINDOW_DAYS))))
    if due:
        lines.append(ngettext("%(count)s renewal due in the next %(days)s days.",
                              "%(count)s renewals due in the next %(days)s days.", due, count=_n(due),
                              days=_n(RENEWAL_WINDOW_DAYS)))
    grace = count(select(func.count()).select_from(Member).where(live, Member.status == "grace"))
    if grace:
        lines.append(ngettext("%(count)s member in the grace period (not renewed yet).",
                              "%(count)s members in the grace period (not renewed yet).", grace, count=_n(grace)))
    waiting = count(select(func.count()).select_from(Membership).where(
        Membership.awaiting_approval.is_(True), Membership.cancelled_on.is_(None)))
    if waiting:
        lines.append(ngettext("%(count)s application waiting for approval.",
                              "%(count)s applications waiting for approval.", waiting, count=_n(waiting)))
    open_help = count(select(func.count()).select_from(HelpRequest).where(HelpRequest.status == "open"))
    if open_help:
        lines.append(ngettext("%(count)s help request waiting for a reply.",
                              "%(count)s help requests waiting for a reply.", open_help, count=_n(open_help)))
    closures = count(select(func.count()).select_from(ClosureRequest).where(ClosureRequest.status == "pending"))
    if closures:
        lines.append(ngettext("%(count)s account closure request to confirm or decline.",
                              "%(count)s account closure requests to confirm or decline.", closures,
                              count=_n(closures)))
    failed = count(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == "failed"))
    if failed:
        lines.append(ngettext("%(count)s email failed to send (see Emails > Outbox).",
                              "%(count)s emails failed to send (see Emails > Outbox).", failed, count=_n(failed)))
    lines.extend(digest_alert_lines(alerts_to_notify(session)))
    return lines


def send_staff_digest(session: Session, *, today: date, now: datetime, zone) -> dict[str, int]:
    """Queue the digest of `today` to every active staff and admin user (once per user and day)."""
    from membership.notifications.emails import queue_staff_digest

    # read before the lines, so that the alerts marked below are exactly those the lines name
    pending = alerts_to_notify(session)
    with in_language(default_language()):
        lines = digest_lines(session, today=today, zone=zone)
    counts = {"lines": len(lines), "queued": 0}
    if not lines:
        return counts
    by_language = {default_language(): lines}  # each staff user reads it in their own language
    users = session.scalars(select(User).where(User.role.in_(("staff", "admin")), User.is_active_flag.is_(True))
                            .order_by(User.id))
    for user in users:
        language = language_of(user=user)
        if language not in by_language:
            with in_language(language):
                by_language[language] = digest_lines(session, today=today, zone=zone)
        if queue_staff_digest(session, user, digest_date=today, lines=by_language[language], now=now) is not None:
            counts["queued"] += 1
    if counts["queued"] and pending:
        # each churn-risk alert is told once per episode: the next digest does not repeat it
        mark_notified(session, [alert for alert, _ in pending], day=today)
        counts["alerts"] = len(pending)
    return counts


def staff_digest(ctx) -> dict[str, int]:
    """The scheduler job."""
    return send_staff_digest(ctx.session, today=ctx.today, now=ctx.now, zone=ctx.zone)
