"""Help requests: a member opens one, staff and member reply, staff resolve or reopen.

Every function takes a session and explicit `now` and `actor` (the User acting); it adds and
flushes, the caller commits. Failures are domain errors: ValidationError (field: subject,
category, body), Conflict (the request is closed, already resolved...), NotFound (a request of
another member). Text is never written to the audit log, so erasing a member's requests does
not leave their words behind there.
"""
from __future__ import annotations

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from membership.core.errors import Conflict, NotFound, ValidationError
from membership.core.services import record_activity, record_audit
from membership.core.validation import clean_text
from membership.support.models import HELP_CATEGORIES, UNRESOLVED, HelpMessage, HelpRequest

SUBJECT_MAX = 200
BODY_MAX = 10_000
CATEGORY_LABELS = {"question": _l("Question"), "complaint": _l("Complaint"), "other": _l("Something else")}
STATUS_LABELS = {"open": _l("Waiting for staff"), "answered": _l("Answered"), "resolved": _l("Resolved"),
                 "closed": _l("Closed")}
# What the member reads: "answered" means they are the one we wait for.
MEMBER_STATUS_LABELS = {"open": _l("Waiting for our reply"), "answered": _l("We replied"), "resolved": _l("Resolved"),
                        "closed": _l("Closed")}


def _clean_body(body: str | None) -> str:
    text = (body or "").replace("\r\n", "\n")
    return clean_text(text, field="body", label="Message", max_length=BODY_MAX, required=True, multiline=True)


def _clean_key(client_key: str | None) -> str | None:
    key = (client_key or "").strip()
    return key[:64] if key else None


def _message_with_key(session: Session, key: str | None) -> HelpMessage | None:
    if not key:
        return None
    return session.scalar(select(HelpMessage).where(HelpMessage.client_key == key))


def _add_message(session: Session, request: HelpRequest, *, author_kind: str, actor, body: str, now: datetime,
                 client_key: str | None) -> HelpMessage | None:
    """Add a message; None when a message with this form key was committed meanwhile by a concurrent
    request (the unique key refused the second one; the savepoint keeps the transaction usable)."""
    message = HelpMessage(request_id=request.id, author_kind=author_kind, author_id=getattr(actor, "id", None),
                          body=body, created_at=now, client_key=client_key)
    try:
        with session.begin_nested():
            session.add(message)
            session.flush()
    except IntegrityError as e:
        if client_key and "client_key" in str(e.orig):
            return None
        raise
    session.expire(request, ["messages"])
    return message


def _lock(session: Session, request: HelpRequest) -> None:
    """Re-read the request and lock its row until commit (PostgreSQL; SQLite writers are serialised
    by BEGIN IMMEDIATE), so two replies at the same moment both count."""
    session.refresh(request, with_for_update=True)


def owned_request(session: Session, member, request_id: int) -> HelpRequest:
    """The member's own request `request_id`. Raises NotFound for a missing id or another member's
    request (the same answer, so ids of other members' requests cannot be probed)."""
    request = session.get(HelpRequest, request_id)
    if request is None or member is None or request.member_id != member.id:
        raise NotFound(_("This help request does not exist."))
    return request


def open_request(session: Session, member, *, subject: str, category: str, body: str, now: datetime, actor,
                 client_key: str | None = None) -> HelpRequest:
    """A member's new question or complaint: the request, its first message, a "help_request"
    activity and an audit row. The same form sent twice (same `client_key`) returns the first
    request instead of opening a second one."""
    subject = clean_text(subject, field="subject", label="Subject", max_length=SUBJECT_MAX, required=True)
    if category not in HELP_CATEGORIES:
        raise ValidationError(_("Choose what kind of request this is."), field="category")
    body = _clean_body(body)
    key = _clean_key(client_key)
    existing = _message_with_key(session, key)
    if existing is not None:
        if existing.request.member_id != member.id:
            raise Conflict(_("This form was already used; please reload the page."))
        return existing.request
    request = HelpRequest(member_id=member.id, subject=subject, category=category, status="open",
                          created_at=now, updated_at=now, staff_reply_count=0)
    try:
        # Request and first message in one savepoint: when a concurrent submit of the same form
        # committed first, neither is kept and that request is the answer.
        with session.begin_nested():
            session.add(request)
            session.add(HelpMessage(request=request, author_kind="member", author_id=getattr(actor, "id", None),
                                    body=body, created_at=now, client_key=key))
            session.flush()
    except IntegrityError as e:
        if key and "client_key" in str(e.orig):
            return _message_with_key(session, key).request
        raise
    record_activity(session, member_id=member.id, kind="help_request", occurred_at=now, source=request,
                    detail={"category": category})
    record_audit(session, actor=actor, action="help_request.open", entity=request, now=now, member_id=member.id,
                 summary=f"Help request {request.number} opened ({CATEGORY_LABELS[category].lower()})")
    return request


def member_reply(session: Session, request: HelpRequest, member, *, body: str, now: datetime, actor,
                 client_key: str | None = None) -> HelpMessage:
    """The member adds to their request: it is open again (waiting for staff), also when it was
    resolved. Raises NotFound for another member's request, Conflict for a closed one."""
    if member is None or request.member_id != member.id:
        raise NotFound(_("This help request does not exist."))
    body = _clean_body(body)
    key = _clean_key(client_key)
    existing = _message_with_key(session, key)
    if existing is not None:
        if existing.request_id != request.id:
            raise Conflict(_("This form was already used; please reload the page."))
        return existing
    _lock(session, request)
    if not request.accepts_replies:
        raise Conflict(_("This request is closed and takes no more replies."))
    message = _add_message(session, request, author_kind="member", actor=actor, body=body, now=now,
                           client_key=key)
    if message is None:
        return _message_with_key(session, key)
    was = request.status
    request.status = "open"
    request.resolved_at = None
    request.resolved_by_id = None
    request.updated_at = now
    record_audit(session, actor=actor, action="help_request.member_reply", entity=request, now=now,
                 member_id=request.member_id,
                 summary=f"Member replied to help request {request.number}"
                 + (" (reopened)" if was == "resolved" else ""))
    return message


def staff_reply(session: Session, request: HelpRequest, *, body: str, now: datetime, actor,
                resolve: bool = False, client_key: str | None = None) -> HelpMessage:
    """Staff answer a request: the reply is stored, shown in the portal and emailed to the member
    (outbox, once per message). The request becomes "answered", or "resolved" with `resolve`.
    The first staff reply sets the first-response time. Raises Conflict for a closed request."""
    body = _clean_body(body)
    key = _clean_key(client_key)
    existing = _message_with_key(session, key)
    if existing is not None:
        if existing.request_id != request.id:
            raise Conflict(_("This form was already used; please reload the page."))
        return existing
    _lock(session, request)
    if not request.accepts_replies:
        raise Conflict(_("This request is closed (the member's account was closed); it takes no more replies."))
    message = _add_message(session, request, author_kind="staff", actor=actor, body=body, now=now,
                           client_key=key)
    if message is None:
        return _message_with_key(session, key)
    if request.first_response_at is None:
        request.first_response_at = now
    request.staff_reply_count = (request.staff_reply_count or 0) + 1
    request.updated_at = now
    if resolve:
        request.status = "resolved"
        request.resolved_at = now
        request.resolved_by_id = getattr(actor, "id", None)
    else:
        request.status = "answered"
        request.resolved_at = None
        request.resolved_by_id = None
    record_audit(session, actor=actor, action="help_request.staff_reply", entity=request, now=now,
                 member_id=request.member_id,
                 summary=f"Replied to help request {request.number}" + (" and resolved it" if resolve else ""))
    _email_reply(session, request, message, actor=actor, now=now)
    if resolve:
        from membership.surveys.services import on_help_request_resolved
        on_help_request_resolved(session, request, now=now)  # after the reply, so the reply is emailed first
    return message


def _email_reply(session: Session, request: HelpRequest, message: HelpMessage, *, actor, now: datetime) -> None:
    from membership.notifications.outbox import enqueue
    from membership.notifications.templating import link

    member = request.member
    if member is None or member.erased_at is not None:
        return
    enqueue(session, template_key="help_reply", dedupe_key=f"help_reply:message:{message.id}", now=now,
            member=member, source=message,
            context={"request_subject": request.subject, "request_number": str(request.id),
                     "reply_text": message.body, "staff_name": getattr(actor, "name", "") or "",
                     "request_link": link(f"/my/help/{request.id}")})


def resolve(session: Session, request: HelpRequest, *, now: datetime, actor, by_member: bool = False) -> None:
    """Mark a request resolved (by staff, or by the member who says it is sorted). Raises Conflict
    when it is already resolved or closed."""
    _lock(session, request)
    if request.status not in UNRESOLVED:
        raise Conflict(_("This request is already %(status)s.", status=str(STATUS_LABELS[request.status]).lower()))
    request.status = "resolved"
    request.resolved_at = now
    request.resolved_by_id = getattr(actor, "id", None)
    request.updated_at = now
    record_audit(session, actor=actor, action="help_request.resolve", entity=request, now=now,
                 member_id=request.member_id,
                 summary=f"Help request {request.number} marked resolved" + (" by the member" if by_member else ""))
    from membership.surveys.services import on_help_request_resolved
    on_help_request_resolved(session, request, now=now)  # the effort and satisfaction survey, if one is open


def reopen(session: Session, request: HelpRequest, *, now: datetime, actor) -> None:
    """Staff reopen a resolved request (it waits for staff again). Raises Conflict unless resolved."""
    _lock(session, request)
    if request.status != "resolved":
        raise Conflict(_("Only a resolved request can be reopened."))
    request.status = "open"
    request.resolved_at = None
    request.resolved_by_id = None
    request.updated_at = now
    record_audit(session, actor=actor, action="help_request.reopen", entity=request, now=now,
                 member_id=request.member_id, summary=f"Help request {request.number} reopened")


def status_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(HelpRequest.status, func.count()).group_by(HelpRequest.status)).all()
    return {status: n for status, n in rows}


REDACTED = "[removed: the member's account was closed]"


def redact_member_requests(session: Session, member_id: int, *, now: datetime) -> int:
    """Account closure: replace the subject and every message of the member's requests with a
    placeholder and close the unresolved ones. Dates, categories, reply counts and resolutions stay,
    so the service figures do not change. Returns how many requests. Caller commits."""
    requests = session.scalars(select(HelpRequest).where(HelpRequest.member_id == member_id)).all()
    for request in requests:
        request.subject = REDACTED
        request.redacted_at = now
        if request.status in UNRESOLVED:
            request.status = "closed"
            request.updated_at = now
        for message in request.messages:
            message.body = REDACTED
    session.flush()
    return len(requests)
