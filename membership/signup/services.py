"""Joining online: the application, the email confirmation, and the staff decision.

The flow:
1. `apply` creates the member record and a member login that cannot sign in yet (inactive and
   never deactivated: "waiting for confirmation"), records the chosen plan in the audit trail of
   the application, and queues a signed, expiring confirmation link. An address that already
   belongs to someone gets an "you already have an account" email instead (the visitor sees the
   same "check your email" page either way, so the form does not reveal who is a member).
2. `confirm` (the link) activates the login and starts the membership with
   plans.services.join(source="join", approved=not plan.needs_approval): a free plan is active at
   once, a paid plan waits for a payment that staff record, a plan that needs approval waits in
   the staff queue. The link works once: it names a login that is still waiting, and confirming
   ends the wait.
3. Staff approve or decline waiting applications (`approve_application`, `decline_application`);
   each emails the applicant.

Every function takes a session and explicit `now`/`today`; it adds and flushes, the caller commits.
"""
from __future__ import annotations

from flask_babel import gettext as _, ngettext
import hashlib
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import delete, exists, func, select
from sqlalchemy.orm import Session

from membership.accounts import services as accounts
from membership.accounts.models import User
from membership.core.errors import Conflict, DomainError, ValidationError
from membership.core.models import AuditLog
from membership.core.services import record_audit
from membership.core.validation import clean_text
from membership.members import services as members
from membership.members.models import Interaction, Member
from membership.notifications import templating
from membership.notifications.emails import queue_welcome
from membership.notifications.outbox import enqueue
from membership.plans import services as plans
from membership.core import formats
from membership.plans.catalog import describe_period, months_in_words, offered_plans
from membership.plans.models import Membership, Payment, Plan

CONFIRM_SALT = "samiti.join-confirm.v1"
CONFIRM_MAX_AGE = 3 * 24 * 3600
CONFIRM_EXPIRES_TEXT = "3 days"
APPLY_ACTION = "signup.apply"

# What a visitor may give about themselves when joining (the form's fields, in validate_member's names).
APPLICATION_FIELDS = ("first_name", "last_name", "email", "phone", "address_line1", "address_line2", "city",
                      "postcode", "country", "language", "marketing_opt_in", "directory_opt_in")


# ---------------------------------------------------------------- plans open for joining


def joinable_plans(session: Session) -> list[Plan]:
    """Plans a visitor may join online: active, open for online joining, for individuals."""
    return [p for p in offered_plans(session, organizational=False) if p.joinable_online]


def joinable_plan(session: Session, plan_id: int | None) -> Plan | None:
    plan = session.get(Plan, plan_id) if plan_id else None
    if plan is None or not plan.is_active or not plan.joinable_online or plan.is_organizational:
        return None
    return plan


def period_in_words(plan: Plan) -> str:
    """"1 year", "6 months", "Lifetime", "1 year from 1 Jul": for the plan cards."""
    if plan.period_kind == "lifetime":
        return _("Lifetime")
    months = plan.period_months
    if months % 12 == 0:
        length = formats.digits(ngettext("%(num)s year", "%(num)s years", months // 12))
    else:
        length = months_in_words(months)
    if plan.period_kind == "fixed":
        return describe_period(plan, length=length)
    return length


# ---------------------------------------------------------------- validation


def validate_application(data: dict[str, Any], *, region: str, today: date) -> tuple[members.MemberData | None,
                                                                                      dict[str, str]]:
    """Check every field of an application and report each bad one (not only the first).

    Returns (validated data, {}) or (None, {field: message}). The email is required here.
    """
    data = {k: data.get(k) for k in APPLICATION_FIELDS if k in data}
    errors: dict[str, str] = {}
    for key in data:
        try:
            members.validate_member({key: data[key]}, region=region, today=today, partial=True)
        except ValidationError as e:
            errors.setdefault(e.field or key, e.message)
    if not (data.get("email") or "").strip() and "email" not in errors:
        errors["email"] = "Email is required: we send the confirmation link there."
    if not (data.get("first_name") or "").strip() and "first_name" not in errors:
        errors["first_name"] = "First name is required."
    if errors:
        return None, errors
    try:
        values = members.validate_member({**data, "joined_on": today}, region=region, today=today)
    except ValidationError as e:  # pragma: no cover - each field passed above
        return None, {e.field or "email": e.message}
    return values, {}


# ---------------------------------------------------------------- tokens


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=CONFIRM_SALT)


def confirm_token(user: User) -> str:
    """A signed link token naming the login and its address (an address change voids it)."""
    # The address only as a digest: links end up in server logs.
    return _serializer().dumps({"u": user.id, "e": _digest(user.email_normalized), "n": secrets.token_hex(4)})


def user_from_confirm_token(session: Session, token: str) -> tuple[User | None, str | None]:
    """(user, None) for a token that may still be used, else (user or None, problem) where problem
    is "expired", "used" (the address is already confirmed) or "invalid"."""
    try:
        data = _serializer().loads(token, max_age=CONFIRM_MAX_AGE)
    except SignatureExpired as e:
        data = _payload(e.payload)
        user = session.get(User, data["u"]) if data else None
        if user is not None and not awaiting_confirmation(user):
            return user, "used"
        return user, "expired"
    except BadSignature:
        return None, "invalid"
    if not isinstance(data, dict) or not isinstance(data.get("u"), int):
        return None, "invalid"
    user = session.get(User, data["u"])
    if user is None or _digest(user.email_normalized) != data.get("e"):
        return None, "invalid"
    if not awaiting_confirmation(user):
        return user, "used"
    return user, None


def _payload(raw) -> dict | None:
    try:
        data = _serializer().load_payload(raw)
    except BadSignature:  # pragma: no cover - the signature was checked already
        return None
    return data if isinstance(data, dict) and isinstance(data.get("u"), int) else None


def awaiting_confirmation(user: User | None) -> bool:
    """True for a member login made by joining online whose address is not confirmed yet.

    Such a login is inactive (it cannot sign in) but was never deactivated by staff."""
    return (user is not None and user.role == "member" and not user.is_active_flag
            and user.deactivated_at is None and user.email_verified_at is None)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:24]


# ---------------------------------------------------------------- applying


@dataclass
class ApplyResult:
    """What `apply` did. The visitor is told the same thing in every case."""
    outcome: str  # "created", "resent" (an unconfirmed application exists), "exists" (address taken)
    member: Member | None = None
    user: User | None = None


def apply(session: Session, *, plan: Plan, data: members.MemberData, password: str, now: datetime,
          today: date, page_language: str | None = None) -> ApplyResult:
    """Record an application to join `plan` and email the confirmation link.

    Raises ValidationError for a bad password (field "password") or a plan that is not open for
    joining (field "plan"). Adds and flushes; the caller commits (the email goes with the commit).
    """
    if joinable_plan(session, plan.id) is None:
        raise ValidationError(_("This plan is not open for joining online."), field="plan")
    values = dict(data.values)
    email = values.get("email")
    if not email:
        raise ValidationError(_("Email is required: we send the confirmation link there."), field="email")
    name = f"{values.get('first_name') or ''} {values.get('last_name') or ''}".strip()
    problem = accounts.password_problem(password or "", email=email, name=name)
    if problem:
        raise ValidationError(problem, field="password")

    user = accounts.get_user_by_email(session, email)
    if user is not None:
        if awaiting_confirmation(user):
            queue_confirmation(session, user, now=now)
            return ApplyResult("resent", user.member, user)
        _queue_account_exists(session, email, user.member, now=now)
        return ApplyResult("exists", user.member, user)
    existing = members.find_by_email(session, email)
    if existing is not None:
        _queue_account_exists(session, email, existing, now=now)
        return ApplyResult("exists", existing, None)

    values["joined_on"] = today
    member = members.create_member(session, members.MemberData(values), actor=None, now=now, audit=False)
    user = accounts.create_user(session, email=email, name=member.full_name, role="member", password=password,
                                actor=None, now=now, member_id=member.id)
    user.is_active_flag = False  # until the address is confirmed (deactivated_at stays empty)
    user.language = page_language  # the language the visitor chose with the switch: their portal's
    record_audit(session, actor=None, action=APPLY_ACTION, entity=member, now=now, member_id=member.id,
                 summary=f"Applied online for {plan.name}: {member.member_number} {member.full_name}",
                 changes={"plan_id": plan.id, "plan": plan.code, "user_id": user.id})
    session.flush()
    queue_confirmation(session, user, now=now)
    return ApplyResult("created", member, user)


def applied_plan(session: Session, member: Member) -> Plan | None:
    """The plan chosen in the member's online application (kept in the application's audit row)."""
    row = session.scalar(select(AuditLog).where(AuditLog.member_id == member.id, AuditLog.action == APPLY_ACTION)
                         .order_by(AuditLog.id.desc()).limit(1))
    plan_id = (row.changes or {}).get("plan_id") if row is not None else None
    return session.get(Plan, plan_id) if isinstance(plan_id, int) else None


def queue_confirmation(session: Session, user: User, *, now: datetime):
    """Email a fresh confirmation link to a login waiting for confirmation (each link its own email)."""
    link = templating.link(f"/join/confirm/{confirm_token(user)}")
    plan = applied_plan(session, user.member) if user.member is not None else None
    return enqueue(session, template_key="confirm_email",
                   dedupe_key=f"confirm_email:user:{user.id}:{_digest(link)}", now=now, member=user.member,
                   to_address=user.email, to_name=user.name or None,
                   context={"confirm_link": link, "link_expires_in": CONFIRM_EXPIRES_TEXT,
                            **({"plan_name": plan.name} if plan is not None else {})},
                   source=user)


def resend_confirmation(session: Session, email: str, *, now: datetime) -> bool:
    """A new link for an application that waits for confirmation; False (and nothing sent) for any
    other address. The caller shows the same answer either way."""
    user = accounts.get_user_by_email(session, email or "")
    if not awaiting_confirmation(user):
        return False
    queue_confirmation(session, user, now=now)
    return True


def _queue_account_exists(session: Session, email: str, member: Member | None, *, now: datetime):
    """Tell the owner of `email` that someone tried to join with it: at most one such email per
    address and hour, whatever a visitor (or a bot) submits."""
    key = f"account_exists:{_digest(accounts.normalize_email(email))}:{now:%Y%m%d%H}"
    return enqueue(session, template_key="account_exists", dedupe_key=key, now=now, member=member,
                   to_address=email,
                   context={"login_link": templating.link("/login"),
                            "forgot_link": templating.link("/password/forgot")})


# ---------------------------------------------------------------- confirming


def payment_instructions() -> str:
    return (current_app.config.get("PAYMENT_INSTRUCTIONS") or "").strip()


def amount_due(session: Session, term: Membership) -> int:
    """What is still to pay on a term (its fee minus what was received for it)."""
    if not term.awaiting_payment:
        return 0
    paid = session.scalar(select(func.coalesce(func.sum(Payment.amount_minor), 0))
                          .where(Payment.membership_id == term.id)) or 0
    return max(0, term.fee_minor - int(paid))


def confirm(session: Session, user: User, *, now: datetime, today: date) -> Membership | None:
    """Confirm the address of a login waiting for it: the login may sign in from now on, and the
    membership of the plan chosen when applying starts (see module docstring). Emails a welcome
    (active at once) or what happens next (payment, approval).

    Returns the new term, or None when the plan is no longer open (the member can then talk to
    staff). Raises Conflict when the login is not waiting for confirmation.
    """
    if not awaiting_confirmation(user):
        raise Conflict(_("This email address is already confirmed."))
    user.email_verified_at = now
    user.is_active_flag = True
    record_audit(session, actor=user, action="user.confirm_email", entity=user, now=now, member_id=user.member_id,
                 summary=f"Email address {user.email} confirmed")
    member = user.member
    plan = applied_plan(session, member) if member is not None else None
    if member is None or plan is None:
        return None
    try:
        with session.begin_nested():
            # notify=False: the emails of an online join are chosen here (welcome when active at
            # once, else what happens next), not the staff join's welcome.
            term = plans.join(session, member, plan, today=today, now=now, actor=user, source="join",
                              approved=not plan.needs_approval, notify=False)
    except DomainError:
        # The plan was retired, or staff gave the member a membership meanwhile: nothing to start.
        return None
    if not term.awaiting_payment and not term.awaiting_approval:
        queue_welcome(session, member, now=now, term=term)
    else:
        enqueue(session, template_key="application_received", dedupe_key=f"application_received:term:{term.id}",
                now=now, member=member, source=term,
                context={"term": term, "needs_approval": term.awaiting_approval,
                         "needs_payment": term.awaiting_payment,
                         "amount_due": templating.format_money(amount_due(session, term), term.currency),
                         "payment_instructions": payment_instructions()})
    return term


# ---------------------------------------------------------------- the staff decision


def applications_query():
    """Terms waiting for staff approval, oldest first (the staff queue)."""
    return (select(Membership).where(Membership.awaiting_approval.is_(True), Membership.cancelled_on.is_(None),
                                     Membership.member_id.is_not(None))
            .order_by(Membership.created_at, Membership.id))


def is_declined(term: Membership) -> bool:
    """A term that was an application staff declined (cancelled without ever being approved)."""
    return term.cancelled_on is not None and term.approved_at is None


def approve_application(session: Session, term: Membership, *, actor, now: datetime, today: date) -> None:
    """Approve a waiting application and email the applicant (what to pay, or welcome).
    Raises Conflict when the term does not wait for approval (any more)."""
    if term.cancelled_on is not None:
        raise Conflict(_("This application was declined or cancelled; it cannot be approved."))
    plans.approve(session, term, today=today, now=now, actor=actor)
    member = term.member
    if member is not None:
        enqueue(session, template_key="application_approved", dedupe_key=f"application_approved:term:{term.id}",
                now=now, member=member, source=term,
                context={"term": term, "needs_payment": term.awaiting_payment,
                         "amount_due": templating.format_money(amount_due(session, term), term.currency),
                         "payment_instructions": payment_instructions()})


def decline_application(session: Session, term: Membership, *, reason: str, actor, now: datetime,
                        today: date) -> None:
    """Decline a waiting application with a reason (the term is cancelled) and email the applicant
    the reason. Raises ValidationError without a reason, Conflict when it does not wait (any more)."""
    reason = clean_text(reason, field="reason", label="Reason", max_length=2000, required=True, multiline=True)
    if not term.awaiting_approval or term.cancelled_on is not None:
        raise Conflict(_("This application no longer waits for a decision."))
    on = max(term.starts_on, min(today, term.ends_on or today))
    plans.cancel(session, term, on=on, reason=f"Application declined: {reason}", today=today, now=now,
                 actor=actor)
    if term.member is not None:
        enqueue(session, template_key="application_declined", dedupe_key=f"application_declined:term:{term.id}",
                now=now, member=term.member, source=term, context={"term": term, "decline_reason": reason})


# ---------------------------------------------------------------- never-confirmed applications

UNCONFIRMED_KEEP_DAYS = 30


def prune_unconfirmed(session: Session, *, now: datetime, keep_days: int = UNCONFIRMED_KEEP_DAYS) -> dict[str, int]:
    """Delete online applications whose address was never confirmed, `keep_days` after they were
    made (the link expired after 3 days; the address may not even be the applicant's): the login,
    the member record it made and the application's audit rows. An application staff have touched
    since (a term, a payment, an interaction, any staff-made audit row) is kept for staff to decide.
    The applicant can simply apply again. A few set-wise statements, whatever the number.
    Flushes; the caller commits."""
    old = select(User.id, User.member_id).where(
        User.role == "member", User.is_active_flag.is_(False), User.deactivated_at.is_(None),
        User.email_verified_at.is_(None), User.created_at < now - timedelta(days=keep_days),
        User.member_id.is_not(None))
    member = User.member_id
    untouched = old.where(
        ~exists().where(Membership.member_id == member), ~exists().where(Payment.member_id == member),
        ~exists().where(Interaction.member_id == member),
        ~exists().where(AuditLog.member_id == member, AuditLog.actor_id.is_not(None), AuditLog.actor_id != User.id))
    total = session.scalar(select(func.count()).select_from(old.subquery())) or 0
    rows = session.execute(untouched).all()
    user_ids, member_ids = [r[0] for r in rows], [r[1] for r in rows]
    if rows:
        # the application's own audit rows (no staff actor: the application, its login): they name
        # the applicant, who never confirmed being one
        session.execute(delete(AuditLog).where(
            AuditLog.actor_id.is_(None),
            AuditLog.member_id.in_(member_ids) | ((AuditLog.entity_type == "user") & AuditLog.entity_id.in_(user_ids))))
        session.execute(delete(User).where(User.id.in_(user_ids)))
        session.execute(delete(Member).where(Member.id.in_(member_ids)))
    session.flush()
    return {"deleted": len(rows), "kept": total - len(rows)}
