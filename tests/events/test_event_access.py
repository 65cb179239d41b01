"""Access control on the events pages, proved by walking the URL map (routes added later are walked
too): member A is signed in, member B has a registration; every /events route that names a
registration answers A with 403 or 404 by every method and changes nothing of B's; the other
routes never show B; every POST needs the CSRF token.

A route argument this walk does not know fails the walk: say below what it names."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from membership.events.models import EventRegistration
from membership.extensions import db
from tests.conftest import login
from tests.events.test_public_events import (  # noqa: F401  (fixtures)
    make_current_member, register_other, registrations_of)

OWNED_ARGS = {"registration_id"}     # a member's own row: B's id is used
SHARED_ARGS = {"event_id"}           # public rows: the event's id
TOKEN_ARGS = {"token"}               # capabilities from an email: a made-up token


def event_rules(app):
    return sorted((r for r in app.url_map.iter_rules()
                   if r.rule.startswith("/events") or r.rule.startswith("/my/events")),
                  key=lambda r: (r.rule, r.endpoint))


def methods(rule):
    return [m for m in ("GET", "POST") if m in rule.methods]


def values_for(rule, *, registration_id, event_id):
    values = {}
    for arg in rule.arguments:
        if arg in OWNED_ARGS:
            values[arg] = registration_id
        elif arg in SHARED_ARGS:
            values[arg] = event_id
        elif arg in TOKEN_ARGS:
            values[arg] = "made-up-token"
        else:
            pytest.fail(f"{rule.rule} takes {arg!r}: add it to OWNED_ARGS, SHARED_ARGS or TOKEN_ARGS "
                        "in tests/events/test_event_access.py")
    return values


@pytest.fixture
def world(app, make_event, make_current_member):
    event = make_event(title="Monsoon talk", capacity=5, online_url="https://meet.example.org/room-42")
    db.session.commit()
    a, a_user = make_current_member(first_name="Annika", last_name="Ahlberg")
    b, b_user = make_current_member(first_name="Barnabas", last_name="Quill", email="barnabas.quill@example.org")
    a_reg = register_other(event, a)
    b_reg = register_other(event, b)
    return {"event": event, "a": a, "a_user": a_user, "a_reg": a_reg, "b": b, "b_reg": b_reg,
            "markers": ("Barnabas", "Quill", "barnabas.quill")}


def b_rows(world):
    db.session.expire_all()
    table = EventRegistration.__table__
    return [tuple(r) for r in db.session.execute(select(table).where(table.c.member_id == world["b"].id))]


def test_every_events_route_with_another_members_registration_is_403_or_404(app, client, world):
    login(client, world["a_user"])
    before = b_rows(world)
    walked, wrong = 0, []
    hostile = {"member_id": world["b"].id, "registration_id": world["b_reg"].id, "status": "cancelled",
               "next": "/my/events"}
    for rule in event_rules(app):
        if not OWNED_ARGS & set(rule.arguments):
            continue
        url = app.url_map.bind("localhost").build(
            rule.endpoint, values_for(rule, registration_id=world["b_reg"].id, event_id=world["event"].id))
        for method in methods(rule):
            response = client.open(url, method=method, data=hostile)
            walked += 1
            leaked = [m for m in world["markers"] if m in response.get_data(as_text=True)]
            if response.status_code not in (403, 404) or leaked:
                wrong.append((method, url, response.status_code, leaked))
    assert wrong == []
    assert walked >= 1
    assert b_rows(world) == before


def test_the_same_routes_work_on_my_own_registration(app, client, world):
    """Guards the walk above: with A's own id the cancel goes through (the 404s are not vacuous)."""
    login(client, world["a_user"])
    response = client.post(f"/events/registrations/{world['a_reg'].id}/cancel")
    assert response.status_code == 303
    assert registrations_of(world["event"], member_id=world["a"].id)[0].status == "cancelled"


def test_routes_without_a_registration_never_show_or_change_another_members_registration(app, client, world):
    login(client, world["a_user"])
    before = b_rows(world)
    hostile = {"member_id": world["b"].id, "registration_id": world["b_reg"].id, "name": "Barnabas Quill",
               "email": "barnabas.quill@example.org", "rating": "1", "status": "cancelled"}
    wrong = []
    for rule in event_rules(app):
        if OWNED_ARGS & set(rule.arguments):
            continue
        url = app.url_map.bind("localhost").build(
            rule.endpoint, values_for(rule, registration_id=0, event_id=world["event"].id))
        for method in methods(rule):
            if method == "GET":
                response = client.get(url, query_string=hostile)
            else:
                response = client.post(url, data=hostile)
            body = response.get_data(as_text=True) if response.mimetype.startswith("text/html") else ""
            leaked = [m for m in world["markers"] if m in body]
            if response.status_code >= 500 or leaked:
                wrong.append((method, url, response.status_code, leaked))
    assert wrong == []
    assert b_rows(world) == before
    # A's own registration is the only one A's posts touched.
    assert [r.member_id for r in registrations_of(world["event"]) if r.status != "cancelled"] == \
        [world["a"].id, world["b"].id]


def test_a_visitor_is_sent_to_sign_in_for_my_events_and_cancelling(app, client, world):
    for url in ("/my/events", f"/events/registrations/{world['b_reg'].id}/cancel"):
        response = client.open(url, method="GET" if url == "/my/events" else "POST")
        assert response.status_code == 302 and response.headers["Location"].startswith("/login"), url
    assert registrations_of(world["event"], member_id=world["b"].id)[0].status == "confirmed"


def test_the_online_link_is_not_shown_to_a_registered_guest_on_the_page(app, client, world):
    """Visitors never see the link on the page (registered guests get it by email)."""
    assert "room-42" not in client.get(f"/events/{world['event'].id}").get_data(as_text=True)


class TestCsrf:
    """Every POST on the events pages needs the form's token (CSRF is on, as in production)."""

    @pytest.fixture
    def app_config(self):
        return {"WTF_CSRF_ENABLED": True}

    @staticmethod
    def token_of(body: str, action: str | None = None) -> str:
        part = body[body.index(f'action="{action}"'):] if action else body
        match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', part) or \
            re.search(r'value="([^"]+)"[^>]*name="csrf_token"', part)
        assert match, "no csrf_token field"
        return match.group(1)

    def sign_in(self, client, user):
        page = client.get("/login").get_data(as_text=True)
        response = client.post("/login", data={"email": user.email, "password": "correct-horse-battery-42",
                                               "csrf_token": self.token_of(page)})
        assert response.status_code == 302

    def test_every_post_without_the_token_is_refused(self, app, client, world):
        self.sign_in(client, world["a_user"])
        before_a = registrations_of(world["event"], member_id=world["a"].id)[0].status
        refused = []
        for rule in event_rules(app):
            if "POST" not in rule.methods:
                continue
            url = app.url_map.bind("localhost").build(
                rule.endpoint, values_for(rule, registration_id=world["a_reg"].id, event_id=world["event"].id))
            response = client.post(url, data={"name": "X", "email": "x@example.org", "rating": "5"})
            refused.append((url, response.status_code))
        assert refused and all(code == 400 for _url, code in refused), refused
        assert registrations_of(world["event"], member_id=world["a"].id)[0].status == before_a

    def test_member_register_and_cancel_with_the_token(self, app, client, world, make_event):
        event = make_event(title="Quiz night")
        db.session.commit()
        self.sign_in(client, world["a_user"])
        page = client.get(f"/events/{event.id}").get_data(as_text=True)
        action = f"/events/{event.id}/register"
        assert client.post(action, data={"csrf_token": self.token_of(page, action)}).status_code == 303
        [reg] = registrations_of(event)
        assert reg.status == "confirmed"
        page = client.get(f"/events/{event.id}").get_data(as_text=True)
        action = f"/events/registrations/{reg.id}/cancel"
        assert client.post(action, data={"csrf_token": self.token_of(page, action)}).status_code == 303
        assert registrations_of(event)[0].status == "cancelled"

    def test_guest_form_with_the_token(self, app, client, world):
        event = world["event"]
        page = client.get(f"/events/{event.id}").get_data(as_text=True)
        action = f"/events/{event.id}/register"
        response = client.post(action, data={"name": "Karim", "email": "karim@example.org",
                                             "csrf_token": self.token_of(page, action)})
        assert response.status_code == 303
        assert registrations_of(event, guest_email="karim@example.org")[0].status == "pending"
