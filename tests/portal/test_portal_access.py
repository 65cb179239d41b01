"""Access control of the portal pages of membership.portal.views, the joining pages and the account
pages: a member reads and changes only their own records. The routes are read from the app, so a
route added to these modules later is walked too."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from membership.accounts.models import User
from membership.core.models import AuditLog
from membership.core.time import local_today
from membership.extensions import db
from membership.members.models import Member
from membership.plans.models import Membership, Payment
from membership.plans.services import PaymentInput, join
from tests.conftest import NOW, login

MODULES = ("membership.portal.views", "membership.signup.views", "membership.auth.views_account")


def my_routes(app):
    found = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        view = app.view_functions.get(rule.endpoint)
        if view is not None and view.__module__ in MODULES:
            found.append(rule)
    assert any(r.endpoint == "portal.receipt" for r in found) and any(r.endpoint == "signup.apply" for r in found)
    return found


@pytest.fixture
def world(make_member, make_user, make_plan):
    """Two members with a paid term each; A is signed in, B's ids are the ones tried."""
    plan = make_plan(name="Standard", fee_minor=100000)
    today = local_today()
    people = {}
    for key, first, email in (("a", "Alice", "alice@example.org"), ("b", "Bashir", "bashir@example.org")):
        member = make_member(first_name=first, last_name="Zaman", email=email, city=f"{first}pur")
        term = join(db.session, member, plan, today=today - timedelta(days=300), now=NOW, actor=None,
                    starts_on=today - timedelta(days=300),
                    payment=PaymentInput(amount_minor=100000, method="cash", received_at=NOW))
        user = make_user("member", email=email, member_id=member.id)
        people[key] = {"member": member, "term": term, "payment": term.payments[0], "user": user}
    db.session.commit()
    return people


def ids_of(person) -> dict:
    return {"payment_id": person["payment"].id, "term_id": person["term"].id, "member_id": person["member"].id,
            "plan_id": person["term"].plan_id, "token": "not-a-token"}


def build(app, rule, ids) -> str:
    return app.url_map.bind("localhost").build(rule.endpoint, {a: ids.get(a, 1) for a in rule.arguments})


def snapshot():
    db.session.expire_all()
    return {"members": [tuple(r) for r in db.session.execute(select(Member.id, Member.email, Member.city,
                                                                    Member.status, Member.updated_at))],
            "terms": db.session.scalar(select(func.count()).select_from(Membership)),
            "payments": db.session.scalar(select(func.count()).select_from(Payment)),
            "users": [tuple(r) for r in db.session.execute(select(User.id, User.email, User.role,
                                                                  User.password_hash))]}


def test_visitors_are_sent_to_sign_in_from_every_member_page(app, client, world):
    wrong = []
    for rule in my_routes(app):
        if not rule.rule.startswith("/my"):
            continue
        for method in ("GET", "POST"):
            if method in rule.methods:
                response = client.open(build(app, rule, ids_of(world["b"])), method=method)
                if response.status_code != 302 or not response.headers["Location"].startswith("/login"):
                    wrong.append((method, rule.rule, response.status_code))
    assert wrong == []


def test_another_members_ids_are_never_found(app, client, world):
    a, b = world["a"], world["b"]
    login(client, a["user"])
    before = snapshot()
    walked, wrong = 0, []
    for rule in my_routes(app):
        if not (rule.arguments & {"payment_id", "term_id", "member_id"}):
            continue
        url = build(app, rule, ids_of(b))
        for method in ("GET", "POST"):
            if method not in rule.methods:
                continue
            walked += 1
            response = client.open(url, method=method, data={"term_id": str(b["term"].id)})
            if response.status_code not in (403, 404):
                wrong.append((method, url, response.status_code))
            elif "Bashir" in response.get_data(as_text=True):
                wrong.append((method, url, "shows the other member"))
    assert walked >= 1 and wrong == []
    # The same URLs with A's own ids work: the walk above was refused for the right reason.
    assert client.get(f"/my/payments/{a['payment'].id}/receipt").status_code == 200
    assert snapshot() == before


def test_a_renewal_naming_another_members_term_is_not_found(client, world):
    a, b = world["a"], world["b"]
    login(client, a["user"])
    before = snapshot()
    response = client.post("/my/renew", data={"term_id": str(b["term"].id), "plan": str(b["term"].plan_id)})
    assert response.status_code == 404
    assert snapshot() == before
    assert client.post("/my/renew", data={"term_id": str(a["term"].id), "plan": str(a["term"].plan_id)}
                       ).status_code == 302
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(Membership)
                             .where(Membership.member_id == b["member"].id)) == 1


def test_every_page_without_ids_shows_only_my_own_data(app, client, world):
    a, b = world["a"], world["b"]
    login(client, a["user"])
    leaks = []
    for rule in my_routes(app):
        if rule.arguments or "GET" not in rule.methods or not rule.rule.startswith("/my"):
            continue
        response = client.get(rule.rule)
        body = response.get_data(as_text=True)
        for secret in ("Bashir", "bashir@example.org", b["member"].member_number, b["payment"].receipt_number,
                       "Bashirpur"):
            if secret in body:
                leaks.append((rule.rule, secret))
    assert leaks == []
    home = client.get("/my/").get_data(as_text=True)
    assert "Alice" in home and a["payment"].receipt_number in home


def test_fields_outside_the_forms_change_nothing_anywhere(client, world):
    """role, status, member_id, member_number, ends_on, email_verified_at and friends, added to every
    form of the portal, are ignored."""
    a, b = world["a"], world["b"]
    login(client, a["user"])
    extra = {"role": "admin", "status": "lapsed", "member_id": str(b["member"].id), "member_number": "X1",
             "ends_on": "2099-12-31", "email_verified_at": "2020-01-01", "is_active": "0", "user_id": str(b["user"].id),
             "email": "bashir@example.org", "expires_on": "2099-12-31", "plan_id": "999"}
    profile = {"first_name": "Alice", "last_name": "Zaman", "city": "Alicenagar", "country": "", "language": "en"}
    assert client.post("/my/profile", data={**profile, **extra}).status_code == 302
    client.post("/my/renew", data={"term_id": str(a["term"].id), "plan": str(a["term"].plan_id), **extra})
    db.session.expire_all()
    alice = db.session.get(Member, a["member"].id)
    bashir = db.session.get(Member, b["member"].id)
    assert alice.city == "Alicenagar" and alice.email == "alice@example.org" and alice.member_number != "X1"
    assert alice.status == "active" and bashir.city == "Bashirpur"
    user = db.session.get(User, a["user"].id)
    assert user.role == "member" and user.is_active and user.email_verified_at is None
    new = db.session.scalar(select(Membership).where(Membership.renews_id == a["term"].id))
    assert new is not None and new.ends_on.year < 2099 and new.member_id == a["member"].id
    assert not db.session.scalar(select(func.count()).select_from(AuditLog).where(
        AuditLog.member_id == b["member"].id, AuditLog.actor_id == a["user"].id))


def test_staff_have_no_member_portal(client, staff_user):
    login(client, staff_user)
    assert client.get("/my/").status_code == 403
    assert client.get("/my/renew").status_code == 403


def test_a_member_cannot_reach_the_approval_queue(client, world):
    login(client, world["a"]["user"])
    assert client.get("/staff/applications").status_code == 403
    assert client.post(f"/staff/applications/{world['b']['term'].id}/approve").status_code == 403
    assert client.post(f"/staff/applications/{world['b']['term'].id}/decline", data={"reason": "x"}).status_code == 403
