"""/api/v1 operations: thin views over the domain functions the staff portal uses."""
from __future__ import annotations

from flask import current_app, g, request
from sqlalchemy import select

from membership.accounts.services import normalize_email
from membership.api import bp, schemas as s
from membership.api.errors import ApiError, error_response, handle_api_error
from membership.api.registry import operation, page_of
from membership.api.tokens import authenticate, hash_secret
from membership.core.models import Activity
from membership.core.services import record_activity_once, record_activity, record_audit
from membership.core.time import local_today, utcnow
from membership.events import services as events
from membership.events.models import Event, EventRegistration
from membership.extensions import db, limiter
from membership.members import services as members
from membership.members.models import Member
from membership.members.queries import MemberFilter, member_query
from membership.plans.models import Membership, Payment

# Names a client might use to put a token in the address, where proxies, logs and browser history
# would keep it: refused outright, whether or not a header is sent too.
QUERY_TOKEN_NAMES = {"access_token", "token", "api_key", "apikey", "api_token", "key", "bearer", "auth",
                     "authorization"}
PUBLIC_ENDPOINTS = {"api.openapi_json", "api.docs"}


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def rate_limit_key() -> str:
    """Per token (the hash of the secret sent), so one busy integration does not slow another;
    requests without a token count per client address."""
    secret = _bearer()
    if secret:
        return "api-token:" + hash_secret(secret)[:32]
    return "api-addr:" + (request.remote_addr or "?")


limiter.limit(lambda: current_app.config["API_RATE_LIMIT"], key_func=rate_limit_key)(bp)


@bp.before_request
def authenticate_token():
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    leaked = sorted(k for k in request.args if k.lower() in QUERY_TOKEN_NAMES)
    if leaked:
        return error_response(400, "API tokens are never accepted in the query string (it ends up in logs); "
                                   "send the Authorization: Bearer header instead, and revoke this token.",
                              code="token_in_query", details={"parameters": leaked})
    secret = _bearer()
    if secret is None:
        return error_response(401, "Send an API token in the Authorization header: Bearer <token>.")
    token = authenticate(db.session, secret, now=utcnow())
    if token is None:
        db.session.rollback()
        return error_response(401, "This API token is not valid: unknown, revoked or expired.",
                              code="invalid_token")
    if db.session.dirty:
        db.session.commit()  # last_used_at, kept even if the operation then fails
    g.api_token = token
    g.api_actor = token.owner
    return None


@bp.after_request
def no_store(response):
    response.headers["Cache-Control"] = "no-store"
    return response


def _get(model, ident: int, what: str):
    row = db.session.get(model, ident)
    if row is None or (model is Member and row.erased_at is not None):
        raise ApiError(404, f"No {what} {ident}.")
    return row


def _now():
    return utcnow()


# ---------------------------------------------------------------- members


def member_json(m: Member) -> dict:
    return s.MemberOut.model_validate(m, from_attributes=True).model_dump(mode="json")


def _member_data(body: s.MemberWrite, *, partial: bool) -> members.MemberData:
    data = body.model_dump(exclude_unset=partial)
    if partial and "first_name" in data and data["first_name"] is None:
        data["first_name"] = ""  # the domain says "First name is required."
    if not partial:
        data = {k: v for k, v in data.items() if v is not None}
    return members.validate_member(data, region=current_app.config["PHONE_REGION"], today=local_today(),
                                   partial=partial)


# 405: an address the router cannot read as one of ours with this method (an id beyond a database integer)
ERRS_LIST = (400, 401, 403, 405, 422, 429)
ERRS_ONE = (400, 401, 403, 404, 405, 422, 429)
ERRS_WRITE = (400, 401, 403, 404, 405, 409, 413, 415, 422, 429)


@operation("/members", method="GET", summary="Search members", tag="members", scope="read",
           query=s.MemberQuery, response=s.MemberList, errors=ERRS_LIST)
def list_members(query: s.MemberQuery):
    """Members in id order, filtered; erased members are never listed. Follow links.next for the
    next page."""
    f = MemberFilter(q=query.q or "", status=[query.status] if query.status else [], plan_id=query.plan_id)
    stmt = member_query(f)
    if query.email:
        stmt = stmt.where(Member.email_normalized == normalize_email(query.email))
    if query.external_id:
        stmt = stmt.where(Member.external_id == query.external_id)
    if query.updated_since:
        stmt = stmt.where(Member.updated_at >= query.updated_since)
    return page_of(stmt, Member.id, query, member_json, "list_members")


@operation("/members/<int:member_id>", method="GET", summary="Read a member", tag="members", scope="read",
           response=s.MemberOut, errors=ERRS_ONE)
def get_member(member_id: int):
    return member_json(_get(Member, member_id, "member"))


@operation("/members", method="POST", summary="Create a member", tag="members", scope="write",
           body=s.MemberCreate, response=s.MemberOut, status=201, errors=ERRS_WRITE)
def create_member(body: s.MemberCreate):
    """Validated like the staff form; 409 when the email, member number or external id is taken
    (details name the field). Audited as the token's owner."""
    member = members.create_member(db.session, _member_data(body, partial=False), actor=g.api_actor, now=_now())
    return member_json(member), {"Location": f"{request.script_root}/api/v1/members/{member.id}"}


@operation("/members/<int:member_id>", method="PATCH", summary="Update a member", tag="members", scope="write",
           body=s.MemberUpdate, response=s.MemberOut, errors=ERRS_WRITE)
def update_member(member_id: int, body: s.MemberUpdate):
    """Only the fields sent change. Audited as the token's owner, with the changed fields."""
    member = _get(Member, member_id, "member")
    members.update_member(db.session, member, _member_data(body, partial=True), actor=g.api_actor, now=_now())
    return member_json(member)


# ---------------------------------------------------------------- terms and payments


def term_json(t: Membership) -> dict:
    return s.TermOut.model_validate({**{c: getattr(t, c) for c in s.TermOut.model_fields if c != "plan_code"},
                                     "plan_code": t.plan.code}).model_dump(mode="json")


@operation("/terms", method="GET", summary="List membership terms", tag="terms", scope="read",
           query=s.TermQuery, response=s.TermList, errors=ERRS_LIST)
def list_terms(query: s.TermQuery):
    """Terms (periods of a plan) of members and organisations, oldest first."""
    stmt = select(Membership)
    if query.member_id:
        stmt = stmt.where(Membership.member_id == query.member_id)
    if query.status:
        stmt = stmt.where(Membership.status == query.status)
    return page_of(stmt, Membership.id, query, term_json, "list_terms")


@operation("/terms/<int:term_id>", method="GET", summary="Read a term", tag="terms", scope="read",
           response=s.TermOut, errors=ERRS_ONE)
def get_term(term_id: int):
    return term_json(_get(Membership, term_id, "term"))


def payment_json(p: Payment) -> dict:
    return s.PaymentOut.model_validate(p, from_attributes=True).model_dump(mode="json")


@operation("/payments", method="GET", summary="List payments", tag="payments", scope="read",
           query=s.PaymentQuery, response=s.PaymentList, errors=ERRS_LIST)
def list_payments(query: s.PaymentQuery):
    """Payments received (for accounting), in the order they were recorded."""
    stmt = select(Payment)
    if query.member_id:
        stmt = stmt.where(Payment.member_id == query.member_id)
    if query.received_since:
        stmt = stmt.where(Payment.received_at >= query.received_since)
    if query.received_before:
        stmt = stmt.where(Payment.received_at < query.received_before)
    return page_of(stmt, Payment.id, query, payment_json, "list_payments")


@operation("/payments/<int:payment_id>", method="GET", summary="Read a payment", tag="payments", scope="read",
           response=s.PaymentOut, errors=ERRS_ONE)
def get_payment(payment_id: int):
    return payment_json(_get(Payment, payment_id, "payment"))


# ---------------------------------------------------------------- events and registrations


def event_json(e: Event) -> dict:
    return s.EventOut.model_validate(e, from_attributes=True).model_dump(mode="json")


def registration_json(r: EventRegistration) -> dict:
    return s.RegistrationOut.model_validate(r, from_attributes=True).model_dump(mode="json")


@operation("/events", method="GET", summary="List events", tag="events", scope="read",
           query=s.EventQuery, response=s.EventList, errors=ERRS_LIST)
def list_events(query: s.EventQuery):
    stmt = select(Event)
    if query.status:
        stmt = stmt.where(Event.status == query.status)
    if query.starts_after:
        stmt = stmt.where(Event.starts_at >= query.starts_after)
    if query.starts_before:
        stmt = stmt.where(Event.starts_at < query.starts_before)
    return page_of(stmt, Event.id, query, event_json, "list_events")


@operation("/events/<int:event_id>", method="GET", summary="Read an event", tag="events", scope="read",
           response=s.EventOut, errors=ERRS_ONE)
def get_event(event_id: int):
    return event_json(_get(Event, event_id, "event"))


@operation("/registrations", method="GET", summary="List event registrations", tag="registrations",
           scope="read", query=s.RegistrationQuery, response=s.RegistrationList, errors=ERRS_LIST)
def list_registrations(query: s.RegistrationQuery):
    stmt = select(EventRegistration)
    if query.event_id:
        stmt = stmt.where(EventRegistration.event_id == query.event_id)
    if query.member_id:
        stmt = stmt.where(EventRegistration.member_id == query.member_id)
    if query.status:
        stmt = stmt.where(EventRegistration.status == query.status)
    return page_of(stmt, EventRegistration.id, query, registration_json, "list_registrations")


@operation("/registrations/<int:registration_id>", method="GET", summary="Read a registration",
           tag="registrations", scope="read", response=s.RegistrationOut, errors=ERRS_ONE)
def get_registration(registration_id: int):
    return registration_json(_get(EventRegistration, registration_id, "registration"))


@operation("/events/<int:event_id>/registrations", method="POST", summary="Register a member for an event",
           tag="registrations", scope="write", body=s.RegistrationCreate, response=s.RegistrationOut,
           status=201, errors=ERRS_WRITE)
def create_registration(event_id: int, body: s.RegistrationCreate):
    """The member's own rules apply (registration window, members-only, capacity and waitlist);
    409 with the reason when registration is not open to them. Registering twice returns the same
    registration."""
    event = _get(Event, event_id, "event")
    member = _get(Member, body.member_id, "member")
    registration = events.register_member(db.session, event, member, now=_now(), actor=g.api_actor,
                                          source="api", email=body.send_email)
    return registration_json(registration)


# ---------------------------------------------------------------- activities


def activity_json(a: Activity) -> dict:
    return s.ActivityOut.model_validate(a, from_attributes=True).model_dump(mode="json")


@operation("/activities", method="GET", summary="List member activities", tag="activities", scope="read",
           query=s.ActivityQuery, response=s.ActivityList, errors=ERRS_LIST)
def list_activities(query: s.ActivityQuery):
    """Every touchpoint Samiti knows (logins, events, emails, payments, and those other systems
    recorded), oldest first."""
    stmt = select(Activity)
    if query.member_id:
        stmt = stmt.where(Activity.member_id == query.member_id)
    if query.kind:
        stmt = stmt.where(Activity.kind == query.kind)
    if query.since:
        stmt = stmt.where(Activity.occurred_at >= query.since)
    return page_of(stmt, Activity.id, query, activity_json, "list_activities")


@operation("/activities", method="POST", summary="Record a touchpoint", tag="activities", scope="write",
           body=s.ActivityCreate, response=s.ActivityOut, status=201, also=(200,), errors=ERRS_WRITE)
def create_activity(body: s.ActivityCreate):
    """A website visit or a contact logged in another system; it feeds the member's engagement
    score. With an idempotency_key, sending it again records nothing more and returns the first
    one (status 200)."""
    now = _now()
    member = _get(Member, body.member_id, "member")
    if body.occurred_at > now:
        raise ApiError(422, "occurred_at cannot be in the future.",
                       details=[{"field": "occurred_at", "message": "in the future"}])
    if body.kind == "external_contact" and body.channel is None:
        raise ApiError(422, "Give the channel of an external contact.",
                       details=[{"field": "channel", "message": "required for external_contact"}])
    detail = {"via": "api", "token": g.api_token.prefix}
    for key in ("channel", "summary", "url"):
        value = getattr(body, key)
        if value:
            detail[key] = members.clean_text(value, field=key, label=key, max_length=500)
    if body.idempotency_key:
        dedupe_key = f"api:{g.api_token.owner_id}:{body.idempotency_key}"
        created = record_activity_once(db.session, dedupe_key=dedupe_key, member_id=member.id, kind=body.kind,
                                       occurred_at=body.occurred_at, detail=detail)
        row = db.session.scalar(select(Activity).where(Activity.dedupe_key == dedupe_key[:120]))
        if not created:
            if row.member_id != member.id or row.kind != body.kind:
                raise ApiError(409, "This idempotency key was used for another touchpoint.")
            return activity_json(row), {}, 200  # a replay: the first touchpoint, not a new one
    else:
        row = record_activity(db.session, member_id=member.id, kind=body.kind, occurred_at=body.occurred_at,
                              detail=detail)
        db.session.flush()
    record_audit(db.session, actor=g.api_actor, action="activity.record", entity=row, now=now, member_id=member.id,
                 summary=f"{body.kind} recorded through the API ({g.api_token.name})")
    return activity_json(row)


# ---------------------------------------------------------------- the API's description (public)

bp.register_error_handler(ApiError, handle_api_error)


@bp.get("/openapi.json")
def openapi_json():
    from membership.api.openapi import build_spec
    return build_spec(server_url=request.script_root or "/")


@bp.get("/docs")
def docs():
    from flask import render_template

    from membership.api.openapi import build_spec
    spec = build_spec(server_url=request.script_root or "/")
    return render_template("api/docs.html", spec=spec)
