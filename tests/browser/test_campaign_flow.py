"""A staff member composes a campaign in headless Chromium with CSRF on, sees who gets it and who is
left out, previews it, sends a test, then sends it now; the scheduler job queues it once and the
report shows the figures."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from membership.campaigns.models import Campaign
from membership.core.time import utcnow
from membership.extensions import db
from membership.notifications.models import OutboxMessage
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def test_staff_compose_preview_test_and_send_a_campaign(page, live_server, staff_user, make_member, app, tmp_path):
    rahima = make_member(first_name="Rahima", last_name="Begum", marketing_opt_in=True)
    make_member(first_name="Karim", last_name="Mia", marketing_opt_in=False)
    bn = make_member(first_name="সুমি", last_name="আক্তার", marketing_opt_in=True, language="bn")
    staff_email = staff_user.email
    db.session.commit()
    rahima_number, bn_number = rahima.member_number, bn.member_number
    db.session.close()  # hold no SQLite read lock while the live server writes

    page.goto("/login")
    page.get_by_label("Email").fill(staff_email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/staff/"))

    page.get_by_role("button", name="Emails").click()
    page.get_by_role("link", name="Campaigns").first.click()
    page.wait_for_url(re.compile(r"/staff/campaigns$"))
    page.get_by_role("link", name="New campaign").first.click()
    page.wait_for_url(re.compile(r"/staff/campaigns/new$"))

    # a mistake first: an unknown placeholder is shown beside the field, nothing is saved
    page.get_by_label("Name (for staff)").fill("Monsoon newsletter")
    page.get_by_label("Subject (English)").fill("Monsoon news for {{ member.first_name }}")
    page.get_by_label("Text (English)").fill("Dear {{ member.frist_name }},\nOur monsoon news.")
    page.get_by_role("button", name="Save draft").click()
    assert "Unknown placeholder" in page.inner_text("main")
    db.session.rollback()
    assert db.session.scalar(select(Campaign)) is None
    db.session.close()  # no read lock left while the server writes

    page.get_by_label("Text (English)").fill("Dear {{ member.first_name }},\nOur monsoon news.")
    page.get_by_label("Subject (Bengali)").fill("বর্ষার খবর {{ member.first_name }}")
    page.get_by_label("Text (Bengali)").fill("প্রিয় {{ member.first_name }},\nআমাদের বর্ষার খবর।")
    page.get_by_role("button", name="Save draft").click()
    page.wait_for_url(re.compile(r"/staff/campaigns/\d+$"))
    main = page.inner_text("main")
    assert "Will get it: 2" in main
    assert "no marketing opt-in: 1" in main
    assert "Monsoon news for Rahima" in main  # the preview, for the first recipient
    page.screenshot(path=str(tmp_path / "campaign-draft.png"), full_page=True)

    # who is left out opens as a list
    page.locator("#left-out-no_opt_in").click()
    page.wait_for_url(re.compile(r"/audience\?reason=no_opt_in"))
    assert "Karim Mia" in page.inner_text("main")
    page.go_back()

    # preview for the Bengali member
    page.locator("#preview-member").fill(bn_number)
    page.get_by_role("button", name="Preview", exact=True).click()
    assert "বর্ষার খবর সুমি" in page.inner_text("#preview-subject")

    page.locator("#test-member").fill(rahima_number)
    page.get_by_role("button", name=re.compile("^Send a test to")).click()
    page.wait_for_url(re.compile(r"/staff/campaigns/\d+"))
    assert "A test is on its way" in page.inner_text("main")

    page.get_by_role("button", name=re.compile("^Send now to 2 members")).click()
    page.wait_for_url(re.compile(r"/staff/campaigns/\d+$"))
    assert "Sending" in page.inner_text("main")

    db.session.rollback()
    campaign = db.session.scalar(select(Campaign))
    assert campaign.status == "scheduled"
    from membership import scheduler
    assert scheduler.run_job("send-campaigns", now=utcnow()).counts["queued"] == 2
    db.session.close()

    page.reload()
    report = page.inner_text("#report")
    assert re.search(r"Queued\s+2", report)
    page.locator("#figure-queued a").click()
    page.wait_for_url(re.compile(r"/members\?figure=queued"))
    listed = page.inner_text("main")
    assert "Rahima Begum" in listed and "Karim" not in listed
    page.screenshot(path=str(tmp_path / "campaign.png"), full_page=True)

    db.session.rollback()
    rows = db.session.scalars(select(OutboxMessage).where(OutboxMessage.source_type == "campaign")).all()
    assert sorted(r.subject for r in rows) == ["Monsoon news for Rahima", "বর্ষার খবর সুমি"]
    assert db.session.scalar(select(OutboxMessage).where(OutboxMessage.to_address == staff_email)).subject \
        == "[Test] Monsoon news for Rahima"
