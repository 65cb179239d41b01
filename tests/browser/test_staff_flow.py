"""A staff member's everyday path through the real pages, in a real browser."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from membership.core.time import local_today, period_end
from membership.extensions import db
from membership.plans.models import Membership
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def test_find_by_bengali_name_and_renew(page, staff_user, make_member, make_plan, make_term, tmp_path):
    today = local_today()
    plan = make_plan(name="Individual annual", fee_minor=150000, period_months=12, grace_days=30)
    member = make_member(first_name="ফাতেমা", last_name="খাতুন", email="fatema@example.org")
    make_member(first_name="Rahim", last_name="Uddin")
    start = today - timedelta(days=300)
    term = make_term(member, plan, starts_on=start, today=start)
    old_end = term.ends_on
    member_id = member.id
    staff_email = staff_user.email
    db.session.commit()
    db.session.close()  # hold no SQLite read lock while the live server writes

    page.goto("/login")
    page.get_by_label("Email").fill(staff_email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/staff/"))

    page.get_by_role("searchbox").first.fill("খাতু")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/staff/members\?"))
    page.get_by_role("link", name=re.compile("ফাতেমা")).first.click()
    page.wait_for_url(re.compile(rf"/staff/members/{member_id}$"))
    assert "ফাতেমা খাতুন" in page.content()

    page.get_by_role("link", name=re.compile("^Renew")).first.click()
    page.get_by_role("button", name=re.compile("Renew|Record renewal|Confirm")).first.click()
    page.wait_for_url(re.compile(rf"/staff/members/{member_id}$"))

    new_end = period_end(old_end + timedelta(days=1), 12)
    body = page.inner_text("body")
    assert "Renewed" in body
    assert f"{new_end:%d %b %Y}" in body
    page.screenshot(path=str(tmp_path / "member-page.png"), full_page=True)

    db.session.rollback()
    terms = db.session.query(Membership).filter_by(member_id=member_id).all()
    assert len(terms) == 2
    assert max(t.ends_on for t in terms) == new_end
