"""The events domain: validation, registration rules, waitlist, check-in, finishing, feedback, reports."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from membership.core.errors import Conflict, ValidationError
from membership.core.models import Activity, AuditLog
from membership.events import services as ev
from membership.events.models import Event
from membership.extensions import db
from tests.events.conftest import sent
from membership.events.dues import amount_due
from membership.events.tokens import feedback_token, guest_confirm_token

NOW = datetime.now(timezone.utc).replace(microsecond=0)
DHAKA = ZoneInfo("Asia/Dhaka")


def form(**kw):
    data = {"title": "Spring talk", "starts_at": "2027-03-09 18:30", "ends_at": "2027-03-09 20:30",
            "venue": "Hall", "capacity": "20", "waitlist_enabled": "on", "member_price": "100.00",
            "non_member_price": "250", "reminder_hours_before": "24"}
    data.update(kw)
    return data


def activities(member, kind=None):
    stmt = select(Activity).where(Activity.member_id == member.id).order_by(Activity.id)
    if kind:
        stmt = stmt.where(Activity.kind == kind)
    return list(db.session.scalars(stmt))


# ---------------------------------------------------------------- validation


def test_a_valid_form_gives_utc_times_and_minor_units():
    values = ev.validate_event(form(), zone=DHAKA, currency="BDT").values
    assert values["starts_at"] == datetime(2027, 3, 9, 12, 30, tzinfo=timezone.utc)  # Dhaka is UTC+6
    assert values["capacity"] == 20 and values["member_price_minor"] == 10000
    assert values["non_member_price_minor"] == 25000 and values["waitlist_enabled"] is True


def test_blank_capacity_is_unlimited_and_blank_prices_are_free():
    values = ev.validate_event(form(capacity="", member_price="", non_member_price="", reminder_hours_before=""),
                               zone=DHAKA, currency="BDT").values
    assert values["capacity"] is None and values["member_price_minor"] == 0 and values["non_member_price_minor"] == 0
    assert values["reminder_hours_before"] is None


@pytest.mark.parametrize("changes, field, message", [
    ({"capacity": "-1"}, "capacity", "Capacity cannot be below zero"),
    ({"capacity": "ten"}, "capacity", "whole number"),
    ({"ends_at": "2027-03-09 18:00"}, "ends_at", "The end must be after the start."),
    ({"ends_at": "2027-03-09 18:30"}, "ends_at", "The end must be after the start."),
    ({"member_price": "-5"}, "member_price", "Member price cannot be negative."),
    ({"non_member_price": "-0.01"}, "non_member_price", "Non-member price cannot be negative."),
    ({"member_price": "1.234"}, "member_price", "at most two decimals"),
    ({"online_url": "javascript:alert(1)"}, "online_url", "http:// or https://"),
    ({"online_url": "www.example.org/meet"}, "online_url", "http:// or https://"),
    ({"title": "  "}, "title", "Title is required."),
    ({"starts_at": "tomorrow"}, "starts_at", "like 2027-03-09 18:30"),
    ({"registration_opens_at": "2027-03-01 10:00", "registration_closes_at": "2027-02-01 10:00"},
     "registration_closes_at", "close after it opens"),
    ({"registration_closes_at": "2027-03-10 10:00"}, "registration_closes_at", "no later than the end"),
    ({"reminder_hours_before": "721"}, "reminder_hours_before", "at most 720"),
])
def test_bad_input_is_refused_with_a_clear_message_on_its_field(changes, field, message):
    with pytest.raises(ValidationError) as exc:
        ev.validate_event(form(**changes), zone=DHAKA, currency="BDT")
    assert exc.value.field == field
    assert message in exc.value.message


def test_a_local_time_the_clocks_skip_is_refused():
    with pytest.raises(ValidationError, match="does not exist") as exc:
        ev.validate_event(form(starts_at="2027-03-28 01:30", ends_at="2027-03-28 03:30"),
                          zone=ZoneInfo("Europe/London"), currency="GBP")
    assert exc.value.field == "starts_at"


def test_create_publish_edit_and_duplicate(app, staff_user):
    event = ev.create_event(db.session, ev.validate_event(form(), zone=DHAKA, currency="BDT"), now=NOW,
                            actor=staff_user)
    assert event.status == "draft" and event.seats_taken == 0
    ev.publish_event(db.session, event, now=NOW, actor=staff_user)
    assert event.status == "published"
    with pytest.raises(Conflict):
        ev.publish_event(db.session, event, now=NOW, actor=staff_user)
    ev.update_event(db.session, event, ev.validate_event(form(title="Spring talk (new room)"), zone=DHAKA,
                                                         currency="BDT"), now=NOW, actor=staff_user)
    copy = ev.duplicate_event(db.session, event, now=NOW, actor=staff_user)
    assert copy.title == "Spring talk (new room) (copy)" and copy.status == "draft"
    assert copy.duplicated_from_id == event.id and copy.capacity == 20 and copy.seats_taken == 0
    actions = list(db.session.scalars(select(AuditLog.action).order_by(AuditLog.id)))
    assert actions[-4:] == ["event.create", "event.publish", "event.update", "event.duplicate"]


def test_capacity_cannot_go_below_the_seats_taken_and_a_larger_one_promotes(make_event, current_member):
    event = make_event(capacity=2)
    regs = [ev.register_member(db.session, event, current_member(), now=NOW + timedelta(seconds=i), actor=None)
            for i in range(4)]
    assert [r.status for r in regs] == ["confirmed", "confirmed", "waitlisted", "waitlisted"]
    data = ev.validate_event({"title": event.title, "starts_at": event.starts_at, "ends_at": event.ends_at,
                              "capacity": "1"}, zone=DHAKA, currency="BDT")
    with pytest.raises(ValidationError, match="2 seats are taken") as exc:
        ev.update_event(db.session, event, data, now=NOW, actor=None)
    assert exc.value.field == "capacity"
    data.values["capacity"] = 3
    ev.update_event(db.session, event, data, now=NOW, actor=None)
    assert [r.status for r in regs] == ["confirmed", "confirmed", "confirmed", "waitlisted"]
    assert event.seats_taken == 3
    assert len(sent("event_promoted")) == 1


# ---------------------------------------------------------------- registration rules


@pytest.mark.parametrize("zone, change_day, before, after", [
    # spring forward: 28 March 2027 in London (GMT -> BST), 14 March 2027 in New York (EST -> EDT)
    ("Europe/London", "2027-03-28", 0, 1),
    ("America/New_York", "2027-03-14", -5, -4),
    # fall back: 31 October 2027 in London, 7 November 2027 in New York
    ("Europe/London", "2027-10-31", 1, 0),
    ("America/New_York", "2027-11-07", -4, -5),
])
def test_a_registration_window_across_a_clock_change_opens_at_the_local_time_staff_typed(
        app, monkeypatch, make_event, current_member, zone, change_day, before, after):
    """Staff type "opens 09:00 the day before the clock change, closes 09:00 the day after": both
    are 09:00 on the wall clock, so the window is 47 hours in spring and 49 in autumn."""
    monkeypatch.setitem(app.config, "TIMEZONE", zone)
    day = datetime.fromisoformat(change_day)
    first, last = day - timedelta(days=1), day + timedelta(days=1)
    values = ev.validate_event(form(starts_at=f"{last:%Y-%m-%d} 18:00", ends_at=f"{last:%Y-%m-%d} 20:00",
                                    registration_opens_at=f"{first:%Y-%m-%d} 09:00",
                                    registration_closes_at=f"{last:%Y-%m-%d} 09:00"),
                               zone=ZoneInfo(zone), currency="GBP").values
    opens, closes = values["registration_opens_at"], values["registration_closes_at"]
    assert opens == datetime(first.year, first.month, first.day, 9, tzinfo=timezone.utc) - timedelta(hours=before)
    assert closes == datetime(last.year, last.month, last.day, 9, tzinfo=timezone.utc) - timedelta(hours=after)
    assert closes - opens == timedelta(hours=48 - (after - before))
    event = make_event(starts_at=values["starts_at"], opens_at=opens, closes_at=closes)
    member = current_member()
    just_before = ev.availability(db.session, event, member=member, now=opens - timedelta(minutes=1))
    assert not just_before.open and f"{first.day} {first:%B %Y} at 09:00" in just_before.reason
    assert ev.availability(db.session, event, member=member, now=opens).open
    assert ev.availability(db.session, event, member=member, now=closes - timedelta(minutes=1)).open
    assert ev.availability(db.session, event, member=member, now=closes).reason == "Registration has closed."


def test_registration_window(make_event, current_member):
    opens = NOW + timedelta(days=1)
    event = make_event(opens_at=opens, closes_at=NOW + timedelta(days=3))
    member = current_member()
    av = ev.availability(db.session, event, member=member, now=NOW)
    assert not av.open and av.reason.startswith("Registration opens on ")
    with pytest.raises(Conflict, match="Registration opens on"):
        ev.register_member(db.session, event, member, now=NOW, actor=None)
    assert ev.availability(db.session, event, member=member, now=opens).open
    assert ev.register_member(db.session, event, member, now=opens, actor=None).status == "confirmed"
    closed = NOW + timedelta(days=3)
    with pytest.raises(Conflict, match="Registration has closed."):
        ev.register_member(db.session, event, current_member(), now=closed, actor=None)
    # without a closing time, registration closes at the start
    other = make_event(starts_at=NOW + timedelta(hours=1))
    with pytest.raises(Conflict, match="the event has started"):
        ev.register_member(db.session, other, member, now=NOW + timedelta(hours=1), actor=None)
    draft = make_event(status="draft")
    assert not ev.availability(db.session, draft, now=NOW).open


def test_the_opening_time_is_told_in_the_associations_zone(make_event):
    event = make_event(opens_at=datetime(2027, 3, 3, 3, 0, tzinfo=timezone.utc),
                       starts_at=datetime(2027, 3, 20, 12, tzinfo=timezone.utc))
    av = ev.availability(db.session, event, now=datetime(2027, 3, 1, tzinfo=timezone.utc))
    assert av.reason == "Registration opens on 3 March 2027 at 09:00."  # 03:00 UTC is 09:00 in Dhaka


def test_members_only_refuses_guests_and_lapsed_members_clearly(make_event, current_member, lapsed_member):
    event = make_event(members_only=True)
    av = ev.availability(db.session, event, member=None, now=NOW)
    assert not av.open and av.reason == "This event is for members only."
    with pytest.raises(Conflict, match="for members only"):
        ev.register_guest(db.session, event, name="Gus", email="gus@example.org", now=NOW)
    lapsed = lapsed_member()
    with pytest.raises(Conflict, match="Your membership is not current"):
        ev.register_member(db.session, event, lapsed, now=NOW, actor=None)
    assert ev.register_member(db.session, event, current_member(), now=NOW, actor=None).status == "confirmed"
    assert event.seats_taken == 1


def test_the_price_follows_the_status_on_the_day(make_event, current_member, lapsed_member):
    event = make_event(member_price_minor=10000, non_member_price_minor=25000)
    current, lapsed = current_member(), lapsed_member()
    assert ev.availability(db.session, event, member=current, now=NOW).price_minor == 10000
    r1 = ev.register_member(db.session, event, current, now=NOW, actor=None)
    r2 = ev.register_member(db.session, event, lapsed, now=NOW, actor=None)
    r3 = ev.register_guest(db.session, event, name="Gus", email="gus@example.org", now=NOW, confirmed_email=True)
    assert (r1.price_minor, r1.member_price) == (10000, True)
    assert (r2.price_minor, r2.member_price) == (25000, False)
    assert (r3.price_minor, r3.member_price) == (25000, False)
    assert amount_due(db.session, r1) == 10000


def test_registering_twice_is_one_registration(make_event, current_member):
    event = make_event(capacity=10)
    member = current_member()
    first = ev.register_member(db.session, event, member, now=NOW, actor=None)
    again = ev.register_member(db.session, event, member, now=NOW + timedelta(seconds=1), actor=None)
    assert again.id == first.id and event.seats_taken == 1
    assert len(sent("event_confirmation")) == 1
    assert len(activities(member, "event_registered")) == 1


def test_full_without_waitlist_says_so(make_event, current_member):
    event = make_event(capacity=1, waitlist=False)
    ev.register_member(db.session, event, current_member(), now=NOW, actor=None)
    av = ev.availability(db.session, event, now=NOW)
    assert (av.open, av.full, av.seats_left, av.reason) == (False, True, 0, "This event is full.")
    with pytest.raises(Conflict, match="This event is full."):
        ev.register_member(db.session, event, current_member(), now=NOW, actor=None)


def test_a_guest_confirms_by_email_then_takes_a_seat(make_event):
    event = make_event(capacity=5)
    reg = ev.register_guest(db.session, event, name="Gus Guest", email="Gus@Example.org", now=NOW)
    assert reg.status == "pending" and event.seats_taken == 0
    [mail] = sent("event_guest_confirm")
    # the link in the email (a token made now may carry another second's timestamp)
    token = mail.body_text.split("/events/confirm/")[1].split()[0]
    assert ev.confirm_guest(db.session, token, now=NOW).status == "confirmed"
    assert ev.confirm_guest(db.session, token, now=NOW).status == "confirmed"  # a second click
    assert event.seats_taken == 1 and len(sent("event_confirmation")) == 1
    # the same address again (any case) is the same person
    assert ev.register_guest(db.session, event, name="Gus", email="gus@example.org", now=NOW).id == reg.id
    with pytest.raises(ValidationError, match="expired"):
        ev.confirm_guest(db.session, token, now=datetime.now(timezone.utc) + timedelta(days=4))
    with pytest.raises(ValidationError, match="not valid"):
        ev.confirm_guest(db.session, token[:-3] + "abc", now=NOW)
    with pytest.raises(ValidationError) as exc:
        ev.register_guest(db.session, event, name="", email="x@example.org", now=NOW)
    assert exc.value.field == "name"
    with pytest.raises(ValidationError) as exc:
        ev.register_guest(db.session, event, name="X", email="not-an-address", now=NOW)
    assert exc.value.field == "email"


def test_a_guest_address_of_a_member_registers_the_member(make_event, current_member):
    event = make_event(member_price_minor=100, non_member_price_minor=900)
    member = current_member(email="ada@example.org")
    reg = ev.register_guest(db.session, event, name="Ada", email="ADA@example.org", now=NOW, source="staff",
                            confirmed_email=True, actor=None)
    assert reg.member_id == member.id and reg.person_key == f"member:{member.id}" and reg.price_minor == 100


# ---------------------------------------------------------------- waitlist and cancellation


def test_waitlist_order_and_promotion_on_cancellation(make_event, current_member):
    event = make_event(capacity=1)
    people = [current_member() for _ in range(4)]
    # registered out of id order: the waitlist follows registered_at
    regs = {i: ev.register_member(db.session, event, people[i], now=NOW + timedelta(minutes=m), actor=None)
            for i, m in ((0, 0), (3, 1), (1, 2), (2, 3))}
    assert regs[0].status == "confirmed"
    promoted = ev.cancel_registration(db.session, regs[0], now=NOW + timedelta(hours=1), actor=None)
    assert promoted is regs[3] and regs[3].status == "confirmed" and regs[3].promoted_at is not None
    promoted = ev.cancel_registration(db.session, regs[3], now=NOW + timedelta(hours=1), actor=None)
    assert promoted is regs[1]
    assert regs[2].status == "waitlisted" and event.seats_taken == 1
    [m1, m2] = sent("event_promoted")
    assert {m1.to_address, m2.to_address} == {people[3].email, people[1].email}
    assert len(sent("event_registration_cancelled")) == 2
    assert activities(people[0], "event_cancelled")[0].detail["event_id"] == event.id


def test_a_guest_joins_the_waitlist_when_they_confirm_not_when_they_fill_in_the_form(make_event, current_member):
    event = make_event(capacity=1)
    seated = ev.register_member(db.session, event, current_member(), now=NOW, actor=None)
    guest = ev.register_guest(db.session, event, name="Gus", email="gus@example.org", now=NOW + timedelta(minutes=1))
    member = ev.register_member(db.session, event, current_member(), now=NOW + timedelta(minutes=2), actor=None)
    assert (guest.status, member.status) == ("pending", "waitlisted")
    ev.confirm_guest(db.session, guest_confirm_token(guest), now=NOW + timedelta(minutes=3))
    assert guest.status == "waitlisted"
    # the member waited first: the freed seat is theirs
    assert ev.cancel_registration(db.session, seated, now=NOW + timedelta(hours=1), actor=None) is member


def test_a_waitlisted_person_leaves_the_waitlist_without_promoting_anyone(make_event, current_member):
    event = make_event(capacity=1)
    a, b, c = (ev.register_member(db.session, event, current_member(), now=NOW + timedelta(seconds=i), actor=None)
               for i in range(3))
    assert ev.cancel_registration(db.session, b, now=NOW, actor=None) is None
    assert (a.status, b.status, c.status) == ("confirmed", "cancelled", "waitlisted") and event.seats_taken == 1


def test_self_cancel_after_the_deadline_is_refused_but_staff_can(make_event, current_member, staff_user):
    deadline = NOW + timedelta(days=2)
    event = make_event(capacity=1, cancellation_deadline=deadline)
    reg = ev.register_member(db.session, event, current_member(), now=NOW, actor=None)
    waiting = ev.register_member(db.session, event, current_member(), now=NOW, actor=None)
    with pytest.raises(Conflict, match="the deadline was"):
        ev.cancel_registration(db.session, reg, now=deadline, actor=None, by="self")
    assert reg.status == "confirmed"
    promoted = ev.cancel_registration(db.session, reg, now=deadline, actor=staff_user, by="staff")
    assert reg.status == "cancelled" and reg.cancelled_by == "staff" and promoted is waiting
    [mail] = sent("event_registration_cancelled")
    assert "We have cancelled your registration" in mail.body_text
    assert db.session.scalar(select(AuditLog).where(AuditLog.action == "event.cancel_registration")) is not None
    # once cancelled, a person may register again (a new registration)
    again = ev.register_member(db.session, event, reg.member, now=deadline, actor=None)
    assert again.id != reg.id and again.status == "waitlisted"


def test_cancel_event_emails_every_live_registrant_once(make_event, current_member, staff_user):
    event = make_event(capacity=2)
    regs = [ev.register_member(db.session, event, current_member(), now=NOW, actor=None) for _ in range(3)]
    gone = ev.register_member(db.session, event, current_member(), now=NOW, actor=None)
    ev.cancel_registration(db.session, gone, now=NOW, actor=None)
    told = ev.cancel_event(db.session, event, reason="The speaker is ill.", now=NOW, actor=staff_user)
    assert told == 3
    mails = sent("event_cancelled")
    assert sorted(m.to_address for m in mails) == sorted(r.member.email for r in regs)
    assert all("The speaker is ill." in m.body_text for m in mails)
    assert event.status == "cancelled" and event.seats_taken == 0
    assert all(r.status == "cancelled" and r.cancelled_by == "event" for r in regs)
    with pytest.raises(Conflict):
        ev.cancel_event(db.session, event, reason="again", now=NOW, actor=staff_user)
    assert len(sent("event_cancelled")) == 3


# ---------------------------------------------------------------- check-in and finishing


def test_check_in_undo_and_walk_in(make_event, current_member, staff_user):
    event = make_event(capacity=2, starts_at=NOW - timedelta(minutes=30))
    member = current_member()
    # registered before the start
    reg = ev.register_member(db.session, event, member, now=NOW - timedelta(days=1), actor=None)
    ev.check_in(db.session, reg, now=NOW, actor=staff_user)
    ev.check_in(db.session, reg, now=NOW, actor=staff_user)  # a second tap
    assert reg.status == "attended" and reg.checked_in_by_id == staff_user.id
    ev.undo_check_in(db.session, reg, now=NOW, actor=staff_user)
    assert reg.status == "confirmed" and reg.checked_in_at is None
    walk = ev.walk_in(db.session, event, now=NOW, actor=staff_user, name="Wanda Walker", email="wanda@example.org")
    assert (walk.status, walk.source, event.seats_taken) == ("attended", "walk_in", 2)
    with pytest.raises(Conflict, match="This event is full."):
        ev.walk_in(db.session, event, now=NOW, actor=staff_user, name="Late Larry", email="larry@example.org")
    waiting = make_event(capacity=0)
    wl = ev.register_member(db.session, waiting, member, now=NOW, actor=None)
    with pytest.raises(Conflict, match="waitlist"):
        ev.check_in(db.session, wl, now=NOW, actor=staff_user)


def test_finish_records_attendance_and_no_shows_once(make_event, current_member):
    event = make_event(starts_at=NOW - timedelta(hours=3), hours=2)
    came, absent = current_member(), current_member()
    r1 = ev.register_member(db.session, event, came, now=NOW - timedelta(days=1), actor=None)
    r2 = ev.register_member(db.session, event, absent, now=NOW - timedelta(days=1), actor=None)
    ev.check_in(db.session, r1, now=NOW - timedelta(hours=3), actor=None)
    with pytest.raises(Conflict, match="not ended"):
        ev.finish_event(db.session, make_event(), now=NOW)
    assert ev.finish_event(db.session, event, now=NOW) == {"attended": 1, "no_show": 1}
    assert ev.finish_event(db.session, event, now=NOW) == {"attended": 0, "no_show": 0}
    assert (r1.status, r2.status, event.status) == ("attended", "no_show", "finished")
    assert [a.kind for a in activities(came)][-1] == "event_attended"
    assert len(activities(came, "event_attended")) == 1 and len(activities(absent, "event_no_show")) == 1
    assert activities(absent, "event_no_show")[0].detail == {"event_id": event.id, "title": event.title}
    with pytest.raises(Conflict):
        ev.undo_check_in(db.session, r1, now=NOW, actor=None)


# ---------------------------------------------------------------- feedback, payments, reports


def test_feedback_once_from_attendees_with_a_rating_from_1_to_5(make_event, current_member):
    event = make_event(starts_at=NOW - timedelta(hours=3), hours=2)
    member = current_member()
    reg = ev.register_member(db.session, event, member, now=NOW - timedelta(days=1), actor=None)
    with pytest.raises(Conflict, match="only by people who attended"):
        ev.submit_feedback(db.session, reg, rating=5, would_recommend=True, comment=None, now=NOW)
    ev.check_in(db.session, reg, now=NOW - timedelta(hours=3), actor=None)
    ev.finish_event(db.session, event, now=NOW)
    for bad in (0, 6, "x"):
        with pytest.raises(ValidationError, match="from 1 to 5") as exc:
            ev.submit_feedback(db.session, reg, rating=bad, would_recommend=True, comment=None, now=NOW)
        assert exc.value.field == "rating"
    fb = ev.submit_feedback(db.session, reg, rating=4, would_recommend=True, comment="Good talk", now=NOW)
    assert fb.rating == 4
    with pytest.raises(Conflict, match="already given"):
        ev.submit_feedback(db.session, reg, rating=5, would_recommend=True, comment=None, now=NOW)
    assert len(activities(member, "feedback_given")) == 1
    token = feedback_token(reg)
    assert ev.registration_from_feedback_token(db.session, token).id == reg.id
    with pytest.raises(ValidationError, match="not valid"):
        ev.registration_from_feedback_token(db.session, "garbage")
    with pytest.raises(ValidationError, match="expired"):
        ev.registration_from_feedback_token(db.session, token, now=datetime.now(timezone.utc) + timedelta(days=61))


def test_payment_against_a_registration_gets_a_receipt_and_lowers_what_is_due(make_event, current_member,
                                                                              staff_user):
    event = make_event(member_price_minor=10000, non_member_price_minor=25000)
    reg = ev.register_member(db.session, event, current_member(), now=NOW, actor=None)
    guest = ev.register_guest(db.session, event, name="Gus", email="gus@example.org", now=NOW, confirmed_email=True)
    p = ev.record_registration_payment(db.session, reg, amount_minor=4000, method="cash", received_at=NOW,
                                       reference=None, now=NOW, actor=staff_user)
    assert p.registration_id == reg.id and p.receipt_number.startswith("R-")
    assert amount_due(db.session, reg) == 6000
    ev.record_registration_payment(db.session, reg, amount_minor=6000, method="cash", received_at=NOW,
                                   reference=None, now=NOW, actor=staff_user)
    assert amount_due(db.session, reg) == 0
    g = ev.record_registration_payment(db.session, guest, amount_minor=25000, method="cash", received_at=NOW,
                                       reference="door", now=NOW, actor=staff_user)
    receipts = sent("payment_receipt")
    assert len(receipts) == 3 and receipts[-1].to_address == "gus@example.org"
    assert g.receipt_number in receipts[-1].subject
    with pytest.raises(ValidationError):
        ev.record_registration_payment(db.session, reg, amount_minor=0, method="cash", received_at=NOW,
                                       reference=None, now=NOW, actor=staff_user)


def test_reports_match_hand_counts(make_event, current_member, staff_user):
    start = NOW - timedelta(days=2)
    event = make_event(capacity=4, starts_at=start, member_price_minor=1000, non_member_price_minor=3000)
    before = start - timedelta(days=3)
    members = [ev.register_member(db.session, event, current_member(), now=before + timedelta(seconds=i), actor=None)
               for i in range(3)]
    guest = ev.register_guest(db.session, event, name="Gus", email="gus@example.org", now=before,
                              confirmed_email=True)
    waiting = ev.register_member(db.session, event, current_member(), now=before + timedelta(minutes=5), actor=None)
    late = ev.register_member(db.session, event, current_member(), now=before + timedelta(minutes=6), actor=None)
    ev.cancel_registration(db.session, late, now=before, actor=None)  # left the waitlist
    for r in (members[0], members[1], guest):
        ev.check_in(db.session, r, now=start, actor=staff_user)
    ev.record_registration_payment(db.session, guest, amount_minor=3000, method="cash", received_at=start,
                                   reference=None, now=NOW, actor=staff_user)
    ev.record_registration_payment(db.session, members[0], amount_minor=1000, method="cash", received_at=start,
                                   reference=None, now=NOW, actor=staff_user)
    ev.finish_event(db.session, event, now=NOW)
    ev.submit_feedback(db.session, members[0], rating=5, would_recommend=True, comment=None, now=NOW)
    ev.submit_feedback(db.session, guest, rating=2, would_recommend=False, comment=None, now=NOW)
    rep = ev.event_report(db.session, event)
    # seated: 3 members + guest = 4; waitlisted: 1; cancelled: 1; attended 3, no-show 1 (members[2])
    assert (rep.registrations, rep.confirmed, rep.waitlisted, rep.cancelled) == (5, 4, 1, 1)
    assert (rep.attended, rep.no_shows) == (3, 1)
    assert rep.attendance_rate == pytest.approx(0.75) and rep.no_show_rate == pytest.approx(0.25)
    assert rep.revenue_minor == 4000 and rep.member_share == pytest.approx(0.75)
    assert (rep.feedback_count, rep.feedback_average, rep.recommend_share) == (2, pytest.approx(3.5), 0.5)
    other = make_event(starts_at=NOW + timedelta(days=1))
    make_event(status="draft", starts_at=NOW + timedelta(days=1))
    rows = ev.period_report(db.session, starts_from=NOW - timedelta(days=5), starts_before=NOW + timedelta(days=2))
    assert [r.event_id for r in rows] == [event.id, other.id]
    assert rows[1].registrations == 0 and rows[1].attendance_rate is None and rows[1].member_share is None


def test_no_reminder_stays_no_reminder(app, staff_user):
    data = ev.validate_event(form(reminder_hours_before=""), zone=DHAKA, currency="BDT")
    event = ev.create_event(db.session, data, now=NOW, actor=staff_user)
    db.session.commit()
    db.session.expire_all()
    assert event.reminder_hours_before is None
    assert ev.duplicate_event(db.session, event, now=NOW, actor=staff_user).reminder_hours_before is None
