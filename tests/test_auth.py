"""Signing in and out: messages that reveal nothing, rate limits, session renewal and revocation,
`next` redirects, password change and staff invitations."""
from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from membership.accounts import services as accounts
from membership.accounts.models import User
from membership.extensions import db
from tests.conftest import NOW, PASSWORD, login

WRONG = "not-the-password-99"


def is_signed_in(client) -> bool:
    response = client.get("/staff/")
    return response.status_code == 200


def copy_cookies(source, target) -> None:
    """A stolen cookie: the same session and remember-me cookies in another browser."""
    for name in ("session", "remember_token"):
        cookie = source.get_cookie(name)
        if cookie is not None:
            target.set_cookie(name, cookie.value)


# ---------------------------------------------------------------- signing in


def test_staff_sign_in_lands_on_the_staff_home(client, staff_user):
    response = login(client, staff_user)
    assert response.status_code == 302 and response.headers["Location"] == "/staff/"
    assert db.session.get(User, staff_user.id).last_login_at is not None
    assert is_signed_in(client)


def test_a_member_signs_in_to_the_portal_and_not_the_staff_pages(client, make_user):
    member = make_user("member", email="member-login@example.org")
    response = login(client, member)
    assert response.headers["Location"] == "/my/"
    assert client.get("/staff/").status_code == 403


def test_the_email_is_matched_case_insensitively(client, staff_user):
    assert login(client, "  STAFF@Example.ORG ").status_code == 302


def _message_page(response, email: str) -> str:
    body = response.get_data(as_text=True).replace(email, "EMAIL")
    return re.sub(r'name="csrf_token" type="hidden" value="[^"]*"', "", body)


def test_the_failure_message_never_reveals_whether_an_email_exists(client, staff_user, make_user):
    gone = make_user("staff", email="gone@example.org")
    accounts.set_active(db.session, gone, False, actor=None, now=NOW)
    db.session.commit()

    unknown = login(client, "nobody@example.org", WRONG)
    wrong_password = login(client, staff_user, WRONG)
    deactivated = login(client, gone, PASSWORD)  # right password, deactivated account

    assert unknown.status_code == wrong_password.status_code == deactivated.status_code == 401
    assert "The email or password is not right." in unknown.get_data(as_text=True)
    assert (_message_page(unknown, "nobody@example.org") == _message_page(wrong_password, "staff@example.org")
            == _message_page(deactivated, "gone@example.org"))
    assert not is_signed_in(client)


def test_an_unknown_email_costs_a_password_check_too(app, staff_user, monkeypatch):
    """The same work for a missing account as for a wrong password, so timing does not tell."""
    calls = []
    real = accounts.check_password_hash
    monkeypatch.setattr(accounts, "check_password_hash", lambda h, p: calls.append(h) or real(h, p))
    assert accounts.authenticate(db.session, "nobody@example.org", WRONG) is None
    assert accounts.authenticate(db.session, "staff@example.org", WRONG) is None
    assert len(calls) == 2
    assert calls[0].split("$")[0] == calls[1].split("$")[0]  # the same hash method and cost


@pytest.mark.parametrize("data", [{}, {"email": "", "password": ""}, {"email": "x" * 300, "password": "p"},
                                  {"email": "staff@example.org", "password": "p" * 300}])
def test_bad_sign_in_input_is_a_message_not_a_500(client, staff_user, data):
    response = client.post("/login", data=data)
    assert response.status_code == 422
    assert 'class="invalid-feedback"' in response.get_data(as_text=True)
    assert not is_signed_in(client)


def test_a_signed_in_user_visiting_the_login_page_goes_home(staff_client):
    assert staff_client.get("/login").headers["Location"] == "/staff/"


# ---------------------------------------------------------------- rate limits


class TestRateLimits:
    @pytest.fixture
    def app_config(self):
        return {"RATELIMIT_ENABLED": True}

    def test_per_account_then_per_address(self, app, client, staff_user, make_user):
        assert app.config["LOGIN_LIMIT_PER_ACCOUNT"] == "5 per 10 minutes"
        assert app.config["LOGIN_LIMIT_PER_ADDRESS"] == "20 per 10 minutes"
        for _ in range(5):
            assert login(client, staff_user, WRONG).status_code == 401
        blocked = login(client, staff_user, PASSWORD)  # even the right password now waits
        assert blocked.status_code == 429
        page = blocked.get_data(as_text=True)
        assert "Too many attempts. Please wait a few minutes and try again." in page
        assert "<html" in page and "Traceback" not in page
        assert not is_signed_in(client)

        # Another account from the same address has its own allowance...
        other = make_user("staff", email="other@example.org")
        assert login(client, other, WRONG).status_code == 401
        assert login(client, other, PASSWORD).status_code == 302
        client.post("/logout")

        # ...until the address as a whole reaches its limit.
        accepted = 0
        for n in range(30):
            response = login(client, f"guess{n}@example.org", WRONG)
            if response.status_code == 429:
                break
            accepted += 1
        assert response.status_code == 429
        assert 5 + 2 + accepted in (20, 21)  # every sign-in post from this address counted

        # A different address is not affected.
        response = client.post("/login", data={"email": other.email, "password": PASSWORD},
                               environ_base={"REMOTE_ADDR": "192.0.2.77"})
        assert response.status_code == 302

    def test_the_account_limit_ignores_case_and_spaces(self, client, staff_user):
        for email in ("staff@example.org", "STAFF@example.org", " Staff@Example.org", "staff@EXAMPLE.ORG",
                      "staff@example.org "):
            assert login(client, email, WRONG).status_code == 401
        assert login(client, "sTaFf@example.org", PASSWORD).status_code == 429

    def test_viewing_the_login_page_is_not_limited(self, client):
        for _ in range(30):
            assert client.get("/login").status_code == 200


# ---------------------------------------------------------------- the session


def test_the_session_is_renewed_at_sign_in(client, staff_user):
    client.get("/login")
    with client.session_transaction() as session:
        session["planted"] = "by an attacker"
        session["_fresh"] = False
    login(client, staff_user)
    with client.session_transaction() as session:
        assert "planted" not in session
        assert session["_user_id"] == f"{staff_user.id}:{db.session.get(User, staff_user.id).session_token}"


def test_logout_is_a_post_and_revokes_copies_of_the_cookie(app, client, staff_user):
    login(client, staff_user, PASSWORD)
    thief = app.test_client()
    copy_cookies(client, thief)
    assert is_signed_in(thief)

    assert client.get("/logout").status_code == 405  # no sign-out (or any change) through GET
    assert is_signed_in(client)

    response = client.post("/logout")
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert not is_signed_in(client)
    assert not is_signed_in(thief)
    assert thief.get("/staff/").headers["Location"].startswith("/login")


def test_a_remembered_login_is_revoked_at_logout(app, client, staff_user):
    client.post("/login", data={"email": staff_user.email, "password": PASSWORD, "remember": "y"})
    assert client.get_cookie("remember_token") is not None
    thief = app.test_client()
    thief.set_cookie("remember_token", client.get_cookie("remember_token").value)  # session cookie gone
    assert is_signed_in(thief)
    client.post("/logout")
    fresh = app.test_client()
    fresh.set_cookie("remember_token", thief.get_cookie("remember_token").value)
    assert not is_signed_in(fresh)


def test_a_password_change_ends_other_sessions_but_not_this_one(app, client, staff_user):
    login(client, staff_user)
    other_device = app.test_client()
    copy_cookies(client, other_device)
    new_password = "a-much-better-passphrase-7"

    response = client.post("/account/password", data={"current_password": PASSWORD, "new_password": new_password,
                                                      "confirm": new_password})
    assert response.status_code == 302
    assert is_signed_in(client)
    assert not is_signed_in(other_device)
    client.post("/logout")
    assert login(client, staff_user, PASSWORD).status_code == 401
    assert login(client, staff_user, new_password).status_code == 302


@pytest.mark.parametrize("data, field_message", [
    ({"current_password": WRONG, "new_password": "a-much-better-passphrase-7",
      "confirm": "a-much-better-passphrase-7"}, "This is not your current password."),
    ({"current_password": PASSWORD, "new_password": "short", "confirm": "short"}, "Use at least 10 characters."),
    ({"current_password": PASSWORD, "new_password": "password1234", "confirm": "password1234"}, "too common"),
    ({"current_password": PASSWORD, "new_password": "a-much-better-passphrase-7",
      "confirm": "something-else-entirely"}, "The passwords differ."),
])
def test_a_refused_password_change_says_why_and_changes_nothing(client, staff_user, data, field_message):
    login(client, staff_user)
    token = db.session.get(User, staff_user.id).session_token
    response = client.post("/account/password", data=data)
    assert response.status_code == 422
    assert field_message in response.get_data(as_text=True)
    db.session.expire_all()
    user = db.session.get(User, staff_user.id)
    assert user.session_token == token
    assert accounts.authenticate(db.session, staff_user.email, PASSWORD) is not None


def test_deactivation_signs_the_user_out_on_their_next_request(app, client, staff_user, admin_user):
    login(client, staff_user)
    assert is_signed_in(client)
    accounts.set_active(db.session, db.session.get(User, staff_user.id), False, actor=admin_user, now=NOW)
    db.session.commit()
    response = client.get("/staff/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    assert login(client, staff_user).status_code == 401


def test_a_role_change_signs_the_user_out(client, staff_user, admin_user):
    login(client, staff_user)
    accounts.change_role(db.session, db.session.get(User, staff_user.id), "member", actor=admin_user, now=NOW)
    db.session.commit()
    assert client.get("/staff/").status_code == 302


# ---------------------------------------------------------------- next


@pytest.mark.parametrize("target", [
    "//evil.com", "https://evil.com", "http://evil.com/staff/", "/\\evil.com", "\\\\evil.com", "/\t/evil.com",
    "/\n/evil.com", "/\r\n/evil.com", " //evil.com", "javascript:alert(1)", "JavaScript:alert(1)",
    "data:text/html,hi", "evil.com", "///evil.com", "/%0a/evil.com" + "\x00",
])
def test_next_never_leaves_the_site(client, staff_user, target):
    response = client.post("/login", data={"email": staff_user.email, "password": PASSWORD, "next": target})
    assert response.status_code == 302
    assert response.headers["Location"] == "/staff/"


@pytest.mark.parametrize("target, location", [
    ("/staff/members?status=lapsed", "/staff/members?status=lapsed"),
    ("/staff/members?q=রবীন্দ্র", "/staff/members?q=%E0%A6%B0%E0%A6%AC%E0%A7%80%E0%A6%A8%E0%A7%8D%E0%A6%A6%E0%A7%8D"
                                  "%E0%A6%B0"),
])
def test_next_on_the_site_is_followed(client, staff_user, target, location):
    response = client.post("/login", data={"email": staff_user.email, "password": PASSWORD, "next": target})
    assert response.headers["Location"] == location
    response.headers["Location"].encode("ascii")  # a valid header for every WSGI server


def test_a_visitor_is_sent_to_sign_in_and_back_to_the_page_they_wanted(client, staff_user):
    response = client.get("/staff/members?status=lapsed")
    assert response.status_code == 302
    login_url = response.headers["Location"]
    assert login_url.startswith("/login?next=")
    page = client.get(login_url).get_data(as_text=True)
    assert 'value="/staff/members?status=lapsed"' in page
    response = client.post("/login", data={"email": staff_user.email, "password": PASSWORD,
                                           "next": "/staff/members?status=lapsed"})
    assert response.headers["Location"] == "/staff/members?status=lapsed"


# ---------------------------------------------------------------- invitations


def test_an_invitation_sets_a_password_once(app, client, admin_user):
    from membership.auth.views import invitation_token
    invited = accounts.create_user(db.session, email="new.staff@example.org", name="New Staff", role="staff",
                                   password=None, actor=admin_user, now=NOW)
    db.session.commit()
    with app.test_request_context():
        token = invitation_token(invited)
    assert client.get(f"/invitation/{token}").status_code == 200
    response = client.post(f"/invitation/{token}", data={"name": "Nadia Staff", "new_password": "short",
                                                         "confirm": "short"})
    assert response.status_code == 422 and "Use at least 10 characters." in response.get_data(as_text=True)
    good = "river-lantern-orchard-31"
    response = client.post(f"/invitation/{token}", data={"name": "Nadia Staff", "new_password": good,
                                                         "confirm": good})
    assert response.status_code == 302 and is_signed_in(client)
    client.post("/logout")
    # The link is spent: it cannot be used to take the account over.
    assert client.get(f"/invitation/{token}").status_code == 404
    assert client.get("/invitation/not-a-token").status_code == 404
    user = db.session.scalar(select(User).where(User.email_normalized == "new.staff@example.org"))
    assert user.name == "Nadia Staff" and user.email_verified_at is not None


def test_the_login_page_renders(client):
    response = client.get("/login")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert '<label class="form-label" for="email">' in page and 'for="password"' in page
    assert 'name="csrf_token"' not in page or 'type="hidden"' in page
    assert "Test Association" in page


def test_last_login_is_recorded_for_member_logins_as_an_activity(client, make_user, make_member):
    from membership.core.models import Activity
    member = make_member()
    user = make_user("member", email="portal@example.org", member_id=member.id)
    login(client, user)
    kinds = list(db.session.scalars(select(Activity.kind).where(Activity.member_id == member.id)))
    assert "logged_in" in kinds
    assert db.session.get(User, user.id).last_login_at.tzinfo == timezone.utc
    assert db.session.get(User, user.id).last_login_at > datetime(2020, 1, 1, tzinfo=timezone.utc)
