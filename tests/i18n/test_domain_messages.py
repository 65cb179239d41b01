"""The domain's own messages (validation and conflicts raised by services, shown beside fields and in
flash messages) read in the page's language, like the labels around them: a Bengali admin who types a
bad fee or 31 February reads Bengali, not English; the plan's period on the Bengali join page says
"১ বছর", not "1 year"; limits show the page's digits."""
from __future__ import annotations

import html
import re

from membership.extensions import db
from tests.admin.test_plans import GOOD, error_beside

BENGALI = re.compile(r"[\u0980-\u09FF]")


def text_of(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def in_bengali(client, next_path: str) -> None:
    assert client.post("/language", data={"language": "bn", "next": next_path}).status_code == 303


def test_a_bengali_admin_reads_the_plan_catalogues_messages_in_bengali(admin_client):
    in_bengali(admin_client, "/staff/admin/plans/new")
    form = text_of(admin_client.get("/staff/admin/plans/new"))
    assert "জানুয়ারি" in form and "January" not in form          # the month choices
    assert "আজীবন" in form and "Lifetime" not in form              # the period kinds
    data = dict(GOOD, fee="abc", period_kind="fixed", period_months="12", period_start_month="2",
                period_start_day="30", grace_days="9999")
    page = text_of(admin_client.post("/staff/admin/plans/new", data=data))
    fee = error_beside(page, "fee")
    assert "1500.00-এর মতো করে পরিমাণ লিখুন" in fee and "enter an amount" not in fee
    day = error_beside(page, "period_start_day")
    assert "ফেব্রুয়ারি মাসে ৩০ তারিখ নেই" in day, day
    grace = error_beside(page, "grace_days")
    assert "০ থেকে ৩৬৫-এর মধ্যে" in grace and "between" not in grace


def test_the_same_messages_stay_english_on_an_english_page(admin_client):
    page = text_of(admin_client.post("/staff/admin/plans/new", data=dict(GOOD, fee="abc")))
    assert "Fee: enter an amount like 1500.00." in error_beside(page, "fee")


def test_the_bengali_join_page_gives_the_plans_period_in_bengali(client, make_plan):
    make_plan(code="Y1", name="Yearly", fee_minor=100000, period_months=12)
    make_plan(code="M6", name="Half year", fee_minor=60000, period_months=6)
    make_plan(code="LIFE", name="Forever", fee_minor=0, period_kind="lifetime")
    db.session.commit()
    in_bengali(client, "/join/")
    page = text_of(client.get("/join/"))
    periods = re.findall(r'class="[^"]*plan-period[^"]*">([^<]*)<', page)
    assert sorted(periods) == sorted(["১ বছর", "৬ মাস", "আজীবন"]), periods
    english = client.post("/language", data={"language": "en", "next": "/join/"})
    assert english.status_code == 303
    periods = re.findall(r'class="[^"]*plan-period[^"]*">([^<]*)<', text_of(client.get("/join/")))
    assert sorted(periods) == sorted(["1 year", "6 months", "Lifetime"]), periods


def test_a_too_long_email_body_names_its_limit_in_bengali_digits(admin_client):
    in_bengali(admin_client, "/staff/email-templates/welcome")
    page = text_of(admin_client.post("/staff/email-templates/welcome", data={
        "subject": "স্বাগতম", "body_text": "x" * 100_001, "body_html": ""}))
    assert "১,০০,০০০" in page or "১০০,০০০" in page, re.findall(r"[^<>]*অক্ষর[^<>]*", page)
    assert "100,000" not in page


def test_a_bengali_staff_member_reads_the_event_forms_messages_in_bengali(staff_client):
    from membership.events.models import Event
    from sqlalchemy import func, select
    from tests.events.test_staff_events import good_form

    in_bengali(staff_client, "/staff/events/new")
    response = staff_client.post("/staff/events/new", data=good_form(capacity="-3"))
    assert response.status_code == 422
    page = text_of(response)
    assert "ধারণক্ষমতা শূন্যের কম হতে পারে না" in page and "below zero" not in page
    page = text_of(staff_client.post("/staff/events/new", data=good_form(member_price="12.345")))
    assert "দশমিকের পর সর্বোচ্চ দুই ঘর" in page and "at most two decimals" not in page
    page = text_of(staff_client.post("/staff/events/new", data=good_form(starts_at="soon")))
    assert "তারিখ ও সময় দিন" in page and "enter a date" not in page
    assert db.session.scalar(select(func.count()).select_from(Event)) == 0
