"""Event emails go through the outbox, each once; confirmations carry a calendar file."""
from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone

from icalendar import Calendar

from membership.events import emails
from membership.events import services as ev
from membership.extensions import db
from membership.notifications import outbox
from membership.notifications.backends import memory_store
from tests.events.conftest import sent

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def test_confirmation_is_queued_once_with_a_parseable_ics(app, make_event, current_member):
    start = datetime(2027, 3, 9, 12, 30, tzinfo=timezone.utc)
    event = make_event(title="Spring talk", starts_at=start, member_price_minor=25000)
    member = current_member()
    reg = ev.register_member(db.session, event, member, now=NOW, actor=None)
    assert emails.queue_confirmation(db.session, reg, now=NOW) is None  # the key is taken
    [mail] = sent("event_confirmation")
    assert mail.to_address == member.email and "Spring talk" in mail.subject
    assert "Tuesday 9 March 2027, 18:30" in mail.body_text  # Dhaka time
    assert f"http://127.0.0.1:5000/events/{event.id}" in mail.body_text or "/events/" in mail.body_text
    assert "Still to pay" in mail.body_text
    [attachment] = mail.attachments
    assert attachment["content_type"] == "text/calendar" and attachment["filename"].endswith(".ics")
    cal = Calendar.from_ical(base64.b64decode(attachment["data_b64"]))
    [vevent] = cal.walk("VEVENT")
    assert vevent.decoded("dtstart") == start


def test_the_attachment_reaches_the_sent_message(app, make_event, current_member):
    event = make_event()
    ev.register_member(db.session, event, current_member(), now=NOW, actor=None)
    db.session.commit()
    outbox.deliver_pending(db.session, now=NOW)
    messages = [o.message for o in memory_store(app) if "You are registered" in str(o.message["Subject"])]
    assert len(messages) == 1
    parts = [p for p in messages[0].walk() if p.get_content_type() == "text/calendar"]
    assert len(parts) == 1 and b"BEGIN:VEVENT" in parts[0].get_payload(decode=True)


def test_every_kind_is_queued_once(app, make_event, current_member):
    event = make_event(capacity=1, starts_at=NOW + timedelta(days=2))
    a, b = current_member(), current_member()
    ra = ev.register_member(db.session, event, a, now=NOW, actor=None)
    rb = ev.register_member(db.session, event, b, now=NOW, actor=None)
    guest = ev.register_guest(db.session, event, name="Gus", email="gus@example.org", now=NOW)
    ev.cancel_registration(db.session, ra, now=NOW, actor=None)
    ev.queue_event_reminders(db.session, now=NOW + timedelta(days=1, hours=1))
    ev.queue_event_reminders(db.session, now=NOW + timedelta(days=1, hours=2))
    ev.cancel_event(db.session, event, reason="Storm", now=NOW + timedelta(days=1, hours=3), actor=None)
    for kind in ("event_confirmation", "event_waitlisted", "event_promoted", "event_registration_cancelled",
                 "event_reminder", "event_guest_confirm"):
        assert len(sent(kind)) == 1, kind
    assert sent("event_promoted")[0].attachments  # the promoted person gets the calendar file too
    assert sent("event_reminder")[0].to_address == b.email
    # b (promoted) and the pending guest are told; a had cancelled already
    assert sorted(m.to_address for m in sent("event_cancelled")) == sorted([b.email, "gus@example.org"])
    assert sent("event_guest_confirm")[0].to_address == "gus@example.org"
    assert rb.status == "cancelled" and guest.status == "cancelled"
    keys = [m.dedupe_key for m in sent()]
    assert len(keys) == len(set(keys))
