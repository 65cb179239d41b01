"""My events in the member portal: upcoming registrations (status, waitlist position, what is due,
cancel, calendar file) and past events (attended or not, a feedback link once)."""
from __future__ import annotations

from datetime import timedelta

import pytest

from membership.core.time import utcnow
from membership.events import services
from membership.events.models import EventRegistration
from membership.extensions import db
from membership.web import money
from tests.conftest import login
from tests.events.test_public_events import (  # noqa: F401  (fixtures)
    INSTRUCTIONS, at_local, make_current_member, member_client, register_other, registrations_of, text_of)


@pytest.fixture
def app_config():
    return {"EVENT_PAYMENT_INSTRUCTIONS": INSTRUCTIONS}


def past_registration(event, member, status: str) -> EventRegistration:
    reg = EventRegistration(event_id=event.id, member_id=member.id, person_key=f"member:{member.id}", status=status,
                            source="member", price_minor=0, currency="BDT", member_price=True,
                            registered_at=event.starts_at - timedelta(days=3),
                            confirmed_at=event.starts_at - timedelta(days=3),
                            checked_in_at=event.starts_at if status == "attended" else None)
    db.session.add(reg)
    db.session.flush()
    return reg


def test_the_portal_navigation_has_events(member_client):
    body = member_client.get("/my/").get_data(as_text=True)
    assert 'href="/my/events"' in body and ">Events<" in body
    page = member_client.get("/my/events")
    assert page.status_code == 200
    assert 'aria-current="page">Events<' in page.get_data(as_text=True)
    assert "You are not registered for any upcoming event." in text_of(page)


def test_my_events_lists_upcoming_registrations(member_client, make_event, make_current_member):
    me = member_client.member
    talk = make_event(title="Monsoon talk", starts_at=at_local(10, 18), member_price_minor=30000,
                      non_member_price_minor=50000)
    workshop = make_event(title="Small workshop", starts_at=at_local(12, 10), capacity=1)
    db.session.commit()
    other, _ = make_current_member()
    register_other(workshop, other)
    member_client.post(f"/events/{talk.id}/register")
    member_client.post(f"/events/{workshop.id}/register")

    response = member_client.get("/my/events")
    page, body = text_of(response), response.get_data(as_text=True)
    assert "Monsoon talk" in page and "Registered" in page and "18:00 to 20:00" in page
    assert f"To pay: {money(30000, 'BDT')}" in page and INSTRUCTIONS in page
    assert "Waitlist, position 1" in page and "Leave the waitlist" in page
    assert f'href="/events/{talk.id}.ics"' in body and f'href="/events/{workshop.id}.ics"' in body
    [mine] = registrations_of(talk, member_id=me.id)
    assert f'action="/events/registrations/{mine.id}/cancel"' in body


def test_cancelling_from_my_events_comes_back_to_my_events(member_client, make_event):
    event = make_event(title="Monsoon talk")
    db.session.commit()
    member_client.post(f"/events/{event.id}/register")
    [reg] = registrations_of(event)
    response = member_client.post(f"/events/registrations/{reg.id}/cancel", data={"next": "/my/events"})
    assert response.status_code == 303 and response.headers["Location"] == "/my/events"
    page = text_of(member_client.get("/my/events"))
    assert "Your registration is cancelled." in page and "You are not registered for any upcoming event." in page
    # An outside address in `next` is ignored.
    member_client.post(f"/events/{event.id}/register")
    reg = registrations_of(event, status="confirmed")[0]
    response = member_client.post(f"/events/registrations/{reg.id}/cancel", data={"next": "https://evil.example"})
    assert response.headers["Location"] == f"/events/{event.id}"


def test_past_events_show_attendance_and_a_feedback_link_until_given(member_client, make_event):
    me = member_client.member
    festival = make_event(title="Spring festival", starts_at=utcnow() - timedelta(days=10), status="finished")
    dinner = make_event(title="Winter dinner", starts_at=utcnow() - timedelta(days=40), status="finished")
    went = past_registration(festival, me, "attended")
    past_registration(dinner, me, "no_show")
    db.session.commit()

    response = member_client.get("/my/events")
    page, body = text_of(response), response.get_data(as_text=True)
    assert "Spring festival" in page and "Attended" in page
    assert "Winter dinner" in page and "Did not attend" in page
    assert page.index("Spring festival") < page.index("Winter dinner")  # the most recent first
    assert body.count("Give feedback") == 1
    token = body.split('href="/events/feedback/')[1].split('"')[0]
    assert services.registration_from_feedback_token(db.session, token).id == went.id

    member_client.post(f"/events/feedback/{token}", data={"rating": "5", "would_recommend": "yes"})
    page = text_of(member_client.get("/my/events"))
    assert "Give feedback" not in page and "Thank you for your feedback." in page


def test_a_login_without_a_member_record_gets_no_server_error(client, make_user):
    user = make_user("member", email="orphan@example.org")
    login(client, user)
    assert client.get("/my/events").status_code == 403
    assert client.get("/events/").status_code == 200


def test_staff_use_the_public_pages_not_my_events(client, staff_user, make_event):
    make_event(title="Monsoon talk")
    db.session.commit()
    login(client, staff_user)
    assert client.get("/my/events").status_code == 403
    assert "Monsoon talk" in text_of(client.get("/events/"))
