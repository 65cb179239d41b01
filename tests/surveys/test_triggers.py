"""Surveys sent automatically: to the attendees of events that ended (scheduler sweep, once each) and
when a help request is resolved (effort and satisfaction), with the help KPIs on the staff home."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from membership.core.time import local_today, utcnow
from membership.events.models import Event, EventRegistration
from membership.extensions import db
from membership.support import services as support
from membership.surveys import services as sv
from membership.surveys.models import Survey, SurveyResponse
from tests.surveys.conftest import build, invitations, link_of, text


def _event(title, ended_hours_ago, member=None, status="attended"):
    now = datetime.now(timezone.utc).replace(microsecond=0)
    ends = now - timedelta(hours=ended_hours_ago)
    event = Event(title=title, starts_at=ends - timedelta(hours=2), ends_at=ends, waitlist_enabled=False,
                  members_only=False, member_price_minor=0, non_member_price_minor=0, currency="BDT",
                  status="finished", seats_taken=0, created_at=now, updated_at=now, published_at=now)
    db.session.add(event)
    db.session.flush()
    if member is not None:
        db.session.add(EventRegistration(event_id=event.id, member_id=member.id, person_key=f"m:{member.id}",
                                         status=status, currency="BDT", registered_at=now - timedelta(days=3)))
    db.session.flush()
    return event


def test_attendees_of_events_that_ended_are_invited_once(app, current_member):
    came, _ = current_member(login=False, email="came@example.org")
    absent, _ = current_member(login=False, email="absent@example.org")
    old, _ = current_member(login=False, email="old@example.org")
    recent = _event("Workshop", 5, came)
    db.session.add(EventRegistration(event_id=recent.id, member_id=absent.id, person_key=f"m:{absent.id}",
                                     status="no_show", currency="BDT", registered_at=utcnow()))
    _event("Last month's dinner", 24 * 30, old)
    build([("rating", "How was the event?", True, None)], trigger="event", title="After the event")
    db.session.commit()
    for _ in range(2):  # a second run (a restarted scheduler) queues nothing new
        counts = sv.invite_event_attendees(db.session, now=utcnow())
        db.session.commit()
    assert counts["surveys"] == 1
    sent = invitations()
    assert [m.to_address for m in sent] == ["came@example.org"]
    assert "Workshop" in sent[0].body_text
    assert sent[0].dedupe_key.endswith(f":event:{recent.id}")


def test_a_survey_for_one_event_invites_only_its_attendees(app, current_member):
    a, _ = current_member(login=False, email="a@example.org")
    b, _ = current_member(login=False, email="b@example.org")
    first = _event("First", 3, a)
    _event("Second", 3, b)
    survey = build([("nps", "Recommend?", True, None)], trigger="event")
    survey.event_id = first.id
    db.session.commit()
    sv.invite_event_attendees(db.session, now=utcnow())
    db.session.commit()
    assert [m.to_address for m in invitations()] == ["a@example.org"]


def _resolved_request(member, staff, subject):
    now = utcnow()
    request = support.open_request(db.session, member, subject=subject, category="question", body="Help?",
                                   now=now, actor=None)
    db.session.flush()
    support.resolve(db.session, request, now=now, actor=staff)
    db.session.commit()
    return request


def test_a_resolved_help_request_asks_for_effort_and_satisfaction_and_the_kpis_show_them(
        client, staff_client, staff_user, current_member):
    assert staff_client.post("/staff/surveys/help-survey").status_code == 302
    survey = db.session.scalar(select(Survey).where(Survey.trigger == "help"))
    assert [q.kind for q in survey.questions] == ["ces", "rating", "text"]
    assert survey.questions[0].prompt == "How easy was it to get help?"
    ada, _ = current_member(login=False, email="ada@example.org")
    first = _resolved_request(ada, staff_user, "Where is my receipt?")
    second = _resolved_request(ada, staff_user, "Change my address")
    sent = invitations("ada@example.org")
    assert len(sent) == 2 and "Where is my receipt?" in sent[0].body_text
    staff_client.post("/logout")
    ces, csat, _comment = survey.questions
    # one answer per request: the same member answers each request's survey once
    assert client.post(link_of(sent[0]), data={f"q{ces.id}": "6", f"q{csat.id}": "5"}).status_code == 200
    assert client.post(link_of(sent[1]), data={f"q{ces.id}": "2", f"q{csat.id}": "2"}).status_code == 200
    contexts = sorted(r.context_key for r in db.session.scalars(select(SurveyResponse)))
    assert contexts == [f"help:{first.id}", f"help:{second.id}"]

    scores = sv.help_scores(db.session, now=utcnow())
    assert scores.effort_answers == 2 and scores.effort_average == 4.0 and scores.effort_easy_share == 0.5
    assert scores.satisfaction_answers == 2 and scores.satisfaction_share == 0.5
    from tests.conftest import login
    login(client, staff_user)
    home = text(client.get("/staff/"))
    assert 'id="help-effort">4.0<' in home and 'id="help-satisfaction">50%<' in home


def test_a_staff_reply_that_resolves_also_sends_the_survey_and_a_missing_survey_sends_nothing(
        staff_client, staff_user, current_member):
    ada, _ = current_member(login=False, email="ada@example.org")
    now = utcnow()
    request = support.open_request(db.session, ada, subject="Q", category="question", body="?", now=now, actor=None)
    db.session.commit()
    assert staff_client.post(f"/staff/help/{request.id}/reply", data={"body": "Done", "resolve": "y"}).status_code == 302
    assert invitations() == []  # no help survey yet
    sv.standard_help_survey(db.session, actor=None, now=now, today=local_today(now))
    other = support.open_request(db.session, ada, subject="Q2", category="question", body="?", now=now, actor=None)
    db.session.commit()
    assert staff_client.post(f"/staff/help/{other.id}/reply", data={"body": "Done", "resolve": "y"}).status_code == 302
    assert len(invitations("ada@example.org")) == 1


def test_the_pages_of_a_help_survey_render_with_and_without_a_context(client, staff_client, staff_user,
                                                                        current_member):
    staff_client.post("/staff/surveys/help-survey")
    survey = db.session.scalar(select(Survey).where(Survey.trigger == "help"))
    ada, _ = current_member(login=False, email="ada@example.org")
    request = _resolved_request(ada, staff_user, "Receipt")
    ces, csat, comment = survey.questions
    sv.submit(db.session, survey, ada, {ces.id: "1", csat.id: "1", comment.id: "Slow <b>reply</b>"}, now=utcnow(),
              today=local_today(), context_key=f"help:{request.id}", channel="link")
    db.session.commit()
    for path in (f"/staff/surveys/{survey.id}", f"/staff/surveys/{survey.id}/results",
                 f"/staff/surveys/{survey.id}/results?context=help:{request.id}",
                 f"/staff/surveys/{survey.id}/results?context=help:999",
                 f"/staff/surveys/{survey.id}/respondents?context=help:{request.id}",
                 "/staff/surveys/follow-ups?status=done", "/staff/surveys/follow-ups?status=all", "/staff/surveys/"):
        response = staff_client.get(path)
        assert response.status_code == 200, path
    page = staff_client.get(f"/staff/surveys/{survey.id}/results?context=help:{request.id}").get_data(as_text=True)
    assert "Slow &lt;b&gt;reply&lt;/b&gt;" in page and "<b>reply" not in page  # escaped
    empty = text(staff_client.get(f"/staff/surveys/{survey.id}/results?context=help:999"))
    assert "0 responses" in empty
    # a help survey has no invitations to send by hand
    refused = staff_client.post(f"/staff/surveys/{survey.id}/invite", data={"audience": "current"})
    assert refused.status_code == 422 and "sent automatically" in text(refused)
