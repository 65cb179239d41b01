"""My details: contact details, address, language of emails, news on/off, directory listing on/off.
Every change is audited and recorded as the member's own activity; nothing outside the form changes."""
from __future__ import annotations

import re
from datetime import date

import pytest
from sqlalchemy import func, select

from membership.accounts.models import User
from membership.core.models import Activity, AuditLog
from membership.extensions import db
from membership.members.models import Member
from membership.notifications import outbox
from membership.notifications.models import OutboxMessage
from tests.conftest import NOW, login


@pytest.fixture
def me(make_member, make_user):
    member = make_member(first_name="Mitu", last_name="Das", email="mitu@example.org", phone="01811111111",
                         city="Sylhet", country="BD", marketing_opt_in=True)
    user = make_user("member", email="mitu@example.org", name="Mitu Das", member_id=member.id)
    db.session.commit()
    return member, user


def form(**changes) -> dict:
    data = {"first_name": "Mitu", "last_name": "Das", "phone": "+8801811111111", "address_line1": "",
            "address_line2": "", "city": "Sylhet", "postcode": "", "country": "BD", "language": "en",
            "marketing_opt_in": "y"}
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def fresh(member) -> Member:
    db.session.expire_all()
    return db.session.get(Member, member.id)


def audits(member, action="member.update") -> list[AuditLog]:
    return list(db.session.scalars(select(AuditLog).where(AuditLog.member_id == member.id,
                                                          AuditLog.action == action).order_by(AuditLog.id)))


def activities(member, kind="profile_updated") -> list[Activity]:
    return list(db.session.scalars(select(Activity).where(Activity.member_id == member.id, Activity.kind == kind)))


def test_the_page_shows_my_details(client, me):
    member, user = me
    login(client, user)
    page = client.get("/my/profile").get_data(as_text=True)
    assert 'value="Mitu"' in page and 'value="+880 1811-111111"' in page and 'value="Sylhet"' in page
    assert "mitu@example.org" in page and 'href="/account/email"' in page
    assert '<option selected value="BD">Bangladesh</option>' in page
    assert re.search(r'<input checked [^>]*id="marketing_opt_in"', page)
    assert re.search(r'<input class[^>]*id="directory_opt_in"', page)  # not checked


def test_saving_changes_records_them_in_the_audit_log_and_as_an_activity(client, me):
    member, user = me
    login(client, user)
    response = client.post("/my/profile", data=form(phone="01912345678", address_line1="Flat 3, Road 7",
                                                    postcode="3100", language="bn", marketing_opt_in=None,
                                                    directory_opt_in="y"))
    assert response.status_code == 302
    saved = client.get("/my/profile").get_data(as_text=True)
    assert "Saved:" in saved and "directory listing" in saved and "language of emails" in saved
    m = fresh(member)
    assert m.phone == "+8801912345678" and m.address_line1 == "Flat 3, Road 7" and m.postcode == "3100"
    assert m.language == "bn" and m.marketing_opt_in is False and m.directory_opt_in is True
    [update] = audits(member)
    assert update.actor_id == user.id
    assert set(update.changes) == {"phone", "address_line1", "postcode", "language", "directory_opt_in"}
    assert update.changes["phone"] == ["+8801811111111", "+8801912345678"]
    assert audits(member, "member.unsubscribe")  # news turned off: its own audit row
    details = [a.detail for a in activities(member)]
    assert len(details) == 2
    assert {"fields": ["address_line1", "directory_opt_in", "language", "phone", "postcode"]} in details
    assert any(d.get("marketing_opt_in") is False for d in details)


def test_turning_news_off_cancels_news_already_queued(client, me):
    member, user = me
    queued = outbox.enqueue(db.session, template_key="welcome", dedupe_key="news-1", now=NOW, member=member,
                            category="marketing")
    db.session.commit()
    login(client, user)
    client.post("/my/profile", data=form(marketing_opt_in=None))
    assert db.session.get(OutboxMessage, queued.id).status == "cancelled"
    assert fresh(member).marketing_opt_in is False


def test_a_bad_field_says_why_beside_it_and_nothing_is_saved(client, me):
    member, user = me
    login(client, user)
    response = client.post("/my/profile", data=form(phone="123", city="Dhaka", country="Q1", first_name=""))
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Phone: this" in page and "First name is required." in page and "Nothing was saved" in page
    assert 'value="Dhaka"' in page  # what was typed is kept
    assert fresh(member).city == "Sylhet" and not audits(member)


def test_a_name_change_renames_the_login_too(client, me):
    member, user = me
    login(client, user)
    client.post("/my/profile", data=form(first_name="Mithila"))
    assert fresh(member).first_name == "Mithila"
    assert db.session.get(User, user.id).name == "Mithila Das"


def test_saving_without_changes_writes_nothing(client, me):
    member, user = me
    login(client, user)
    response = client.post("/my/profile", data=form(), follow_redirects=True)
    assert "Nothing changed." in response.get_data(as_text=True)
    assert not audits(member) and not activities(member)


def test_fields_outside_the_form_change_nothing(client, me, make_member):
    member, user = me
    other = make_member(email="other@example.org")
    db.session.commit()
    login(client, user)
    client.post("/my/profile", data=form(city="Khulna", email="hacker@example.org", member_number="M999999",
                                         status="active", notes="VIP", joined_on="1990-01-01",
                                         expires_on="2099-12-31", plan_id="1", member_id=str(other.id),
                                         organization_id="1", role="admin", email_verified_at="2020-01-01",
                                         external_id="X1"))
    m = fresh(member)
    assert m.city == "Khulna"
    assert m.email == "mitu@example.org" and m.member_number != "M999999" and m.status == "none"
    assert m.notes is None and m.joined_on == date(2024, 1, 1) and m.expires_on is None
    assert m.organization_id is None and m.external_id is None
    assert db.session.get(User, user.id).role == "member"
    assert fresh(other).city is None
    assert db.session.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.member_id == other.id,
                                                                             AuditLog.action == "member.update")) == 0
