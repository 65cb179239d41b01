"""The campaign pages: compose with bad input (a clear message, nothing written), the campaign page
(recipients, left-out lists, preview, test), Send now clicked twice, schedule, report and list."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from membership.campaigns import services
from membership.campaigns.models import Campaign
from membership.core.models import AuditLog
from membership.core.time import utcnow
from membership.extensions import db
from membership.notifications.models import OutboxMessage

GOOD = {"name": "June news", "kind": "marketing", "en_subject": "News for {{ member.first_name }}",
        "en_body_text": "Hello {{ member.first_name }}", "en_body_html": "<p>Hello {{ member.first_name }}</p>"}


def count(model):
    return db.session.scalar(select(func.count()).select_from(model))


def test_compose_page_starts_from_the_campaign_template(staff_client):
    page = staff_client.get("/staff/campaigns/new")
    assert page.status_code == 200
    assert "News from {{ association_name }}" in page.get_data(as_text=True)


def test_compose_refuses_bad_input_with_a_message_and_writes_nothing(staff_client):
    cases = [({"name": ""}, "Enter a name."),
             ({"en_body_text": "Hi {{ nope }}"}, "Unknown placeholder"),
             ({"en_subject": "", "en_body_text": "", "en_body_html": ""}, "Enter the subject and text"),
             ({"segment": "4242"}, "This saved segment does not exist"),
             ({"kind": "spam"}, "Not a valid choice"),
             ({"bn_subject": "বিষয়"}, "Enter the plain-text body")]
    for change, message in cases:
        response = staff_client.post("/staff/campaigns/new", data={**GOOD, **change})
        assert response.status_code == 422, change
        assert message in response.get_data(as_text=True), change
    assert count(Campaign) == 0


def test_compose_preview_test_and_send_now_clicked_twice(staff_client, make_member, staff_user):
    member = make_member(first_name="Rahima", marketing_opt_in=True, member_number="M000777")
    make_member(first_name="Karim", marketing_opt_in=False)
    db.session.commit()
    response = staff_client.post("/staff/campaigns/new", data={**GOOD, "status": []})
    assert response.status_code == 302
    campaign = db.session.scalar(select(Campaign))
    page = staff_client.get(f"/staff/campaigns/{campaign.id}").get_data(as_text=True)
    assert "News for Rahima" in page  # preview for the first real recipient
    assert 'id="recipient-count"' in page and "<strong>1</strong>" in page
    left_out = staff_client.get(f"/staff/campaigns/{campaign.id}/audience?reason=no_opt_in").get_data(as_text=True)
    assert "Karim" in left_out and "Rahima" not in left_out
    assert staff_client.get(f"/staff/campaigns/{campaign.id}/audience?reason=bogus").status_code == 404
    html = staff_client.get(f"/staff/campaigns/{campaign.id}/preview.html?member=M000777")
    assert html.status_code == 200 and "sandbox" in html.headers["Content-Security-Policy"]
    missing = staff_client.get(f"/staff/campaigns/{campaign.id}?member=nobody@example.org").get_data(as_text=True)
    assert "No member has the number or email" in missing

    test = staff_client.post(f"/staff/campaigns/{campaign.id}/test", data={"member": "M000777", "language": ""})
    assert test.status_code == 302
    row = db.session.scalar(select(OutboxMessage).where(OutboxMessage.to_address == staff_user.email))
    assert row.subject == "[Test] News for Rahima"
    bad_test = staff_client.post(f"/staff/campaigns/{campaign.id}/test", data={"member": "M999", "language": "xx"})
    assert bad_test.status_code == 422

    first = staff_client.post(f"/staff/campaigns/{campaign.id}/send-now", follow_redirects=True)
    assert "Sending" in first.get_data(as_text=True)
    second = staff_client.post(f"/staff/campaigns/{campaign.id}/send-now", follow_redirects=True)
    assert "already scheduled or sent" in second.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(AuditLog)
                             .where(AuditLog.action == "campaign.schedule")) == 1
    db.session.expire_all()
    services.queue_due(db.session, now=utcnow())
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(OutboxMessage)
                             .where(OutboxMessage.source_type == "campaign")) == 1
    report = staff_client.get(f"/staff/campaigns/{campaign.id}").get_data(as_text=True)
    assert 'id="figure-queued"' in report
    assert f"/staff/campaigns/{campaign.id}/members?figure=queued" in report
    queued = staff_client.get(f"/staff/campaigns/{campaign.id}/members?figure=queued").get_data(as_text=True)
    assert "Rahima" in queued
    assert staff_client.get(f"/staff/campaigns/{campaign.id}/members?figure=nope").status_code == 404
    # a sent campaign cannot be edited
    edit = staff_client.get(f"/staff/campaigns/{campaign.id}/edit", follow_redirects=True)
    assert "Only a draft can be changed" in edit.get_data(as_text=True)
    listing = staff_client.get("/staff/campaigns").get_data(as_text=True)
    assert "June news" in listing


def test_schedule_form_bad_times_and_back_to_draft(staff_client, make_member):
    make_member(marketing_opt_in=True)
    db.session.commit()
    staff_client.post("/staff/campaigns/new", data=GOOD)
    campaign = db.session.scalar(select(Campaign))
    for value, message in (("", "Enter the date and time."), ("soon", "like 2026-07-01 09:30"),
                           ("2001-01-01T10:00", "in the future")):
        response = staff_client.post(f"/staff/campaigns/{campaign.id}/schedule", data={"send_at": value})
        assert response.status_code == 422, value
        assert message in response.get_data(as_text=True), value
    db.session.expire_all()
    assert db.session.get(Campaign, campaign.id).status == "draft"
    later = (utcnow() + timedelta(days=2)).astimezone(__import__("zoneinfo").ZoneInfo("Asia/Dhaka"))
    ok = staff_client.post(f"/staff/campaigns/{campaign.id}/schedule", data={"send_at": later.strftime("%Y-%m-%dT%H:%M")})
    assert ok.status_code == 302
    db.session.expire_all()
    assert db.session.get(Campaign, campaign.id).status == "scheduled"
    staff_client.post(f"/staff/campaigns/{campaign.id}/unschedule")
    db.session.expire_all()
    assert db.session.get(Campaign, campaign.id).status == "draft"
    staff_client.post(f"/staff/campaigns/{campaign.id}/delete")
    assert count(Campaign) == 0


def test_edit_a_draft_and_the_list_paginates(staff_client, make_member):
    for i in range(27):
        staff_client.post("/staff/campaigns/new", data={**GOOD, "name": f"C{i:02d}"})
    assert count(Campaign) == 27
    first = db.session.scalar(select(Campaign).where(Campaign.name == "C00"))
    form = staff_client.get(f"/staff/campaigns/{first.id}/edit").get_data(as_text=True)
    assert 'value="C00"' in form and "Hello {{ member.first_name }}" in form
    response = staff_client.post(f"/staff/campaigns/{first.id}/edit",
                                 data={**GOOD, "name": "Renamed", "kind": "service",
                                       "bn_subject": "খবর", "bn_body_text": "প্রিয় {{ member.first_name }}"})
    assert response.status_code == 302
    db.session.expire_all()
    first = db.session.get(Campaign, first.id)
    assert first.name == "Renamed" and first.kind == "service" and {v.language for v in first.versions} == {"en", "bn"}
    page2 = staff_client.get("/staff/campaigns?page=2").get_data(as_text=True)
    assert page2.count('class="campaign"') == 2
    assert staff_client.get("/staff/campaigns").get_data(as_text=True).count('class="campaign"') == 25


def test_members_cannot_reach_the_campaign_pages(client, make_member, make_user):
    from tests.conftest import login
    assert client.get("/staff/campaigns").status_code == 302  # to the sign-in page
    member = make_member()
    make_user("member", email=member.email, member_id=member.id)
    login(client, member.email)
    assert client.get("/staff/campaigns").status_code == 403
    assert client.post("/staff/campaigns/new", data=GOOD).status_code == 403
    assert count(Campaign) == 0
