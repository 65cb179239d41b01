"""Help requests: a member asks from the portal, staff answer from the queue (the reply is emailed
through the outbox and shown in the portal), resolve and reopen; a member reply reopens; the staff
home's customer-service figures are checked against hand counts."""
from __future__ import annotations

import html
import re
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from membership.core.models import Activity, AuditLog
from membership.core.time import local_today, utcnow
from membership.extensions import db
from membership.notifications.models import OutboxMessage
from membership.support import services as support
from membership.support.figures import format_duration, help_figures
from membership.support.models import HelpMessage, HelpRequest
from tests.conftest import login


@pytest.fixture
def member_of(make_member, make_plan, make_term, make_user):
    """A current member with a login: member_of(first_name=...) -> (member, user)."""
    plan = make_plan(name="Standard", fee_minor=0)

    def make(**kw):
        member = make_member(**kw)
        make_term(member, plan, starts_on=local_today() - timedelta(days=30), today=local_today())
        user = make_user("member", email=member.email, name=member.full_name, member_id=member.id)
        db.session.commit()
        return member, user
    return make


@pytest.fixture
def ada(member_of):
    return member_of(first_name="Ada", last_name="Lovelace", email="ada@example.org")


@pytest.fixture
def ada_client(client, ada):
    assert login(client, ada[1]).status_code == 302
    return client


def as_user(client, user):
    """Sign out whoever is signed in on this client, then sign in as `user`."""
    client.post("/logout")
    assert login(client, user).status_code == 302


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def ask(client, subject="Where is my receipt?", body="I paid last week but see no receipt.", category="question",
        **extra):
    return client.post("/my/help/new", data={"subject": subject, "body": body, "category": category, **extra})


def replies_emailed() -> int:
    return db.session.scalar(select(func.count()).select_from(OutboxMessage)
                             .where(OutboxMessage.template_key == "help_reply"))


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


# ---------------------------------------------------------------- the member asks


def test_a_member_sends_a_question_and_sees_it_in_the_portal(ada_client, ada):
    member, user = ada
    response = ask(ada_client, token="form-1")
    assert response.status_code == 302
    req = db.session.scalar(select(HelpRequest))
    assert response.headers["Location"] == f"/my/help/{req.id}"
    assert (req.member_id, req.subject, req.category, req.status) == (member.id, "Where is my receipt?", "question",
                                                                      "open")
    assert [m.body for m in req.messages] == ["I paid last week but see no receipt."]
    assert req.messages[0].author_kind == "member" and req.messages[0].author_id == user.id
    activity = db.session.scalar(select(Activity).where(Activity.kind == "help_request"))
    assert activity.member_id == member.id and activity.source_id == req.id
    audit = db.session.scalar(select(AuditLog).where(AuditLog.action == "help_request.open"))
    assert audit.member_id == member.id and "receipt" not in audit.summary  # no text in the audit log

    page = text(ada_client.get(f"/my/help/{req.id}"))
    assert "Where is my receipt?" in page and "I paid last week but see no receipt." in page
    assert "Waiting for our reply" in page
    listing = text(ada_client.get("/my/help"))
    assert "Where is my receipt?" in listing and f"#{req.id}" in listing


def test_a_complaint_is_recorded_as_a_complaint(ada_client):
    assert ask(ada_client, subject="Rude reply at the desk", category="complaint").status_code == 302
    assert db.session.scalar(select(HelpRequest.category)) == "complaint"


@pytest.mark.parametrize("data, field_message", [
    ({"subject": "", "body": "text", "category": "question"}, "Say in a few words what it is about."),
    ({"subject": "Hi", "body": "", "category": "question"}, "Write your question or complaint."),
    ({"subject": "Hi", "body": "text", "category": "urgent"}, "Not a valid choice"),
    ({"subject": "Hi", "body": "bad \x00 byte", "category": "question"}, "contains characters that are not allowed"),
    ({"subject": "x" * 201, "body": "text", "category": "question"}, "Use at most 200 characters."),
])
def test_bad_input_is_shown_beside_the_field_and_writes_nothing(ada_client, data, field_message):
    response = ada_client.post("/my/help/new", data=data)
    assert response.status_code == 422
    page = text(response)
    assert field_message in page
    assert 'class="invalid-feedback' in page
    if data["subject"] and len(data["subject"]) < 201:
        assert f'value="{data["subject"]}"' in page  # what was typed is kept
    assert count(HelpRequest) == 0 and count(HelpMessage) == 0


def test_the_same_form_sent_twice_opens_one_request(ada_client):
    first = ask(ada_client, token="same-form")
    second = ask(ada_client, token="same-form")
    assert first.status_code == second.status_code == 302
    assert first.headers["Location"] == second.headers["Location"]
    assert count(HelpRequest) == 1 and count(HelpMessage) == 1


def test_extra_fields_in_the_form_change_nothing(ada_client, ada, member_of, staff_user):
    other, _ = member_of(first_name="Bob")
    response = ask(ada_client, member_id=other.id, status="resolved", staff_reply_count=5, author_kind="staff",
                   first_response_at="2020-01-01T00:00:00", role="admin")
    assert response.status_code == 302
    req = db.session.scalar(select(HelpRequest))
    assert req.member_id == ada[0].id and req.status == "open" and req.staff_reply_count == 0
    assert req.first_response_at is None and req.messages[0].author_kind == "member"
    assert ada[1].role == "member"


# ---------------------------------------------------------------- staff answer


@pytest.fixture
def open_request(ada_client, ada):
    assert ask(ada_client).status_code == 302
    return db.session.scalar(select(HelpRequest))


def test_staff_reply_is_emailed_and_shown_in_the_portal(app, client, ada, open_request, staff_user):
    as_user(client, staff_user)
    queue = text(client.get("/staff/help"))
    assert "Where is my receipt?" in queue and "Ada Lovelace" in queue
    response = client.post(f"/staff/help/{open_request.id}/reply",
                           data={"body": "Hello Ada,\nYour receipt R-1 is on its way.", "token": "r1"})
    assert response.status_code == 302
    db.session.refresh(open_request)
    assert open_request.status == "answered" and open_request.staff_reply_count == 1
    assert open_request.first_response_at is not None and open_request.resolved_at is None
    email = db.session.scalar(select(OutboxMessage).where(OutboxMessage.template_key == "help_reply"))
    assert email.to_address == "ada@example.org" and email.member_id == ada[0].id
    assert "Re: Where is my receipt?" in email.subject
    assert "Your receipt R-1 is on its way." in email.body_text
    assert f"/my/help/{open_request.id}" in email.body_text
    assert "Sam Staff replied" in email.body_text
    assert email.source_type == "helpmessage"
    flash = text(client.get(f"/staff/help/{open_request.id}"))
    assert "Reply sent and emailed to ada@example.org" in flash

    as_user(client, ada[1])
    page = text(client.get(f"/my/help/{open_request.id}"))
    assert "Your receipt R-1 is on its way." in page and "We replied" in page


def test_a_double_submitted_staff_reply_is_one_reply_and_one_email(client, open_request, staff_user):
    as_user(client, staff_user)
    for _ in range(2):
        assert client.post(f"/staff/help/{open_request.id}/reply", data={"body": "Done.", "token": "t"}).status_code \
            in (302, 200)
    db.session.refresh(open_request)
    assert open_request.staff_reply_count == 1
    assert replies_emailed() == 1


def test_reply_and_resolve_then_member_reply_reopens(client, ada, open_request, staff_user):
    as_user(client, staff_user)
    client.post(f"/staff/help/{open_request.id}/reply", data={"body": "Sent again.", "resolve": "y"})
    db.session.refresh(open_request)
    assert open_request.status == "resolved" and open_request.resolved_at is not None
    assert open_request.resolved_by_id == staff_user.id

    as_user(client, ada[1])
    response = client.post(f"/my/help/{open_request.id}/reply", data={"body": "Still nothing, sorry."})
    assert response.status_code == 302
    db.session.refresh(open_request)
    assert open_request.status == "open" and open_request.resolved_at is None
    assert [m.author_kind for m in open_request.messages] == ["member", "staff", "member"]
    assert "Your request is open again" in text(client.get(f"/my/help/{open_request.id}"))


def test_staff_resolve_and_reopen(client, open_request, staff_user):
    as_user(client, staff_user)
    assert client.post(f"/staff/help/{open_request.id}/resolve").status_code == 302
    db.session.refresh(open_request)
    assert open_request.status == "resolved"
    again = client.post(f"/staff/help/{open_request.id}/resolve", follow_redirects=True)
    assert "already resolved" in text(again)
    assert client.post(f"/staff/help/{open_request.id}/reopen").status_code == 302
    db.session.refresh(open_request)
    assert open_request.status == "open" and open_request.resolved_at is None
    actions = db.session.scalars(select(AuditLog.action).where(AuditLog.entity_type == "helprequest")
                                 .order_by(AuditLog.id)).all()
    assert actions == ["help_request.open", "help_request.resolve", "help_request.reopen"]


def test_the_member_can_mark_their_request_resolved(ada_client, open_request):
    assert ada_client.post(f"/my/help/{open_request.id}/resolve").status_code == 302
    db.session.refresh(open_request)
    assert open_request.status == "resolved"
    assert "Mark as resolved" not in text(ada_client.get(f"/my/help/{open_request.id}"))


def test_an_empty_staff_reply_is_refused_beside_the_field(client, open_request, staff_user):
    as_user(client, staff_user)
    response = client.post(f"/staff/help/{open_request.id}/reply", data={"body": "  "})
    assert response.status_code == 422 and "Write the reply." in text(response)
    assert count(HelpMessage) == 1 and replies_emailed() == 0


def test_a_member_without_email_gets_the_reply_in_the_portal_only(client, make_member, make_user, staff_user):
    member = make_member(email=None)
    req = support.open_request(db.session, member, subject="Phone only", category="other", body="Call me",
                               now=utcnow(), actor=None)
    db.session.commit()
    as_user(client, staff_user)
    response = client.post(f"/staff/help/{req.id}/reply", data={"body": "We called you."}, follow_redirects=True)
    assert "not emailed: the member has no email address" in text(response)
    assert replies_emailed() == 0 and count(HelpMessage) == 2


def test_a_member_cannot_see_or_touch_another_members_request(client, ada, member_of):
    bob, bob_user = member_of(first_name="Bob", email="bob@example.org")
    as_user(client, bob_user)
    ask(client, subject="Bob's private matter", body="Bob's secret text")
    bobs = db.session.scalar(select(HelpRequest))
    as_user(client, ada[1])
    for method, url in (("get", f"/my/help/{bobs.id}"), ("post", f"/my/help/{bobs.id}/reply"),
                        ("post", f"/my/help/{bobs.id}/resolve")):
        response = getattr(client, method)(url, data={"body": "hijack"})
        assert response.status_code == 404
        assert "secret" not in text(response)
    assert "Bob's private matter" not in text(client.get("/my/help"))
    db.session.refresh(bobs)
    assert bobs.status == "open" and len(bobs.messages) == 1


# ---------------------------------------------------------------- the queue


def test_queue_tabs_filters_and_oldest_first(client, make_member, staff_user):
    now = utcnow()
    m1, m2 = make_member(first_name="Rahim"), make_member(first_name="Karima")
    old = support.open_request(db.session, m1, subject="Old question", category="question", body="x",
                               now=now - timedelta(days=10), actor=None)
    new = support.open_request(db.session, m2, subject="New complaint", category="complaint", body="y",
                               now=now - timedelta(hours=2), actor=None)
    done = support.open_request(db.session, m2, subject="Done thing", category="other", body="z",
                                now=now - timedelta(days=2), actor=None)
    support.staff_reply(db.session, done, body="ok", now=now - timedelta(days=1), actor=staff_user, resolve=True)
    db.session.commit()
    as_user(client, staff_user)

    page = text(client.get("/staff/help"))
    assert page.index("Old question") < page.index("New complaint")  # oldest first
    assert "Done thing" not in page
    assert 'id="help-count-open">2<' in page and 'id="help-count-resolved">1<' in page
    assert "Done thing" in text(client.get("/staff/help?status=resolved"))
    complaints = text(client.get("/staff/help?category=complaint"))
    assert "New complaint" in complaints and "Old question" not in complaints
    aged = text(client.get("/staff/help?status=unresolved&age=gt7"))
    assert "Old question" in aged and "New complaint" not in aged
    assert "New complaint" in text(client.get("/staff/help?age=lt1"))
    found = text(client.get("/staff/help?q=karima&status=all"))
    assert "New complaint" in found and "Done thing" in found and "Old question" not in found
    assert "Old question" in text(client.get(f"/staff/help?member={m1.id}"))
    # nonsense filters are ignored, never a 500
    assert client.get("/staff/help?status=evil&age=1000&category=%00&member=abc&page=-3").status_code == 200
    assert old.id and new.id


# ---------------------------------------------------------------- figures against hand counts

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


def _req(member, created, *, subject="q"):
    return support.open_request(db.session, member, subject=subject, category="question", body="?", now=created,
                                actor=None)


def test_figures_match_hand_counts(app, make_member, staff_user):
    """Six requests with hand-picked times; `now` is 2 March 2026 09:00 UTC + 30 days."""
    member = make_member()
    now = T0 + timedelta(days=30)
    h = timedelta(hours=1)

    # A: first reply after 2 h, resolved with that one reply after 2 h -> first-reply resolution.
    a = _req(member, now - 10 * 24 * h)
    support.staff_reply(db.session, a, body="r", now=a.created_at + 2 * h, actor=staff_user, resolve=True)
    # B: first reply after 4 h, second reply, resolved after 50 h (two staff replies).
    b = _req(member, now - 9 * 24 * h)
    support.staff_reply(db.session, b, body="r", now=b.created_at + 4 * h, actor=staff_user)
    support.member_reply(db.session, b, member, body="more", now=b.created_at + 5 * h, actor=None)
    support.staff_reply(db.session, b, body="r2", now=b.created_at + 6 * h, actor=staff_user)
    support.resolve(db.session, b, now=b.created_at + 50 * h, actor=staff_user)
    # C: first reply after 10 h, still answered (unresolved), opened 2 days ago -> bucket 1-3 days.
    c = _req(member, now - 48 * h)
    support.staff_reply(db.session, c, body="r", now=c.created_at + 10 * h, actor=staff_user)
    # D: no reply, opened exactly 3 days ago -> bucket 3-7 days (lower bound inclusive).
    _req(member, now - 72 * h)
    # E: no reply, opened 23 h 59 min ago -> under 1 day; F: opened exactly 7 days ago -> 7 days or more.
    _req(member, now - 24 * h + timedelta(minutes=1))
    _req(member, now - 7 * 24 * h)
    # G: resolved by the member without any staff reply after 1 h -> resolution counted, not first-reply.
    g = _req(member, now - 5 * 24 * h)
    support.resolve(db.session, g, now=g.created_at + h, actor=None, by_member=True)
    # H: outside the 90-day window: replied and resolved 100 days ago -> not counted.
    old = _req(member, now - 101 * 24 * h)
    support.staff_reply(db.session, old, body="r", now=now - 100 * 24 * h, actor=staff_user, resolve=True)
    # I: resolved then reopened by staff -> unresolved (open), opened 4 days ago; its first reply counts.
    i = _req(member, now - 4 * 24 * h)
    support.staff_reply(db.session, i, body="r", now=i.created_at + 1 * h, actor=staff_user, resolve=True)
    support.reopen(db.session, i, now=i.created_at + 30 * h, actor=staff_user)
    # J: created after `now` (a clock in the future must not count as open).
    _req(member, now + h)
    db.session.commit()

    f = help_figures(db.session, now=now)
    # First responses in the window: A 2 h, B 4 h, C 10 h, I 1 h -> median of 1, 2, 4, 10 = 3 h.
    assert f.first_responses == 4
    assert f.median_first_response == 3 * h
    # Resolved in the window and still resolved: A 2 h, B 50 h, G 1 h -> median 2 h.
    assert f.resolved == 3
    assert f.median_resolution == 2 * h
    # Exactly one staff reply among them: A only -> 1 of 3.
    assert f.resolved_first_reply == 1 and f.first_reply_share == pytest.approx(1 / 3)
    # Unresolved by age: E under 1 day; C 1-3 days; D (3 d) and I (4 d) 3-7 days; F (7 d) 7 days or more.
    assert f.open_by_age == {"lt1": 1, "1to3": 1, "3to7": 2, "gt7": 1}
    assert f.open_total == 5
    # Waiting for staff (status open): D, E, F, I; C is answered.
    assert f.waiting_for_staff == 4


def test_figures_of_an_empty_database(app):
    f = help_figures(db.session, now=T0)
    assert f.median_first_response is None and f.median_resolution is None and f.first_reply_share is None
    assert f.open_by_age == {"lt1": 0, "1to3": 0, "3to7": 0, "gt7": 0} and f.waiting_for_staff == 0


def test_a_closed_request_is_not_open_and_keeps_its_figures(app, make_member, staff_user):
    member = make_member()
    r = _req(member, T0)
    support.staff_reply(db.session, r, body="r", now=T0 + timedelta(hours=5), actor=staff_user)
    support.redact_member_requests(db.session, member.id, now=T0 + timedelta(days=1))
    db.session.commit()
    f = help_figures(db.session, now=T0 + timedelta(days=2))
    assert f.open_total == 0 and f.first_responses == 1 and f.median_first_response == timedelta(hours=5)
    assert r.status == "closed"


@pytest.mark.parametrize("seconds, words", [(30, "under 1 min"), (45 * 60, "45 min"), (3 * 3600, "3 h"),
                                            (3 * 3600 + 20 * 60, "3 h 20 min"), (86400, "1 day"),
                                            (2 * 86400 + 4 * 3600, "2 days 4 h")])
def test_durations_read_naturally(seconds, words):
    assert format_duration(timedelta(seconds=seconds)) == words


def test_staff_home_shows_the_help_figures(client, make_member, staff_user):
    now = utcnow()
    member = make_member()
    a = _req(member, now - timedelta(hours=30))
    support.staff_reply(db.session, a, body="r", now=a.created_at + timedelta(hours=3), actor=staff_user,
                        resolve=True)
    _req(member, now - timedelta(days=8))
    _req(member, now - timedelta(hours=1))
    db.session.commit()
    as_user(client, staff_user)
    page = client.get("/staff/").get_data(as_text=True)
    assert re.search(r'id="help-first-response">3 h<', page)
    assert re.search(r'id="help-resolution">3 h<', page)
    assert re.search(r'id="help-first-reply-share">100%<', page)
    assert re.search(r'id="help-age-lt1">1<', page) and re.search(r'id="help-age-gt7">1<', page)
    assert re.search(r'id="help-age-1to3">0<', page)
    assert "/staff/help?status=unresolved&amp;age=gt7" in page
    # the link lists what the figure counts
    aged = text(client.get("/staff/help?status=unresolved&age=gt7"))
    assert aged.count('href="/staff/help/') == 1
