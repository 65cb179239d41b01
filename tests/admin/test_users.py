"""Admin: staff accounts (create, invite, role, deactivate)."""
from __future__ import annotations

import html
import re

import pytest
from flask import current_app
from sqlalchemy import func, select

from membership.accounts.models import User
from membership.core.models import AuditLog
from membership.extensions import db
from membership.notifications.models import OutboxMessage
from tests.conftest import login

NEW_PASSWORD = "plum-orchard-lantern-77"


def user_count():
    return db.session.scalar(select(func.count()).select_from(User))


def text_of(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def error_beside(page: str, field: str) -> str:
    match = re.search(rf'id="{field}-err">([^<]*)</div>', page)
    assert match, f"no error beside {field}"
    return match.group(1)


def new_user(**kw):
    data = {"name": "Nadia Rahman", "email": "nadia@example.org", "role": "staff", "mode": "invite",
            "password": "", "confirm": ""}
    data.update(kw)
    return data


def by_email(email):
    db.session.expire_all()
    return db.session.scalar(select(User).where(User.email_normalized == email.casefold()))


# ---------------------------------------------------------------- list


def test_list_shows_staff_and_admins_but_not_member_logins(admin_client, make_user, staff_user):
    make_user("member", email="member@example.org", name="Mina Member")
    gone = make_user("staff", email="gone@example.org", name="Gone Staff")
    gone.is_active_flag = False
    db.session.commit()
    page = admin_client.get("/staff/admin/users")
    assert page.status_code == 200
    assert "staff@example.org" in page.text and "admin@example.org" in page.text
    assert "member@example.org" not in page.text
    assert "gone@example.org" not in page.text  # active accounts by default
    assert "gone@example.org" in admin_client.get("/staff/admin/users?show=deactivated").text
    assert "never" in page.text  # staff_user has not signed in; the admin has
    assert "Sam Staff" in admin_client.get("/staff/admin/users?q=sam").text
    assert "Sam Staff" not in admin_client.get("/staff/admin/users?q=nobody").text
    member = by_email("member@example.org")
    assert admin_client.get(f"/staff/admin/users/{member.id}").status_code == 404


def test_list_paginates(admin_client, make_user):
    for n in range(52):
        make_user("staff", email=f"s{n:02d}@example.org", name=f"Staff {n:02d}", password=None)
    page1 = admin_client.get("/staff/admin/users")
    assert "53 accounts" in page1.text and "Staff 51" not in page1.text
    assert "Staff 51" in admin_client.get("/staff/admin/users?page=2").text


# ---------------------------------------------------------------- create


def test_create_with_a_password(admin_client, admin_user, app):
    page = admin_client.get("/staff/admin/users/new")
    assert page.status_code == 200 and 'name="csrf_token"' in page.text
    response = admin_client.post("/staff/admin/users/new",
                                 data=new_user(mode="password", password=NEW_PASSWORD, confirm=NEW_PASSWORD))
    assert response.status_code == 302
    user = by_email("nadia@example.org")
    assert user.role == "staff" and user.password_hash and user.name == "Nadia Rahman"
    audit = db.session.scalar(select(AuditLog).where(AuditLog.action == "user.create"))
    assert audit.actor_id == admin_user.id and audit.entity_id == user.id
    other = app.test_client()
    assert login(other, "nadia@example.org", NEW_PASSWORD).status_code == 302
    assert other.get("/staff/").status_code == 200


@pytest.mark.parametrize("password,message", [
    ("short", "Use at least 10 characters."),
    ("password123", "This password is too common"),
    ("aaaaaaaaaaaa", "This password is too common"),
    ("nadia-secret-99", "The password must not contain your email address."),
])
def test_password_policy_messages_beside_the_field(admin_client, password, message):
    before = user_count()
    response = admin_client.post("/staff/admin/users/new",
                                 data=new_user(mode="password", password=password, confirm=password))
    assert response.status_code == 422
    assert message in error_beside(text_of(response), "password")
    assert 'value="nadia@example.org"' in response.text  # what was typed is kept (not the password)
    assert user_count() == before


@pytest.mark.parametrize("changes,field,message", [
    ({"mode": "password"}, "password", "Enter a password, or choose the invitation link."),
    ({"mode": "password", "password": NEW_PASSWORD, "confirm": "other"}, "confirm", "The passwords differ."),
    ({"email": "not-an-email"}, "email", "This is not a valid email address."),
    ({"email": ""}, "email", "Email is required."),
    ({"name": ""}, "name", "Name is required."),
    ({"name": "Bad\x00Name"}, "name", "Name contains characters that are not allowed."),
    ({"role": "member"}, "role", "Not a valid choice"),
    ({"role": "root"}, "role", "Not a valid choice"),
])
def test_bad_account_input_is_refused(admin_client, changes, field, message):
    before = user_count()
    response = admin_client.post("/staff/admin/users/new", data=new_user(**changes))
    assert response.status_code == 422
    assert message in error_beside(text_of(response), field)
    assert user_count() == before


def test_duplicate_email_is_refused(admin_client, staff_user):
    before = user_count()
    response = admin_client.post("/staff/admin/users/new", data=new_user(email="STAFF@example.org"))
    assert response.status_code == 409
    assert "A user with this email already exists." in error_beside(text_of(response), "email")
    assert user_count() == before


# ---------------------------------------------------------------- invitation


def invitation_link(page: str) -> str:
    match = re.search(r'id="invitation-link"[^>]*value="([^"]+)"', page)
    assert match, "no invitation link on the page"
    link = html.unescape(match.group(1))
    # on the address members and staff use (BASE_URL), not on the host the admin's request came in by
    base = current_app.config["BASE_URL"].rstrip("/")
    assert link.startswith(f"{base}/invitation/"), link
    return link[len(base):]


def invitation_emails(email: str) -> list[OutboxMessage]:
    return list(db.session.scalars(select(OutboxMessage).where(OutboxMessage.template_key == "staff_invitation",
                                                               OutboxMessage.to_address == email)
                                   .order_by(OutboxMessage.id)))


def test_invitation_link_sets_a_password_once(admin_client, app):
    response = admin_client.post("/staff/admin/users/new", data=new_user(role="admin"))
    assert response.status_code == 302
    user = by_email("nadia@example.org")
    assert user.password_hash is None and user.role == "admin"
    page = admin_client.get(response.headers["Location"])
    assert "the invitation link emailed to them" in text_of(page)
    link = invitation_link(page.text)
    # the email holds the same link (and is a staff email, no unsubscribe)
    [email] = invitation_emails("nadia@example.org")
    assert link in email.body_text and "admin account" in email.body_text
    assert email.category == "staff" and email.member_id is None
    assert "Invited" in admin_client.get("/staff/admin/users").text

    invitee = app.test_client()
    assert invitee.get(link).status_code == 200
    done = invitee.post(link, data={"name": "Nadia R.", "new_password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert done.status_code == 302
    assert invitee.get("/staff/admin/plans").status_code == 200  # signed in, as the admin she was made
    assert by_email("nadia@example.org").password_hash

    # The link has done its work: it no longer opens, and cannot set another password.
    stranger = app.test_client()
    assert stranger.get(link).status_code == 404
    again = stranger.post(link, data={"name": "X", "new_password": "another-good-pass-1", "confirm":
                                      "another-good-pass-1"})
    assert again.status_code == 404
    assert login(stranger, "nadia@example.org", "another-good-pass-1").status_code == 401
    # No link is shown any more once the password is set.
    assert 'id="invitation-link"' not in admin_client.get(f"/staff/admin/users/{user.id}").text


def test_a_new_invitation_withdraws_the_old_link(admin_client, app):
    admin_client.post("/staff/admin/users/new", data=new_user())
    user = by_email("nadia@example.org")
    old = invitation_link(admin_client.get(f"/staff/admin/users/{user.id}").text)
    response = admin_client.post(f"/staff/admin/users/{user.id}/invitation", follow_redirects=True)
    assert "earlier links no longer work" in text_of(response)
    new = invitation_link(response.text)
    emailed = invitation_emails("nadia@example.org")
    assert len(emailed) == 2 and old in emailed[0].body_text and new in emailed[1].body_text
    visitor = app.test_client()
    assert visitor.get(old).status_code == 404
    assert visitor.get(new).status_code == 200


def test_a_deactivated_invitee_cannot_use_the_link(admin_client, app):
    admin_client.post("/staff/admin/users/new", data=new_user())
    user = by_email("nadia@example.org")
    link = invitation_link(admin_client.get(f"/staff/admin/users/{user.id}").text)
    assert admin_client.post(f"/staff/admin/users/{user.id}/deactivate").status_code == 302
    assert app.test_client().get(link).status_code == 404


# ---------------------------------------------------------------- role


def test_change_role(admin_client, admin_user, staff_user, app):
    other = app.test_client()
    login(other, staff_user)
    assert other.get("/staff/admin/plans").status_code == 403
    response = admin_client.post(f"/staff/admin/users/{staff_user.id}/role", data={"role": "admin"})
    assert response.status_code == 302
    assert by_email("staff@example.org").role == "admin"
    audit = db.session.scalar(select(AuditLog).where(AuditLog.action == "user.role"))
    assert audit.changes == {"role": ["staff", "admin"]} and audit.actor_id == admin_user.id
    # The role change ended the user's sessions: they sign in again and get the new rights.
    assert other.get("/staff/").status_code == 302
    login(other, staff_user)
    assert other.get("/staff/admin/plans").status_code == 200


def test_the_last_active_admin_cannot_be_demoted(admin_client, admin_user):
    response = admin_client.post(f"/staff/admin/users/{admin_user.id}/role", data={"role": "staff"})
    assert response.status_code == 409
    assert "Samiti needs at least one active admin." in error_beside(text_of(response), "role")
    assert by_email("admin@example.org").role == "admin"
    assert admin_client.get("/staff/admin/users").status_code == 200  # still signed in, still admin


def test_an_admin_may_step_down_when_another_admin_exists(admin_client, admin_user, make_user):
    make_user("admin", email="second@example.org")
    response = admin_client.post(f"/staff/admin/users/{admin_user.id}/role", data={"role": "staff"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/staff/")
    assert by_email("admin@example.org").role == "staff"
    assert admin_client.get("/staff/").status_code == 200  # still signed in, as staff now
    assert admin_client.get("/staff/admin/users").status_code == 403


def test_a_deactivated_admin_does_not_count_as_the_other_admin(admin_client, admin_user, make_user):
    other = make_user("admin", email="second@example.org")
    assert admin_client.post(f"/staff/admin/users/{other.id}/deactivate").status_code == 302
    response = admin_client.post(f"/staff/admin/users/{admin_user.id}/role", data={"role": "staff"})
    assert response.status_code == 409
    assert by_email("admin@example.org").role == "admin"


def test_bad_role_is_refused(admin_client, staff_user):
    response = admin_client.post(f"/staff/admin/users/{staff_user.id}/role", data={"role": "member"})
    assert response.status_code == 422
    assert by_email("staff@example.org").role == "staff"


# ---------------------------------------------------------------- deactivate


def test_deactivation_logs_the_user_out_on_their_next_request(admin_client, staff_user, app):
    theirs = app.test_client()
    assert login(theirs, staff_user).status_code == 302
    assert theirs.get("/staff/").status_code == 200

    response = admin_client.post(f"/staff/admin/users/{staff_user.id}/deactivate")
    assert response.status_code == 302
    user = by_email("staff@example.org")
    assert user.is_active_flag is False and user.deactivated_at is not None

    next_request = theirs.get("/staff/members")
    assert next_request.status_code == 302 and "/login" in next_request.headers["Location"]
    assert login(theirs, staff_user).status_code == 401  # and cannot sign in again
    assert db.session.scalar(select(func.count()).select_from(AuditLog)
                             .where(AuditLog.action == "user.deactivate")) == 1

    assert admin_client.post(f"/staff/admin/users/{staff_user.id}/activate").status_code == 302
    assert login(theirs, staff_user).status_code == 302
    assert theirs.get("/staff/").status_code == 200


def test_deactivate_from_the_list_returns_to_it(admin_client, staff_user):
    response = admin_client.post(f"/staff/admin/users/{staff_user.id}/deactivate",
                                 data={"back": "/staff/admin/users?show=all"})
    assert response.headers["Location"].endswith("/staff/admin/users?show=all")
    evil = admin_client.post(f"/staff/admin/users/{staff_user.id}/activate", data={"back": "//evil.example"})
    assert evil.headers["Location"].endswith(f"/staff/admin/users/{staff_user.id}")


def test_an_admin_cannot_deactivate_themselves(admin_client, admin_user):
    response = admin_client.post(f"/staff/admin/users/{admin_user.id}/deactivate")
    assert response.status_code == 409
    assert "You cannot deactivate your own account." in text_of(response)
    assert by_email("admin@example.org").is_active_flag is True


def test_user_page_shows_the_trail(admin_client, staff_user):
    admin_client.post(f"/staff/admin/users/{staff_user.id}/role", data={"role": "admin"})
    page = admin_client.get(f"/staff/admin/users/{staff_user.id}")
    assert page.status_code == 200
    assert "Role of staff@example.org: staff -&gt; admin" in page.text


def test_admin_pages_need_an_admin(staff_client, staff_user):
    assert staff_client.get("/staff/admin/users").status_code == 403
    assert staff_client.post(f"/staff/admin/users/{staff_user.id}/role", data={"role": "admin"}).status_code == 403
    assert by_email("staff@example.org").role == "staff"


# ---------------------------------------------------------------- gaps found in accounts.services


def test_create_user_refuses_a_malformed_email(app):
    from membership.accounts.services import create_user
    from membership.core.errors import ValidationError
    from tests.conftest import NOW
    with pytest.raises(ValidationError):
        create_user(db.session, email="not an email", name="X", role="staff", password=None, actor=None, now=NOW)


def test_create_user_refuses_control_characters_in_the_name(app):
    from membership.accounts.services import create_user
    from membership.core.errors import ValidationError
    from tests.conftest import NOW
    with pytest.raises(ValidationError):
        create_user(db.session, email="ok@example.org", name="Bad\x00Name", role="staff", password=None,
                    actor=None, now=NOW)
        db.session.flush()
