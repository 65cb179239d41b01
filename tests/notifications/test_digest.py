"""The daily staff digest: what happened yesterday and what waits, once per staff user and day."""
from __future__ import annotations

from datetime import date, datetime, timezone

from zoneinfo import ZoneInfo

from sqlalchemy import select

from membership.extensions import db
from membership.notifications.models import OutboxMessage
from membership.plans.services import apply_status_transitions
from membership.scheduler import run_job

ZONE = "Asia/Dhaka"


def at(day: date, hour: int = 8) -> datetime:
    """`hour` o'clock on `day` in Dhaka (UTC+6), as UTC."""
    return datetime(day.year, day.month, day.day, hour, 0, tzinfo=ZoneInfo(ZONE)).astimezone(timezone.utc)


def digests():
    return db.session.scalars(select(OutboxMessage).where(OutboxMessage.template_key == "staff_digest")
                              .order_by(OutboxMessage.id)).all()


def test_the_digest_tells_each_active_staff_user_once_a_day(app, make_user, make_member, make_plan, make_term):
    staff, admin = make_user("staff", email="sara@example.org"), make_user("admin", email="boss@example.org")
    gone = make_user("staff", email="gone@example.org")
    gone.is_active_flag = False
    make_user("member", email="m@example.org")
    plan = make_plan(fee_minor=0, grace_days=30)
    lapsing = make_member()
    make_term(lapsing, plan, starts_on=date(2025, 6, 1), today=date(2025, 6, 1))  # ends 31 May, grace to 30 Jun
    make_member(joined_on=date(2026, 7, 1))
    db.session.commit()
    apply_status_transitions(db.session, today=date(2026, 7, 1), now=at(date(2026, 7, 1), 1))
    db.session.commit()

    outcome = run_job("staff-digest", now=at(date(2026, 7, 2)))
    assert outcome.status == "ok" and outcome.counts["queued"] == 2
    rows = digests()
    assert sorted(m.to_address for m in rows) == ["boss@example.org", "sara@example.org"]
    body = rows[0].body_text
    assert "1 new member joined on 01 Jul 2026." in body
    assert "1 membership lapsed." in body
    assert "/staff/" in body
    # the same day again (a retry, a second scheduler): nothing new
    assert run_job("staff-digest", now=at(date(2026, 7, 2), 11), force=True).counts["queued"] == 0
    assert len(digests()) == 2


def test_no_digest_when_nothing_needs_attention(app, make_user):
    make_user("staff")
    db.session.commit()
    outcome = run_job("staff-digest", now=at(date(2026, 7, 2)))
    assert outcome.status == "ok" and outcome.counts == {"lines": 0, "queued": 0}
    assert digests() == []
