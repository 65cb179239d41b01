"""The check-in page for the door: search by name, one tap to check in, undo, walk-ins, counts."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from membership.core.models import AuditLog
from membership.core.time import local_today, utcnow
from membership.events import services as events
from membership.events.models import EventRegistration
from membership.extensions import db
from tests.events.test_staff_events import count, text_of


@pytest.fixture
def current_member(make_member, make_term, make_plan):
    plan = make_plan(name="Standard", code="STD", fee_minor=50000)

    def make(**kw):
        member = make_member(**kw)
        start = local_today() - timedelta(days=30)
        make_term(member, plan, starts_on=start, today=start)
        return member
    return make


@pytest.fixture
def tonight(make_event, current_member):
    """An event starting in an hour with two members and a guest holding seats, and one waitlisted."""
    event = make_event(title="Poetry evening", starts_at=utcnow() + timedelta(hours=1), capacity=3)
    people = {}
    for first, last in (("Nazrul", "Islam"), ("Sufia", "Kamal")):
        m = current_member(first_name=first, last_name=last)
        people[first] = events.register_member(db.session, event, m, now=utcnow(), actor=None)
    people["Jasim"] = events.register_guest(db.session, event, name="Jasim Uddin", email="jasim@example.org",
                                            now=utcnow(), actor=None, source="staff", confirmed_email=True)
    people["Late"] = events.register_member(db.session, event, current_member(first_name="Lalon", last_name="Shah"),
                                            now=utcnow(), actor=None)
    db.session.commit()
    return event, people


def test_page_lists_seated_people_with_counts(staff_client, tonight):
    event, people = tonight
    response = staff_client.get(f"/staff/events/{event.id}/check-in")
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    text = text_of(response)
    assert "0 / 3 checked in" in text
    assert "Nazrul Islam" in text and "Sufia Kamal" in text and "Jasim Uddin" in text
    assert "Lalon" not in text.split("Walk-in")[0]  # waitlisted: not at the door
    assert body.count(">Check in</button>") == 3
    assert 'name="viewport" content="width=device-width' in body  # phone layout
    assert "btn-lg" in body


def test_search_by_name_is_server_side(staff_client, tonight):
    event, _ = tonight
    text = text_of(staff_client.get(f"/staff/events/{event.id}/check-in?q=sufia"))
    assert "Sufia Kamal" in text and "Nazrul" not in text and "Jasim" not in text
    text = text_of(staff_client.get(f"/staff/events/{event.id}/check-in?q=uddin"))
    assert "Jasim Uddin" in text and "Sufia" not in text
    text = text_of(staff_client.get(f"/staff/events/{event.id}/check-in?q=nobody%25"))
    assert "Nobody matches." in text


def test_check_in_with_one_tap_then_undo(staff_client, tonight):
    event, people = tonight
    r = people["Nazrul"]
    response = staff_client.post(f"/staff/events/{event.id}/check-in/{r.id}", data={"q": "naz"})
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/staff/events/{event.id}/check-in?q=naz#r{r.id}")
    db.session.expire_all()
    assert r.status == "attended" and r.checked_in_at is not None
    page = staff_client.get(f"/staff/events/{event.id}/check-in")
    assert "1 / 3 checked in" in text_of(page) and ">Undo</button>" in page.get_data(as_text=True)
    # a second tap changes nothing
    staff_client.post(f"/staff/events/{event.id}/check-in/{r.id}")
    assert "1 / 3 checked in" in text_of(staff_client.get(f"/staff/events/{event.id}/check-in"))

    assert staff_client.post(f"/staff/events/{event.id}/check-in/{r.id}/undo").status_code == 302
    db.session.expire_all()
    assert r.status == "confirmed" and r.checked_in_at is None
    assert "0 / 3 checked in" in text_of(staff_client.get(f"/staff/events/{event.id}/check-in"))
    actions = db.session.scalars(select(AuditLog.action).where(AuditLog.entity_type == "eventregistration",
                                                               AuditLog.entity_id == r.id)).all()
    assert "event.check_in" in actions and "event.undo_check_in" in actions
    assert all(a.actor_id is not None for a in db.session.scalars(
        select(AuditLog).where(AuditLog.action.in_(["event.check_in", "event.undo_check_in"]))))


def test_a_waitlisted_person_cannot_be_checked_in(staff_client, tonight):
    event, people = tonight
    response = staff_client.post(f"/staff/events/{event.id}/check-in/{people['Late'].id}", follow_redirects=True)
    assert response.status_code == 200
    db.session.expire_all()
    assert people["Late"].status == "waitlisted"


def test_walk_in_a_guest_and_a_member(staff_client, make_event, current_member):
    event = make_event(title="Open day", starts_at=utcnow() + timedelta(hours=1))
    member = current_member(first_name="Begum", last_name="Rokeya")
    db.session.commit()
    url = f"/staff/events/{event.id}"
    response = staff_client.post(f"{url}/walk-in", data={"name": "Walk In", "email": "walkin@example.org"},
                                 follow_redirects=True)
    assert "checked in" in text_of(response)
    response = staff_client.post(f"{url}/walk-in", data={"lookup": member.member_number}, follow_redirects=True)
    assert "Begum Rokeya registered at the door and checked in." in text_of(response)
    regs = db.session.scalars(select(EventRegistration).where(EventRegistration.event_id == event.id)).all()
    assert sorted(r.status for r in regs) == ["attended", "attended"]
    assert {r.source for r in regs} == {"walk_in"}
    assert "2 / 2 checked in" in text_of(staff_client.get(f"{url}/check-in"))


def test_walk_in_with_bad_input_writes_nothing(staff_client, make_event):
    event = make_event(starts_at=utcnow() + timedelta(hours=1))
    db.session.commit()
    url = f"/staff/events/{event.id}/walk-in"
    response = staff_client.post(url, data={"lookup": "M404404"})
    assert response.status_code == 422 and "No member has this number, email or name." in text_of(response)
    response = staff_client.post(url, data={})
    assert response.status_code == 422 and 'id="lookup-err"' in response.get_data(as_text=True)
    response = staff_client.post(url, data={"name": "No Email"})
    assert response.status_code == 422 and 'id="email-err"' in response.get_data(as_text=True)
    response = staff_client.post(url, data={"name": "Bad Email", "email": "nope"})
    assert response.status_code == 422 and 'id="email-err"' in response.get_data(as_text=True)
    assert count(EventRegistration) == 0


def test_walk_in_when_full_is_refused(staff_client, make_event, current_member):
    event = make_event(starts_at=utcnow() + timedelta(hours=1), capacity=1)
    events.register_member(db.session, event, current_member(), now=utcnow(), actor=None)
    db.session.commit()
    response = staff_client.post(f"/staff/events/{event.id}/walk-in", data={"name": "One More", "email": "more@example.org"})
    assert response.status_code == 409
    assert count(EventRegistration) == 1
