"""Name suggestions in the event registration field (headless Chromium): typing part of a name
fills the field's suggestions from the member search, with no inline script."""
from __future__ import annotations

import pytest

from membership.extensions import db
from tests.conftest import PASSWORD
from tests.events.conftest import make_event  # noqa: F401  (the events factory fixture)

pytestmark = pytest.mark.browser


def test_typing_a_name_suggests_members(browser, live_server, staff_user, make_event, make_member):
    event = make_event(title="Poetry evening")
    rahim = make_member(first_name="Rahim", last_name="Uddin", email="rahim@example.org")
    make_member(first_name="Rahima", last_name="Khatun", email="rahima@example.org")
    make_member(first_name="Karim", last_name="Ahmed", email="karim@example.org")
    db.session.commit()
    event_id, email, number = event.id, staff_user.email, rahim.member_number
    db.session.close()
    ctx = browser.new_context(base_url=live_server)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    page.goto(f"/staff/events/{event_id}")
    field = page.locator("input[data-member-lookup]")
    field.press_sequentially("rahi", delay=30)
    page.locator("datalist option").nth(1).wait_for(state="attached")
    assert page.locator("datalist option").count() == 2
    values = page.eval_on_selector_all("datalist option", "os => os.map(o => o.value)")
    labels = page.eval_on_selector_all("datalist option", "os => os.map(o => o.label)")
    ctx.close()
    assert number in values and all(v.startswith("M") for v in values)
    assert any("Rahim Uddin" in label for label in labels) and not any("Karim" in label for label in labels)
    assert not errors, errors
