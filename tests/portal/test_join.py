"""Joining online: the plans page, the application, the confirmation link, and what each kind of plan
does after it (free: active at once; paid: pending until staff record the payment; needs approval:
the staff queue). No page tells a visitor whether an address already has an account."""
from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from itsdangerous import TimestampSigner
from sqlalchemy import func, select

from membership.accounts.models import User
from membership.core.models import Activity, AuditLog
from membership.core.time import local_today, utcnow
from membership.extensions import db
from membership.members.models import Member
from membership.plans.models import Membership
from membership.plans.services import PaymentInput, pay_term
from tests.conftest import login
from tests.portal.helpers import (
    GOOD_PASSWORD, confirm_link, emails, join, join_and_confirm, link_path, sign_in)

INSTRUCTIONS = "Pay to Sonali Bank account 0123456789 and write your member number on the slip."


@pytest.fixture
def app_config():
    return {"PAYMENT_INSTRUCTIONS": INSTRUCTIONS}


@pytest.fixture
def free_plan(make_plan):
    return make_plan(code="FREE", name="Friend", fee_minor=0, period_months=12)


@pytest.fixture
def paid_plan(make_plan):
    return make_plan(code="STD", name="Standard", fee_minor=150000, period_months=12)


@pytest.fixture
def approval_plan(make_plan):
    return make_plan(code="FELLOW", name="Fellow", fee_minor=0, needs_approval=True)


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def user_by_email(email: str) -> User:
    db.session.expire_all()
    return db.session.scalar(select(User).where(User.email_normalized == email.casefold()))


def text_of(response) -> str:
    return response.get_data(as_text=True)


# ---------------------------------------------------------------- the plans page


def test_the_plans_page_lists_the_plans_open_for_joining(client, make_plan):
    make_plan(name="Student", fee_minor=50000, period_months=12, description="For full-time students.")
    make_plan(name="Six months", fee_minor=30000, period_months=6)
    make_plan(name="Life", fee_minor=2000000, period_kind="lifetime")
    make_plan(name="Honorary", fee_minor=0, joinable_online=False)
    make_plan(name="Retired plan", is_active=False)
    make_plan(name="Corporate", is_organizational=True)
    db.session.commit()
    page = text_of(client.get("/join/"))
    assert "Student" in page and "For full-time students." in page and "Six months" in page and "Life" in page
    assert "Honorary" not in page and "Retired plan" not in page and "Corporate" not in page
    assert "BDT" in page and "500.00" in page
    assert "1 year" in page and "6 months" in page and "Lifetime" in page


def test_a_plan_that_is_not_open_for_joining_cannot_be_applied_for(client, make_plan):
    hidden = make_plan(joinable_online=False)
    retired = make_plan(is_active=False)
    corporate = make_plan(is_organizational=True)
    db.session.commit()
    for plan in (hidden, retired, corporate):
        assert client.get(f"/join/{plan.id}").status_code == 404
        assert join(client, plan).status_code == 404
    assert client.get("/join/999999").status_code == 404
    assert count(Member) == 0


def test_a_member_who_is_signed_in_is_sent_to_their_portal(client, make_user, make_member, free_plan):
    member = make_member()
    make_user("member", email=member.email, member_id=member.id)
    login(client, member.email)
    response = client.get("/join/")
    assert response.status_code == 302 and response.headers["Location"] == "/my/"


# ---------------------------------------------------------------- applying and confirming


def test_join_a_free_plan_confirm_the_email_and_it_is_active_at_once(client, free_plan):
    response = join(client, free_plan)
    assert response.status_code == 302 and response.headers["Location"] == "/join/check-email"
    page = text_of(client.get("/join/check-email"))
    assert "Check your email" in page and "nusrat@example.org" in page and "Send the link again" in page

    member = db.session.scalar(select(Member).where(Member.email_normalized == "nusrat@example.org"))
    assert member.full_name == "Nusrat Jahan" and member.phone == "+8801712345678" and member.language == "en"
    assert member.marketing_opt_in is True and member.directory_opt_in is False
    assert member.status == "none"  # no membership before the address is confirmed
    user = user_by_email("nusrat@example.org")
    assert user.role == "member" and user.member_id == member.id
    assert not user.is_active and user.email_verified_at is None and user.deactivated_at is None

    # Until confirmed, no sign-in: the right password says why and offers a new link.
    refused = sign_in(client, "nusrat@example.org")
    assert refused.status_code == 403
    assert "Please confirm your email address first" in text_of(refused)
    assert 'action="/join/resend"' in text_of(refused)
    assert client.get("/my/").status_code == 302

    [message] = emails("confirm_email", to="nusrat@example.org")
    assert "Friend" in message.body_text and "3 days" in message.body_text
    path = link_path(message, "/join/confirm/")
    opened = client.get(path)  # opening the link changes nothing (mail scanners open links)
    assert opened.status_code == 200 and "Confirm my email address" in text_of(opened)
    assert not user_by_email("nusrat@example.org").is_active

    confirmed = client.post(path)
    assert confirmed.status_code == 302 and confirmed.headers["Location"] == "/login"
    user = user_by_email("nusrat@example.org")
    assert user.is_active and user.email_verified_at is not None
    [term] = db.session.scalars(select(Membership).where(Membership.member_id == member.id)).all()
    assert term.source == "join" and term.status == "active" and term.plan_id == free_plan.id
    assert term.starts_on == local_today()
    assert db.session.get(Member, member.id).status == "active"
    assert [m.template_key for m in emails(to="nusrat@example.org")] == ["confirm_email", "welcome"]
    kinds = set(db.session.scalars(select(Activity.kind).where(Activity.member_id == member.id)))
    assert "joined" in kinds

    # The link works once.
    again = client.post(path)
    assert again.status_code == 302 and again.headers["Location"] == "/login"
    assert count(Membership) == 1

    signed_in = sign_in(client, "nusrat@example.org")
    assert signed_in.status_code == 302 and signed_in.headers["Location"] == "/my/"
    home = text_of(client.get("/my/"))
    assert "Your membership is active." in home and "Friend" in home


def test_a_paid_plan_waits_for_the_payment_that_staff_record(client, paid_plan, staff_user):
    join_and_confirm(client, paid_plan)
    member = db.session.scalar(select(Member).where(Member.email_normalized == "nusrat@example.org"))
    [term] = db.session.scalars(select(Membership).where(Membership.member_id == member.id)).all()
    assert term.awaiting_payment and not term.awaiting_approval and term.status == "pending"
    [received] = emails("application_received")
    assert "BDT" in received.body_text and "1,500.00" in received.body_text and INSTRUCTIONS in received.body_text
    assert not emails("welcome")

    sign_in(client, "nusrat@example.org")
    home = text_of(client.get("/my/"))
    assert "Your membership is waiting for your payment." in home
    assert "1,500.00" in home and INSTRUCTIONS in home and member.member_number in home

    now = utcnow()
    pay_term(db.session, term, PaymentInput(amount_minor=150000, method="bank_transfer", received_at=now),
             today=local_today(now), now=now, actor=staff_user)
    db.session.commit()
    home = text_of(client.get("/my/"))
    assert "Your membership is active." in home and "Receipt R-" in home


def test_a_plan_that_needs_approval_waits_in_the_staff_queue(app, client, approval_plan, staff_user):
    join_and_confirm(client, approval_plan)
    member = db.session.scalar(select(Member).where(Member.email_normalized == "nusrat@example.org"))
    [term] = db.session.scalars(select(Membership).where(Membership.member_id == member.id)).all()
    assert term.awaiting_approval and term.status == "pending"
    [received] = emails("application_received")
    assert "review" in received.body_text

    sign_in(client, "nusrat@example.org")
    assert "Your application is waiting for approval." in text_of(client.get("/my/"))
    client.post("/logout")

    login(client, staff_user)
    queue = text_of(client.get("/staff/applications"))
    assert "Nusrat Jahan" in queue and "Fellow" in queue and "1 waiting for a decision" in queue
    response = client.post(f"/staff/applications/{term.id}/approve")
    assert response.status_code == 302
    db.session.expire_all()
    term = db.session.get(Membership, term.id)
    assert not term.awaiting_approval and term.status == "active"
    [approved] = emails("application_approved")
    assert approved.to_address == "nusrat@example.org" and "approved" in approved.subject
    assert "No application waits for a decision." in text_of(client.get("/staff/applications"))
    # Approving twice does nothing more.
    client.post(f"/staff/applications/{term.id}/approve")
    assert len(emails("application_approved")) == 1
    assert db.session.scalar(select(func.count()).select_from(AuditLog)
                             .where(AuditLog.action == "membership.approve")) == 1


def test_staff_decline_an_application_with_a_reason_that_the_applicant_receives(client, approval_plan,
                                                                                staff_user):
    join_and_confirm(client, approval_plan)
    term = db.session.scalar(select(Membership))
    login(client, staff_user)
    assert "Decline the application of Nusrat Jahan" in text_of(client.get(f"/staff/applications/{term.id}/decline"))

    no_reason = client.post(f"/staff/applications/{term.id}/decline", data={"reason": "  "})
    assert no_reason.status_code == 422 and "Give the reason" in text_of(no_reason)
    assert not emails("application_declined")

    reason = "The Fellow plan is for members of ten years; please choose the Standard plan."
    response = client.post(f"/staff/applications/{term.id}/decline", data={"reason": reason})
    assert response.status_code == 302
    db.session.expire_all()
    term = db.session.get(Membership, term.id)
    assert term.cancelled_on is not None and term.status == "cancelled"
    [declined] = emails("application_declined")
    assert reason in declined.body_text and declined.to_address == "nusrat@example.org"
    assert "no longer waits" in text_of(client.get(f"/staff/applications/{term.id}/decline", follow_redirects=True))
    client.post("/logout")

    sign_in(client, "nusrat@example.org")
    home = text_of(client.get("/my/"))
    assert "Your application was declined." in home and reason in home
    renew = text_of(client.get("/my/renew"))
    assert "Your application was declined" in renew and "Renew my membership</button>" not in renew


# ---------------------------------------------------------------- addresses already in use


def _check_page(client) -> str:
    return re.sub(r'name="csrf_token" type="hidden" value="[^"]*"', "", text_of(client.get("/join/check-email")))


def test_an_address_that_belongs_to_a_member_is_not_revealed(app, client, make_member, make_user, free_plan):
    member = make_member(first_name="Rahim", email="rahim@example.org")  # added by staff, no login
    other = make_member(email="karim@example.org")
    make_user("member", email="karim@example.org", member_id=other.id)
    db.session.commit()
    before = (count(Member), count(User), count(Membership))

    fresh = app.test_client()
    new = join(fresh, free_plan, email="someone.new@example.org")
    taken = join(client, free_plan, email="rahim@example.org", first_name="Impostor")
    with_login = join(app.test_client(), free_plan, email="KARIM@example.org")
    assert new.status_code == taken.status_code == with_login.status_code == 302
    assert new.headers["Location"] == taken.headers["Location"] == with_login.headers["Location"]
    assert _check_page(client).replace("rahim@example.org", "X") == _check_page(fresh).replace(
        "someone.new@example.org", "X")

    assert (count(Member), count(User), count(Membership)) == (before[0] + 1, before[1] + 1, before[2])
    assert db.session.get(Member, member.id).first_name == "Rahim"
    [notice] = emails("account_exists", to="rahim@example.org")
    assert "already belongs to a member" in notice.body_text and "/password/forgot" in notice.body_text
    assert emails("account_exists", to="KARIM@example.org")
    assert not emails("confirm_email", to="rahim@example.org")
    # A bot trying again and again: one notice per address and hour.
    join(client, free_plan, email="rahim@example.org")
    assert len(emails("account_exists", to="rahim@example.org")) == 1


def test_applying_again_before_confirming_sends_a_new_link_and_keeps_one_record(client, free_plan):
    join(client, free_plan)
    join(client, free_plan, first_name="Changed", password="another-long-passphrase-9",
         confirm="another-long-passphrase-9")
    assert count(Member) == 1 and count(User) == 1
    assert db.session.scalar(select(Member.first_name)) == "Nusrat"
    assert len(emails("confirm_email")) == 2
    client.post(confirm_link("nusrat@example.org"))
    assert sign_in(client, "nusrat@example.org", GOOD_PASSWORD).status_code == 302


# ---------------------------------------------------------------- validation


def test_every_bad_field_gets_its_own_message_and_nothing_is_written(client, free_plan):
    response = join(client, free_plan, first_name="", email="not-an-address", phone="12", country="ZZ",
                    password="password1234", confirm="password1234")
    page = text_of(response)
    assert response.status_code == 422
    assert "First name is required." in page
    assert "Email:" in page  # the email validator's own explanation
    assert "Phone: this" in page
    assert "too common" in page
    assert 'value="not-an-address"' in page and 'value="12"' in page  # what was typed is kept
    assert count(Member) == count(User) == 0 and not emails()


@pytest.mark.parametrize("overrides, message", [
    ({"confirm": "something-else-entirely"}, "The passwords differ."),
    ({"password": "short", "confirm": "short"}, "Use at least 10 characters."),
    ({"password": "nusratjahan1", "confirm": "nusratjahan1"}, "The password must not"),
    ({"first_name": "Nusrat\x00"}, "not allowed"),
    ({"email": ""}, "Email is required"),
    ({"language": "fr"}, "Not a valid choice"),
])
def test_a_refused_application_says_why(client, free_plan, overrides, message):
    response = join(client, free_plan, **overrides)
    assert response.status_code == 422
    assert message in text_of(response)
    assert count(Member) == 0


def test_fields_outside_the_form_are_ignored(client, free_plan):
    join(client, free_plan, role="admin", status="active", member_number="M999999", member_id="1",
         email_verified_at="2020-01-01", is_active="1", ends_on="2099-12-31", notes="VIP", plan_id="999")
    user = user_by_email("nusrat@example.org")
    assert user.role == "member" and not user.is_active and user.email_verified_at is None
    member = db.session.get(Member, user.member_id)
    assert member.member_number != "M999999" and member.notes is None and member.status == "none"
    client.post(confirm_link("nusrat@example.org"), data={"role": "admin", "plan_id": "999"})
    term = db.session.scalar(select(Membership))
    assert user_by_email("nusrat@example.org").role == "member" and term.plan_id == free_plan.id
    assert term.ends_on < local_today() + timedelta(days=370)


def test_a_robot_filling_the_hidden_field_gets_the_usual_answer_and_nothing_is_stored(client, free_plan):
    response = join(client, free_plan, website="http://spam.example")
    assert response.status_code == 302 and response.headers["Location"] == "/join/check-email"
    assert count(Member) == 0 and not emails()


# ---------------------------------------------------------------- links


def test_an_expired_link_offers_a_new_one(client, free_plan, monkeypatch):
    join(client, free_plan)
    path = confirm_link("nusrat@example.org")
    real = TimestampSigner.get_timestamp
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: int(time.time()) + 4 * 24 * 3600)
    expired = client.get(path)
    assert expired.status_code == 410 and "This link has expired" in text_of(expired)
    assert 'value="nusrat@example.org"' in text_of(expired)
    assert client.post(path).status_code == 410
    assert not user_by_email("nusrat@example.org").is_active
    monkeypatch.setattr(TimestampSigner, "get_timestamp", real)

    assert client.post("/join/resend", data={"email": "nusrat@example.org"}).status_code == 302
    assert len(emails("confirm_email")) == 2
    client.post(confirm_link("nusrat@example.org"))
    assert user_by_email("nusrat@example.org").is_active


@pytest.mark.parametrize("token", ["not-a-token", "eyJ1IjoxfQ.ZZZZZZ.aaaaaaaaaaaaaaaaaaaaaaaaaaa"])
def test_a_forged_or_broken_link_does_nothing(client, free_plan, token):
    join(client, free_plan)
    assert client.get(f"/join/confirm/{token}").status_code == 404
    assert client.post(f"/join/confirm/{token}").status_code == 404
    assert not user_by_email("nusrat@example.org").is_active


def test_a_link_stops_working_when_the_address_changes(client, free_plan):
    join(client, free_plan)
    path = confirm_link("nusrat@example.org")
    user = user_by_email("nusrat@example.org")
    user.email, user.email_normalized = "other@example.org", "other@example.org"
    db.session.commit()
    assert client.post(path).status_code == 404
    assert not user_by_email("other@example.org").is_active


def test_send_the_link_again_answers_the_same_for_any_address(client, make_member, make_user, free_plan):
    join(client, free_plan)
    member = make_member(email="confirmed@example.org")
    make_user("member", email="confirmed@example.org", member_id=member.id)
    db.session.commit()
    pages = []
    for email in ("nusrat@example.org", "nobody@example.org", "confirmed@example.org"):
        response = client.post("/join/resend", data={"email": email}, follow_redirects=True)
        assert response.status_code == 200
        pages.append(re.sub(r'value="[^"]*"', "", text_of(response)).replace(email, "X"))
    assert pages[0] == pages[1] == pages[2]
    assert [m.to_address for m in emails("confirm_email")] == ["nusrat@example.org", "nusrat@example.org"]


class TestRateLimits:
    @pytest.fixture
    def app_config(self):
        return {"RATELIMIT_ENABLED": True, "JOIN_LIMIT_PER_ADDRESS": "3 per hour", "EMAIL_LINK_LIMIT": "2 per hour"}

    def test_applications_and_new_links_are_limited(self, client, free_plan):
        for n in range(3):
            assert join(client, free_plan, email=f"bot{n}@example.org").status_code == 302
        assert join(client, free_plan, email="bot9@example.org").status_code == 429
        assert client.get(f"/join/{free_plan.id}").status_code == 200  # looking is not limited
        for _ in range(2):
            assert client.post("/join/resend", data={"email": "bot0@example.org"}).status_code == 302
        assert client.post("/join/resend", data={"email": "BOT0@example.org "}).status_code == 429
        assert count(Member) == 3


# ---------------------------------------------------------------- never confirmed


def test_applications_never_confirmed_are_deleted_after_30_days_unless_staff_acted(app, client, free_plan,
                                                                                   staff_user, make_plan):
    from membership.members.models import Interaction
    from membership.scheduler import run_job

    join(client, free_plan)                                         # never confirmed
    join(client, free_plan, email="kept@example.org", first_name="Kamal")         # staff called them
    join(client, free_plan, email="confirmed@example.org", first_name="Cyra")     # confirmed: a member
    client.post(confirm_link("confirmed@example.org"))
    kept = db.session.scalar(select(Member).where(Member.email == "kept@example.org"))
    db.session.add(Interaction(member_id=kept.id, channel="phone", summary="Called about the application",
                               staff_id=staff_user.id, occurred_at=utcnow(), created_at=utcnow()))
    db.session.commit()
    assert count(Member) == 3 and count(User) == 4  # with the staff user

    # 29 days on: nothing yet
    run_job("prune-applications", now=utcnow() + timedelta(days=29))
    assert count(Member) == 3
    # 31 days on: the unconfirmed, untouched application goes, with its login and its audit row
    run_job("prune-applications", now=utcnow() + timedelta(days=31))
    db.session.expire_all()
    assert sorted(db.session.scalars(select(Member.email))) == ["confirmed@example.org", "kept@example.org"]
    assert user_by_email("confirmed@example.org").is_active_flag
    assert db.session.scalar(select(User).where(User.email == "nusrat@example.org")) is None
    assert not db.session.scalars(select(AuditLog).where(AuditLog.summary.contains("Nusrat"))).all()
    # the address is free to apply again
    assert join(client, free_plan).status_code == 302
    assert count(Member) == 3
