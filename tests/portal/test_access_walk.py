"""Access control, proved by walking the URL map (so routes added later are walked too).

Member A is signed in; member B has one of everything (term, payment and receipt, help request,
closure request, interaction, emails). Every /my route that takes an id is requested with B's
ids, by every method it accepts: the answer is 403 or 404 and never shows B's data. Routes without
ids are requested with extra form and query fields naming B or asking for privileges (member_id,
status, role...): nothing of B's changes, A gains nothing, B's data never shows. Every /staff URL
is 403 for a member, and every /my URL sends a visitor to sign in.

A route argument this walk does not know fails the walk with a message: say in OWNED_ARGS whose
row it names (then B's id is used), or in SHARED_ARGS that it names something not owned by a member.
"""
from __future__ import annotations

import io
import zipfile
from datetime import timedelta

import pytest
from sqlalchemy import select

from membership.accounts.models import User
from membership.extensions import db
from membership.members.models import Interaction, Member
from membership.members.services import add_interaction
from membership.notifications.models import OutboxMessage
from membership.plans.models import Membership, Payment
from membership.privacy.erasure import request_closure
from membership.privacy.models import ClosureRequest
from membership.support import services as support
from membership.support.models import HelpMessage, HelpRequest
from membership.core.time import local_today
from tests.conftest import NOW, login

# Route argument -> which of a member's rows it names.
OWNED_ARGS = {
    "request_id": "help", "help_request_id": "help", "help_id": "help",
    "payment_id": "payment", "receipt_id": "payment",
    "term_id": "term", "membership_id": "term",
    "member_id": "member", "user_id": "user",
    "closure_id": "closure", "closure_request_id": "closure",
    "message_id": "email", "email_id": "email", "outbox_id": "email",
    "interaction_id": "interaction", "help_message_id": "help_message",
}
# Route arguments that name nothing a member owns (any member may use any value).
SHARED_ARGS = {"plan_id", "page", "survey_id"}  # a survey is the same for every member


@pytest.fixture
def world(app, make_member, make_plan, make_term, make_user, staff_user):
    today = local_today()
    plan = make_plan(name="Standard", fee_minor=5000, grace_days=30)

    def member_with_everything(tag, **kw):
        member = make_member(**kw)
        term = make_term(member, plan, starts_on=today - timedelta(days=30), today=today)
        payment = term.payments[0]
        user = make_user("member", email=member.email, name=member.full_name, member_id=member.id)
        req = support.open_request(db.session, member, subject=f"{tag}-SUBJECT-7", category="question",
                                   body=f"{tag}-MESSAGE-7", now=NOW, actor=user)
        support.staff_reply(db.session, req, body=f"{tag}-STAFF-REPLY-7", now=NOW + timedelta(hours=1),
                            actor=staff_user)
        interaction = add_interaction(db.session, member, channel="call", summary=f"{tag}-NOTE-7", outcome=None,
                                      follow_up_on=None, occurred_at=NOW, actor=staff_user, now=NOW)
        closure = request_closure(db.session, member, reason=f"{tag}-REASON-7", now=NOW, actor=user)
        email = db.session.scalar(select(OutboxMessage).where(OutboxMessage.member_id == member.id)
                                  .order_by(OutboxMessage.id))
        db.session.flush()
        return {"member": member, "user": user, "term": term, "payment": payment, "help": req,
                "help_message": req.messages[0], "interaction": interaction, "closure": closure, "email": email}

    a = member_with_everything("AAA", first_name="Annika", last_name="Ahlberg", email="annika@example.org")
    b = member_with_everything("BBB", first_name="Barnabas", last_name="Quill", email="barnabas.quill@example.org",
                               phone="+8801812398765", city="Rangpur")
    db.session.commit()
    b["markers"] = ("Barnabas", "Quill", "barnabas.quill", "1812398765", "Rangpur", "BBB-SUBJECT-7",
                    "BBB-MESSAGE-7", "BBB-STAFF-REPLY-7", "BBB-NOTE-7", "BBB-REASON-7",
                    b["payment"].receipt_number, b["member"].member_number)
    assert a["payment"].receipt_number != b["payment"].receipt_number
    return {"a": a, "b": b, "plan": plan}


def rules(app, prefix):
    found = [r for r in app.url_map.iter_rules() if r.rule.startswith(prefix) and r.endpoint != "static"]
    return sorted(found, key=lambda r: (r.rule, r.endpoint))


def methods(rule):
    return [m for m in ("GET", "POST") if m in rule.methods]


def ids_of(member_world, rule) -> dict:
    values, unknown = {}, []
    for arg in rule.arguments:
        if arg in OWNED_ARGS:
            values[arg] = member_world[OWNED_ARGS[arg]].id
        elif arg in SHARED_ARGS:
            values[arg] = None
        else:
            unknown.append(arg)
    if unknown:
        pytest.fail(f"{rule.rule} takes {unknown}: add each to OWNED_ARGS (whose row it names) or SHARED_ARGS "
                    "in tests/portal/test_access_walk.py")
    return values


def body_text(response) -> str:
    data = response.get_data()
    if response.mimetype == "application/zip":
        archive = zipfile.ZipFile(io.BytesIO(data))
        return "\n".join(archive.read(name).decode("utf-8", "replace") for name in archive.namelist())
    return data.decode("utf-8", "replace")


def leaks(response, markers) -> list[str]:
    text = body_text(response)
    return [m for m in markers if m in text]


def hostile_fields(world) -> dict:
    b = world["b"]
    return {"member_id": b["member"].id, "user_id": b["user"].id, "request_id": b["help"].id,
            "payment_id": b["payment"].id, "term_id": b["term"].id, "membership_id": b["term"].id,
            "closure_id": b["closure"].id, "message_id": b["email"].id, "status": "active", "role": "admin",
            "is_active": "y", "erased_at": "", "expires_on": "2099-12-31", "ends_on": "2099-12-31",
            "author_kind": "staff", "staff_reply_count": 9, "pending_member_id": b["member"].id}


def b_state(world) -> dict:
    """Every row about B, to prove the walk changed none of them."""
    b = world["b"]
    db.session.expire_all()
    rows = {}
    for model, condition in ((Member, Member.id == b["member"].id), (User, User.id == b["user"].id),
                             (Membership, Membership.member_id == b["member"].id),
                             (Payment, Payment.member_id == b["member"].id),
                             (HelpRequest, HelpRequest.member_id == b["member"].id),
                             (HelpMessage, HelpMessage.request_id == b["help"].id),
                             (ClosureRequest, ClosureRequest.member_id == b["member"].id),
                             (Interaction, Interaction.member_id == b["member"].id),
                             (OutboxMessage, OutboxMessage.member_id == b["member"].id)):
        table = model.__table__
        rows[table.name] = [tuple(r) for r in db.session.execute(
            select(table).where(condition).order_by(*table.primary_key.columns)).all()]
    return rows


def a_privileges(world) -> tuple:
    a = world["a"]
    db.session.expire_all()
    user = db.session.get(User, a["user"].id)
    member = db.session.get(Member, a["member"].id)
    return (user.role, user.member_id, user.is_active_flag, member.member_number, member.status, member.plan_id,
            member.expires_on, member.erased_at)


@pytest.fixture
def a_client(client, world):
    assert login(client, world["a"]["user"]).status_code == 302
    return client


def test_every_portal_route_with_another_members_ids_is_403_or_404(app, a_client, world):
    walked, wrong = 0, []
    before = b_state(world)
    for rule in rules(app, "/my"):
        if not rule.arguments:
            continue
        values = ids_of(world["b"], rule)
        if any(v is None for v in values.values()):
            continue  # shared arguments only: walked by the next test
        url = app.url_map.bind("localhost").build(rule.endpoint, values)
        for method in methods(rule):
            response = a_client.open(url, method=method,
                                     data={"body": "hijack", "confirm": "y", **hostile_fields(world)})
            walked += 1
            if response.status_code not in (403, 404) or leaks(response, world["b"]["markers"]):
                wrong.append((method, url, response.status_code, leaks(response, world["b"]["markers"])))
    assert wrong == []
    assert walked >= 4, "the walk found too few portal routes with ids"
    assert b_state(world) == before


def test_the_same_routes_work_for_the_owner(app, a_client, world):
    """Guards the walk above: with A's own ids the GET pages answer (the 404s are not vacuous)."""
    checked = 0
    for rule in rules(app, "/my"):
        if not rule.arguments or "GET" not in rule.methods:
            continue
        values = ids_of(world["a"], rule)
        if any(v is None for v in values.values()):
            continue
        url = app.url_map.bind("localhost").build(rule.endpoint, values)
        response = a_client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        assert not leaks(response, world["b"]["markers"])
        checked += 1
    assert checked >= 2


def test_routes_without_ids_ignore_hostile_fields_and_show_nothing_of_others(app, a_client, world):
    before_b, before_a = b_state(world), a_privileges(world)
    wrong, walked = [], 0
    member_routes = [r for r in rules(app, "/my") if not r.arguments or
                     all(arg in SHARED_ARGS for arg in r.arguments)]
    member_routes += [r for r in rules(app, "/account") if not r.arguments]
    for rule in member_routes:
        values = {arg: world["plan"].id for arg in rule.arguments}
        url = app.url_map.bind("localhost").build(rule.endpoint, values)
        for method in methods(rule):
            if method == "GET":
                response = a_client.get(url, query_string=hostile_fields(world))
            else:
                response = a_client.post(url, data=hostile_fields(world))
            walked += 1
            found = leaks(response, world["b"]["markers"])
            if response.status_code >= 500 or found:
                wrong.append((method, url, response.status_code, found))
    assert wrong == []
    assert walked >= 10
    assert b_state(world) == before_b
    assert a_privileges(world) == before_a


def test_posts_on_my_own_rows_with_hostile_fields_touch_only_mine(app, a_client, world):
    """With A's own ids and a valid-looking body, the extra fields still change nothing of B's and
    give A nothing: the request and its message stay A's, the status is the one the action sets."""
    before_b, before_a = b_state(world), a_privileges(world)
    for rule in rules(app, "/my"):
        if not rule.arguments or "POST" not in rule.methods:
            continue
        values = ids_of(world["a"], rule)
        if any(v is None for v in values.values()):
            continue
        url = app.url_map.bind("localhost").build(rule.endpoint, values)
        response = a_client.post(url, data={"body": "my own words", **hostile_fields(world)})
        assert response.status_code < 500, url
        assert not leaks(response, world["b"]["markers"])
    assert b_state(world) == before_b
    assert a_privileges(world) == before_a
    a_help = db.session.get(HelpRequest, world["a"]["help"].id)
    assert a_help.member_id == world["a"]["member"].id
    assert all(m.request_id == a_help.id for m in a_help.messages)
    assert [m.body for m in a_help.messages if m.body == "my own words"] == ["my own words"]


def test_every_staff_url_is_403_for_a_member(app, a_client, world):
    wrong, walked = [], 0
    b = world["b"]
    for rule in rules(app, "/staff"):
        values = {}
        for arg in rule.arguments:
            owned = OWNED_ARGS.get(arg)
            values[arg] = b[owned].id if owned else ("x" if arg in ("key", "token") else world["plan"].id)
        url = app.url_map.bind("localhost").build(rule.endpoint, values)
        for method in methods(rule):
            response = a_client.open(url, method=method, data=hostile_fields(world))
            walked += 1
            if response.status_code != 403 or leaks(response, b["markers"]):
                wrong.append((method, url, response.status_code))
    assert wrong == []
    assert walked > 30


def test_every_portal_url_sends_a_visitor_to_sign_in(app, client, world):
    wrong = []
    for rule in rules(app, "/my"):
        values = {arg: world["b"][OWNED_ARGS[arg]].id if arg in OWNED_ARGS else 1 for arg in rule.arguments}
        url = app.url_map.bind("localhost").build(rule.endpoint, values)
        for method in methods(rule):
            response = client.open(url, method=method)
            if response.status_code != 302 or not response.headers["Location"].startswith("/login"):
                wrong.append((method, url, response.status_code))
    assert wrong == []


def test_staff_cannot_use_the_member_portal(app, client, world, staff_user):
    login(client, staff_user)
    wrong = []
    for rule in rules(app, "/my"):
        values = {arg: world["b"][OWNED_ARGS[arg]].id if arg in OWNED_ARGS else 1 for arg in rule.arguments}
        url = app.url_map.bind("localhost").build(rule.endpoint, values)
        for method in methods(rule):
            if client.open(url, method=method).status_code != 403:
                wrong.append((method, url))
    assert wrong == []


def test_a_login_without_a_member_record_gets_no_server_error(app, client, world, make_user):
    user = make_user("member", email="orphan@example.org")
    login(client, user)
    wrong = []
    for rule in rules(app, "/my"):
        values = {arg: world["b"][OWNED_ARGS[arg]].id if arg in OWNED_ARGS else 1 for arg in rule.arguments}
        url = app.url_map.bind("localhost").build(rule.endpoint, values)
        for method in methods(rule):
            response = client.open(url, method=method, data=hostile_fields(world))
            if response.status_code >= 500 or leaks(response, world["b"]["markers"]):
                wrong.append((method, url, response.status_code))
    assert wrong == []
