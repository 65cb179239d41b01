"""axe-core (vendored from its npm package, tests/browser/vendor/axe-core) finds no serious or
critical accessibility problem (colour contrast included) on the pages people use most, in English
and in Bengali: staff home, member list, member page, portal home, the join form and an event page.
The language is chosen the way people choose it: with the switch on the page."""
from __future__ import annotations

import os
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from membership.extensions import db
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser

AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"


@pytest.fixture
def world(app, make_plan, make_member, make_term, make_user, staff_user):
    from membership.core.time import local_today
    from membership.events.models import Event

    today = local_today()
    plan = make_plan(code="STD", name="Standard", fee_minor=150000, period_months=12, grace_days=30)
    member = make_member(first_name="ফাতেমা", last_name="খাতুন", email="fatema@example.org", language="bn")
    other = make_member(first_name="Rahim", last_name="Uddin", email="rahim@example.org")
    make_term(member, plan, starts_on=today - timedelta(days=300), today=today - timedelta(days=300))
    make_term(other, plan, starts_on=today - timedelta(days=400), today=today - timedelta(days=400))
    member_user = make_user("member", email="fatema@example.org", member_id=member.id)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    event = Event(title="বার্ষিক সাধারণ সভা / Annual general meeting", starts_at=now + timedelta(days=7),
                  ends_at=now + timedelta(days=7, hours=2), capacity=40, waitlist_enabled=True, members_only=False,
                  member_price_minor=0, non_member_price_minor=25000, currency="BDT", status="published",
                  reminder_hours_before=24, seats_taken=0, venue="Community Hall", description="An evening together.",
                  published_at=now, created_at=now, updated_at=now)
    db.session.add(event)
    db.session.commit()
    ids = {"member": member.id, "plan": plan.id, "event": event.id, "staff": staff_user.email,
           "member_email": member_user.email}
    db.session.close()  # hold no SQLite read lock while the live server writes
    return ids


@pytest.fixture
def axe_page(browser, live_server):
    # the app's CSP allows scripts from 'self' only; the test injects axe, so this context bypasses it
    context = browser.new_context(base_url=live_server, viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def serious_violations(page) -> list[str]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ['violations']});
        return r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
            .map(v => v.id + ': ' + v.nodes.slice(0, 3).map(n => n.target.join(' ') + ' ' +
                 (n.any.concat(n.all).map(c => c.message).join('; '))).join(' | '));
    }""")
    return result


def choose(page, language: str) -> None:
    """Press the language switch; it comes back to the same page."""
    url = page.url
    page.locator(".language-switch").first.get_by_role("button", name=language).click()
    page.wait_for_url(url)


def sign_in(page, email: str) -> None:
    page.goto("/login")
    page.get_by_label(re.compile("^(Email|ইমেইল)")).fill(email)
    page.get_by_label(re.compile("^(Password|পাসওয়ার্ড)")).fill(PASSWORD)
    page.locator("main form button[type=submit]").click()
    page.wait_for_load_state()


@pytest.mark.parametrize("language, word", [("English", "Members"), ("বাংলা", "সদস্য")])
def test_no_serious_accessibility_problems_on_the_main_pages(axe_page, world, language, word):
    page = axe_page
    problems = {}

    page.goto(f"/join/{world['plan']}")
    choose(page, language)
    problems["join"] = serious_violations(page)
    page.goto(f"/events/{world['event']}")
    problems["event"] = serious_violations(page)

    sign_in(page, world["staff"])
    page.goto("/staff/")
    choose(page, language)
    problems["staff home"] = serious_violations(page)
    page.goto("/staff/members")
    problems["member list"] = serious_violations(page)
    page.goto(f"/staff/members/{world['member']}")
    problems["member page"] = serious_violations(page)
    page.context.clear_cookies()
    sign_in(page, world["member_email"])
    page.goto("/my/")
    choose(page, language)
    assert word in page.inner_text("body") or language == "English"
    problems["portal home"] = serious_violations(page)

    found = {name: found for name, found in problems.items() if found}
    assert not found, "\n".join(f"{name}: {v}" for name, vs in found.items() for v in vs)


def test_the_portal_in_bengali_renders_bengali_text_in_the_vendored_font(axe_page, world, tmp_path):
    """A screenshot of the portal home in Bengali (saved for people to look at), and proof that the
    Bengali glyphs come from the Noto Sans Bengali the app serves, not from empty boxes."""
    page = axe_page
    sign_in(page, world["member_email"])
    page.goto("/my/")
    choose(page, "বাংলা")
    main = page.inner_text("main")
    assert "আমার সদস্যপদ" in page.inner_text("nav") and "সদস্যপদের ইতিহাস" in main and "Membership history" not in main
    assert page.evaluate("document.documentElement.lang") == "bn"
    page.evaluate("document.fonts.ready")
    assert page.evaluate("document.fonts.check('16px \"Noto Sans Bengali\"', 'সদস্য')")
    assert page.evaluate("""() => [...document.fonts].some(f => f.family.includes('Noto Sans Bengali')
                                                             && f.status === 'loaded')""")
    out = Path(os.environ.get("SAMITI_TEST_ARTIFACTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    shot = out / "portal-home-bn.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
