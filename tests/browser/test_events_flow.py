"""A member's path through the events pages in headless Chromium with CSRF on: the list, an event,
registering in one step, and the event page on a phone screen (see test_portal_flow.py for the
SQLite note on settle())."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from membership.core.time import local_today, utcnow
from membership.events.models import Event, EventRegistration
from membership.extensions import db
from tests.conftest import PASSWORD
from tests.events.conftest import make_event  # noqa: F401  (the events factory fixture)

pytestmark = pytest.mark.browser

PHONE_WIDTH = 390


def settle() -> None:
    db.session.rollback()


def test_a_member_registers_for_an_event_and_the_page_fits_a_phone(page, browser, live_server, make_member,
                                                                   make_plan, make_term, make_user, make_event,
                                                                   tmp_path):
    today = local_today()
    plan = make_plan(code="STD", name="Standard", fee_minor=150000)
    member = make_member(first_name="Abdullah", last_name="Al Mamun Chowdhury",
                         email="abdullah.al.mamun.chowdhury@example.org")
    make_term(member, plan, starts_on=today - timedelta(days=30), today=today)
    make_user("member", email=member.email, member_id=member.id)
    make_event(title="Annual general meeting and the monsoon gathering of all our members",
               starts_at=utcnow() + timedelta(days=9), capacity=80, member_price_minor=25000,
               non_member_price_minor=40000,
               venue="Bangabandhu International Conference Centre, Agargaon, Sher-e-Bangla Nagar, Dhaka 1207",
               description="Reports of the year, elections to the committee, and dinner.\n" + "Long-words-" * 12)
    member_id = member.id
    db.session.commit()
    settle()

    page.goto("/login")
    page.get_by_label("Email").fill("abdullah.al.mamun.chowdhury@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/my/$"))

    page.get_by_role("link", name="Events", exact=True).click()
    page.wait_for_url(re.compile(r"/my/events$"))
    page.get_by_role("link", name="See upcoming events").click()
    page.wait_for_url(re.compile(r"/events/$"))
    assert "80 places left" in page.inner_text("main")
    page.get_by_role("link", name=re.compile("^Annual general meeting")).click()
    page.wait_for_url(re.compile(r"/events/\d+$"))
    page.get_by_role("button", name="Register").click()
    page.wait_for_url(re.compile(r"/events/\d+$"))
    main = page.inner_text("main")
    assert "You are registered." in main and "79 places left" in main and "To pay:" in main

    settle()
    regs = db.session.execute(select(EventRegistration.member_id, EventRegistration.status)).all()
    assert [tuple(r) for r in regs] == [(member_id, "confirmed")]
    event_id = db.session.scalar(select(Event.id))
    settle()

    page.set_viewport_size({"width": PHONE_WIDTH, "height": 844})
    widths = {}
    for path in (f"/events/{event_id}", "/events/", "/my/events"):
        page.goto(path)
        widths[path] = page.evaluate("document.documentElement.scrollWidth")
    page.goto(f"/events/{event_id}")
    page.screenshot(path=str(tmp_path / "event-member-390.png"), full_page=True)

    # A visitor's event page (the public navigation and the guest form) fits as well.
    visitor = browser.new_context(base_url=live_server, viewport={"width": PHONE_WIDTH, "height": 844})
    try:
        guest = visitor.new_page()
        guest.goto(f"/events/{event_id}")
        assert "Your name" in guest.inner_text("main")
        widths["visitor"] = guest.evaluate("document.documentElement.scrollWidth")
        guest.screenshot(path=str(tmp_path / "event-visitor-390.png"), full_page=True)
    finally:
        visitor.close()
    assert {path: width for path, width in widths.items() if width > PHONE_WIDTH} == {}
