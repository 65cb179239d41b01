"""The daily staff digest: what happened yesterday and what waits for staff, one email per staff
user and day (the scheduler's "staff-digest" job). Nothing to say, no email. Members who crossed
into high churn risk are listed once per risk episode (engagement.alerts)."""
from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from membership.accounts.models import User
from membership.core.models import Activity
from membership.core.time import local_midnight_utc
from membership.engagement.alerts import alerts_to_notify, digest_alert_lines, mark_notified
from membership.members.models import Member
from membership.notifications.models import OutboxMessage
from membership.plans.models import Membership, Payment
from membership.privacy.models import ClosureRequest
from membership.support.models import HelpRequest

RENEWAL_WINDOW_DAYS = 30


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


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
        lines.append(f"{_plural(joined, 'new member')} joined on {day:%d %b %Y}.")
    lapsed = count(select(func.count()).select_from(Activity)
                   .where(Activity.kind == "lapsed", Activity.occurred_at >= start, Activity.occurred_at < end))
    if lapsed:
        lines.append(f"{_plural(lapsed, 'membership')} lapsed.")
    paid = session.execute(select(func.count(), func.coalesce(func.sum(Payment.amount_minor), 0))
                           .where(Payment.received_at >= start, Payment.received_at < end)).one()
    if paid[0]:
        lines.append(f"{_plural(paid[0], 'payment')} recorded.")
    due = count(select(func.count()).select_from(Member).where(
        live, Member.status.in_(("active", "grace")),
        Member.expires_on.between(today, today + timedelta(days=RENEWAL_WINDOW_DAYS))))
    if due:
        lines.append(f"{_plural(due, 'renewal')} due in the next {RENEWAL_WINDOW_DAYS} days.")
    grace = count(select(func.count()).select_from(Member).where(live, Member.status == "grace"))
    if grace:
        lines.append(f"{_plural(grace, 'member')} in the grace period (not renewed yet).")
    waiting = count(select(func.count()).select_from(Membership).where(
        Membership.awaiting_approval.is_(True), Membership.cancelled_on.is_(None)))
    if waiting:
        lines.append(f"{_plural(waiting, 'application')} waiting for approval.")
    open_help = count(select(func.count()).select_from(HelpRequest).where(HelpRequest.status == "open"))
    if open_help:
        lines.append(f"{_plural(open_help, 'help request')} waiting for a reply.")
    closures = count(select(func.count()).select_from(ClosureRequest).where(ClosureRequest.status == "pending"))
    if closures:
        lines.append(f"{_plural(closures, 'account closure request')} to confirm or decline.")
    failed = count(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == "failed"))
    if failed:
        lines.append(f"{_plural(failed, 'email')} failed to send (see Emails > Outbox).")
    lines.extend(digest_alert_lines(alerts_to_notify(session)))
    return lines


def send_staff_digest(session: Session, *, today: date, now: datetime, zone) -> dict[str, int]:
    """Queue the digest of `today` to every active staff and admin user (once per user and day)."""
    from membership.notifications.emails import queue_staff_digest

    # read before the lines, so that the alerts marked below are exactly those the lines name
    pending = alerts_to_notify(session)
    lines = digest_lines(session, today=today, zone=zone)
    counts = {"lines": len(lines), "queued": 0}
    if not lines:
        return counts
    users = session.scalars(select(User).where(User.role.in_(("staff", "admin")), User.is_active_flag.is_(True))
                            .order_by(User.id))
    for user in users:
        if queue_staff_digest(session, user, digest_date=today, lines=lines, now=now) is not None:
            counts["queued"] += 1
    if counts["queued"] and pending:
        # each churn-risk alert is told once per episode: the next digest does not repeat it
        mark_notified(session, [alert for alert, _ in pending], day=today)
        counts["alerts"] = len(pending)
    return counts


def staff_digest(ctx) -> dict[str, int]:
    """The scheduler job."""
    return send_staff_digest(ctx.session, today=ctx.today, now=ctx.now, zone=ctx.zone)
