"""Churn-risk alerts: opened once per risk episode, told to staff in exactly one digest, closed
when the member renews or the risk falls."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import select

from membership.core.models import Activity
from membership.engagement.jobs import score_all
from membership.engagement.models import RiskAlert
from membership.extensions import db
from membership.notifications.digest import digest_lines, send_staff_digest
from membership.notifications.models import OutboxMessage
from membership.plans.models import Membership

ZONE = ZoneInfo("Asia/Dhaka")
DAY = date(2026, 3, 1)


def at(day: date, hour: int = 12) -> datetime:
    return datetime.combine(day, time(hour), ZONE).astimezone(timezone.utc)


def term(member, plan, starts, ends, paid_on):
    db.session.add(Membership(member_id=member.id, plan_id=plan.id, starts_on=starts, ends_on=ends, grace_days=30,
                              fee_minor=0, currency="BDT", paid_on=paid_on, status="active", created_at=at(paid_on)))


def score(day):
    counts = score_all(db.session, today=day, now=at(day, 3), zone=ZONE)
    db.session.commit()
    return counts


def alerts(member=None):
    q = select(RiskAlert).order_by(RiskAlert.id)
    if member is not None:
        q = q.where(RiskAlert.member_id == member.id)
    return db.session.scalars(q).all()


def digest(day):
    send_staff_digest(db.session, today=day, now=at(day, 7), zone=ZONE)
    db.session.commit()
    return db.session.scalars(select(OutboxMessage).where(OutboxMessage.template_key == "staff_digest")
                              .order_by(OutboxMessage.id)).all()


def test_alert_once_per_episode_one_digest_closed_on_renewal(app, make_member, make_plan, staff_user):
    plan = make_plan()
    silent = make_member(first_name="Sima", last_name="Silent", joined_on=date(2023, 6, 1))
    busy = make_member(first_name="Babu", last_name="Busy", joined_on=date(2023, 6, 1))
    for m in (silent, busy):
        term(m, plan, date(2025, 6, 1), date(2026, 5, 31), date(2025, 6, 1))
    for d in range(0, 300, 7):
        db.session.add(Activity(member_id=busy.id, kind="event_attended", occurred_at=at(DAY - timedelta(days=d + 1))))
    db.session.add(Activity(member_id=silent.id, kind="logged_in", occurred_at=at(date(2025, 6, 20))))
    db.session.commit()

    counts = score(DAY)
    assert counts["opened"] == 1
    [alert] = alerts()
    assert alert.member_id == silent.id and alert.status == "open" and alert.opened_on == DAY
    assert alert.churn_risk >= 0.6 and alert.notified_on is None
    assert alert.reasons[0]["text"] == "no activity for 8 months"
    assert alert.suggested_action == "Call them: no activity for 8 months"

    # the digest names the member once, with number, risk, reasons and the suggested action
    lines = digest_lines(db.session, today=DAY, zone=ZONE)
    text = "\n".join(lines)
    assert "1 member crossed into high churn risk:" in text
    assert f"Sima Silent ({silent.member_number}): {alert.churn_risk:.0%} risk - no activity for 8 months" in text
    assert "Suggested: Call them: no activity for 8 months." in text
    assert "Babu" not in text
    sent = digest(DAY)
    assert len(sent) == 1 and "Sima Silent" in sent[0].body_text
    assert db.session.get(RiskAlert, alert.id).notified_on == DAY

    # still high the next days: no second alert, no second mention
    for n in (1, 2):
        assert score(DAY + timedelta(days=n))["opened"] == 0
        assert not any("Sima" in line for line in digest_lines(db.session, today=DAY + timedelta(days=n), zone=ZONE))
        digest(DAY + timedelta(days=n))
    assert len(alerts()) == 1
    assert sum("Sima" in m.body_text for m in digest(DAY + timedelta(days=3))) == 1

    # she renews: the alert closes by itself
    term(silent, plan, date(2026, 6, 1), date(2027, 5, 31), DAY + timedelta(days=4))
    db.session.commit()
    counts = score(DAY + timedelta(days=4))
    assert counts["resolved"] == 1 and counts["opened"] == 0
    [closed] = alerts()
    assert closed.status == "resolved" and closed.close_reason == "Renewed." and closed.closed_at is not None


def test_a_new_episode_after_the_risk_fell_gets_a_new_alert(app, make_member, make_plan, staff_user):
    plan = make_plan()
    m = make_member(joined_on=date(2023, 6, 1))
    term(m, plan, date(2025, 9, 1), date(2026, 8, 31), date(2025, 9, 1))
    db.session.commit()
    score(DAY)
    assert len(alerts(m)) == 1
    digest(DAY)
    # a burst of activity: the risk falls, the alert is resolved
    for d in range(10):
        db.session.add(Activity(member_id=m.id, kind="logged_in", occurred_at=at(DAY + timedelta(days=d))))
    db.session.commit()
    counts = score(DAY + timedelta(days=10))
    assert counts["resolved"] == 1
    [first] = alerts(m)
    assert first.status == "resolved" and first.close_reason.startswith("Risk fell to ")
    # months of silence: high again, a second episode, told again once
    later = DAY + timedelta(days=160)
    assert score(later)["opened"] == 1
    assert score(later + timedelta(days=1))["opened"] == 0
    assert [a.status for a in alerts(m)] == ["resolved", "open"]
    assert any(m.full_name in line for line in digest_lines(db.session, today=later, zone=ZONE))


# ---------------------------------------------------------------- the optional "we miss you" email


def we_miss_you_emails():
    return db.session.scalars(select(OutboxMessage).where(OutboxMessage.template_key == "we_miss_you")
                              .order_by(OutboxMessage.id)).all()


def test_we_miss_you_is_off_by_default(app, make_member, make_plan):
    m = make_member(joined_on=date(2023, 6, 1), marketing_opt_in=True)
    term(m, make_plan(), date(2025, 9, 1), date(2026, 8, 31), date(2025, 9, 1))
    db.session.commit()
    assert score(DAY)["opened"] == 1
    assert we_miss_you_emails() == []


def test_we_miss_you_goes_once_per_episode_to_members_who_accept_marketing(app, make_member, make_plan,
                                                                          admin_user):
    from membership.engagement.settings import get_settings, save_settings

    save_settings(db.session, {"we_miss_you": True}, actor=admin_user, now=at(DAY))
    db.session.commit()
    assert get_settings(db.session).we_miss_you is True
    plan = make_plan()
    willing = make_member(first_name="Wila", joined_on=date(2023, 6, 1), marketing_opt_in=True)
    unwilling = make_member(first_name="Una", joined_on=date(2023, 6, 1), marketing_opt_in=False)
    for m in (willing, unwilling):
        term(m, plan, date(2025, 9, 1), date(2026, 8, 31), date(2025, 9, 1))
    db.session.commit()

    counts = score(DAY)
    assert counts["opened"] == 2 and counts["we_miss_you"] == 1
    [email] = we_miss_you_emails()
    assert email.member_id == willing.id and email.category == "marketing"
    assert email.subject.startswith("We miss you at ")
    assert "Dear Wila" in email.body_text and "/events/" in email.body_text
    assert email.headers["List-Unsubscribe"].startswith("<") and "List-Unsubscribe-Post" in email.headers
    # still high the next days: no second email
    assert score(DAY + timedelta(days=1))["we_miss_you"] == 0
    assert len(we_miss_you_emails()) == 1
    # the risk falls, then rises again: a new episode, a new email
    for d in range(10):
        db.session.add(Activity(member_id=willing.id, kind="logged_in", occurred_at=at(DAY + timedelta(days=d))))
    db.session.commit()
    score(DAY + timedelta(days=10))
    later = DAY + timedelta(days=160)
    assert score(later)["we_miss_you"] == 1
    assert [e.member_id for e in we_miss_you_emails()] == [willing.id, willing.id]
    # switched off: no more
    save_settings(db.session, {"we_miss_you": False}, actor=admin_user, now=at(later))
    db.session.commit()
    assert "we_miss_you" not in score(later + timedelta(days=1))


def test_admin_switches_we_miss_you_on_from_the_settings_page(app, client, admin_user):
    from tests.conftest import login
    login(client, admin_user)
    page = client.get("/staff/admin/engagement").get_data(as_text=True)
    assert 'name="we_miss_you"' in page and 'id="we_miss_you" checked' not in page
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    response = client.post("/staff/admin/engagement", data={"csrf_token": token, "half_life_days": "90",
                                                      "we_miss_you": "on"})
    assert response.status_code == 302
    assert 'id="we_miss_you" checked' in client.get("/staff/admin/engagement").get_data(as_text=True)
