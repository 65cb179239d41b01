"""Account closure: the member asks, staff confirm or decline, and a confirmed closure erases the
member's personal data while the records the association must keep stay correct.

On confirmation (`erase_member`):
- erased: names (the record reads "Erased member"), email, phone, address, date of birth, job
  title, staff notes, external id, the search text, every preference and directory choice; the
  member leaves their organisation; the login is deactivated, every session ends, its email
  becomes a unique placeholder (erased-user-<id>@erased.invalid) and its password is removed;
- scrubbed: every email to the member in the outbox (address, name, subject, text, headers,
  attachments; queued ones are cancelled); the text of every help request and message; the
  notes of staff interactions and of payments; the reason given with closure requests; the
  summaries and changed values of the audit rows about the member (the action, time, actor and
  the names of the changed fields stay), and the network address of the member's own actions;
- kept: the member number (receipts and the accounting system refer to it; without the rest it
  names nobody), join date, membership terms (current and future ones are cancelled from the
  day of the erasure, with the reason "account closed"), payments with their receipt numbers,
  amounts, methods and references, activities (counts and engagement history stay right), the
  dates and counts of help requests (the service figures do not change);
- recorded: one audit row "member.erase" that lists what was cleared and how many rows were
  scrubbed, without repeating any erased value.

The confirmation email to the member is queued after the scrub, without a member link; it is
the one row that still holds the address, because the message has to reach it.

Every function takes a session and explicit `now`/`today`/`actor`; it flushes, the caller commits.
"""
from __future__ import annotations

from flask_babel import gettext as _

from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from membership.accounts.models import User, new_session_token
from membership.core import formats
from membership.core.i18n import N_
from membership.core.errors import Conflict, NotFound
from membership.core.models import AuditLog
from membership.core.services import record_audit
from membership.core.validation import clean_text
from membership.members.models import Interaction, Member
from membership.notifications.models import OutboxMessage
from membership.plans.models import Payment
from membership.privacy.directory import SHARE_FIELDS
from membership.privacy.models import ClosureRequest
from membership.support.services import redact_member_requests

ERASED_NAME = "Erased member"
ERASED_TEXT = "[erased]"
ERASED_ADDRESS = "erased@erased.invalid"
CLOSURE_REASON = "Account closed at the member's request"
# Audit rows about terms, payments, help requests and closures describe records that are kept;
# their summaries hold no personal detail, so they stay readable after an erasure.
KEEP_AUDIT_PREFIXES = ("membership.", "payment.", "help_request.", "closure.")
CLEARED_FIELDS = ("first_name", "last_name", "email", "phone", "address_line1", "address_line2", "city", "postcode",
                  "country", "date_of_birth", "job_title", "notes", "external_id", "search_text",
                  "organization_id", "marketing_opt_in", "directory_opt_in", *SHARE_FIELDS)


def pending_request(session: Session, member: Member) -> ClosureRequest | None:
    return session.scalar(select(ClosureRequest).where(ClosureRequest.pending_member_id == member.id))


def owned_closure(session: Session, member: Member, closure_id: int) -> ClosureRequest:
    closure = session.get(ClosureRequest, closure_id)
    if closure is None or member is None or closure.member_id != member.id:
        raise NotFound(_("This request does not exist."))
    return closure


def request_closure(session: Session, member: Member, *, reason: str | None, now: datetime, actor
                    ) -> ClosureRequest:
    """The member asks for their account to be closed. Raises Conflict when a request is already
    pending (also when a double click sends the form twice), ValidationError for a bad reason."""
    if member.erased_at is not None:
        raise Conflict(_("This account is already closed."))
    reason = clean_text((reason or "").replace("\r\n", "\n"), field="reason", label="Reason", max_length=2000,
                        multiline=True)
    existing = pending_request(session, member)
    if existing is not None:
        raise Conflict(_("You already asked for your account to be closed (on %(day)s); our staff will confirm it soon.",
                         day=formats.strftime(existing.requested_at, "%d %b %Y")))
    closure = ClosureRequest(member_id=member.id, status="pending", reason=reason, requested_at=now,
                             pending_member_id=member.id)
    try:
        with session.begin_nested():
            session.add(closure)
            session.flush()
    except IntegrityError as e:
        if "pending_member_id" in str(e.orig):
            raise Conflict(_("You already asked for your account to be closed; our staff will confirm it soon.")) \
                from None
        raise
    record_audit(session, actor=actor, action="closure.request", entity=closure, now=now, member_id=member.id,
                 summary=f"Asked for the account to be closed (request #{closure.id})")
    return closure


# How a closed request ended, for "it was ..." messages.
CLOSURE_OUTCOMES = {"withdrawn": N_("withdrawn"), "declined": N_("declined"), "confirmed": N_("confirmed")}


def _decide(session: Session, closure: ClosureRequest, status: str, *, now: datetime, actor,
            note: str | None = None) -> None:
    """Move a pending request to `status` with a conditional update: of two staff confirming at
    the same moment (or a member withdrawing while staff confirm), exactly one wins."""
    done = session.execute(
        update(ClosureRequest).where(ClosureRequest.id == closure.id, ClosureRequest.status == "pending")
        .values(status=status, decided_at=now, pending_member_id=None, decision_note=note,
                decided_by_id=getattr(actor, "id", None) if status != "withdrawn" else None)
        .execution_options(synchronize_session=False)).rowcount
    if not done:
        session.refresh(closure)
        raise Conflict(_("This request is no longer pending: it was %(status)s.",
                         status=_(CLOSURE_OUTCOMES.get(closure.status, closure.status))))
    session.refresh(closure)


def withdraw_closure(session: Session, closure: ClosureRequest, *, now: datetime, actor) -> None:
    """The member changed their mind. Raises Conflict unless the request is pending."""
    _decide(session, closure, "withdrawn", now=now, actor=actor)
    record_audit(session, actor=actor, action="closure.withdraw", entity=closure, now=now,
                 member_id=closure.member_id, summary=f"Closure request #{closure.id} withdrawn by the member")


def decline_closure(session: Session, closure: ClosureRequest, *, note: str, now: datetime, actor) -> None:
    """Staff decline, saying why (the note is emailed to the member). Raises ValidationError without
    a note, Conflict unless the request is pending."""
    note = clean_text((note or "").replace("\r\n", "\n"), field="note", label="Note to the member",
                      max_length=2000, required=True, multiline=True)
    _decide(session, closure, "declined", now=now, actor=actor, note=note)
    record_audit(session, actor=actor, action="closure.decline", entity=closure, now=now,
                 member_id=closure.member_id, summary=f"Closure request #{closure.id} declined")
    from membership.notifications.outbox import enqueue
    from membership.notifications.templating import link

    enqueue(session, template_key="closure_declined", dedupe_key=f"closure_declined:{closure.id}", now=now,
            member=closure.member, source=closure,
            context={"decision_note": note, "request_number": str(closure.id), "data_link": link("/my/data")})


@dataclass
class ErasureReport:
    terms_cancelled: int = 0
    emails_scrubbed: int = 0
    help_requests_redacted: int = 0
    interactions_scrubbed: int = 0
    payment_notes_cleared: int = 0
    audit_rows_redacted: int = 0
    login_closed: bool = False
    notes: list[str] = field(default_factory=list)
    # ids of the scrubbed outbox rows: after the commit, `forget_mail_copies` deletes the copies a
    # mail backend kept of them (the file backend's .eml files)
    message_ids: list[int] = field(default_factory=list)

    def as_changes(self) -> dict:
        return {"cleared": list(CLEARED_FIELDS), "terms_cancelled": self.terms_cancelled,
                "emails_scrubbed": self.emails_scrubbed, "help_requests_redacted": self.help_requests_redacted,
                "interactions_scrubbed": self.interactions_scrubbed,
                "payment_notes_cleared": self.payment_notes_cleared,
                "audit_rows_redacted": self.audit_rows_redacted, "login_closed": self.login_closed}


def confirm_closure(session: Session, closure: ClosureRequest, *, now: datetime, today: date, actor
                    ) -> ErasureReport:
    """Staff confirm: erase the member (see the module docstring) and email them that it is done.
    Raises Conflict unless the request is pending."""
    member = closure.member
    address = member.email
    _decide(session, closure, "confirmed", now=now, actor=actor)
    record_audit(session, actor=actor, action="closure.confirm", entity=closure, now=now, member_id=member.id,
                 summary=f"Closure request #{closure.id} confirmed")
    report = erase_member(session, member, now=now, today=today, actor=actor, closure=closure)
    if address:
        from membership.notifications.outbox import enqueue
        enqueue(session, template_key="closure_confirmed", dedupe_key=f"closure_confirmed:{closure.id}", now=now,
                to_address=address, to_name="", source=closure, context={"request_number": str(closure.id)})
    return report


def erase_member(session: Session, member: Member, *, now: datetime, today: date, actor,
                 closure: ClosureRequest | None = None) -> ErasureReport:
    """Erase or anonymise everything personal about `member` (see the module docstring). Raises
    Conflict when the member is already erased. Flushes; the caller commits."""
    from membership.members.services import remove_contact
    from membership.plans import services as plans

    if member.erased_at is not None:
        raise Conflict(_("This member's personal data was already erased."))
    report = ErasureReport()
    user = session.scalar(select(User).where(User.member_id == member.id))
    email_key = (member.email_normalized or "").strip()

    # Membership ends today: current and future terms are cancelled (past ones stay as they were).
    for term in plans.terms_of(session, member):
        if term.cancelled_on is None and (term.ends_on is None or term.ends_on >= today):
            if term.override_status:
                plans.clear_override(session, term, today=today, now=now, actor=actor, reason="account closed")
            plans.cancel(session, term, on=today, reason=CLOSURE_REASON, today=today, now=now, actor=actor)
            report.terms_cancelled += 1
    if member.organization_id is not None:
        remove_contact(session, member.organization, member, actor=actor, now=now, today=today)
    session.flush()

    to_member = OutboxMessage.member_id == member.id
    if email_key:
        to_member = or_(to_member, and_(OutboxMessage.member_id.is_(None),
                                        func.lower(OutboxMessage.to_address) == email_key))
    report.message_ids = list(session.scalars(select(OutboxMessage.id).where(to_member)))
    report.emails_scrubbed = session.execute(
        update(OutboxMessage).where(to_member).values(
            to_address=ERASED_ADDRESS, to_name="", subject=ERASED_TEXT, body_text=ERASED_TEXT, body_html=None,
            headers=None, attachments=None, reason=None, last_error=None,
            status=case((OutboxMessage.status.in_(("queued", "failed")), "cancelled"), else_=OutboxMessage.status))
        .execution_options(synchronize_session=False)).rowcount

    report.help_requests_redacted = redact_member_requests(session, member.id, now=now)
    report.interactions_scrubbed = session.execute(
        update(Interaction).where(Interaction.member_id == member.id)
        .values(summary=ERASED_TEXT, outcome=None).execution_options(synchronize_session=False)).rowcount
    report.payment_notes_cleared = session.execute(
        update(Payment).where(Payment.member_id == member.id, Payment.note.is_not(None))
        .values(note=None).execution_options(synchronize_session=False)).rowcount
    session.execute(update(ClosureRequest).where(ClosureRequest.member_id == member.id).values(reason=None)
                    .execution_options(synchronize_session=False))
    from membership.surveys.services import redact_member_answers
    redact_member_answers(session, member.id)  # free-text answers and follow-up notes; scores stay

    about = AuditLog.member_id == member.id
    if user is not None:
        about = or_(about, and_(AuditLog.entity_type == "user", AuditLog.entity_id == user.id))
    for row in session.scalars(select(AuditLog).where(about)):
        if row.action.startswith(KEEP_AUDIT_PREFIXES):
            continue
        row.summary = ERASED_TEXT
        if row.changes:
            row.changes = {str(k): ERASED_TEXT for k in row.changes} if isinstance(row.changes, dict) \
                else ERASED_TEXT
        report.audit_rows_redacted += 1
    if user is not None:
        session.execute(update(AuditLog).where(AuditLog.actor_id == user.id).values(ip=None)
                        .execution_options(synchronize_session=False))

    member.first_name, member.last_name = ERASED_NAME, ""
    for name in ("email", "email_normalized", "phone", "address_line1", "address_line2", "city", "postcode",
                 "country", "date_of_birth", "job_title", "notes", "external_id", "organization_id"):
        setattr(member, name, None)
    for name in ("marketing_opt_in", "directory_opt_in", "email_bouncing", "is_primary_contact", *SHARE_FIELDS):
        setattr(member, name, False)
    member.search_text = ""
    member.erased_at = now
    member.updated_at = now

    if user is not None:
        placeholder = f"erased-user-{user.id}@erased.invalid"
        user.email = user.email_normalized = placeholder
        user.name = ERASED_NAME
        user.password_hash = None
        user.email_verified_at = None
        user.is_active_flag = False
        user.deactivated_at = user.deactivated_at or now
        user.session_token = new_session_token()
        report.login_closed = True

    session.flush()
    session.expire_all()
    record_audit(session, actor=actor, action="member.erase", entity=member, now=now, member_id=member.id,
                 summary="Personal data erased" + (f" (closure request #{closure.id})" if closure else ""),
                 changes=report.as_changes())
    session.flush()
    return report


def forget_mail_copies(report: ErasureReport) -> int:
    """After the erasure is committed: delete the copies the mail backend kept of the member's
    emails (the file backend's .eml files; SMTP keeps none here). Returns how many went."""
    from membership.notifications.backends import get_backend

    try:
        return get_backend().forget([str(i) for i in report.message_ids])
    except (ValueError, OSError):  # a bad MAIL_URL or an unreadable folder: the rows are scrubbed anyway
        return 0

