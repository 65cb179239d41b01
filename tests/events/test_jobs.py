"""The events jobs: reminders at the right moment (across a daylight-saving change), once; events
finished after their end and feedback requested once."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from membership import scheduler as sched
from membership.events import services as ev
from membership.extensions import db
from tests.events.conftest import sent


def test_the_jobs_are_listed():
    names = [j.name for j in sched.jobs()]
    assert "event-reminders" in names and "finish-events" in names
    assert sched.get_job("event-reminders").schedule == sched.Every(900)


@pytest.mark.parametrize("zone, start, due", [
    # Sunday 28 March 2027, 18:30 BST (clocks went forward that night): the reminder 24 hours
    # before is Saturday 18:30 GMT = 18:30 UTC (not 17:30 UTC, 24 hours of elapsed time)
    ("Europe/London", datetime(2027, 3, 28, 17, 30, tzinfo=timezone.utc),
     datetime(2027, 3, 27, 18, 30, tzinfo=timezone.utc)),
    # Sunday 7 November 2027, 10:00 EST (clocks went back that night): Saturday 10:00 EDT = 14:00 UTC
    ("America/New_York", datetime(2027, 11, 7, 15, 0, tzinfo=timezone.utc),
     datetime(2027, 11, 6, 14, 0, tzinfo=timezone.utc)),
])
def test_reminder_goes_once_at_the_same_local_time_the_day_before(app, make_event, current_member, zone, start,
                                                                  due):
    app.config["TIMEZONE"] = zone
    event = make_event(starts_at=start, reminder_hours_before=24)
    member = current_member()
    ev.register_member(db.session, event, member, now=start - timedelta(days=7), actor=None)
    db.session.commit()

    outcome = sched.run_job("event-reminders", now=due - timedelta(minutes=1))
    assert outcome.status == "ok", outcome
    assert sent("event_reminder") == []
    assert sched.run_job("event-reminders", now=due).status == "ok"
    [mail] = sent("event_reminder")
    assert mail.to_address == member.email
    local_start = start.astimezone(__import__("zoneinfo").ZoneInfo(zone))
    assert f"{local_start:%H:%M}" in mail.body_text
    # later runs (and a run after the start) send nothing more
    sched.run_job("event-reminders", now=due + timedelta(minutes=15))
    sched.run_job("event-reminders", now=start + timedelta(minutes=1))
    assert len(sent("event_reminder")) == 1


def test_a_missed_run_catches_up_but_never_after_the_start(app, make_event, current_member):
    start = datetime(2027, 5, 1, 10, tzinfo=timezone.utc)
    late = make_event(starts_at=start, reminder_hours_before=48)
    past = make_event(starts_at=start - timedelta(hours=1), reminder_hours_before=48)
    none = make_event(starts_at=start + timedelta(hours=2), reminder_hours_before=None)
    for event in (late, past, none):
        ev.register_member(db.session, event, current_member(), now=start - timedelta(days=10), actor=None)
    counts = ev.queue_event_reminders(db.session, now=start - timedelta(minutes=30))
    assert counts == {"events": 1, "queued": 1}
    assert [m.source_id for m in sent("event_reminder")] == [late.registrations.first().id]


def test_finish_job_records_attendance_then_asks_attendees_for_feedback_once(app, make_event, current_member):
    start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=3)
    event = make_event(starts_at=start, hours=2)
    came, absent = current_member(), current_member()
    r1 = ev.register_member(db.session, event, came, now=start - timedelta(days=1), actor=None)
    ev.register_member(db.session, event, absent, now=start - timedelta(days=1), actor=None)
    ev.check_in(db.session, r1, now=start, actor=None)
    db.session.commit()
    assert sched.run_job("finish-events", now=start + timedelta(hours=1)).status == "ok"  # not ended yet
    db.session.expire_all()
    assert event.status == "published"
    outcome = sched.run_job("finish-events", now=start + timedelta(hours=2, minutes=10))
    assert outcome.status == "ok" and outcome.counts["finished"] == 1, outcome
    assert outcome.counts["feedback_requests"] == 1
    sched.run_job("finish-events", now=start + timedelta(hours=2, minutes=25))
    db.session.expire_all()
    assert event.status == "finished"
    [mail] = sent("event_feedback_request")
    assert mail.to_address == came.email and "/events/feedback/" in mail.body_text
    token = mail.body_text.split("/events/feedback/")[1].split()[0]
    assert ev.registration_from_feedback_token(db.session, token).id == r1.id
