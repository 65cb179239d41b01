"""Samiti in Bengali: a visitor who picks বাংলা joins, confirms and reads the portal in Bengali;
a member who chose Bengali gets the renewal reminder, the receipt and the event confirmation in
Bengali (read from the .eml files the file mail backend writes); the language switch comes back
to the same page and is kept on the account; staff get the digest in their language; staff edit
an email per language; dates and money follow the language (and the BENGALI_DIGITS setting)."""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

import pytest
from sqlalchemy import select

from membership.accounts.models import User
from membership.extensions import db
from membership.members.models import Member
from membership.notifications import outbox, templating
from membership.notifications.models import OutboxMessage
from tests.conftest import PASSWORD, login
from tests.portal.helpers import application, link_path

BENGALI = re.compile(r"[\u0980-\u09FF]")


def text_of(response) -> str:
    return response.get_data(as_text=True)


def deliver_eml(app) -> dict[int, object]:
    """Send what is queued with the file backend; the parsed .eml files by outbox id."""
    app.config["MAIL_URL"] = "file://"
    outbox.deliver_pending(db.session, now=datetime.now(timezone.utc))
    found = {}
    for path in (Path(app.instance_path) / "mail").glob("*/*.eml"):
        found[int(path.stem)] = message_from_bytes(path.read_bytes(), policy=default_policy)
    return found


def eml_for(app, template_key: str, to: str):
    row = db.session.scalars(select(OutboxMessage).where(OutboxMessage.template_key == template_key,
                                                         OutboxMessage.to_address == to)
                             .order_by(OutboxMessage.id.desc())).first()
    assert row is not None, f"no {template_key} email to {to}"
    message = deliver_eml(app)[row.id]
    return message, message.get_body(preferencelist=("plain",)).get_content()


def test_a_visitor_who_picks_bengali_joins_confirms_and_reads_the_portal_in_bengali(app, client, make_plan):
    plan = make_plan(code="FRIEND", name="Friend", fee_minor=0, period_months=12)
    db.session.commit()
    switched = client.post("/language", data={"language": "bn", "next": "/join/"})
    assert switched.status_code == 303 and switched.headers["Location"] == "/join/"
    plans = text_of(client.get("/join/"))
    assert "Test Association-এ যোগ দিন" in plans and 'lang="bn"' in plans
    form = text_of(client.get(f"/join/{plan.id}"))
    assert "আপনার পরিচয়" in form  # and the emails' language is preset to the page's:
    assert re.search(r'<input[^>]*checked[^>]*value="bn"|<input[^>]*value="bn"[^>]*checked', form)

    # a weak password is refused in Bengali, and nothing is written
    weak = client.post(f"/join/{plan.id}", data=application(language="bn", password="short", confirm="short"))
    assert weak.status_code in (200, 422) and "কমপক্ষে" in text_of(weak) and "Use at least" not in text_of(weak)
    assert db.session.scalar(select(Member).where(Member.email_normalized == "nusrat@example.org")) is None

    joined = client.post(f"/join/{plan.id}", data=application(language="bn"))
    assert joined.status_code == 302
    assert "আপনার ইমেইল দেখুন" in text_of(client.get("/join/check-email"))
    member = db.session.scalar(select(Member).where(Member.email_normalized == "nusrat@example.org"))
    assert member.language == "bn"

    message, text = eml_for(app, "confirm_email", "nusrat@example.org")
    assert message["Subject"] == "Test Association-এ যোগ দিতে আপনার ইমেইল নিশ্চিত করুন"
    assert "প্রিয় Nusrat," in text and "অনুগ্রহ করে ৩ দিন-এর মধ্যে এই লিংকটি খুলে" in text
    assert "এই ইমেইল ঠিকানা দিয়ে Test Association-এ যোগ দেওয়ার অনুরোধ এসেছে" in text  # the footer's reason
    assert "Dear" not in text and "Please confirm" not in text
    html = message.get_body(preferencelist=("html",)).get_content()
    assert '<html lang="bn">' in html and "আমার ইমেইল ঠিকানা নিশ্চিত করুন" in html

    path = link_path(db.session.scalars(select(OutboxMessage).where(
        OutboxMessage.template_key == "confirm_email")).one(), "/join/confirm/")
    assert "আপনার ইমেইল ঠিকানা নিশ্চিত করুন" in text_of(client.get(path))
    assert client.post(path).status_code == 302
    _, welcome = eml_for(app, "welcome", "nusrat@example.org")
    assert "Test Association-এ স্বাগতম!" in welcome and "সদস্য নম্বর" in welcome

    client.post("/login", data={"email": "nusrat@example.org", "password": application()["password"]})
    home = text_of(client.get("/my/"))
    assert "আপনার সদস্যপদ সক্রিয়।" in home and "সদস্যপদের ইতিহাস" in home and "Your membership" not in home
    assert db.session.scalar(select(User.language).where(User.email == "nusrat@example.org")) == "bn"


@pytest.fixture
def bengali_member(make_member, make_plan, make_term):
    plan = make_plan(code="STD", name="Standard", fee_minor=150000, period_months=12, grace_days=30)
    member = make_member(first_name="Rahima", last_name="Begum", email="rahima@example.org", language="bn")
    return member, plan, make_term


def test_a_receipt_in_bengali_with_taka_and_bengali_digits(app, bengali_member):
    member, plan, make_term = bengali_member
    make_term(member, plan, starts_on=date(2026, 7, 1), today=date(2026, 7, 1))
    db.session.commit()
    message, text = eml_for(app, "payment_receipt", "rahima@example.org")
    assert message["Subject"].startswith("Test Association থেকে রসিদ R-")
    assert "পরিশোধের জন্য ধন্যবাদ। এটি আপনার রসিদ।" in text
    assert "১,৫০০.০০৳" in text and "জুলাই" in text and "BDT" not in text
    assert "এই ইমেইলটি পাঠানো হয়েছে, কারণ আপনি Test Association-কে একটি পরিশোধ করেছেন" in text


def test_a_renewal_reminder_in_bengali(app, bengali_member):
    from membership.notifications.reminders import ensure_default_rules, queue_due

    member, plan, make_term = bengali_member
    term = make_term(member, plan, starts_on=date(2025, 7, 1), today=date(2025, 7, 1))
    ensure_default_rules(db.session, date(2026, 5, 1))
    db.session.commit()
    thirty_before = term.ends_on - timedelta(days=30)
    queue_due(db.session, now=datetime(thirty_before.year, thirty_before.month, thirty_before.day, 4, tzinfo=timezone.utc))
    db.session.commit()
    message, text = eml_for(app, "renewal_reminder_30", "rahima@example.org")
    assert message["Subject"] == "আপনার Test Association সদস্যপদ ৩০ জুন, ২০২৬ তারিখে শেষ হবে"
    assert "প্রিয় Rahima," in text and "আর 30 দিন পর শেষ হবে" in text
    assert "এখনই নবায়ন করলে সদস্যপদ বিরতি ছাড়াই চলবে" in text and "/my/renew" in text
    assert "Test Association-এ আপনার Standard সদস্যপদ ৩০ জুন, ২০২৬ তারিখে শেষ হবে।" in text  # the reason


def test_an_event_confirmation_in_bengali_and_english_for_an_english_member(app, bengali_member, make_member):
    from membership.events.models import Event
    from membership.events.services import register_member

    member, plan, make_term = bengali_member
    english = make_member(first_name="Ada", email="ada@example.org", language="en")
    make_term(member, plan, starts_on=date(2026, 1, 1), today=date(2026, 1, 1))
    make_term(english, plan, starts_on=date(2026, 1, 1), today=date(2026, 1, 1))
    now = datetime.now(timezone.utc).replace(microsecond=0)
    event = Event(title="Annual general meeting", starts_at=datetime(2027, 3, 9, 12, 30, tzinfo=timezone.utc),
                  ends_at=datetime(2027, 3, 9, 14, 30, tzinfo=timezone.utc), capacity=None, waitlist_enabled=True,
                  members_only=False, member_price_minor=25000, non_member_price_minor=50000, currency="BDT",
                  status="published", reminder_hours_before=24, seats_taken=0, venue="Community Hall",
                  published_at=now, created_at=now, updated_at=now)
    db.session.add(event)
    db.session.flush()
    register_member(db.session, event, member, now=now, actor=None)
    register_member(db.session, event, english, now=now, actor=None)
    db.session.commit()
    message, text = eml_for(app, "event_confirmation", "rahima@example.org")
    assert message["Subject"] == "আপনার নিবন্ধন সম্পন্ন: Annual general meeting"
    assert "Annual general meeting-এ আপনার আসন নিশ্চিত হয়েছে।" in text
    assert "মঙ্গলবার ৯ মার্চ ২০২৭, ১৮:৩০" in text and "২৫০.০০৳" in text
    assert any(part.get_content_type() == "text/calendar" for part in message.iter_attachments())
    _, english_text = eml_for(app, "event_confirmation", "ada@example.org")
    assert "Your place at Annual general meeting is confirmed." in english_text
    assert "Tuesday 9 March 2027, 18:30" in english_text and not BENGALI.search(english_text)


def test_the_switch_comes_back_to_the_page_and_is_kept_on_the_account(app, client, make_member, make_user):
    member = make_member(first_name="Karim", email="karim@example.org", language="en")
    user = make_user("member", email="karim@example.org", member_id=member.id)
    login(client, user)
    assert "My details" in text_of(client.get("/my/profile"))
    back = client.post("/language", data={"language": "bn", "next": "/my/payments"},
                       headers={"Referer": "http://localhost/my/payments?page=2"})
    assert back.status_code == 303 and back.headers["Location"] == "/my/payments?page=2"
    assert "আমার পরিশোধ" in text_of(client.get("/my/payments"))
    db.session.expire_all()
    assert db.session.get(User, user.id).language == "bn" and db.session.get(Member, member.id).language == "bn"

    other_device = app.test_client()
    login(other_device, user)
    assert "আমার সদস্যপদ" in text_of(other_device.get("/my/"))
    # a foreign or odd target goes home, never off-site
    assert client.post("/language", data={"language": "en", "next": "//evil.example"}).headers["Location"] == "/"
    assert client.post("/language", data={"language": "xx", "next": "/my/"}).headers["Location"] == "/my/"
    assert "My payments" in text_of(client.get("/my/payments"))


def test_a_language_chosen_before_signing_in_is_kept_by_the_sign_in(app, client, make_user):
    staff = make_user("staff", email="rahim@example.org", name="Rahim")
    assert staff.language is None
    client.post("/language", data={"language": "bn", "next": "/login"})
    assert "সাইন ইন" in text_of(client.get("/login"))
    login(client, staff)
    assert "হোম" in text_of(client.get("/staff/"))  # the staff home in Bengali, not English again
    db.session.expire_all()
    assert db.session.get(User, staff.id).language == "bn"


def test_visitors_get_accept_language_then_the_default(app, client):
    assert 'lang="en"' in text_of(client.get("/login"))
    page = text_of(client.get("/login", headers={"Accept-Language": "bn-BD,bn;q=0.9,en;q=0.5"}))
    assert 'lang="bn"' in page and "পাসওয়ার্ড ভুলে গেছেন?" in page
    app.config["DEFAULT_LANGUAGE"] = "bn"
    assert "পাসওয়ার্ড ভুলে গেছেন?" in text_of(app.test_client().get("/login"))
    assert "Forgot your password?" in text_of(app.test_client().get("/login", headers={"Accept-Language": "en"}))


def test_staff_get_their_pages_and_the_digest_in_their_own_language(app, client, make_user, make_member):
    from membership.notifications.digest import send_staff_digest
    from membership.core.time import tz

    bengali_staff = make_user("staff", email="nasima@example.org", name="Nasima")
    english_staff = make_user("staff", email="sam@example.org", name="Sam")
    login(client, bengali_staff)
    client.post("/language", data={"language": "bn", "next": "/staff/"})
    assert db.session.get(User, bengali_staff.id).language == "bn"
    make_member(first_name="New", email="new@example.org", joined_on=date(2026, 6, 14))
    db.session.commit()
    send_staff_digest(db.session, today=date(2026, 6, 15), now=datetime(2026, 6, 15, 2, tzinfo=timezone.utc),
                      zone=tz())
    db.session.commit()
    message, text = eml_for(app, "staff_digest", "nasima@example.org")
    assert "১৪ জুন ২০২৬ তারিখে ১ জন নতুন সদস্য যোগ দিয়েছেন।" in text and "কর্মীদের জন্য একটি স্বয়ংক্রিয় বার্তা" in text
    _, english = eml_for(app, "staff_digest", "sam@example.org")
    assert "1 new member joined on 14 Jun 2026." in english and english_staff.language is None


def test_staff_edit_an_email_per_language_with_fallback_to_the_default_language(app, admin_user, make_member):
    now = datetime(2026, 6, 15, tzinfo=timezone.utc)
    bn = make_member(first_name="Rahima", email="r@example.org", language="bn")
    en = make_member(first_name="Ada", email="a@example.org", language="en")
    templating.save_template(db.session, "welcome", subject="স্বাগতম, {{ member.first_name }}!",
                             body_text="আপনাকে পেয়ে আমরা খুশি।", body_html=None, actor=admin_user, now=now,
                             language="bn")
    db.session.commit()
    assert templating.current_source(db.session, "welcome", "bn").subject == "স্বাগতম, {{ member.first_name }}!"
    assert not templating.current_source(db.session, "welcome", "en").is_custom  # the shipped default
    assert templating.preview(db.session, "welcome", language="en", now=now).subject.startswith("Welcome to")
    from membership.notifications.emails import queue_welcome
    assert queue_welcome(db.session, bn, now=now).subject == "স্বাগতম, Rahima!"
    assert queue_welcome(db.session, en, now=now).subject == "Welcome to Test Association, Ada"
    # an edit in the default language (English here) is what a language without its own edit gets
    templating.save_template(db.session, "lapsed_notice", subject="Come back, {{ member.first_name }}",
                             body_text="We miss you.", body_html=None, actor=admin_user, now=now)
    db.session.commit()
    assert templating.current_source(db.session, "lapsed_notice", "bn").subject == "Come back, {{ member.first_name }}"
    assert templating.reset_template(db.session, "welcome", actor=admin_user, now=now, language="bn")
    assert not templating.current_source(db.session, "welcome", "bn").is_custom


def test_money_dates_and_digits_follow_the_language_and_the_setting(app):
    from membership.core.i18n import in_language
    from membership.web import format_day, format_when, money

    with app.test_request_context():
        with in_language("bn"):
            assert money(150000) == "১,৫০০.০০৳" and format_day(date(2026, 7, 15)) == "১৫ জুল ২০২৬"
            assert format_when(datetime(2026, 7, 15, 12, 30, tzinfo=timezone.utc), "%Y-%m-%d %H:%M") == \
                "2026-07-15 18:30"  # files and machine-read values keep Latin digits
            app.config["BENGALI_DIGITS"] = False
            assert money(150000) == "1,500.00৳" and format_day(date(2026, 7, 15)) == "15 জুল 2026"
        with in_language("en"):
            assert money(150000) == "BDT1,500.00" and format_day(date(2026, 7, 15)) == "15 Jul 2026"


def test_date_inputs_show_no_us_style_placeholder(app):
    for path in Path(app.template_folder).rglob("*.html"):
        assert "mm/dd/yyyy" not in path.read_text(encoding="utf-8").lower(), path


def test_the_language_versions_page_previews_and_saves_each_language(app, admin_client, make_user):
    page = text_of(admin_client.get("/staff/email-templates/welcome/language/bn"))
    assert "Test Association-এ স্বাগতম, Ada" in page  # the shipped text, previewed in Bengali
    assert "No staff edit: the shipped text, translated into বাংলা." in page
    english = text_of(admin_client.get("/staff/email-templates/welcome/language/en"))
    assert "Welcome to Test Association, Ada" in english
    saved = admin_client.post("/staff/email-templates/welcome/language/bn", data={
        "action": "save", "subject": "স্বাগতম, {{ member.first_name }}!", "body_text": "আপনাকে পেয়ে আমরা খুশি।",
        "body_html": ""})
    assert saved.status_code == 302
    assert templating.custom_row(db.session, "welcome", "bn").subject == "স্বাগতম, {{ member.first_name }}!"
    assert templating.custom_row(db.session, "welcome", "en") is None
    page = text_of(admin_client.get("/staff/email-templates/welcome/language/bn"))
    assert "স্বাগতম, Ada!" in page and "Staff edited the বাংলা version." in page
    bad = admin_client.post("/staff/email-templates/welcome/language/bn", data={
        "action": "save", "subject": "{{ nonsense }}", "body_text": "x", "body_html": ""})
    assert bad.status_code == 422 and "nonsense" in text_of(bad)
    assert admin_client.post("/staff/email-templates/welcome/language/bn", data={"action": "reset"}).status_code == 302
    assert templating.custom_row(db.session, "welcome", "bn") is None
    assert admin_client.get("/staff/email-templates/welcome/language/xx").status_code == 404

    staff = app.test_client()
    login(staff, make_user("staff", email="s2@example.org"))
    assert staff.get("/staff/email-templates/welcome/language/bn").status_code == 200
    assert staff.post("/staff/email-templates/welcome/language/bn", data={"action": "reset"}).status_code == 403
    assert app.test_client().get("/staff/email-templates/welcome/language/bn").status_code == 302
