"""A member's paths through the real portal pages, in headless Chromium with CSRF on: joining (free and
paid plans, the confirmation link read from the outbox), signing in, my details, my membership, a
payment recorded by staff, renewing from a reminder email's link, and the pages on a phone screen.

SQLite note: every transaction takes the write lock (BEGIN IMMEDIATE), so the test thread ends its
own transaction (`settle()`) before the browser makes the live server write; ORM objects are read
into plain values first (touching an expired object would open a new transaction)."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from membership.core.time import local_today
from membership.extensions import db
from membership.members.models import Member
from membership.notifications import outbox
from membership.notifications.models import OutboxMessage
from membership.plans.models import Membership
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser

MEMBER_PASSWORD = "lantern-river-orchard-58"
INSTRUCTIONS = "Pay to Sonali Bank account 0123456789, quoting your member number."
PHONE_WIDTH = 390


@pytest.fixture
def app_config():
    return {"WTF_CSRF_ENABLED": True, "PAYMENT_INSTRUCTIONS": INSTRUCTIONS}


def settle() -> None:
    """End the test thread's transaction, so the live server can write (see the module docstring)."""
    db.session.rollback()


def link_from_outbox(template_key: str, to: str, prefix: str) -> str:
    settle()
    body = db.session.scalar(select(OutboxMessage.body_text).where(OutboxMessage.template_key == template_key,
                                                                   OutboxMessage.to_address == to)
                             .order_by(OutboxMessage.id.desc()).limit(1))
    settle()
    assert body, f"no {template_key} email to {to}"
    match = re.search(r"https?://[^/\s]+(" + re.escape(prefix) + r"\S*)", body)
    assert match, body
    return match.group(1)


def member_values(email: str) -> dict:
    settle()
    member = db.session.scalar(select(Member).where(Member.email_normalized == email))
    values = {c: getattr(member, c) for c in ("id", "status", "city", "phone", "language", "directory_opt_in")}
    values["terms"] = db.session.scalar(select(func.count()).select_from(Membership)
                                        .where(Membership.member_id == member.id))
    settle()
    return values


def apply_online(page, plan_name: str, *, first: str, email: str) -> None:
    page.goto("/join/")
    page.get_by_role("link", name=f"Choose {plan_name}").click()
    page.get_by_label("First name").fill(first)
    page.get_by_label("Last name").fill("Hossain")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Phone").fill("01712345678")
    page.get_by_label("Choose a password").fill(MEMBER_PASSWORD)
    page.get_by_label("Repeat the password").fill(MEMBER_PASSWORD)
    page.get_by_role("button", name="Send my application").click()
    page.wait_for_url(re.compile(r"/join/check-email$"))
    assert "Check your email" in page.inner_text("main")


def confirm_from_outbox(page, email: str) -> str:
    page.goto(link_from_outbox("confirm_email", email, "/join/confirm/"))
    page.get_by_role("button", name="Confirm my email address").click()
    page.wait_for_url(re.compile(r"/login$"))
    return page.inner_text("main")


def sign_in(page, email: str, password: str = MEMBER_PASSWORD, lands_on: str = r"/my/$") -> None:
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(lands_on))


def test_join_a_free_plan_confirm_sign_in_update_my_details_and_see_my_membership(page, make_plan):
    make_plan(code="FRIEND", name="Friend", fee_minor=0, period_months=12)
    db.session.commit()

    apply_online(page, "Friend", first="Sadia", email="sadia@example.org")
    # Before the link is used, signing in says why it cannot.
    page.goto("/login")
    sign_in(page, "sadia@example.org", lands_on=r"/login$")
    assert "Please confirm your email address first" in page.inner_text("main")

    message = confirm_from_outbox(page, "sadia@example.org")
    assert "your membership is active" in message
    sign_in(page, "sadia@example.org")
    assert "Your membership is active." in page.inner_text("main")

    page.get_by_role("link", name="My details and preferences").click()
    page.get_by_label("Town or city").fill("Chattogram")
    page.get_by_label("Phone").fill("01998765432")
    page.get_by_label("বাংলা (Bengali)").check()
    page.get_by_label(re.compile("List me in the members' directory")).check()
    page.get_by_role("button", name="Save my details").click()
    page.wait_for_url(re.compile(r"/my/profile$"))
    assert "Saved:" in page.inner_text("main")
    saved = member_values("sadia@example.org")
    assert saved["city"] == "Chattogram" and saved["phone"] == "+8801998765432"
    assert saved["language"] == "bn" and saved["directory_opt_in"] is True

    page.get_by_role("link", name="My membership", exact=True).click()
    main = page.inner_text("main")
    assert "Friend" in main and "Valid until" in main and "Membership history" in main


def test_join_a_paid_plan_staff_record_the_payment_and_the_member_sees_it_active(page, browser, live_server,
                                                                                 make_plan, staff_user):
    make_plan(code="STD", name="Standard", fee_minor=150000, period_months=12)
    db.session.commit()

    apply_online(page, "Standard", first="Imran", email="imran@example.org")
    confirm_from_outbox(page, "imran@example.org")
    sign_in(page, "imran@example.org")
    main = page.inner_text("main")
    assert "Your membership is waiting for your payment." in main and INSTRUCTIONS in main and "1,500.00" in main
    member_id = member_values("imran@example.org")["id"]

    staff = browser.new_context(base_url=live_server, viewport={"width": 1280, "height": 900}).new_page()
    staff.set_default_timeout(10_000)
    staff.goto("/login")
    sign_in(staff, "staff@example.org", PASSWORD, lands_on=r"/staff/")
    staff.goto(f"/staff/members/{member_id}")
    staff.get_by_role("link", name="Record payment").first.click()
    staff.get_by_role("button", name="Record payment").click()
    staff.wait_for_url(re.compile(rf"/staff/members/{member_id}$"))
    assert "Payment recorded" in staff.inner_text("main")
    staff.context.close()

    page.reload()
    main = page.inner_text("main")
    assert "Your membership is active." in main and "Receipt R-" in main
    page.get_by_role("link", name=re.compile(r"^Receipt R-")).first.click()
    assert "1,500.00" in page.inner_text("main") and "Imran Hossain" in page.inner_text("main")
    assert member_values("imran@example.org")["status"] == "active"


def test_renew_from_the_link_in_a_reminder_email(page, make_member, make_plan, make_term, make_user):
    today = local_today()
    plan = make_plan(code="STD", name="Standard", fee_minor=150000, period_months=12, grace_days=30)
    member = make_member(first_name="Nasrin", email="nasrin@example.org")
    start = today - timedelta(days=345)
    term = make_term(member, plan, starts_on=start, today=start)
    make_user("member", email="nasrin@example.org", member_id=member.id)
    outbox.enqueue(db.session, template_key="renewal_reminder_30", dedupe_key="test:reminder", now=term.created_at,
                   member=member, context={"term": term}, source=term)
    new_start = term.ends_on + timedelta(days=1)
    db.session.commit()
    settle()

    page.goto(link_from_outbox("renewal_reminder_30", "nasrin@example.org", "/my/"))
    page.wait_for_url(re.compile(r"/login\?next="))
    sign_in(page, "nasrin@example.org", PASSWORD, lands_on=r"/my/renew$")
    assert "Choose your plan" in page.inner_text("main")
    page.get_by_role("button", name="Renew my membership").click()
    page.wait_for_url(re.compile(r"/my/$"))
    main = page.inner_text("main")
    assert "Thank you. Your membership is renewed" in main and f"{new_start:%d %b %Y}" in main
    assert "for your renewal" in main and INSTRUCTIONS in main
    assert member_values("nasrin@example.org")["terms"] == 2


def test_the_portal_fits_a_phone_screen(page, make_member, make_plan, make_term, make_user, tmp_path):
    today = local_today()
    plan = make_plan(code="STD", name="Standard membership with a rather long name", fee_minor=150000)
    make_plan(code="FRIEND", name="Friend", fee_minor=0)
    member = make_member(first_name="Abdullah", last_name="Al Mamun Chowdhury",
                         email="abdullah.al.mamun.chowdhury@example.org", address_line1="House 42, Road 11",
                         city="Dhaka")
    start = today - timedelta(days=200)
    make_term(member, plan, starts_on=start, today=start)
    make_user("member", email="abdullah.al.mamun.chowdhury@example.org", member_id=member.id)
    db.session.commit()
    settle()

    page.set_viewport_size({"width": PHONE_WIDTH, "height": 844})
    page.goto("/join/")
    pages = {"/join/": page.evaluate("document.documentElement.scrollWidth")}
    page.goto("/login")
    sign_in(page, "abdullah.al.mamun.chowdhury@example.org", PASSWORD)
    page.screenshot(path=str(tmp_path / "portal-home-390.png"), full_page=True)
    for path in ("/my/", "/my/renew", "/my/profile", "/my/payments", "/account/email", "/account/password"):
        page.goto(path)
        pages[path] = page.evaluate("document.documentElement.scrollWidth")
    page.goto("/my/")
    page.get_by_role("link", name=re.compile(r"^Receipt R-")).first.click()
    pages["receipt"] = page.evaluate("document.documentElement.scrollWidth")
    assert (tmp_path / "portal-home-390.png").stat().st_size > 10_000
    assert {path: width for path, width in pages.items() if width > PHONE_WIDTH} == {}
    # The menu folds away behind one button on a phone.
    page.goto("/my/")
    menu_link = page.get_by_role("link", name="My details", exact=True)
    assert menu_link.is_hidden()
    page.get_by_role("button", name="Menu").click()
    menu_link.click()
    page.wait_for_url(re.compile(r"/my/profile$"))
