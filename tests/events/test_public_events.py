"""The public events pages: lists, the event page (local times, places, price per viewer, the reason
registration is not open), registering as a member (once, however often the button is pressed) and
as a guest (confirmed by the emailed link), cancelling, calendar files and the feedback form."""
from __future__ import annotations

import html
import re
from datetime import datetime, timedelta, timezone

import pytest
from icalendar import Calendar
from sqlalchemy import func, select

from membership.core.time import local_today, utcnow
from membership.events import services
from membership.events.models import EventFeedback, EventRegistration
from membership.extensions import db
from membership.notifications.models import OutboxMessage
from membership.web import money
from tests.conftest import login
from membership.events.tokens import feedback_token, guest_confirm_token

INSTRUCTIONS = "Pay to Sonali Bank account 0123456789, quoting the event."


@pytest.fixture
def app_config():
    return {"EVENT_PAYMENT_INSTRUCTIONS": INSTRUCTIONS}


# ---------------------------------------------------------------- helpers (also used by the other events tests)


def at_local(days: int, hour: int) -> datetime:
    """`days` from now at `hour`:00 in Dhaka (UTC+6, no daylight saving), as aware UTC."""
    day = (utcnow() + timedelta(days=days)).date()
    return datetime(day.year, day.month, day.day, hour - 6, 0, tzinfo=timezone.utc)


def text_of(response) -> str:
    """The page's text with tags dropped and entities decoded, whitespace collapsed."""
    body = response.get_data(as_text=True)
    body = re.sub(r"<script.*?</script>", " ", body, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body)))


@pytest.fixture
def make_current_member(make_member, make_plan, make_term, make_user):
    """make_current_member(**kw) -> (member, user): an active member with a login."""
    plan = None

    def make(lapsed=False, **kw):
        nonlocal plan
        plan = plan or make_plan(name="Standard", fee_minor=5000, grace_days=30)
        member = make_member(**kw)
        today = local_today()
        starts = today - timedelta(days=800 if lapsed else 30)
        make_term(member, plan, starts_on=starts, today=today)
        user = make_user("member", email=member.email, name=member.full_name, member_id=member.id)
        db.session.commit()
        return member, user
    return make


@pytest.fixture
def member_client(client, make_current_member):
    member, user = make_current_member(first_name="Rahima", last_name="Begum")
    assert login(client, user).status_code == 302
    client.member = member
    return client


def registrations_of(event, **where) -> list[EventRegistration]:
    stmt = select(EventRegistration).where(EventRegistration.event_id == event.id)
    for name, value in where.items():
        stmt = stmt.where(getattr(EventRegistration, name) == value)
    db.session.expire_all()
    return list(db.session.scalars(stmt.order_by(EventRegistration.id)))


def register_other(event, member):
    reg = services.register_member(db.session, event, member, now=utcnow(), actor=None)
    db.session.commit()
    return reg


def link_in(message: OutboxMessage, prefix: str) -> str:
    match = re.search(r"https?://[^/\s]+(" + re.escape(prefix) + r"[^\s\"'<>]*)", message.body_text)
    assert match, f"no {prefix} link in {message.body_text!r}"
    return match.group(1)


# ---------------------------------------------------------------- lists


def test_upcoming_list_shows_published_events_in_local_time_with_places_and_visitor_price(client, make_event):
    talk = make_event(title="Monsoon talk", starts_at=at_local(10, 18), hours=2, capacity=40,
                      member_price_minor=30000, non_member_price_minor=50000)
    make_event(title="Picnic for all", starts_at=at_local(12, 10), members_only=True)
    make_event(title="Secret draft", status="draft")
    make_event(title="Last year's dinner", starts_at=at_local(-30, 19))
    db.session.commit()

    page = text_of(client.get("/events/"))
    assert "Monsoon talk" in page and "Picnic for all" in page
    assert "Secret draft" not in page and "Last year's dinner" not in page
    assert "18:00 to 20:00" in page  # 12:00 UTC shown in Dhaka time
    assert "40 places left" in page
    assert money(50000, "BDT") in page and money(30000, "BDT") not in page  # a visitor pays the non-member price
    assert "Free" in page and "Members only" in page
    assert talk.starts_at.hour == 12

    past = text_of(client.get("/events/past"))
    assert "Last year's dinner" in past and "Monsoon talk" not in past and "Secret draft" not in past


def test_a_current_member_sees_the_member_price(member_client, make_event):
    make_event(title="Monsoon talk", starts_at=at_local(10, 18), member_price_minor=30000,
               non_member_price_minor=50000)
    db.session.commit()
    page = text_of(member_client.get("/events/"))
    assert f"{money(30000, 'BDT')} (member price)" in page and money(50000, "BDT") not in page
    assert "My events" in page  # the portal navigation is shown to a member


def test_the_list_is_paginated(client, make_event):
    for n in range(23):
        make_event(title=f"Session {n:02d}", starts_at=at_local(3 + n, 18))
    db.session.commit()
    first, second = text_of(client.get("/events/")), text_of(client.get("/events/?page=2"))
    assert "Session 00" in first and "Session 19" in first and "Session 20" not in first
    assert "Session 20" in second and "Session 22" in second and "Session 00" not in second
    assert client.get("/events/?page=abc").status_code == 200


# ---------------------------------------------------------------- the event page


def test_event_page_for_a_visitor(client, make_event):
    event = make_event(title="Coding night", starts_at=at_local(5, 19), hours=3, capacity=12, venue=None,
                       online_url="https://meet.example.org/secret-room", description="Bring a laptop.",
                       non_member_price_minor=20000, member_price_minor=10000)
    db.session.commit()
    page = text_of(client.get(f"/events/{event.id}"))
    assert "Coding night" in page and "Bring a laptop." in page
    assert "19:00 to 22:00" in page and "Asia/Dhaka" in page
    assert "12 places left" in page and money(20000, "BDT") in page
    assert "the link is sent on registration" in page
    assert "secret-room" not in client.get(f"/events/{event.id}").get_data(as_text=True)
    assert 'name="email"' in client.get(f"/events/{event.id}").get_data(as_text=True)  # the guest form


def test_drafts_and_unknown_events_are_not_found(client, make_event):
    draft = make_event(status="draft")
    db.session.commit()
    for url in (f"/events/{draft.id}", f"/events/{draft.id}.ics", "/events/999999", "/events/999999.ics"):
        assert client.get(url).status_code == 404, url
    assert client.post(f"/events/{draft.id}/register", data={"name": "X", "email": "x@example.org"}).status_code == 404


def test_online_link_is_shown_to_a_registered_member_only(member_client, make_event):
    event = make_event(title="Webinar", venue=None, online_url="https://meet.example.org/secret-room")
    db.session.commit()
    assert "secret-room" not in member_client.get(f"/events/{event.id}").get_data(as_text=True)
    member_client.post(f"/events/{event.id}/register")
    assert "secret-room" in member_client.get(f"/events/{event.id}").get_data(as_text=True)


@pytest.mark.parametrize("case", ["not_yet_open", "closed", "full_waitlist", "full_no_waitlist"])
def test_the_reason_registration_is_not_open_is_shown(client, make_event, case):
    kw = {
        "not_yet_open": {"opens_at": utcnow() + timedelta(days=2)},
        "closed": {"closes_at": utcnow() - timedelta(hours=1), "opens_at": utcnow() - timedelta(days=3)},
        "full_waitlist": {"capacity": 0, "waitlist": True},
        "full_no_waitlist": {"capacity": 0, "waitlist": False},
    }[case]
    event = make_event(title="Quiz night", **kw)
    db.session.commit()
    seen = services.availability(db.session, event, member=None, now=utcnow())
    page = text_of(client.get(f"/events/{event.id}"))
    if case == "full_waitlist":
        assert seen.open and seen.waitlist
        assert "Join the waitlist" in page and "Full" in page
    else:
        assert not seen.open and seen.reason
        assert seen.reason in page
        assert 'name="email"' not in client.get(f"/events/{event.id}").get_data(as_text=True)
    if case == "not_yet_open":
        assert "opens" in seen.reason.lower()
    if case == "closed":
        assert "closed" in seen.reason.lower()


def test_members_only_event_asks_a_visitor_to_sign_in_or_join(client, make_event):
    event = make_event(title="Members' dinner", members_only=True)
    db.session.commit()
    response = client.get(f"/events/{event.id}")
    body = response.get_data(as_text=True)
    assert "Members only" in text_of(response)
    assert re.search(rf'href="/login\?next=(%2F|/)events(%2F|/){event.id}"', body) and 'href="/join/"' in body
    assert 'name="email"' not in body
    # Posting the guest form anyway registers nobody.
    client.post(f"/events/{event.id}/register", data={"name": "Guest", "email": "guest@example.org"})
    assert registrations_of(event) == []


def test_a_lapsed_member_is_told_why_on_a_members_only_event(client, make_current_member, make_event):
    member, user = make_current_member(lapsed=True)
    event = make_event(title="Members' dinner", members_only=True)
    db.session.commit()
    login(client, user)
    seen = services.availability(db.session, event, member=member, now=utcnow())
    assert not seen.open and seen.reason
    page = text_of(client.get(f"/events/{event.id}"))
    assert seen.reason in page
    client.post(f"/events/{event.id}/register")
    assert registrations_of(event) == []


# ---------------------------------------------------------------- registering as a member


def test_a_member_registers_once_however_often_the_button_is_pressed(member_client, make_event):
    event = make_event(title="Monsoon talk", capacity=10)
    db.session.commit()
    first = member_client.post(f"/events/{event.id}/register")
    second = member_client.post(f"/events/{event.id}/register")
    assert first.status_code == 303 and second.status_code == 303
    regs = registrations_of(event)
    assert len(regs) == 1 and regs[0].status == "confirmed" and regs[0].member_id == member_client.member.id
    page = text_of(member_client.get(f"/events/{event.id}"))
    assert "You are registered." in page and "9 places left" in page
    assert "Cancel my registration" in page


def test_a_paid_event_shows_what_is_due_and_how_to_pay(member_client, make_event):
    event = make_event(title="Gala", member_price_minor=30000, non_member_price_minor=50000)
    db.session.commit()
    member_client.post(f"/events/{event.id}/register")
    page = text_of(member_client.get(f"/events/{event.id}"))
    assert "You are registered." in page
    assert f"To pay: {money(30000, 'BDT')}" in page and INSTRUCTIONS in page
    assert "membership becomes active" not in page  # the membership's own instructions are not for events


def test_a_full_event_puts_the_member_on_the_waitlist_with_a_position(member_client, make_event,
                                                                      make_current_member):
    event = make_event(title="Small workshop", capacity=1)
    db.session.commit()
    for _ in range(2):
        other, _user = make_current_member()
        register_other(event, other)
    page = text_of(member_client.get(f"/events/{event.id}"))
    assert "Join the waitlist" in page
    member_client.post(f"/events/{event.id}/register")
    page = text_of(member_client.get(f"/events/{event.id}"))
    assert "You are on the waitlist (position 2)." in page and "Leave the waitlist" in page


# ---------------------------------------------------------------- guests


def test_a_guest_registers_and_confirms_by_the_emailed_link(client, make_event):
    event = make_event(title="Open day", capacity=5)
    db.session.commit()
    response = client.post(f"/events/{event.id}/register", data={"name": "Karim Uddin", "email": "karim@example.org"})
    assert response.status_code == 303 and response.headers["Location"].endswith(f"/events/{event.id}/check-email")
    assert "Check your email" in text_of(client.get(response.headers["Location"]))
    [reg] = registrations_of(event)
    assert reg.status == "pending" and reg.guest_email == "karim@example.org"

    db.session.expire_all()
    mails = list(db.session.scalars(select(OutboxMessage).where(OutboxMessage.to_address == "karim@example.org")))
    assert len(mails) == 1
    link = link_in(mails[0], "/events/confirm/")
    page = client.get(link)
    assert page.status_code == 200 and "Confirm my registration" in text_of(page)
    assert registrations_of(event)[0].status == "pending"  # opening the link (a mail scanner) changes nothing
    done = client.post(link)
    assert done.status_code == 200 and "You are registered." in text_of(done)
    assert registrations_of(event)[0].status == "confirmed"
    again = client.post(link)  # clicked twice
    assert again.status_code == 200 and "You are registered." in text_of(again)
    assert len(registrations_of(event)) == 1


def test_a_guest_cancels_from_the_link_in_the_confirmation_email_and_the_next_person_moves_up(
        client, make_event, make_current_member):
    event = make_event(title="Open day", capacity=1, cancellation_deadline=utcnow() + timedelta(days=2))
    db.session.commit()
    client.post(f"/events/{event.id}/register", data={"name": "Karim Uddin", "email": "karim@example.org"})
    client.post(link_in(mail_to("karim@example.org", "event_guest_confirm"), "/events/confirm/"))
    waiting = make_current_member()[0]
    services.register_member(db.session, event, waiting, now=utcnow(), actor=None)
    db.session.commit()

    link = link_in(mail_to("karim@example.org", "event_confirmation"), "/events/cancel/")
    page = client.get(link)
    assert page.status_code == 200 and "Cancel my registration" in text_of(page) and "Karim Uddin" in text_of(page)
    assert registrations_of(event, guest_email="karim@example.org")[0].status == "confirmed"  # opening: nothing
    done = client.post(link, follow_redirects=True)
    assert "Your registration is cancelled." in text_of(done)
    db.session.expire_all()
    assert registrations_of(event, guest_email="karim@example.org")[0].status == "cancelled"
    assert registrations_of(event, member_id=waiting.id)[0].status == "confirmed"  # moved up
    twice = client.post(link)  # nothing more happens
    assert twice.status_code == 200 and "is cancelled" in text_of(twice)
    assert client.get("/events/cancel/made-up-token").status_code == 404
    assert client.get(link[:-4] + "AAAA").status_code == 404


def test_a_guest_cannot_cancel_after_the_deadline(client, make_event):
    event = make_event(title="Open day", cancellation_deadline=utcnow() + timedelta(minutes=1))
    db.session.commit()
    client.post(f"/events/{event.id}/register", data={"name": "Karim Uddin", "email": "karim@example.org"})
    client.post(link_in(mail_to("karim@example.org", "event_guest_confirm"), "/events/confirm/"))
    link = link_in(mail_to("karim@example.org", "event_confirmation"), "/events/cancel/")
    event.cancellation_deadline = utcnow() - timedelta(minutes=1)
    db.session.commit()
    refused = client.post(link)
    assert refused.status_code == 409 and "cancel" in text_of(refused).lower()
    db.session.expire_all()
    assert registrations_of(event)[0].status == "confirmed"


def mail_to(address: str, template_key: str) -> OutboxMessage:
    db.session.expire_all()
    return db.session.scalars(select(OutboxMessage).where(OutboxMessage.to_address == address,
                                                          OutboxMessage.template_key == template_key)).one()


def test_a_guest_form_with_bad_input_is_shown_again(client, make_event):
    event = make_event(title="Open day")
    db.session.commit()
    response = client.post(f"/events/{event.id}/register", data={"name": "", "email": "not-an-email"})
    assert response.status_code == 422
    assert "Tell us your name." in text_of(response)
    assert registrations_of(event) == []


def test_a_robot_filling_the_hidden_field_registers_nobody(client, make_event):
    event = make_event(title="Open day")
    db.session.commit()
    response = client.post(f"/events/{event.id}/register",
                           data={"name": "Bot", "email": "bot@example.org", "website": "http://spam"})
    assert response.status_code == 303
    assert registrations_of(event) == []


@pytest.mark.parametrize("token", ["nonsense", "a" * 120])
def test_an_invalid_confirmation_link_says_so(client, token):
    response = client.post(f"/events/confirm/{token}")
    assert response.status_code in (404, 410)
    assert "This link does not work" in text_of(response)


def test_an_expired_confirmation_link_says_so(client, make_event, monkeypatch):
    event = make_event(title="Open day")
    db.session.commit()
    client.post(f"/events/{event.id}/register", data={"name": "Karim Uddin", "email": "karim@example.org"})
    [reg] = registrations_of(event)
    token = guest_confirm_token(reg)
    later = utcnow() + timedelta(days=4)
    import time as time_module

    from membership.events import views
    monkeypatch.setattr(views, "utcnow", lambda: later)
    monkeypatch.setattr(time_module, "time", lambda: later.timestamp())
    response = client.post(f"/events/confirm/{token}")
    assert response.status_code in (404, 410)
    assert "expired" in text_of(response).lower()
    assert registrations_of(event)[0].status == "pending"


class TestGuestRateLimit:
    @pytest.fixture
    def app_config(self):
        return {"RATELIMIT_ENABLED": True, "EVENT_GUEST_LIMIT_PER_ADDRESS": "2 per hour"}

    def test_guest_registrations_are_limited_per_address_but_members_are_not(self, client, make_event,
                                                                             make_current_member):
        event = make_event(title="Open day")
        db.session.commit()
        codes = [client.post(f"/events/{event.id}/register",
                             data={"name": "G", "email": f"g{n}@example.org"}).status_code for n in range(3)]
        assert codes == [303, 303, 429]
        assert client.get(f"/events/{event.id}").status_code == 200  # looking is not limited
        member, user = make_current_member()
        login(client, user)
        assert client.post(f"/events/{event.id}/register").status_code == 303
        assert registrations_of(event, member_id=member.id)[0].status == "confirmed"


# ---------------------------------------------------------------- cancelling


def test_a_member_cancels_their_registration(member_client, make_event):
    event = make_event(title="Monsoon talk", capacity=3)
    db.session.commit()
    member_client.post(f"/events/{event.id}/register")
    [reg] = registrations_of(event)
    response = member_client.post(f"/events/registrations/{reg.id}/cancel")
    assert response.status_code == 303
    assert registrations_of(event)[0].status == "cancelled"
    page = text_of(member_client.get(f"/events/{event.id}"))
    assert "Your registration is cancelled." in page and "3 places left" in page
    # And may register again.
    member_client.post(f"/events/{event.id}/register")
    assert [r.status for r in registrations_of(event)] == ["cancelled", "confirmed"]


def test_cancelling_after_the_deadline_is_refused_with_the_reason(member_client, make_event):
    event = make_event(title="Monsoon talk", cancellation_deadline=utcnow() - timedelta(hours=1))
    db.session.commit()
    member_client.post(f"/events/{event.id}/register")
    [reg] = registrations_of(event)
    assert reg.status == "confirmed"
    response = member_client.post(f"/events/registrations/{reg.id}/cancel", follow_redirects=True)
    assert registrations_of(event)[0].status == "confirmed"
    page = text_of(response)
    assert "You are registered." in page and "Your registration is cancelled." not in page
    assert "alert-warning" in response.get_data(as_text=True)


def test_a_member_leaves_the_waitlist(member_client, make_event, make_current_member):
    event = make_event(title="Small workshop", capacity=0)
    db.session.commit()
    member_client.post(f"/events/{event.id}/register")
    [reg] = registrations_of(event)
    assert reg.status == "waitlisted"
    page = text_of(member_client.post(f"/events/registrations/{reg.id}/cancel", follow_redirects=True))
    assert "You have left the waitlist." in page
    assert registrations_of(event)[0].status == "cancelled"


def test_a_visitor_cannot_cancel(client, make_event, make_current_member):
    event = make_event(title="Monsoon talk")
    db.session.commit()
    member, _user = make_current_member()
    reg = register_other(event, member)
    response = client.post(f"/events/registrations/{reg.id}/cancel")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    assert registrations_of(event)[0].status == "confirmed"


# ---------------------------------------------------------------- calendar files


def test_the_event_calendar_file_parses(client, make_event):
    event = make_event(title="Monsoon talk", starts_at=at_local(10, 18), hours=2)
    db.session.commit()
    response = client.get(f"/events/{event.id}.ics")
    assert response.status_code == 200 and response.mimetype == "text/calendar"
    assert f'filename="event-{event.id}.ics"' in response.headers["Content-Disposition"]
    assert response.headers["Content-Disposition"].startswith("attachment")
    calendar = Calendar.from_ical(response.data)
    [vevent] = calendar.walk("VEVENT")
    assert str(vevent["SUMMARY"]) == "Monsoon talk"
    assert vevent.decoded("DTSTART").astimezone(timezone.utc) == event.starts_at
    assert vevent.decoded("DTEND").astimezone(timezone.utc) == event.ends_at


def test_the_feed_lists_upcoming_published_events(client, make_event):
    a = make_event(title="Monsoon talk", starts_at=at_local(10, 18))
    b = make_event(title="Picnic", starts_at=at_local(20, 10))
    make_event(title="Secret draft", status="draft")
    make_event(title="Last year's dinner", starts_at=at_local(-30, 19))
    db.session.commit()
    response = client.get("/events/feed.ics")
    assert response.status_code == 200 and response.mimetype == "text/calendar"
    calendar = Calendar.from_ical(response.data)
    titles = sorted(str(v["SUMMARY"]) for v in calendar.walk("VEVENT"))
    assert titles == ["Monsoon talk", "Picnic"]
    assert {v.decoded("DTSTART").astimezone(timezone.utc) for v in calendar.walk("VEVENT")} == \
        {a.starts_at, b.starts_at}


# ---------------------------------------------------------------- feedback


@pytest.fixture
def attended(make_event, make_current_member):
    """A member who attended an event that ended: (registration, token)."""
    member, _user = make_current_member()
    event = make_event(title="Spring festival", starts_at=utcnow() + timedelta(hours=1))
    db.session.commit()
    reg = register_other(event, member)
    event.starts_at = utcnow() - timedelta(hours=5)
    event.ends_at = utcnow() - timedelta(hours=3)
    reg.status = "attended"
    reg.checked_in_at = event.starts_at
    db.session.commit()
    return reg, feedback_token(reg)


def test_feedback_is_given_once(client, attended):
    reg, token = attended
    form = client.get(f"/events/feedback/{token}")
    body = form.get_data(as_text=True)
    assert form.status_code == 200 and "Spring festival" in body
    assert body.count('type="radio"') == 7  # five ratings, yes and no
    bad = client.post(f"/events/feedback/{token}", data={"comment": "no rating"})
    assert bad.status_code == 422 and "Choose a rating from 1 to 5." in text_of(bad)
    response = client.post(f"/events/feedback/{token}",
                           data={"rating": "4", "would_recommend": "yes", "comment": "Lovely evening."})
    assert response.status_code == 303
    assert "Thank you for your feedback" in text_of(client.get(response.headers["Location"]))
    db.session.expire_all()
    [fb] = db.session.scalars(select(EventFeedback)).all()
    assert (fb.registration_id, fb.rating, fb.would_recommend, fb.comment) == (reg.id, 4, True, "Lovely evening.")
    again = client.post(f"/events/feedback/{token}", data={"rating": "1", "would_recommend": "no"})
    assert again.status_code == 200 and "already given your feedback" in text_of(again)
    assert "already given your feedback" in text_of(client.get(f"/events/feedback/{token}"))
    assert db.session.scalar(select(func.count()).select_from(EventFeedback)) == 1


@pytest.mark.parametrize("token", ["nonsense", "x.y.z"])
def test_a_bad_feedback_link_says_so(client, token):
    response = client.get(f"/events/feedback/{token}")
    assert response.status_code in (404, 410) and "This link does not work" in text_of(response)
    assert client.post(f"/events/feedback/{token}", data={"rating": "5"}).status_code in (404, 410)


def test_staff_see_a_link_to_the_staff_page_instead_of_the_guest_form(staff_client, make_event):
    event = make_event(title="Open evening")
    db.session.commit()
    page = staff_client.get(f"/events/{event.id}").get_data(as_text=True)
    assert 'id="staff-viewer"' in page and f'href="/staff/events/{event.id}"' in page
    assert 'name="email"' not in page and "Already a member?" not in page
