"""Staff events pages: list, create / edit / publish / cancel / duplicate, the event page with its
registrations, waitlist, registering on someone's behalf and payments; access for staff only."""
from __future__ import annotations

import html
import re
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from membership.core.models import AuditLog
from membership.core.time import local_today, utcnow
from membership.events import services as events
from membership.events.models import Event, EventRegistration
from membership.extensions import db
from membership.plans.models import Payment
from tests.conftest import login
from membership.events.dues import amount_due


def text_of(response) -> str:
    body = response.get_data(as_text=True)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body)))


def section(response, section_id: str) -> str:
    body = response.get_data(as_text=True)
    start = body.index(f'id="{section_id}"')
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body[start:body.index("</section>", start)])))


def count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


@pytest.fixture
def current_plan(make_plan):
    return make_plan(name="Standard", code="STD", fee_minor=50000)


@pytest.fixture
def make_current_member(make_member, make_term, current_plan):
    """A member whose membership is active today."""
    def make(**kw):
        member = make_member(**kw)
        start = local_today() - timedelta(days=30)
        make_term(member, current_plan, starts_on=start, today=start)
        return member
    return make


def staff_pages(event, registration):
    e = event.id
    return [
        "/staff/events", "/staff/events?tab=past", "/staff/events/new", f"/staff/events/{e}",
        f"/staff/events/{e}/edit", f"/staff/events/{e}/cancel",
        f"/staff/events/{e}/registrations/{registration.id}/pay",
        f"/staff/events/{e}/check-in", f"/staff/events/{e}/report", "/staff/events/reports",
        "/staff/events/reports.csv",
    ]


@pytest.fixture
def paid_event(make_event):
    return make_event(title="Gala dinner", capacity=50, member_price_minor=10000, non_member_price_minor=20000)


@pytest.fixture
def guest_registration(paid_event):
    r = events.register_guest(db.session, paid_event, name="Gita Guest", email="gita@example.org", now=utcnow(),
                              actor=None, source="staff", confirmed_email=True)
    db.session.commit()
    return r


# ---------------------------------------------------------------- access


def test_every_page_renders_for_staff(staff_client, paid_event, guest_registration):
    for url in staff_pages(paid_event, guest_registration):
        response = staff_client.get(url)
        assert response.status_code == 200, (url, response.data[:300])


def test_admin_may_use_the_pages(admin_client, paid_event, guest_registration):
    assert admin_client.get(f"/staff/events/{paid_event.id}").status_code == 200


def test_anonymous_is_sent_to_sign_in(client, paid_event, guest_registration):
    for url in staff_pages(paid_event, guest_registration):
        response = client.get(url)
        assert response.status_code == 302 and "/login" in response.headers["Location"], url
    response = client.post(f"/staff/events/{paid_event.id}/publish")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_members_are_refused(client, make_user, paid_event, guest_registration):
    user = make_user("member", email="just-a-member@example.org")
    assert login(client, user).status_code == 302
    for url in staff_pages(paid_event, guest_registration):
        assert client.get(url).status_code == 403, url
    before = count(Event)
    assert client.post("/staff/events/new", data={"title": "Sneaky"}).status_code == 403
    assert client.post(f"/staff/events/{paid_event.id}/duplicate").status_code == 403
    assert count(Event) == before


def test_nav_has_events_between_payments_and_import(staff_client):
    body = staff_client.get("/staff/").get_data(as_text=True)
    assert body.index(">Payments<") < body.index(">Events<") < body.index(">Import<")


def test_forms_carry_csrf_tokens(app, staff_client, paid_event, guest_registration):
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        body = staff_client.get(f"/staff/events/{paid_event.id}").get_data(as_text=True)
        assert body.count('name="csrf_token"') >= 4  # duplicate, cancel a registration, two register forms
        for url in (f"/staff/events/{paid_event.id}/duplicate", f"/staff/events/{paid_event.id}/register-guest"):
            assert staff_client.post(url, data={"name": "X", "email": "x@example.org"}).status_code == 400
        assert count(Event) == 1
    finally:
        app.config["WTF_CSRF_ENABLED"] = False


# ---------------------------------------------------------------- list


def test_list_tabs_search_seats_and_waitlist(staff_client, make_event, make_current_member):
    soon = make_event(title="Monthly meetup", capacity=1)
    make_event(title="Old picnic", starts_at=utcnow() - timedelta(days=30), status="finished")
    make_event(title="Draft workshop", status="draft")
    make_event(title="Rained-off fair", status="cancelled")
    for _ in range(3):
        events.register_member(db.session, soon, make_current_member(), now=utcnow(), actor=None)
    db.session.commit()

    upcoming = text_of(staff_client.get("/staff/events"))
    assert "Monthly meetup" in upcoming and "Old picnic" not in upcoming and "Draft workshop" not in upcoming
    row = re.search(r"Monthly meetup.*?</tr>", staff_client.get("/staff/events").get_data(as_text=True), re.S).group(0)
    assert re.search(r"1 / 1", text_of_html(row))
    assert re.search(r"1 / 1 2\b", text_of_html(row))  # seats taken / capacity, then the waitlist
    assert "Old picnic" in text_of(staff_client.get("/staff/events?tab=past"))
    assert "Draft workshop" in text_of(staff_client.get("/staff/events?tab=drafts"))
    assert "Rained-off fair" in text_of(staff_client.get("/staff/events?tab=cancelled"))
    assert "Monthly meetup" not in text_of(staff_client.get("/staff/events?tab=upcoming&q=picnic"))
    assert "Old picnic" in text_of(staff_client.get("/staff/events?tab=past&q=PICNIC"))
    assert staff_client.get("/staff/events?tab=nonsense&page=abc&q=%00").status_code == 200


def text_of_html(body: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body)))


def test_list_paginates(staff_client, make_event):
    for n in range(35):
        make_event(title=f"Talk {n:02d}", starts_at=utcnow() + timedelta(days=2 + n))
    db.session.commit()
    first = text_of(staff_client.get("/staff/events"))
    assert "Talk 00" in first and "Talk 34" not in first
    assert "Talk 34" in text_of(staff_client.get("/staff/events?page=2"))


# ---------------------------------------------------------------- create and edit


def good_form(**kw):
    data = {"title": "Annual dinner", "description": "Food and speeches.", "starts_at": "2027-03-10T18:00",
            "ends_at": "2027-03-10T21:30", "venue": "Hotel Sonargaon", "online_url": "", "capacity": "120",
            "waitlist_enabled": "y", "registration_opens_at": "", "registration_closes_at": "2027-03-09T23:00",
            "cancellation_deadline": "", "member_price": "1500", "non_member_price": "2500.50",
            "reminder_hours_before": "24"}
    data.update(kw)
    return {k: v for k, v in data.items() if v is not None}


def test_create_an_event(staff_client):
    response = staff_client.post("/staff/events/new", data=good_form())
    assert response.status_code == 302, text_of(response)[:800]
    event = db.session.scalars(select(Event)).one()
    assert event.status == "draft"
    assert event.title == "Annual dinner"
    # 18:00 in Dhaka (UTC+6) is 12:00 UTC
    assert event.starts_at.replace(tzinfo=timezone.utc) == datetime(2027, 3, 10, 12, 0, tzinfo=timezone.utc)
    assert event.capacity == 120 and event.waitlist_enabled and not event.members_only
    assert (event.member_price_minor, event.non_member_price_minor) == (150000, 250050)
    assert count(AuditLog, AuditLog.entity_type == "event", AuditLog.entity_id == event.id) >= 1
    page = staff_client.get(response.headers["Location"])
    assert "Annual dinner" in text_of(page) and "Draft" in text_of(page)


def test_blank_capacity_is_unlimited(staff_client):
    assert staff_client.post("/staff/events/new", data=good_form(capacity="", waitlist_enabled=None)).status_code == 302
    event = db.session.scalars(select(Event)).one()
    assert event.capacity is None and not event.waitlist_enabled


@pytest.mark.parametrize("changes, field", [
    ({"capacity": "-1"}, "capacity"),
    ({"ends_at": "2027-03-10T17:00"}, "ends_at"),
    ({"member_price": "-5"}, "member_price"),
    ({"non_member_price": "-0.01"}, "non_member_price"),
    ({"online_url": "javascript:alert(1)"}, "online_url"),
    ({"online_url": "not a link"}, "online_url"),
    ({"title": ""}, "title"),
    ({"starts_at": "tomorrow"}, "starts_at"),
])
def test_bad_input_is_shown_beside_the_field_and_nothing_is_written(staff_client, changes, field):
    audits = count(AuditLog)
    response = staff_client.post("/staff/events/new", data=good_form(**changes))
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert f'id="{field}-err"' in body, body[:2000]
    message = re.search(rf'id="{field}-err">([^<]+)<', body).group(1).strip()
    assert message
    assert count(Event) == 0 and count(AuditLog) == audits
    # what was typed is kept
    assert 'value="Hotel Sonargaon"' in body


def test_edit_an_event(staff_client, make_event):
    event = make_event(title="Quiz night", capacity=30)
    db.session.commit()
    form = staff_client.get(f"/staff/events/{event.id}/edit").get_data(as_text=True)
    assert 'value="Quiz night"' in form and 'value="30"' in form
    response = staff_client.post(f"/staff/events/{event.id}/edit",
                                 data=good_form(title="Quiz night (round 2)", capacity="40"))
    assert response.status_code == 302, text_of(response)[:800]
    db.session.expire_all()
    assert event.title == "Quiz night (round 2)" and event.capacity == 40
    bad = staff_client.post(f"/staff/events/{event.id}/edit", data=good_form(capacity="-1"))
    assert bad.status_code == 422 and 'id="capacity-err"' in bad.get_data(as_text=True)
    db.session.expire_all()
    assert event.capacity == 40


def test_publish_then_cancel_with_a_reason(staff_client, make_event, make_current_member):
    event = make_event(title="Boat trip", status="draft", capacity=10)
    db.session.commit()
    assert staff_client.post(f"/staff/events/{event.id}/publish").status_code == 302
    db.session.expire_all()
    assert event.status == "published"
    # publishing twice is a conflict shown as a message, not a 500
    response = staff_client.post(f"/staff/events/{event.id}/publish", follow_redirects=True)
    assert response.status_code == 200

    a, b = make_current_member(), make_current_member()
    events.register_member(db.session, event, a, now=utcnow(), actor=None)
    events.register_member(db.session, event, b, now=utcnow(), actor=None)
    db.session.commit()
    page = staff_client.get(f"/staff/events/{event.id}/cancel")
    assert "2 people are registered" in text_of(page)
    missing = staff_client.post(f"/staff/events/{event.id}/cancel", data={"reason": ""})
    assert missing.status_code == 422 and 'id="reason-err"' in missing.get_data(as_text=True)
    db.session.expire_all()
    assert event.status == "published"

    response = staff_client.post(f"/staff/events/{event.id}/cancel", data={"reason": "The river is flooded."},
                                 follow_redirects=True)
    assert "2 people were told by email" in text_of(response)
    db.session.expire_all()
    assert event.status == "cancelled" and event.cancel_reason == "The river is flooded."
    assert count(EventRegistration, EventRegistration.event_id == event.id,
                 EventRegistration.status != "cancelled") == 0
    assert count(AuditLog, AuditLog.entity_type == "event", AuditLog.entity_id == event.id) >= 2
    # cancelled: no edit
    assert staff_client.get(f"/staff/events/{event.id}/edit").status_code == 302


def test_duplicate(staff_client, make_event):
    event = make_event(title="Book club", capacity=12, member_price_minor=500)
    db.session.commit()
    response = staff_client.post(f"/staff/events/{event.id}/duplicate")
    assert response.status_code == 302
    copy = db.session.scalars(select(Event).where(Event.id != event.id)).one()
    assert copy.status == "draft" and "(copy)" in copy.title and copy.capacity == 12
    assert response.headers["Location"].endswith(f"/staff/events/{copy.id}/edit")


# ---------------------------------------------------------------- registering on someone's behalf


def test_register_a_member_by_number_or_email_and_a_guest(staff_client, paid_event, make_current_member):
    a = make_current_member(first_name="Rahim", email="rahim@example.org")
    b = make_current_member(first_name="Karim", email="karim@example.org")
    db.session.commit()
    url = f"/staff/events/{paid_event.id}"
    assert staff_client.post(f"{url}/register-member", data={"lookup": a.member_number.lower()}).status_code == 302
    assert staff_client.post(f"{url}/register-member", data={"lookup": " KARIM@example.org "}).status_code == 302
    assert staff_client.post(f"{url}/register-guest",
                             data={"name": "Gita Guest", "email": "gita@example.org"}).status_code == 302
    regs = {r.person_key: r for r in db.session.scalars(select(EventRegistration))}
    assert regs[f"member:{a.id}"].status == "confirmed" and regs[f"member:{a.id}"].source == "staff"
    assert regs[f"member:{a.id}"].price_minor == 10000  # member price
    assert regs[f"member:{b.id}"].status == "confirmed"
    guest = next(r for r in regs.values() if r.member_id is None)
    assert guest.status == "confirmed" and guest.price_minor == 20000  # staff vouch: no email confirmation

    table = section(staff_client.get(url), "registrations")
    assert a.member_number in table and "guest" in table and "Gita Guest" in table
    assert "Rahim" in table and "Confirmed" in table

    assert count(AuditLog, AuditLog.action == "event.register", AuditLog.actor_id.is_not(None)) == 3
    # twice: still one registration
    staff_client.post(f"{url}/register-member", data={"lookup": a.member_number})
    assert count(EventRegistration, EventRegistration.member_id == a.id) == 1


def test_register_unknown_member_or_bad_guest_shows_the_message(staff_client, paid_event):
    url = f"/staff/events/{paid_event.id}"
    response = staff_client.post(f"{url}/register-member", data={"lookup": "M999999"})
    assert response.status_code == 422 and "No member has this number, email or name." in text_of(response)
    response = staff_client.post(f"{url}/register-guest", data={"name": "Nobody", "email": "not-an-email"})
    assert response.status_code == 422 and 'id="email-err"' in response.get_data(as_text=True)
    assert count(EventRegistration) == 0


def test_members_only_event_refuses_a_lapsed_member_with_the_reason(staff_client, make_event, make_member):
    event = make_event(members_only=True)
    lapsed = make_member()
    db.session.commit()
    response = staff_client.post(f"/staff/events/{event.id}/register-member", data={"lookup": lapsed.member_number})
    assert response.status_code == 409
    assert 'id="lookup-err"' in response.get_data(as_text=True)
    assert count(EventRegistration) == 0


def test_waitlist_is_shown_in_order_and_a_staff_cancellation_promotes_the_first(staff_client, make_event,
                                                                                make_current_member):
    event = make_event(capacity=1)
    people = [make_current_member(first_name=n) for n in ("Anu", "Bina", "Chandra", "Dipa")]
    regs = []
    for i, m in enumerate(people):
        regs.append(events.register_member(db.session, event, m, now=utcnow() + timedelta(seconds=i), actor=None))
    db.session.commit()
    waitlist = section(staff_client.get(f"/staff/events/{event.id}"), "waitlist")
    assert waitlist.index("Bina") < waitlist.index("Chandra") < waitlist.index("Dipa")
    assert "Anu" not in waitlist

    response = staff_client.post(f"/staff/events/{event.id}/registrations/{regs[0].id}/cancel", follow_redirects=True)
    assert "Bina" in text_of(response) and "moved up from the waitlist" in text_of(response)
    db.session.expire_all()
    assert regs[0].status == "cancelled" and regs[0].cancelled_by == "staff"
    assert regs[1].status == "confirmed" and regs[2].status == "waitlisted"
    waitlist = section(staff_client.get(f"/staff/events/{event.id}"), "waitlist")
    assert "Bina" not in waitlist and waitlist.index("Chandra") < waitlist.index("Dipa")


def test_a_registration_of_another_event_is_not_found(staff_client, make_event, guest_registration):
    other = make_event(title="Other")
    db.session.commit()
    assert staff_client.post(f"/staff/events/{other.id}/registrations/{guest_registration.id}/cancel").status_code == 404
    assert staff_client.get(f"/staff/events/{other.id}/registrations/{guest_registration.id}/pay").status_code == 404
    assert staff_client.get("/staff/events/999999").status_code == 404


# ---------------------------------------------------------------- payments


def test_record_a_payment_and_a_double_submit_records_one(staff_client, paid_event, guest_registration):
    url = f"/staff/events/{paid_event.id}/registrations/{guest_registration.id}/pay"
    form = staff_client.get(url)
    body = form.get_data(as_text=True)
    assert 'name="token"' in body and 'value="200.00"' in body  # the amount due, prefilled
    token = re.search(r'name="token" value="([^"]+)"', body).group(1)
    data = {"amount": "150", "method": "cash", "reference": "slip 7", "received_on": local_today().isoformat(),
            "token": token}
    first = staff_client.post(url, data=data, follow_redirects=True)
    assert "Payment recorded" in text_of(first) and "still to pay" in text_of(first)
    second = staff_client.post(url, data=data, follow_redirects=True)
    assert "already recorded" in text_of(second)
    payments = db.session.scalars(select(Payment).where(Payment.registration_id == guest_registration.id)).all()
    assert len(payments) == 1 and payments[0].amount_minor == 15000 and payments[0].reference == "slip 7"
    assert amount_due(db.session, guest_registration) == 5000
    audit = db.session.scalars(select(AuditLog).where(AuditLog.action == "payment.record")).one()
    assert audit.actor_id is not None and audit.entity_id == payments[0].id
    table = section(staff_client.get(f"/staff/events/{paid_event.id}"), "registrations")
    assert "50.00" in table  # still due


def test_a_bad_payment_is_refused_beside_the_field(staff_client, paid_event, guest_registration):
    url = f"/staff/events/{paid_event.id}/registrations/{guest_registration.id}/pay"
    for amount in ("-5", "abc", "0"):
        response = staff_client.post(url, data={"amount": amount, "method": "cash", "token": f"tok{amount.strip('-')}x",
                                                "received_on": local_today().isoformat()})
        assert response.status_code == 422 and 'id="amount-err"' in response.get_data(as_text=True), amount
    future = (local_today() + timedelta(days=3)).isoformat()
    response = staff_client.post(url, data={"amount": "10", "method": "cash", "token": "tokfuture", "received_on": future})
    assert response.status_code == 422
    assert count(Payment) == 0


# ---------------------------------------------------------------- feedback and the member page


def test_finished_event_shows_feedback_results(staff_client, make_event, make_current_member):
    start = utcnow() + timedelta(hours=1)
    event = make_event(starts_at=start)
    regs = [events.register_member(db.session, event, make_current_member(), now=utcnow(), actor=None)
            for _ in range(3)]
    for r in regs:
        events.check_in(db.session, r, now=start + timedelta(minutes=5), actor=None)
    events.finish_event(db.session, event, now=start + timedelta(hours=3))
    for r, rating, rec, comment in zip(regs, (5, 4, 3), (True, True, False), ("Lovely evening", None, "Too loud")):
        events.submit_feedback(db.session, r, rating=rating, would_recommend=rec, comment=comment,
                               now=start + timedelta(hours=4))
    db.session.commit()
    feedback = section(staff_client.get(f"/staff/events/{event.id}"), "feedback")
    assert "4.0 / 5" in feedback and "3 answers" in feedback and "67%" in feedback
    assert "Lovely evening" in feedback and "Too loud" in feedback


def test_member_page_lists_the_members_events(staff_client, make_event, make_current_member):
    member = make_current_member()
    event = make_event(title="Harvest festival")
    events.register_member(db.session, event, member, now=utcnow(), actor=None)
    db.session.commit()
    response = staff_client.get(f"/staff/members/{member.id}")
    box = section(response, "events")
    assert "Harvest festival" in box and "Confirmed" in box
    assert f'href="/staff/events/{event.id}"' in response.get_data(as_text=True)


def test_moving_an_event_emails_everyone_registered_once_with_the_new_calendar_file(staff_client, make_event,
                                                                                   current_member):
    import base64

    from tests.events.conftest import sent

    event = make_event(title="Annual dinner", capacity=1, starts_at=datetime(2027, 3, 10, 12, 0, tzinfo=timezone.utc),
                       hours=3.5, venue="Hotel Sonargaon")
    seated, waiting, gone = (current_member(email=f"{n}@example.org") for n in ("seated", "waiting", "gone"))
    now = utcnow()
    events.register_member(db.session, event, seated, now=now, actor=None)
    events.register_member(db.session, event, waiting, now=now, actor=None)
    third = events.register_member(db.session, event, gone, now=now, actor=None)
    events.cancel_registration(db.session, third, now=now, actor=None, by="self")
    db.session.commit()
    before = len(sent())

    # same times, new title: nobody is told
    same = good_form(capacity="1", **{"title": "Annual dinner 2027"})
    assert staff_client.post(f"/staff/events/{event.id}/edit", data=same).status_code == 302
    assert sent("event_changed") == []

    # moved two days later and to another hotel
    moved = dict(same, starts_at="2027-03-12T18:00", ends_at="2027-03-12T21:30",
                 registration_closes_at="2027-03-11T23:00", venue="Lake View Hotel")
    response = staff_client.post(f"/staff/events/{event.id}/edit", data=moved, follow_redirects=True)
    assert "2 people registered or waiting were emailed about the change" in text_of(response)
    told = {m.to_address: m for m in sent("event_changed")}
    assert set(told) == {"seated@example.org", "waiting@example.org"}
    body = told["seated@example.org"].body_text
    assert "Start: was Wednesday 10 March 2027, 18:00; now Friday 12 March 2027, 18:00" in body
    assert "Place: was Hotel Sonargaon; now Lake View Hotel" in body
    assert "Your place is kept" in body and "still on the waitlist" in told["waiting@example.org"].body_text
    assert "now Lake View Hotel\n\nYour place is kept" in body and "in your calendar.\n\nIf you can no longer come" in body
    [ics] = told["seated@example.org"].attachments
    calendar = base64.b64decode(ics["data_b64"]).decode()
    assert "DTSTART:20270312T120000Z" in calendar and "UID:" in calendar
    assert not told["waiting@example.org"].attachments
    # saving the same form again tells nobody twice
    staff_client.post(f"/staff/events/{event.id}/edit", data=moved)
    assert len(sent("event_changed")) == 2 and len(sent()) == before + 2


def test_the_registrations_list_comes_in_pages(staff_client, make_event, current_member, monkeypatch):
    from membership.staff import views_events

    monkeypatch.setattr(views_events, "REGISTRATIONS_PER_PAGE", 3)
    event = make_event(title="Big meeting")
    people = [current_member(first_name=f"P{i}", last_name="Person") for i in range(7)]
    for i, person in enumerate(people):
        events.register_member(db.session, event, person, now=utcnow() + timedelta(seconds=i), actor=None)
    db.session.commit()
    first = text_of(staff_client.get(f"/staff/events/{event.id}"))
    assert "Registrations (7)" in first and "1–3 of 7" in first
    assert "P0 Person" in first and "P3 Person" not in first
    last = text_of(staff_client.get(f"/staff/events/{event.id}?page=3"))
    assert "P6 Person" in last and "P0 Person" not in last and "7–7 of 7" in last
    # a page past the end shows the last one; nonsense is the first
    assert "P6 Person" in text_of(staff_client.get(f"/staff/events/{event.id}?page=99"))
    assert "P0 Person" in text_of(staff_client.get(f"/staff/events/{event.id}?page=x"))
