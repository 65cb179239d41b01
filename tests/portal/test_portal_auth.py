"""Members signing in: landing on the portal, `next`, forgotten passwords (single-use, expiring links,
the same answer for every address), change of password and of email address, sign-out everywhere."""
from __future__ import annotations

import re
import time

import pytest
from itsdangerous import TimestampSigner
from sqlalchemy import func, select

from membership.accounts import services as accounts
from membership.accounts.models import User
from membership.core.models import Activity, AuditLog
from membership.extensions import db
from membership.members.models import Member
from tests.conftest import NOW, PASSWORD, login
from tests.portal.helpers import emails, link_path

NEW_PASSWORD = "velvet-harbour-compass-27"


@pytest.fixture
def member(make_member):
    return make_member(first_name="Farida", last_name="Begum", email="farida@example.org")


@pytest.fixture
def member_user(make_user, member):
    user = make_user("member", email="farida@example.org", name="Farida Begum", member_id=member.id)
    db.session.commit()
    return user


def fresh(model, ident):
    db.session.expire_all()
    return db.session.get(model, ident)


def signed_in(client) -> bool:
    return client.get("/my/").status_code == 200


def copy_cookies(source, target) -> None:
    for name in ("session", "remember_token"):
        cookie = source.get_cookie(name)
        if cookie is not None:
            target.set_cookie(name, cookie.value)


def page_without_tokens(response, email: str) -> str:
    body = response.get_data(as_text=True).replace(email, "EMAIL")
    return re.sub(r'name="csrf_token" type="hidden" value="[^"]*"', "", body)


# ---------------------------------------------------------------- signing in


def test_a_member_signs_in_and_lands_on_the_portal(client, member_user):
    response = login(client, member_user)
    assert response.status_code == 302 and response.headers["Location"] == "/my/"
    assert "Hello Farida" in client.get("/my/").get_data(as_text=True)


def test_the_renewal_link_of_a_reminder_lands_on_the_renewal_page_after_sign_in(client, member_user):
    response = client.get("/my/renew")
    assert response.status_code == 302 and response.headers["Location"] == "/login?next=%2Fmy%2Frenew"
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert 'value="/my/renew"' in page
    response = client.post("/login", data={"email": member_user.email, "password": PASSWORD, "next": "/my/renew"})
    assert response.headers["Location"] == "/my/renew"


def test_sign_out_ends_every_copy_of_the_session(app, client, member_user):
    login(client, member_user)
    other_device = app.test_client()
    copy_cookies(client, other_device)
    assert signed_in(other_device)
    client.post("/logout")
    assert not signed_in(client) and not signed_in(other_device)


# ---------------------------------------------------------------- forgotten password


def test_forgot_password_gives_the_same_answer_for_every_address(client, member_user, make_user):
    gone = make_user("member", email="gone@example.org")
    accounts.set_active(db.session, gone, False, actor=None, now=NOW)
    db.session.commit()
    pages = []
    for email in ("farida@example.org", "nobody@example.org", "gone@example.org"):
        response = client.post("/password/forgot", data={"email": email})
        assert response.status_code == 200
        pages.append(page_without_tokens(response, email))
    assert pages[0] == pages[1] == pages[2]
    assert "we have sent it a link" in pages[0]
    assert [m.to_address for m in emails("password_reset")] == ["farida@example.org"]


def test_a_reset_link_sets_a_new_password_once_and_ends_other_sessions(app, client, member_user):
    old_device = app.test_client()
    login(old_device, member_user)
    client.post("/password/forgot", data={"email": "FARIDA@example.org "})
    [message] = emails("password_reset")
    assert "1 hour" in message.body_text
    path = link_path(message, "/password/reset/")

    page = client.get(path)
    assert page.status_code == 200 and "Choose a new password" in page.get_data(as_text=True)
    weak = client.post(path, data={"new_password": "password123", "confirm": "password123"})
    assert weak.status_code == 422 and "too common" in weak.get_data(as_text=True)

    response = client.post(path, data={"new_password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert response.status_code == 302 and response.headers["Location"] == "/my/"
    assert signed_in(client)
    assert not signed_in(old_device)  # every other session ended
    client.post("/logout")
    assert login(client, member_user, PASSWORD).status_code == 401
    assert login(client, member_user, NEW_PASSWORD).status_code == 302

    client.post("/logout")
    used = client.get(path)
    assert used.status_code == 410 and "already used" in used.get_data(as_text=True)
    assert client.post(path, data={"new_password": "another-fine-passphrase-1",
                                   "confirm": "another-fine-passphrase-1"}).status_code == 410
    assert login(client, member_user, NEW_PASSWORD).status_code == 302


def test_a_reset_link_expires_after_an_hour(client, member_user, monkeypatch):
    client.post("/password/forgot", data={"email": "farida@example.org"})
    path = link_path(emails("password_reset")[0], "/password/reset/")
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: int(time.time()) + 3601)
    response = client.post(path, data={"new_password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert response.status_code == 410 and "expired" in response.get_data(as_text=True)
    assert accounts.authenticate(db.session, "farida@example.org", PASSWORD) is not None


@pytest.mark.parametrize("token", ["not-a-token", "x" * 300])
def test_a_broken_reset_link_is_not_found(client, token):
    assert client.get(f"/password/reset/{token}").status_code == 404


def test_a_member_added_by_staff_gets_a_login_through_forgot_password(client, make_member):
    member = make_member(first_name="Jamal", email="jamal@example.org")
    db.session.commit()
    client.post("/password/forgot", data={"email": "jamal@example.org"})
    user = db.session.scalar(select(User).where(User.member_id == member.id))
    assert user is not None and user.role == "member" and user.password_hash is None
    path = link_path(emails("password_reset", to="jamal@example.org")[0], "/password/reset/")
    response = client.post(path, data={"new_password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert response.status_code == 302 and "Hello Jamal" in client.get("/my/").get_data(as_text=True)
    assert fresh(User, user.id).email_verified_at is not None


def test_a_staff_user_can_reset_too_and_lands_on_the_staff_home(client, staff_user):
    client.post("/password/forgot", data={"email": "staff@example.org"})
    path = link_path(emails("password_reset")[0], "/password/reset/")
    response = client.post(path, data={"new_password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert response.headers["Location"] == "/staff/"


class TestForgotPasswordLimits:
    @pytest.fixture
    def app_config(self):
        return {"RATELIMIT_ENABLED": True, "EMAIL_LINK_LIMIT": "3 per hour"}

    def test_one_address_can_ask_only_a_few_times(self, client, member_user):
        for _ in range(3):
            assert client.post("/password/forgot", data={"email": "farida@example.org"}).status_code == 200
        assert client.post("/password/forgot", data={"email": "Farida@example.org"}).status_code == 429
        assert len(emails("password_reset")) == 3


# ---------------------------------------------------------------- change password


def test_a_member_changes_their_password_with_the_current_one(app, client, member_user):
    login(client, member_user)
    other_device = app.test_client()
    copy_cookies(client, other_device)
    page = client.get("/account/password").get_data(as_text=True)
    assert "Change password" in page and "Member navigation" in page
    wrong = client.post("/account/password", data={"current_password": "not-my-password-1",
                                                   "new_password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert wrong.status_code == 422
    response = client.post("/account/password", data={"current_password": PASSWORD, "new_password": NEW_PASSWORD,
                                                      "confirm": NEW_PASSWORD})
    assert response.status_code == 302 and response.headers["Location"] == "/my/"
    assert signed_in(client) and not signed_in(other_device)


# ---------------------------------------------------------------- change email


def test_change_email_confirms_the_new_address_and_tells_the_old_one(client, member_user, member):
    login(client, member_user)
    page = client.get("/account/email").get_data(as_text=True)
    assert "farida@example.org" in page

    wrong = client.post("/account/email", data={"email": "farida.new@example.org", "current_password": "nope-nope-1"})
    assert wrong.status_code == 422 and "This is not your password." in wrong.get_data(as_text=True)
    assert not emails("email_change_confirm")

    response = client.post("/account/email", data={"email": "Farida.New@example.org", "current_password": PASSWORD})
    assert response.status_code == 302
    assert fresh(User, member_user.id).email == "farida@example.org"  # nothing changes before the link
    [confirm] = emails("email_change_confirm")
    assert confirm.to_address == "Farida.New@example.org" and "farida@example.org" in confirm.body_text
    path = link_path(confirm, "/account/email/confirm/")

    assert client.get(path).status_code == 200
    assert fresh(Member, member.id).email == "farida@example.org"
    response = client.post(path)
    assert response.status_code == 302 and response.headers["Location"] == "/my/"
    user = fresh(User, member_user.id)
    assert user.email == "Farida.New@example.org" and user.email_normalized == "farida.new@example.org"
    assert fresh(Member, member.id).email == "Farida.New@example.org"
    [notice] = emails("email_changed")
    assert notice.to_address == "farida@example.org" and "Farida.New@example.org" in notice.body_text
    actions = set(db.session.scalars(select(AuditLog.action).where(AuditLog.member_id == member.id)))
    assert {"user.email", "member.update", "user.email_change_request"} <= actions
    assert "profile_updated" in set(db.session.scalars(select(Activity.kind).where(Activity.member_id == member.id)))

    # The link works once; the new address signs in, the old one no longer does.
    assert client.post(path).status_code == 410
    client.post("/logout")
    assert login(client, "farida@example.org").status_code == 401
    assert login(client, "farida.new@example.org").status_code == 302


@pytest.mark.parametrize("email, message", [
    ("farida@example.org", "already your email address"),
    ("taken@example.org", "cannot be used"),
    ("not an address", "Email:"),
])
def test_an_unusable_new_address_is_refused(client, member_user, make_member, email, message):
    make_member(email="taken@example.org")
    db.session.commit()
    login(client, member_user)
    response = client.post("/account/email", data={"email": email, "current_password": PASSWORD})
    assert response.status_code == 422 and message in response.get_data(as_text=True)
    assert not emails("email_change_confirm")


def test_an_address_taken_before_the_link_is_used_is_not_given_twice(client, member_user, make_member):
    login(client, member_user)
    client.post("/account/email", data={"email": "race@example.org", "current_password": PASSWORD})
    path = link_path(emails("email_change_confirm")[0], "/account/email/confirm/")
    make_member(email="race@example.org")
    db.session.commit()
    response = client.post(path)
    assert response.status_code == 409 and "used by another account" in response.get_data(as_text=True)
    assert fresh(User, member_user.id).email == "farida@example.org"


def test_change_email_needs_a_signed_in_user(client):
    response = client.get("/account/email")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    assert db.session.scalar(select(func.count()).select_from(User)) == 0


# ---------------------------------------------------------------- before the address is confirmed


def test_an_unconfirmed_applicant_with_a_wrong_password_gets_the_usual_answer(client, make_plan):
    from tests.portal.helpers import join
    plan = make_plan(fee_minor=0)
    db.session.commit()
    join(client, plan, email="new@example.org")
    unknown = client.post("/login", data={"email": "nobody@example.org", "password": "wrong-password-77"})
    waiting = client.post("/login", data={"email": "new@example.org", "password": "wrong-password-77"})
    assert unknown.status_code == waiting.status_code == 401
    assert page_without_tokens(unknown, "nobody@example.org") == page_without_tokens(waiting, "new@example.org")


def test_a_password_reset_before_confirming_also_confirms_and_finishes_joining(client, make_plan):
    from membership.plans.models import Membership
    from tests.portal.helpers import join
    plan = make_plan(fee_minor=0)
    db.session.commit()
    join(client, plan, email="forgetful@example.org")
    client.post("/password/forgot", data={"email": "forgetful@example.org"})
    path = link_path(emails("password_reset", to="forgetful@example.org")[0], "/password/reset/")
    response = client.post(path, data={"new_password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert response.status_code == 302 and response.headers["Location"] == "/my/"
    assert "Your membership is active." in client.get("/my/").get_data(as_text=True)
    user = db.session.scalar(select(User).where(User.email_normalized == "forgetful@example.org"))
    assert user.is_active and user.email_verified_at is not None
    assert db.session.scalar(select(func.count()).select_from(Membership)) == 1
