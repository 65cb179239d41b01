"""Risk that follows reality (issue 10): a renewal, a payment or a staff contact re-scores the
member at once - the member page stops saying "high risk, call them" about someone who just paid
- and a member whose alert staff closed leaves the at-risk list until a new risk episode."""
from __future__ import annotations

import html
import re
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import select

from membership.core.models import Activity
from membership.engagement.jobs import score_all
from membership.engagement.models import CurrentScore, RiskAlert
from membership.extensions import db
from membership.plans.models import Membership

ZONE = ZoneInfo("Asia/Dhaka")
DAY = date(2026, 6, 1)


def at(day: date, hour: int = 12) -> datetime:
    return datetime.combine(day, time(hour), ZONE).astimezone(timezone.utc)


def text(response) -> str:
    return html.unescape(re.sub(r"\s+", " ", response.get_data(as_text=True)))


def silent_member(make_member, plan):
    """Term ending in a month, nothing done for eight months: high risk and an alert tonight."""
    m = make_member(joined_on=date(2024, 1, 1), first_name="Silent")
    term = Membership(member_id=m.id, plan_id=plan.id, starts_on=date(2025, 7, 1), ends_on=date(2026, 6, 30),
                      grace_days=30, fee_minor=0, currency="BDT", paid_on=date(2025, 7, 1), status="active",
                      created_at=at(date(2025, 7, 1)))
    db.session.add(term)
    db.session.add(Activity(member_id=m.id, kind="logged_in", occurred_at=at(date(2025, 10, 1))))
    db.session.commit()
    score_all(db.session, today=DAY, now=at(DAY, 3), zone=ZONE)
    db.session.commit()
    current = db.session.get(CurrentScore, m.id)
    assert current.risk_band == "high" and any("no activity for 8 months" == r["text"] for r in current.reasons)
    alert = db.session.scalars(select(RiskAlert).where(RiskAlert.member_id == m.id)).one()
    assert alert.status == "open"
    return m, term, alert


def test_a_renewal_rescores_at_once_and_closes_the_alert(app, staff_client, staff_user, make_member, make_plan):
    from membership.plans import services as plans

    plan = make_plan(fee_minor=0)
    m, term, alert = silent_member(make_member, plan)
    page = text(staff_client.get(f"/staff/members/{m.id}"))
    assert 'id="risk-band">High<' in page and 'id="risk-alert"' in page and "no activity for 8 months" in page
    assert "Silent" in text(staff_client.get("/staff/at-risk"))

    plans.renew(db.session, term, today=DAY, now=at(DAY, 10), actor=staff_user)
    db.session.commit()
    db.session.expire_all()
    current = db.session.get(CurrentScore, m.id)
    assert (current.scored_on, current.churn_risk, current.risk_band, current.reasons) == (DAY, 0.0, "low", [])
    alert = db.session.get(RiskAlert, alert.id)
    assert alert.status == "resolved" and alert.close_reason == "Renewed."
    page = text(staff_client.get(f"/staff/members/{m.id}"))
    assert 'id="risk-band">Low<' in page and 'id="risk-alert"' not in page
    assert "no activity for 8 months" not in page
    assert "Silent" not in text(staff_client.get("/staff/at-risk"))


def test_a_staff_contact_or_a_payment_rescores_at_once(app, staff_user, make_member, make_plan):
    from membership.members.services import add_interaction
    from membership.plans.services import PaymentInput, record_payment

    plan = make_plan(fee_minor=0)
    m, term, alert = silent_member(make_member, plan)
    before = db.session.get(CurrentScore, m.id).churn_risk
    add_interaction(db.session, m, channel="call", summary="Called: busy with exams, will come back",
                    outcome=None, follow_up_on=None, occurred_at=at(DAY, 9), actor=staff_user, now=at(DAY, 9))
    db.session.commit()
    db.session.expire_all()
    current = db.session.get(CurrentScore, m.id)
    assert current.last_activity_at == at(DAY, 9) and current.churn_risk < before
    assert not any(r["text"].startswith("no activity for") for r in current.reasons)
    if current.risk_band != "high":
        assert db.session.get(RiskAlert, alert.id).status == "resolved"

    other, _, _ = silent_member(make_member, plan)
    before = db.session.get(CurrentScore, other.id).churn_risk
    record_payment(db.session, PaymentInput(amount_minor=50000, method="cash", received_at=at(DAY, 11)),
                   actor=staff_user, now=at(DAY, 11), member=other, currency="BDT", notify=False)
    db.session.commit()
    db.session.expire_all()
    current = db.session.get(CurrentScore, other.id)
    assert current.last_activity_at == at(DAY, 11) and current.churn_risk < before


def test_a_closed_alert_takes_the_member_off_the_list_until_a_new_episode(app, staff_client, make_member):
    def scored(name, alerts):
        m = make_member(first_name=name)
        db.session.add(CurrentScore(member_id=m.id, scored_on=DAY, engagement=1.0, engagement_band="dormant",
                                    churn_risk=0.8, risk_band="high", reasons=[]))
        for i, status in enumerate(alerts):
            db.session.add(RiskAlert(member_id=m.id, opened_on=DAY - timedelta(days=100 - i), churn_risk=0.8,
                                     reasons=[], status=status))
            db.session.flush()
        return m

    scored("Acted", ["actioned"])                 # staff called: off the list
    scored("Again", ["actioned", "open"])         # a new episode since: back on it
    scored("Resolved", ["resolved"])              # closed by the scoring, still high: on it
    scored("Never", [])                           # high without an alert: on it
    db.session.commit()
    page = text(staff_client.get("/staff/at-risk"))
    names = re.findall(r'class="member-link[^"]*" href="[^"]*">([^<]*)</a>', page)
    firsts = sorted(n.split()[0] for n in names)
    assert firsts == ["Again", "Never", "Resolved"]
