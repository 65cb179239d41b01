"""The JSON API: every operation, every error code, scopes, revocation, tokens in the query string,
an IDOR walk and bad input that writes nothing. Runs on SQLite and on PostgreSQL."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from membership.api.models import ApiToken
from membership.api.registry import OPERATIONS
from membership.core.models import Activity, AuditLog
from membership.events.models import EventRegistration
from membership.extensions import db
from membership.members.models import Member
from tests.api.conftest import bearer

ERROR_KEYS = {"code", "message", "details"}


def assert_error(response, status, code=None):
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) == ERROR_KEYS, body
    if code:
        assert body["error"]["code"] == code, body
    return body["error"]


def counts():
    return (db.session.scalar(select(func.count()).select_from(Member)),
            db.session.scalar(select(func.count()).select_from(AuditLog)),
            db.session.scalar(select(func.count()).select_from(Activity)),
            db.session.scalar(select(func.count()).select_from(EventRegistration)))


# ---------------------------------------------------------------- reads


def test_members_list_search_filters_and_pagination(client, rw, api_data):
    r = client.get("/api/v1/members", headers=rw)
    assert r.status_code == 200
    assert [m["first_name"] for m in r.json["data"]] == ["Rahim", "Karim", "সাকিব"]
    assert r.json["links"]["next"] is None
    assert r.headers["Cache-Control"] == "no-store"

    assert [m["first_name"] for m in client.get("/api/v1/members?q=karim", headers=rw).json["data"]] == ["Karim"]
    assert [m["first_name"] for m in client.get("/api/v1/members?q=হাসান", headers=rw).json["data"]] == ["সাকিব"]
    assert [m["email"] for m in client.get("/api/v1/members?email=RAHIM@example.org", headers=rw).json["data"]] \
        == ["rahim@example.org"]
    assert [m["external_id"] for m in client.get("/api/v1/members?external_id=crm-1", headers=rw).json["data"]] \
        == ["crm-1"]
    active = client.get("/api/v1/members?status=active", headers=rw).json["data"]
    assert [m["first_name"] for m in active] == ["Rahim"] and active[0]["plan_id"] == api_data["plan"].id
    assert client.get("/api/v1/members?updated_since=2999-01-01T00:00:00Z", headers=rw).json["data"] == []

    # pages of one, following links.next with the filters kept
    seen, url = [], "/api/v1/members?limit=1&q=example"
    while url:
        page = client.get(url, headers=rw)
        assert page.status_code == 200 and len(page.json["data"]) <= 1
        seen += [m["id"] for m in page.json["data"]]
        url = page.json["links"]["next"]
        assert url is None or ("q=example" in url and "limit=1" in url)
    assert seen == sorted(m.id for m in api_data["members"])


def test_erased_members_are_neither_listed_nor_read(client, rw, api_data):
    gone = api_data["members"][2]
    gone.erased_at = datetime.now(timezone.utc)
    db.session.commit()
    assert gone.id not in [m["id"] for m in client.get("/api/v1/members", headers=rw).json["data"]]
    assert_error(client.get(f"/api/v1/members/{gone.id}", headers=rw), 404, "not_found")


def test_read_one_of_each(client, ro, api_data):
    a = api_data["members"][0]
    r = client.get(f"/api/v1/members/{a.id}", headers=ro)
    assert r.status_code == 200 and r.json["member_number"] == a.member_number and r.json["status"] == "active"

    terms = client.get(f"/api/v1/terms?member_id={a.id}", headers=ro).json["data"]
    assert [t["id"] for t in terms] == [api_data["term"].id] and terms[0]["plan_code"] == "STD"
    t = client.get(f"/api/v1/terms/{api_data['term'].id}", headers=ro).json
    assert t["fee_minor"] == 150000 and t["member_id"] == a.id
    assert client.get("/api/v1/terms?status=lapsed", headers=ro).json["data"] == []

    payments = client.get(f"/api/v1/payments?member_id={a.id}", headers=ro).json["data"]
    assert [p["receipt_number"] for p in payments] == [api_data["payment"].receipt_number]
    p = client.get(f"/api/v1/payments/{api_data['payment'].id}", headers=ro).json
    assert p["amount_minor"] == 150000 and p["membership_id"] == api_data["term"].id
    assert client.get("/api/v1/payments?received_since=2999-01-01T00:00:00Z", headers=ro).json["data"] == []

    ev = api_data["event"]
    assert [e["id"] for e in client.get("/api/v1/events?status=published", headers=ro).json["data"]] == [ev.id]
    assert client.get("/api/v1/events?status=draft", headers=ro).json["data"] == []
    assert client.get(f"/api/v1/events/{ev.id}", headers=ro).json["seats_taken"] == 1

    regs = client.get(f"/api/v1/registrations?event_id={ev.id}", headers=ro).json["data"]
    assert [r["member_id"] for r in regs] == [api_data["members"][1].id]
    one = client.get(f"/api/v1/registrations/{api_data['registration'].id}", headers=ro).json
    assert one["status"] == "confirmed"

    acts = client.get(f"/api/v1/activities?member_id={a.id}&kind=payment", headers=ro).json["data"]
    assert len(acts) == 1 and acts[0]["kind"] == "payment"

    for path in ("members", "terms", "payments", "events", "registrations"):
        assert_error(client.get(f"/api/v1/{path}/999999", headers=ro), 404, "not_found")


# ---------------------------------------------------------------- writes


def test_create_member_is_validated_by_the_domain_and_audited_as_the_owner(client, rw, admin_user):
    r = client.post("/api/v1/members", headers=rw, json={
        "first_name": " Nusrat ", "last_name": "Jahan", "email": "Nusrat@Example.org", "phone": "01712345678",
        "country": "bd", "external_id": "web-77", "language": "bn"})
    assert r.status_code == 201, r.json
    body = r.json
    assert body["first_name"] == "Nusrat" and body["phone"] == "+8801712345678" and body["country"] == "BD"
    assert r.headers["Location"].endswith(f"/api/v1/members/{body['id']}")
    assert re.fullmatch(r"M\d{6}", body["member_number"])
    audit = db.session.scalar(select(AuditLog).where(AuditLog.action == "member.create"))
    assert audit.actor_id == admin_user.id and audit.member_id == body["id"]

    again = assert_error(client.post("/api/v1/members", headers=rw, json={"first_name": "X", "email": "nusrat@example.org"}),
                         409, "conflict")
    assert again["details"] == [{"field": "email", "message": again["message"]}]
    assert_error(client.post("/api/v1/members", headers=rw, json={"first_name": "Y", "external_id": "web-77"}), 409)


def test_update_member_changes_only_what_is_sent(client, rw, api_data, admin_user):
    b = api_data["members"][1]
    r = client.patch(f"/api/v1/members/{b.id}", headers=rw, json={"city": "Chattogram", "marketing_opt_in": True})
    assert r.status_code == 200
    assert r.json["city"] == "Chattogram" and r.json["marketing_opt_in"] is True and r.json["first_name"] == "Karim"
    audit = db.session.scalar(select(AuditLog).where(AuditLog.action == "member.update"))
    assert audit.actor_id == admin_user.id and set(audit.changes) == {"city", "marketing_opt_in"}
    # null clears an optional field; first_name cannot be cleared
    assert client.patch(f"/api/v1/members/{b.id}", headers=rw, json={"city": None}).json["city"] is None
    err = assert_error(client.patch(f"/api/v1/members/{b.id}", headers=rw, json={"first_name": None}), 422)
    assert err["details"][0]["field"] == "first_name"
    assert_error(client.patch("/api/v1/members/999999", headers=rw, json={"city": "x"}), 404)
    # another member's email: 409, nothing changed
    assert_error(client.patch(f"/api/v1/members/{b.id}", headers=rw, json={"email": "rahim@example.org"}), 409)
    db.session.expire_all()
    assert db.session.get(Member, b.id).email == "karim@example.org"


def test_register_a_member_for_an_event(client, rw, api_data):
    ev, c = api_data["event"], api_data["members"][2]
    r = client.post(f"/api/v1/events/{ev.id}/registrations", headers=rw, json={"member_id": c.id, "send_email": False})
    assert r.status_code == 201, r.json
    assert r.json["status"] == "confirmed" and r.json["source"] == "api"
    again = client.post(f"/api/v1/events/{ev.id}/registrations", headers=rw, json={"member_id": c.id})
    assert again.json["id"] == r.json["id"]  # once per person
    db.session.expire_all()
    assert db.session.get(type(ev), ev.id).seats_taken == 2
    assert_error(client.post("/api/v1/events/999999/registrations", headers=rw, json={"member_id": c.id}), 404)
    assert_error(client.post(f"/api/v1/events/{ev.id}/registrations", headers=rw, json={"member_id": 999999}), 404)
    ev.status = "cancelled"
    db.session.commit()
    assert_error(client.post(f"/api/v1/events/{ev.id}/registrations", headers=rw,
                             json={"member_id": api_data["members"][0].id}), 409, "conflict")


def test_record_touchpoints_feed_engagement(client, rw, api_data, admin_user):
    a = api_data["members"][0]
    at = (datetime.now(timezone.utc) - timedelta(hours=1)).replace(microsecond=0)
    r = client.post("/api/v1/activities", headers=rw, json={
        "member_id": a.id, "kind": "website_visit", "occurred_at": at.isoformat(), "url": "/jobs",
        "idempotency_key": "visit-1"})
    assert r.status_code == 201, r.json
    assert r.json["kind"] == "website_visit" and r.json["detail"]["url"] == "/jobs"
    replay = client.post("/api/v1/activities", headers=rw, json={
        "member_id": a.id, "kind": "website_visit", "occurred_at": at.isoformat(), "url": "/jobs",
        "idempotency_key": "visit-1"})
    assert replay.status_code == 200 and replay.json["id"] == r.json["id"]
    assert_error(client.post("/api/v1/activities", headers=rw, json={
        "member_id": api_data["members"][1].id, "kind": "website_visit", "occurred_at": at.isoformat(),
        "idempotency_key": "visit-1"}), 409)
    call = client.post("/api/v1/activities", headers=rw, json={
        "member_id": a.id, "kind": "external_contact", "channel": "call", "occurred_at": at.isoformat(),
        "summary": "Asked about the conference"})
    assert call.status_code == 201 and call.json["detail"]["channel"] == "call"
    kinds = db.session.scalars(select(Activity.kind).where(Activity.member_id == a.id)).all()
    assert kinds.count("website_visit") == 1 and kinds.count("external_contact") == 1
    audit = db.session.scalars(select(AuditLog).where(AuditLog.action == "activity.record")).all()
    assert len(audit) == 2 and {x.actor_id for x in audit} == {admin_user.id}

    # the touchpoints count in the engagement score, with their weights
    from membership.engagement.scoring import engagement
    from membership.engagement.settings import get_settings
    settings = get_settings(db.session)
    rows = db.session.execute(select(Activity.kind, Activity.occurred_at).where(
        Activity.member_id == a.id, Activity.kind.in_(("website_visit", "external_contact")))).all()
    score, breakdown = engagement(rows, as_of=datetime.now(timezone.utc), weights=settings.weights,
                                  half_life_days=settings.half_life_days)
    assert score > 0 and breakdown["website_visit"] > 0 and breakdown["external_contact"] > breakdown["website_visit"]

    future = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
    assert_error(client.post("/api/v1/activities", headers=rw, json={
        "member_id": a.id, "kind": "website_visit", "occurred_at": future}), 422)
    assert_error(client.post("/api/v1/activities", headers=rw, json={
        "member_id": a.id, "kind": "external_contact", "occurred_at": at.isoformat()}), 422)
    assert_error(client.post("/api/v1/activities", headers=rw, json={
        "member_id": a.id, "kind": "logged_in", "occurred_at": at.isoformat()}), 422)  # Samiti's own kinds
    assert_error(client.post("/api/v1/activities", headers=rw, json={
        "member_id": 999999, "kind": "website_visit", "occurred_at": at.isoformat()}), 404)


# ---------------------------------------------------------------- authentication and scopes


def test_no_token_bad_token_and_cookies_are_refused(client, admin_client, api_data):
    err = assert_error(client.get("/api/v1/members"), 401, "unauthorized")
    assert "Bearer" in err["message"]
    assert client.get("/api/v1/members").headers["WWW-Authenticate"].startswith("Bearer")
    assert_error(client.get("/api/v1/members", headers={"Authorization": "Bearer smt_nope"}), 401, "invalid_token")
    assert_error(client.get("/api/v1/members", headers={"Authorization": "Basic YTpi"}), 401)
    # a signed-in admin's session cookie is not an API credential
    assert_error(admin_client.get("/api/v1/members"), 401)


@pytest.mark.parametrize("name", ["access_token", "token", "api_key", "Authorization"])
def test_token_in_the_query_string_is_refused_even_with_a_header(client, make_token, name, api_data):
    _, secret = make_token()
    err = assert_error(client.get(f"/api/v1/members?{name}={secret}", headers=bearer(secret)), 400, "token_in_query")
    assert "query string" in err["message"]
    assert_error(client.get(f"/api/v1/members?{name}={secret}"), 400, "token_in_query")
    assert_error(client.post(f"/api/v1/members?{name}={secret}", json={"first_name": "Q"}), 400)
    assert db.session.scalar(select(func.count()).select_from(Member).where(Member.first_name == "Q")) == 0


def test_revoked_expired_and_ownerless_tokens_stop_working(client, make_token, make_user, admin_user, api_data):
    from membership.accounts import services as accounts
    from membership.api import tokens

    token, secret = make_token()
    assert client.get("/api/v1/members", headers=bearer(secret)).status_code == 200
    db.session.expire_all()
    assert db.session.get(ApiToken, token.id).last_used_at is not None
    tokens.revoke_token(db.session, db.session.get(ApiToken, token.id), actor=admin_user, now=datetime.now(timezone.utc))
    db.session.commit()
    assert_error(client.get("/api/v1/members", headers=bearer(secret)), 401, "invalid_token")

    soon, secret2 = make_token(expires_at=datetime.now(timezone.utc) + timedelta(seconds=1))
    soon.expires_at = datetime.now(timezone.utc) - timedelta(seconds=1)
    db.session.commit()
    assert_error(client.get("/api/v1/members", headers=bearer(secret2)), 401)

    staff = make_user("staff")
    _, secret3 = make_token(owner=staff)
    assert client.get("/api/v1/members", headers=bearer(secret3)).status_code == 200
    accounts.set_active(db.session, staff, False, actor=admin_user, now=datetime.now(timezone.utc))
    db.session.commit()
    assert_error(client.get("/api/v1/members", headers=bearer(secret3)), 401)


def _sample_request(op, data):
    """A well-formed request for each operation (ids that exist)."""
    ids = {"member_id": data["members"][0].id, "term_id": data["term"].id, "payment_id": data["payment"].id,
           "event_id": data["event"].id, "registration_id": data["registration"].id}
    path = re.sub(r"\{(\w+)\}", lambda m: str(ids[m.group(1)]), op.path)
    body = {
        "create_member": {"first_name": "Walker", "email": "walker@example.org"},
        "update_member": {"city": "Walked"},
        "create_registration": {"member_id": data["members"][2].id, "send_email": False},
        "create_activity": {"member_id": data["members"][0].id, "kind": "website_visit",
                            "occurred_at": "2026-01-01T00:00:00Z"},
    }.get(op.endpoint)
    return path, body


def test_idor_walk_scopes_are_enforced_on_every_operation(client, ro, wo, rw, api_data):
    """Every operation the API has (from its registry): a read token cannot write anything, a write-only
    token cannot read anything, and a refused write leaves no trace."""
    assert {op.scope for op in OPERATIONS} == {"read", "write"}
    before = counts()
    for op in OPERATIONS:
        path, body = _sample_request(op, api_data)
        wrong = wo if op.scope == "read" else ro
        r = client.open(path, method=op.method.upper(), headers=wrong, json=body)
        err = assert_error(r, 403, "forbidden")
        assert err["details"]["required"] == op.scope
    assert counts() == before
    db.session.expire_all()
    assert db.session.get(Member, api_data["members"][0].id).city is None
    # and the right scope works for each one
    for op in OPERATIONS:
        path, body = _sample_request(op, api_data)
        r = client.open(path, method=op.method.upper(), headers=rw, json=body)
        assert r.status_code == op.status, (op.endpoint, r.json)


# ---------------------------------------------------------------- bad input, every error code


def test_bad_input_is_a_4xx_and_writes_nothing(client, rw, api_data):
    before = counts()
    bad_members = [
        {"first_name": "A", "phone": "12"},                        # domain: not a phone number
        {"first_name": "A", "email": "not-an-email"},
        {"first_name": "A", "date_of_birth": "2999-01-01"},        # domain: in the future
        {"first_name": "A", "joined_on": "2026-02-30"},            # not a date
        {"first_name": ""},                                        # required
        {"last_name": "no first name"},
        {"first_name": "A", "unknown": 1},                         # extra fields are refused
        {"first_name": "A", "language": "fr"},
        {"first_name": "A\x00"},                                   # NUL: PostgreSQL would refuse it
        {"first_name": "A" * 101},
        {"first_name": ["list"]},
        {"first_name": "A", "country": "Bangladesh"},
        {"first_name": "A", "marketing_opt_in": "perhaps"},
    ]
    for payload in bad_members:
        err = assert_error(client.post("/api/v1/members", headers=rw, json=payload), 422, "validation_failed")
        assert err["details"], payload
    assert_error(client.post("/api/v1/members", headers=rw, json=[{"first_name": "A"}]), 422)
    assert_error(client.post("/api/v1/members", headers=rw, data='{"first_name": ',
                             content_type="application/json"), 400, "bad_request")
    assert_error(client.post("/api/v1/members", headers=rw, data="first_name=A",
                             content_type="application/x-www-form-urlencoded"), 415, "unsupported_media_type")
    assert_error(client.post("/api/v1/members", headers=rw, data='{"first_name": "A"}', content_type="text/plain"), 415)
    big = '{"first_name": "A", "notes": "' + "x" * 70_000 + '"}'
    assert_error(client.post("/api/v1/members", headers=rw, data=big, content_type="application/json"), 413,
                 "payload_too_large")
    assert_error(client.post("/api/v1/activities", headers=rw, json={"member_id": 1, "kind": "website_visit",
                                                                   "occurred_at": "2026-01-01T00:00:00"}), 422)  # naive
    assert counts() == before


def test_bad_query_strings(client, rw, api_data):
    for query in ("limit=0", "limit=101", "limit=abc", "status=gone", "plan_id=-1", "plan_id=99999999999",
                  "updated_since=yesterday", "updated_since=0001-01-01T00:00:00Z", "unknown=1", "status=active&status=grace",
                  "q=" + "x" * 201):
        assert_error(client.get(f"/api/v1/members?{query}", headers=rw), 422, "validation_failed")
    for query in ("after=-1", "after=x", "after=2147483648"):
        assert_error(client.get(f"/api/v1/members?{query}", headers=rw), 422)


def test_routing_errors_have_the_api_shape(client, rw, api_data):
    assert_error(client.get("/api/v1/nothing-here", headers=rw), 404, "not_found")
    assert_error(client.get("/api/v1/members/99999999999", headers=rw), 404)  # beyond a database integer
    r = client.delete(f"/api/v1/members/{api_data['members'][0].id}", headers=rw)
    assert_error(r, 405, "method_not_allowed")
    assert "PATCH" in r.headers["Allow"]
    # the rest of the site keeps its own pages
    assert client.get("/no-such-page").mimetype == "text/html"


# ---------------------------------------------------------------- the description of the API


def test_openapi_document_comes_from_the_validating_schemas(client):
    from membership.api import schemas

    spec = client.get("/api/v1/openapi.json").json
    assert spec["openapi"] == "3.1.0"
    documented = {(method, path) for path, ops in spec["paths"].items() for method in ops}
    assert documented == {(op.method, op.path) for op in OPERATIONS}
    create = spec["paths"]["/api/v1/members"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/MemberCreate"}
    generated = schemas.MemberCreate.model_json_schema(ref_template="#/components/schemas/{model}")
    assert spec["components"]["schemas"]["MemberCreate"] == generated
    for path, ops in spec["paths"].items():
        for op in ops.values():
            assert op["security"] == [{"bearerAuth": []}]
            for status in ("401", "403", "429"):
                assert spec["components"]["schemas"]["Error"] and status in op["responses"]
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_docs_page_is_self_hosted(client):
    r = client.get("/api/v1/docs")
    assert r.status_code == 200 and r.mimetype == "text/html"
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    html = r.get_data(as_text=True)
    assert "/api/v1/members" in html and "MemberCreate" in html
    assert not re.search(r"""(src|href)=["']https?://""", html)  # no CDN
    assert "style=" not in html and "<script>" not in html  # nothing the CSP would block


def test_staff_see_touchpoints_recorded_through_the_api(client, rw, api_data, staff_user):
    from tests.conftest import login

    a = api_data["members"][0]
    at = (datetime.now(timezone.utc) - timedelta(hours=2)).replace(microsecond=0).isoformat()
    assert client.post("/api/v1/activities", headers=rw, json={
        "member_id": a.id, "kind": "website_visit", "occurred_at": at}).status_code == 201
    login(client, staff_user)
    page = client.get(f"/staff/members/{a.id}/activity").get_data(as_text=True)
    assert "Visited the website" in page
