"""The admin and organisation forms with CSRF protection switched on, as in production: the token
each page renders is accepted, a post without it is refused and writes nothing."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from membership.extensions import db
from membership.members.models import Member, Organization
from membership.members.services import save_organization
from membership.plans.models import Plan
from tests.conftest import NOW


@pytest.fixture
def app_config():
    return {"WTF_CSRF_ENABLED": True}


def csrf_of(page: str, action: str | None = None) -> str:
    part = page.split(f'action="{action}', 1)[1] if action else page
    match = re.search(r'<input[^>]*name="csrf_token"[^>]*>', part)
    return re.search(r'value="([^"]+)"', match.group(0)).group(1)


def login_with_csrf(client, email):
    page = client.get("/login").text
    return client.post("/login", data={"email": email, "password": "correct-horse-battery-42",
                                       "csrf_token": csrf_of(page)})


def test_plan_form_with_csrf(client, admin_user):
    assert login_with_csrf(client, admin_user.email).status_code == 302
    data = {"code": "STD", "name": "Standard", "fee": "10", "period_kind": "rolling", "period_months": "12",
            "grace_days": "30"}
    refused = client.post("/staff/admin/plans/new", data=data)
    assert refused.status_code == 400
    assert db.session.scalar(select(func.count()).select_from(Plan)) == 0
    page = client.get("/staff/admin/plans/new").text
    assert client.post("/staff/admin/plans/new", data={**data, "csrf_token": csrf_of(page)}).status_code == 302
    plan = db.session.scalar(select(Plan))
    listing = client.get("/staff/admin/plans").text
    retire = f"/staff/admin/plans/{plan.id}/retire"
    assert client.post(retire).status_code == 400
    assert client.post(retire, data={"csrf_token": csrf_of(listing, retire)}).status_code == 302


def test_staff_account_forms_with_csrf(client, admin_user, make_user):
    other = make_user("staff", email="other@example.org")
    login_with_csrf(client, admin_user.email)
    page = client.get(f"/staff/admin/users/{other.id}").text
    action = f"/staff/admin/users/{other.id}/role"
    assert client.post(action, data={"role": "admin"}).status_code == 400
    assert client.post(action, data={"role": "admin", "csrf_token": csrf_of(page, action)}).status_code == 302
    new = client.get("/staff/admin/users/new").text
    response = client.post("/staff/admin/users/new", data={"name": "N", "email": "n@example.org", "role": "staff",
                                                           "mode": "invite", "csrf_token": csrf_of(new)})
    assert response.status_code == 302


def test_organisation_page_forms_with_csrf(client, staff_user, make_plan, make_member):
    plan = make_plan(code="CORP", is_organizational=True, fee_minor=0)
    org = save_organization(db.session, {"name": "Dhaka Traders Ltd"}, actor=None, now=NOW)
    member = make_member()
    db.session.commit()
    login_with_csrf(client, staff_user.email)
    page = client.get(f"/staff/organizations/{org.id}").text
    contacts = f"/staff/organizations/{org.id}/contacts"
    assert client.post(contacts, data={"contact-lookup": member.email}).status_code == 400
    ok = client.post(contacts, data={"contact-lookup": member.email, "csrf_token": csrf_of(page, contacts)})
    assert ok.status_code == 302
    membership = f"/staff/organizations/{org.id}/membership"
    page = client.get(f"/staff/organizations/{org.id}").text
    key = re.search(r'name="membership-idempotency_key"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*'
                    r'name="membership-idempotency_key"', page)
    assert key, "the membership form carries an idempotency key"
    data = {"membership-plan": str(plan.id), "membership-method": "cash", "membership-term_id": "",
            "csrf_token": csrf_of(page, membership)}
    assert client.post(membership, data=data).status_code == 302
    db.session.expire_all()
    assert db.session.get(Organization, org.id).status == "active"
    assert db.session.get(Member, member.id).status == "active"
    new = client.get("/staff/organizations/new").text
    assert client.post("/staff/organizations/new", data={"name": "X Ltd"}).status_code == 400
    assert client.post("/staff/organizations/new", data={"name": "X Ltd", "csrf_token": csrf_of(new)}
                       ).status_code == 302
