"""The dashboard in a real browser: Chart.js draws the four charts from the page's data attribute
under the app's Content-Security-Policy (no console errors, no CSP violations)."""
from __future__ import annotations

from datetime import timedelta

import pytest

from membership.core.time import local_today
from membership.extensions import db
from membership.plans.services import refresh_status
from tests.conftest import NOW, PASSWORD
from tests.engagement.test_dashboard import add_term, score

pytestmark = pytest.mark.browser


def test_charts_are_drawn_under_the_csp(page, staff_user, make_member, make_plan, tmp_path):  # noqa: F811
    today = local_today()
    plan = make_plan(name="Standard", grace_days=30)
    for i in range(6):
        member = make_member(joined_on=today - timedelta(days=400 + 30 * i))
        add_term(member, plan, today - timedelta(days=400 + 30 * i), today - timedelta(days=35 + 30 * i))
        if i % 2:
            add_term(member, plan, today - timedelta(days=34 + 30 * i), today + timedelta(days=330 - 30 * i))
        refresh_status(db.session, member, today=today, now=NOW)
        score(member, 5.0 * i, ("dormant", "drifting", "engaged")[i % 3], ("high", "low")[i % 2], 0.5)
    email = staff_user.email
    db.session.commit()
    db.session.close()  # hold no SQLite read lock while the live server writes (the login)

    problems = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/staff/")
    page.wait_for_function("window.Chart && Chart.getChart('chart-risk')")
    for chart_id in ("chart-status", "chart-renewals", "chart-engagement", "chart-risk"):
        assert page.evaluate(f"!!Chart.getChart('{chart_id}')"), chart_id
        box = page.locator(f"#{chart_id}").bounding_box()
        assert box and box["width"] > 100 and box["height"] > 50, chart_id
    assert page.evaluate("Chart.getChart('chart-risk').data.datasets[0].data") == [3]
    assert problems == []
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)

    # a click on a bar opens the member list behind it (here: high risk on the plan)
    x, y = page.evaluate("(() => { const c = Chart.getChart('chart-risk'); const bar = c.getDatasetMeta(0).data[0];"
                         " return [bar.x - (bar.x - bar.base) / 2, bar.y]; })()")
    page.locator("#chart-risk").click(position={"x": x, "y": y})
    page.wait_for_url("**/staff/members?**risk=high**")
    assert page.locator("#member-total").inner_text() == "3 members"


def test_the_staff_bar_fits_a_1280_pixel_screen(page, admin_user):
    """Every menu of an admin (the most of them) on one line, and the account menu on the screen."""
    email = admin_user.email
    db.session.commit()
    db.session.close()
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/staff/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    account = page.locator("nav .dropdown > button")
    assert account.is_visible()
    box = account.bounding_box()
    assert box["x"] + box["width"] <= 1280
    assert page.locator("nav.navbar").bounding_box()["height"] < 70  # one line
