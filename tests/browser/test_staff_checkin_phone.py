"""The check-in page on a phone (390 px wide, headless Chromium): nothing wider than the screen,
one tap checks a person in."""
from __future__ import annotations

from datetime import timedelta

import pytest

from membership.core.time import utcnow
from membership.events import services as events
from membership.extensions import db
from tests.conftest import PASSWORD
from tests.events.conftest import make_event  # noqa: F401  (the events factory fixture)

pytestmark = pytest.mark.browser


def test_check_in_on_a_phone(browser, live_server, staff_user, make_event):
    event = make_event(title="Poetry evening with a rather long title", starts_at=utcnow() + timedelta(hours=1))
    for n in ("Nazrul Islam", "Sufia Kamal", "Jasim Uddin"):
        events.register_guest(db.session, event, name=n, email=n.split()[0].lower() + "@example.org", now=utcnow(),
                              actor=None, source="staff", confirmed_email=True)
    db.session.commit()
    event_id, email = event.id, staff_user.email
    db.session.close()
    ctx = browser.new_context(base_url=live_server, viewport={"width": 390, "height": 844})
    page = ctx.new_page()
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    page.goto(f"/staff/events/{event_id}/check-in")
    page.get_by_role("button", name="Check in").first.click()
    page.wait_for_load_state()
    assert "1 / 3" in page.inner_text("#check-in-counts")
    width = page.evaluate("document.documentElement.scrollWidth")
    ctx.close()
    assert width <= 390, width
