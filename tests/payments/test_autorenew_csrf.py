"""The Stop buttons with CSRF protection on, as in production: the page's token is accepted, a post
without it is refused and stops nothing."""
from __future__ import annotations

import pytest

from membership.extensions import db
from membership.payments.models import SavedCard
from tests.admin.test_forms_with_csrf import csrf_of, login_with_csrf
from tests.conftest import NOW


@pytest.fixture
def app_config():
    return {"WTF_CSRF_ENABLED": True}


@pytest.fixture
def card(app, make_member, make_plan, make_term):
    from datetime import date
    member = make_member()
    make_term(member, make_plan(fee_minor=150000), starts_on=date(2026, 6, 1))
    card = SavedCard(member_id=member.id, provider="fake", customer_ref="cus", payment_method_ref="pm",
                     label="Visa ending 4242", created_at=NOW)
    db.session.add(card)
    db.session.commit()
    return card


def _revoked(card) -> bool:
    db.session.expire_all()
    return db.session.get(SavedCard, card.id).revoked_at is not None


def test_staff_stop_needs_the_token(client, staff_user, card):
    assert login_with_csrf(client, staff_user.email).status_code == 302
    action = f"/staff/members/{card.member_id}/autorenew/stop"
    page = client.get(f"/staff/members/{card.member_id}").text
    assert client.post(action).status_code == 400
    assert not _revoked(card)
    assert client.post(action, data={"csrf_token": csrf_of(page, action)}).status_code == 302
    assert _revoked(card)


def test_member_stop_needs_the_token(client, make_user, card):
    user = make_user("member", email=card.member.email, member_id=card.member_id)
    assert login_with_csrf(client, user.email).status_code == 302
    page = client.get("/my/").text
    assert client.post("/my/autorenew/stop").status_code == 400
    assert not _revoked(card)
    assert client.post("/my/autorenew/stop", data={"csrf_token": csrf_of(page, "/my/autorenew/stop")}).status_code == 302
    assert _revoked(card)
