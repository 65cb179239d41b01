"""Staff engagement pages: the member page's card, the alert action, the timeline, tags, at-risk list,
and who may see them (issue 6). Scores are inserted by hand: the scoring job is not under test here."""
from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from membership.core.models import Activity, AuditLog
from membership.core.services import record_activity
from membership.engagement.models import CurrentScore, MemberScore, RiskAlert
from membership.extensions import db
from membership.members.models import Interaction, MemberTag
from tests.conftest import NOW, TODAY, login


def text(response) -> str:
    return html.unescape(re.sub(r"\s+", " ", response.get_data(as_text=True)))


def score(member, day, engagement, band, risk=None, risk_band=None, reasons=None, breakdown=None, current=False,
          last_activity_at=None):
    db.session.add(MemberScore(member_id=member.id, scored_on=day, engagement=engagement, engagement_band=band,
                               churn_risk=risk, risk_band=risk_band, reasons=reasons, breakdown=breakdown))
    if current:
        db.session.add(CurrentScore(member_id=member.id, scored_on=day, engagement=engagement, engagement_band=band,
                                    churn_risk=risk, risk_band=risk_band, reasons=reasons,
                                    last_activity_at=last_activity_at))
    db.session.flush()


REASONS = [{"text": "no event attended in 14 months", "weight": 0.9},
           {"text": "opened none of the last 6 emails", "weight": 0.5},
           {"text": "renewed late twice", "weight": 0.3}]


def alert_for(member, **kw):
    row = RiskAlert(member_id=member.id, opened_on=kw.pop("opened_on", TODAY), churn_risk=kw.pop("churn_risk", 0.82),
                    reasons=REASONS, suggested_action=kw.pop("suggested_action", "Call to invite to the AGM"), **kw)
    db.session.add(row)
    db.session.flush()
    return row


# ---------------------------------------------------------------- the card


def test_the_card_shows_score_band_breakdown_trend_risk_and_reasons(staff_client, make_member):
    m = make_member()
    score(m, TODAY - timedelta(days=95), 20.0, "engaged")
    score(m, TODAY - timedelta(days=80), 30.0, "engaged")  # less than 90 days back: not the comparison
    score(m, TODAY, 12.5, "drifting", 0.734, "high", REASONS,
          {"event_attended": 8.0, "email_opened": 3.5, "logged_in": 1.0}, current=True)
    db.session.commit()
    page = text(staff_client.get(f"/staff/members/{m.id}"))
    assert 'id="engagement-score">12.5<' in page
    assert 'id="engagement-band">Drifting<' in page
    assert "Down 7.5 since" in page and "(was 20.0)" in page
    assert 'id="churn-risk">73%<' in page and 'id="risk-band">High<' in page
    for r in REASONS:
        assert r["text"] in page
    breakdown = page[page.index('id="engagement-breakdown"'):]
    assert breakdown.index("Attended an event") < breakdown.index("Opened an email") < breakdown.index("Signed in")
    assert "8.0" in breakdown and "3.5" in breakdown


def test_the_card_without_history(staff_client, make_member):
    m = make_member()
    score(m, TODAY, 5.0, "dormant", current=True)
    db.session.commit()
    page = text(staff_client.get(f"/staff/members/{m.id}"))
    assert "Trend: no history yet." in page
    assert "No churn risk: no current membership term." in page


def test_the_card_before_any_scoring(staff_client, make_member):
    m = make_member()
    db.session.commit()
    page = text(staff_client.get(f"/staff/members/{m.id}"))
    assert 'id="engagement-none"' in page


# ---------------------------------------------------------------- acting on an alert


def test_recording_an_action_creates_the_interaction_and_closes_the_alert(staff_client, staff_user, make_member):
    m = make_member()
    score(m, TODAY, 3.0, "dormant", 0.82, "high", REASONS, current=True)
    alert = alert_for(m)
    db.session.commit()
    page = text(staff_client.get(f"/staff/members/{m.id}"))
    assert 'id="risk-alert"' in page and "Suggested: Call to invite to the AGM" in page
    response = staff_client.post(f"/staff/members/{m.id}/alert-action", data={
        "alert_id": alert.id, "action_channel": "call", "action_summary": "Called; will come to the AGM",
        "action_outcome": "Will renew"})
    assert response.status_code == 302
    db.session.expire_all()
    alert = db.session.get(RiskAlert, alert.id)
    interaction = db.session.get(Interaction, alert.interaction_id)
    assert alert.status == "actioned" and alert.closed_by_id == staff_user.id and alert.closed_at is not None
    assert interaction.member_id == m.id and interaction.summary == "Called; will come to the AGM"
    assert interaction.outcome == "Will renew" and interaction.channel == "call"
    assert db.session.scalar(select(AuditLog).where(AuditLog.action == "risk_alert.action")) is not None
    # A second post records nothing more.
    staff_client.post(f"/staff/members/{m.id}/alert-action", data={
        "alert_id": alert.id, "action_channel": "call", "action_summary": "again"})
    assert len(db.session.scalars(select(Interaction).where(Interaction.member_id == m.id)).all()) == 1
    assert 'id="risk-alert"' not in text(staff_client.get(f"/staff/members/{m.id}"))


def test_an_action_without_summary_keeps_the_alert_open(staff_client, make_member):
    m = make_member()
    alert = alert_for(m)
    db.session.commit()
    response = staff_client.post(f"/staff/members/{m.id}/alert-action", data={
        "alert_id": alert.id, "action_channel": "call", "action_summary": ""})
    assert response.status_code == 422
    assert "Write what was said or done." in text(response)
    db.session.expire_all()
    assert db.session.get(RiskAlert, alert.id).status == "open"
    assert db.session.scalars(select(Interaction)).all() == []


def test_an_alert_of_another_member_is_not_closed(staff_client, make_member):
    m, other = make_member(), make_member()
    alert = alert_for(other)
    db.session.commit()
    staff_client.post(f"/staff/members/{m.id}/alert-action", data={
        "alert_id": alert.id, "action_channel": "call", "action_summary": "x"})
    db.session.expire_all()
    assert db.session.get(RiskAlert, alert.id).status == "open"


def test_a_failing_interaction_leaves_the_alert_open(staff_client, make_member, monkeypatch):
    from membership.members import services
    m = make_member()
    alert = alert_for(m)
    db.session.commit()

    def boom(*a, **kw):
        from membership.core.errors import ValidationError
        raise ValidationError("Choose how you were in touch.", field="channel")
    monkeypatch.setattr(services, "add_interaction", boom)
    response = staff_client.post(f"/staff/members/{m.id}/alert-action", data={
        "alert_id": alert.id, "action_channel": "call", "action_summary": "x"})
    assert response.status_code == 422
    db.session.expire_all()
    assert db.session.get(RiskAlert, alert.id).status == "open"


# ---------------------------------------------------------------- timeline


def test_the_timeline_filters_by_kind_and_pages(staff_client, make_member):
    m = make_member()
    for i in range(60):
        record_activity(db.session, member_id=m.id, kind="logged_in", occurred_at=NOW - timedelta(days=i))
    for i in range(3):
        record_activity(db.session, member_id=m.id, kind="email_opened", occurred_at=NOW - timedelta(hours=i))
    db.session.commit()
    total = db.session.query(Activity).filter_by(member_id=m.id).count()
    page = staff_client.get(f"/staff/members/{m.id}/activity").get_data(as_text=True)
    assert f"{total} activities" in page
    assert page.count('class="activity"') == 50
    page2 = staff_client.get(f"/staff/members/{m.id}/activity?page=2").get_data(as_text=True)
    assert page2.count('class="activity"') == total - 50
    opened = staff_client.get(f"/staff/members/{m.id}/activity?kind=email_opened").get_data(as_text=True)
    assert opened.count('class="activity"') == 3 and 'data-kind="logged_in"' not in opened
    assert "3 activities" in opened
    # an unknown kind is ignored, not an error
    assert staff_client.get(f"/staff/members/{m.id}/activity?kind=%00drop").status_code == 200
    assert staff_client.get(f"/staff/members/{m.id}/activity?page=abc").status_code == 200


# ---------------------------------------------------------------- tags


def test_staff_add_and_remove_tags_audited(staff_client, make_member):
    m = make_member()
    db.session.commit()
    assert staff_client.post(f"/staff/members/{m.id}/tags", data={"tag": "  Board  Member "}).status_code == 302
    staff_client.post(f"/staff/members/{m.id}/tags", data={"tag": "board member"})  # the same tag
    staff_client.post(f"/staff/members/{m.id}/tags", data={"tag": "volunteer"})
    tags = db.session.scalars(select(MemberTag.tag).where(MemberTag.member_id == m.id).order_by(MemberTag.tag)).all()
    assert tags == ["board member", "volunteer"]
    page = text(staff_client.get(f"/staff/members/{m.id}"))
    assert "board member" in page and "volunteer" in page
    staff_client.post(f"/staff/members/{m.id}/tags/remove", data={"tag": "volunteer"})
    assert db.session.scalars(select(MemberTag.tag).where(MemberTag.member_id == m.id)).all() == ["board member"]
    actions = db.session.scalars(select(AuditLog.action).where(AuditLog.member_id == m.id,
                                                               AuditLog.action.like("member.tag%"))).all()
    assert sorted(actions) == ["member.tag_add", "member.tag_add", "member.tag_remove"]
    staff_client.post(f"/staff/members/{m.id}/tags", data={"tag": ""})
    assert len(db.session.scalars(select(MemberTag).where(MemberTag.member_id == m.id)).all()) == 1


# ---------------------------------------------------------------- at risk


@pytest.fixture
def at_risk_world(make_member, make_plan):
    gold, silver = make_plan(name="Gold"), make_plan(name="Silver")
    people = {}
    for name, plan, days, band, risk, alert_day in [
        ("Hana", gold, 20, "high", 0.9, TODAY - timedelta(days=1)),
        ("Ivo", gold, 50, "high", 0.7, TODAY - timedelta(days=5)),
        ("Jun", silver, 80, "high", 0.8, None),
        ("Kai", silver, 10, "medium", 0.4, None),
        ("Lia", gold, 200, "low", 0.1, None),
    ]:
        m = make_member(first_name=name, last_name="Risk")
        m.plan_id, m.expires_on, m.status = plan.id, TODAY + timedelta(days=days), "active"
        score(m, TODAY, 1.0, "dormant", risk, band, REASONS, current=True)
        if alert_day:
            alert_for(m, opened_on=alert_day, churn_risk=risk, suggested_action=f"Call {name}")
        people[name] = m
    db.session.commit()
    return {"gold": gold, "silver": silver, **people}


def risk_names(response):
    assert response.status_code == 200
    return [html.unescape(n).split()[0] for n in
            re.findall(r'class="member-link[^"]*" href="[^"]*">([^<]*)</a>', response.get_data(as_text=True))]


def test_the_at_risk_list_and_its_filters(staff_client, at_risk_world, monkeypatch):
    from membership.core import time as clock
    monkeypatch.setattr(clock, "local_today", lambda now=None: TODAY)
    w = at_risk_world
    assert risk_names(staff_client.get("/staff/at-risk")) == ["Hana", "Ivo", "Jun"]  # newest alert first
    assert risk_names(staff_client.get("/staff/at-risk?band=medium")) == ["Kai"]
    assert risk_names(staff_client.get(f"/staff/at-risk?plan_id={w['gold'].id}")) == ["Hana", "Ivo"]
    assert risk_names(staff_client.get("/staff/at-risk?within=30")) == ["Hana"]
    assert risk_names(staff_client.get("/staff/at-risk?within=60")) == ["Hana", "Ivo"]
    assert risk_names(staff_client.get(f"/staff/at-risk?within=90&plan_id={w['silver'].id}")) == ["Jun"]
    page = text(staff_client.get("/staff/at-risk"))
    assert "Call Hana" in page and "no event attended in 14 months" in page and "20 days left" in page
    assert f'/staff/members/{w["Hana"].id}#alert-action' in page
    for bad in ("band=x", "within=7", "plan_id=abc", "page=-1"):
        assert staff_client.get(f"/staff/at-risk?{bad}").status_code == 200


def test_the_navigation_has_at_risk_after_members(staff_client):
    page = staff_client.get("/staff/members").get_data(as_text=True)
    assert page.index(">Members</a>") < page.index(">At risk</a>") < page.index(">Organisations</a>")


# ---------------------------------------------------------------- who may see them


PAGES = ["/staff/at-risk", "/staff/segments", "/staff/members/{id}/activity"]
POSTS = ["/staff/members/{id}/alert-action", "/staff/members/{id}/tags", "/staff/members/{id}/tags/remove",
         "/staff/segments/new", "/staff/segments/1/rename", "/staff/segments/1/delete"]


def test_members_and_anonymous_visitors_are_refused(client, make_member, make_user):
    m = make_member()
    db.session.commit()
    for url in PAGES + POSTS:
        response = client.open(url.format(id=m.id), method="POST" if url in POSTS else "GET")
        assert response.status_code == 302 and response.headers["Location"].startswith("/login"), url
    user = make_user("member", member_id=m.id)
    login(client, user)
    for url in PAGES + POSTS:
        response = client.open(url.format(id=m.id), method="POST" if url in POSTS else "GET")
        assert response.status_code == 403, url


class TestCsrf:
    @pytest.fixture
    def app_config(self):
        return {"WTF_CSRF_ENABLED": True}

    def test_every_engagement_post_needs_the_token(self, client, staff_user, make_member):
        m = make_member()
        alert = alert_for(m)
        db.session.add(MemberTag(member_id=m.id, tag="x"))
        db.session.commit()
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"',
                          client.get("/login").get_data(as_text=True)).group(1)
        assert client.post("/login", data={"email": staff_user.email, "password": "correct-horse-battery-42",
                                           "csrf_token": token}).status_code == 302
        for url in POSTS:
            response = client.post(url.format(id=m.id), data={"alert_id": alert.id, "action_summary": "x",
                                                              "tag": "x", "name": "x"})
            assert response.status_code == 400, url
        db.session.expire_all()
        assert db.session.get(RiskAlert, alert.id).status == "open"
        assert db.session.scalars(select(MemberTag.tag)).all() == ["x"]
