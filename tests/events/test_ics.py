"""Calendar files parse back with the icalendar library and say what the event says."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from icalendar import Calendar

from membership.events.ics import event_ics, feed_ics


def test_one_event_file(app, make_event):
    app.config["BASE_URL"] = "https://members.example.org"
    start = datetime(2027, 3, 9, 12, 30, tzinfo=timezone.utc)
    event = make_event(title="Spring talk", starts_at=start, hours=2, venue="Community Hall")
    cal = Calendar.from_ical(event_ics(event, url="https://members.example.org/events/1"))
    assert str(cal["version"]) == "2.0" and str(cal["method"]) == "PUBLISH" and "Samiti" in str(cal["prodid"])
    [vevent] = cal.walk("VEVENT")
    assert str(vevent["uid"]) == f"event-{event.id}@members.example.org"
    assert vevent.decoded("dtstart") == start and vevent.decoded("dtstart").utcoffset() == timedelta(0)
    assert vevent.decoded("dtend") == start + timedelta(hours=2)
    assert str(vevent["summary"]) == "Spring talk" and str(vevent["location"]) == "Community Hall"
    assert str(vevent["status"]) == "CONFIRMED" and str(vevent["url"]).endswith("/events/1")


def test_an_edit_bumps_the_sequence_and_a_cancelled_event_says_so(app, make_event):
    event = make_event(online_url="https://meet.example.org/x", venue=None)
    first = Calendar.from_ical(event_ics(event, url="u")).walk("VEVENT")[0]
    event.updated_at = event.updated_at + timedelta(hours=1)
    event.status = "cancelled"
    second = Calendar.from_ical(event_ics(event, url="u")).walk("VEVENT")[0]
    assert int(second["sequence"]) > int(first["sequence"])
    assert str(second["status"]) == "CANCELLED" and str(second["location"]) == "https://meet.example.org/x"
    assert str(second["uid"]) == str(first["uid"])


def test_the_feed_has_every_event_given(app, make_event):
    events = [make_event(title=f"Event {i}", starts_at=datetime(2027, 1, 1 + i, 9, tzinfo=timezone.utc))
              for i in range(3)]
    cal = Calendar.from_ical(feed_ics(events, url_for_event=lambda e: f"https://x.org/events/{e.id}"))
    assert str(cal["x-wr-calname"]) == "Test Association"
    vevents = cal.walk("VEVENT")
    assert [str(v["summary"]) for v in vevents] == ["Event 0", "Event 1", "Event 2"]
    assert len({str(v["uid"]) for v in vevents}) == 3
