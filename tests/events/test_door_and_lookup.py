"""Rough edges at events (issue 13, item 6c-d): staff register someone by name (several matches:
choose one); check-in days before the event warns and needs a confirm; the check-in list shows
who still owes the fee."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from membership.core.time import local_today, utcnow
from membership.events import door
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


# ---------------------------------------------------------------- (c) by name


def test_register_by_name_one_match_registers(staff_client, make_event, current_member):
    event = make_event()
    karim = current_member(first_name="Karim", last_name="Ahmed", email="karim@example.org")
    current_member(first_name="Rahim", last_name="Uddin", email="rahim@example.org")
    db.session.commit()
    response = staff_client.post(f"/staff/events/{event.id}/register-member", data={"lookup": "karim ahm"})
    assert response.status_code == 302
    assert db.session.scalar(select(EventRegistration.member_id)) == karim.id


def test_register_by_name_several_matches_lists_them_to_choose(staff_client, make_event, current_member):
    event = make_event()
    first = current_member(first_name="Rahim", last_name="Uddin", email="rahim@example.org", city="Khulna")
    current_member(first_name="Rahima", last_name="Khatun", email="rahima@example.org")
    current_member(first_name="Karim", last_name="Ahmed", email="karim@example.org")
    db.session.commit()
    url = f"/staff/events/{event.id}/register-member"
    response = staff_client.post(url, data={"lookup": "rahim"})
    assert response.status_code == 200
    text = text_of(response)
    assert "Several members match “rahim”: choose one." in text
    assert "Rahim Uddin" in text and "Rahima Khatun" in text and "Khulna" in text
    assert "Karim Ahmed" not in text.split("Several members match")[1]
    assert f'name="member_id" value="{first.id}"' in response.get_data(as_text=True)
    assert count(EventRegistration) == 0
    response = staff_client.post(url, data={"member_id": str(first.id)})
    assert response.status_code == 302
    assert db.session.scalar(select(EventRegistration.member_id)) == first.id
    # Nobody by that name; an unknown id is a 404, not a registration.
    response = staff_client.post(url, data={"lookup": "Nobody Here"})
    assert response.status_code == 422 and "No member has this number, email or name." in text_of(response)
    assert staff_client.post(url, data={"member_id": "999999"}).status_code == 404


def test_number_and_email_still_find_exactly_one(staff_client, make_event, current_member):
    event = make_event()
    m = current_member(first_name="Rahim", last_name="Uddin", email="rahim@example.org")
    current_member(first_name="Rahim", last_name="Mia", email="mia@example.org")
    db.session.commit()
    response = staff_client.post(f"/staff/events/{event.id}/register-member", data={"lookup": m.member_number})
    assert response.status_code == 302 and count(EventRegistration) == 1


def test_walk_in_by_name(staff_client, make_event, current_member):
    event = make_event(starts_at=utcnow() + timedelta(hours=1))
    m = current_member(first_name="Sufia", last_name="Kamal", email="sufia@example.org")
    db.session.commit()
    response = staff_client.post(f"/staff/events/{event.id}/walk-in", data={"lookup": "Sufia"})
    assert response.status_code == 302
    reg = db.session.scalars(select(EventRegistration)).one()
    assert (reg.member_id, reg.status) == (m.id, "attended")


# ---------------------------------------------------------------- (d) too early, and who owes


def test_early_check_in_rule(make_event):
    from zoneinfo import ZoneInfo
    zone = ZoneInfo("Asia/Dhaka")
    now = utcnow()
    assert door.early_check_in(make_event(starts_at=now + timedelta(minutes=30)), now=now, zone=zone) is None
    early = door.early_check_in(make_event(starts_at=now + timedelta(days=3)), now=now, zone=zone)
    assert early is not None and early.days in (3, 4)
    assert door.early_check_in(make_event(starts_at=now - timedelta(days=2)), now=now, zone=zone) is None


def test_check_in_days_before_warns_and_needs_a_confirm(staff_client, make_event, current_member):
    event = make_event(starts_at=utcnow() + timedelta(days=3))
    m = current_member(first_name="Nazrul", last_name="Islam")
    reg = events.register_member(db.session, event, m, now=utcnow(), actor=None)
    db.session.commit()
    page = staff_client.get(f"/staff/events/{event.id}/check-in")
    assert "This event starts in" in text_of(page) and "only do it now if they really are here" in text_of(page)
    url = f"/staff/events/{event.id}/check-in/{reg.id}"
    response = staff_client.post(url)
    assert response.status_code == 200 and "Check in Nazrul Islam anyway" in text_of(response)
    db.session.refresh(reg)
    assert reg.status == "confirmed"  # nothing written without the confirm
    response = staff_client.post(url, data={"confirm_early": "y"})
    assert response.status_code == 302
    db.session.refresh(reg)
    assert reg.status == "attended"


def test_walk_in_days_before_needs_the_box_ticked(staff_client, make_event):
    event = make_event(starts_at=utcnow() + timedelta(days=2))
    db.session.commit()
    url = f"/staff/events/{event.id}/walk-in"
    guest = {"name": "Jasim Uddin", "email": "jasim@example.org"}
    response = staff_client.post(url, data=guest)
    assert response.status_code == 422 and "tick the box to check in anyway" in text_of(response)
    assert count(EventRegistration) == 0
    assert staff_client.post(url, data={**guest, "confirm_early": "y"}).status_code == 302
    assert count(EventRegistration) == 1


def test_on_the_day_no_warning(staff_client, make_event, current_member):
    event = make_event(starts_at=utcnow() + timedelta(hours=1))
    reg = events.register_member(db.session, event, current_member(first_name="Lalon"), now=utcnow(), actor=None)
    db.session.commit()
    assert "This event starts" not in text_of(staff_client.get(f"/staff/events/{event.id}/check-in"))
    assert staff_client.post(f"/staff/events/{event.id}/check-in/{reg.id}").status_code == 302
    db.session.refresh(reg)
    assert reg.status == "attended"


def test_check_in_list_shows_who_still_owes_the_fee(staff_client, make_event, current_member):
    event = make_event(starts_at=utcnow() + timedelta(hours=1), member_price_minor=50000,
                       non_member_price_minor=80000)
    owes = events.register_member(db.session, event, current_member(first_name="Owes", last_name="Money"),
                                  now=utcnow(), actor=None)
    paid = events.register_member(db.session, event, current_member(first_name="Paid", last_name="Up"),
                                  now=utcnow(), actor=None)
    events.record_registration_payment(db.session, paid, amount_minor=50000, method="cash", received_at=utcnow(),
                                       reference=None, now=utcnow(), actor=None)
    db.session.commit()
    page = staff_client.get(f"/staff/events/{event.id}/check-in")
    body = page.get_data(as_text=True)
    owes_row = body[body.index(f'id="r{owes.id}"'):].split("</li>")[0]
    paid_row = body[body.index(f'id="r{paid.id}"'):].split("</li>")[0]
    assert "owes" in owes_row and "500.00" in owes_row
    assert "owes" not in paid_row
    assert "1 person here still owes the fee." in text_of(page)
    response = staff_client.post(f"/staff/events/{event.id}/check-in/{owes.id}", follow_redirects=True)
    assert "Owes Money checked in." in text_of(response) and "500.00 BDT still to pay." in text_of(response)


def test_member_lookup_json_for_the_suggestions(staff_client, client, current_member, make_user):
    current_member(first_name="Rahim", last_name="Uddin", email="rahim@example.org")
    current_member(first_name="Rahima", last_name="Khatun", email="rahima@example.org")
    db.session.commit()
    data = staff_client.get("/staff/members/lookup.json?q=rahim").get_json()
    assert sorted(m["name"] for m in data["members"]) == ["Rahim Uddin", "Rahima Khatun"]
    assert all(m["label"].startswith(m["name"]) and m["member_number"] in m["label"] for m in data["members"])
    assert staff_client.get("/staff/members/lookup.json?q=r").get_json() == {"members": []}
    staff_client.post("/logout")
    assert staff_client.get("/staff/members/lookup.json?q=rahim").status_code in (302, 401, 403)
