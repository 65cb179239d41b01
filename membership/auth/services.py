"""Account self-service: forgotten passwords and changes of email address.

Links are signed (itsdangerous), expire, and work once: each token carries a fingerprint of the
state it changes (the password hash, the current address), so using it voids it.

Every function takes a session and explicit `now`/`today`; it adds and flushes, the caller commits.
"""
from __future__ import annotations

from flask_babel import gettext as _
import hashlib
import secrets
from datetime import date, datetime

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

from membership.accounts import services as accounts
from membership.accounts.models import User
from membership.core.errors import Conflict, ValidationError
from membership.core.services import record_audit
from membership.core.validation import clean_email
from membership.members import services as members
from membership.notifications import templating
from membership.notifications.emails import queue_password_reset
from membership.notifications.outbox import enqueue
from membership.signup import services as signup

RESET_SALT = "samiti.password-reset.v1"
RESET_MAX_AGE = 3600
RESET_EXPIRES_TEXT = "1 hour"
EMAIL_SALT = "samiti.email-change.v1"
EMAIL_MAX_AGE = 24 * 3600
EMAIL_EXPIRES_TEXT = "24 hours"


def _digest(text: str | None) -> str:
    return hashlib.sha256((text or "").encode()).hexdigest()[:24]


def _loads(salt: str, token: str, max_age: int) -> tuple[dict | None, str | None]:
    """(payload, None), or (None, "expired" / "invalid")."""
    serializer = URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=salt)
    try:
        data = serializer.loads(token, max_age=max_age)
    except SignatureExpired:
        return None, "expired"
    except BadSignature:
        return None, "invalid"
    if not isinstance(data, dict) or not isinstance(data.get("u"), int):
        return None, "invalid"
    return data, None


# ---------------------------------------------------------------- forgotten password


def reset_token(user: User) -> str:
    """Names the login, its current password (hash fingerprint) and address: setting a password
    or changing the address voids every earlier link."""
    serializer = URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=RESET_SALT)
    return serializer.dumps({"u": user.id, "p": _digest(user.password_hash), "e": _digest(user.email_normalized),
                             "n": secrets.token_hex(4)})


def user_from_reset_token(session: Session, token: str) -> tuple[User | None, str | None]:
    """(user, None) for a usable link; (None, "expired" / "invalid" / "used")."""
    data, problem = _loads(RESET_SALT, token, RESET_MAX_AGE)
    if problem:
        return None, problem
    user = session.get(User, data["u"])
    if user is None or data.get("e") != _digest(user.email_normalized):
        return None, "invalid"
    if data.get("p") != _digest(user.password_hash):
        return None, "used"
    if not (user.is_active_flag or signup.awaiting_confirmation(user)):
        return None, "invalid"
    return user, None


def request_password_reset(session: Session, email: str, *, now: datetime) -> bool:
    """Email a link that sets a new password, if `email` belongs to a login that may have one.

    A member whose record has this address but who never had a login (added by staff or an
    import) gets one now, without a password: the link lets them choose it. Deactivated logins
    get nothing. Returns whether an email was queued; the caller answers the same either way.
    """
    try:
        email = clean_email(email, required=True)
    except ValidationError:
        return False
    user = accounts.get_user_by_email(session, email)
    if user is None:
        member = members.find_by_email(session, email)
        if member is None or member.erased_at is not None:
            return False
        if session.scalar(select(User.id).where(User.member_id == member.id)) is not None:
            return False  # the member's login uses another address: that is the one to type
        user = accounts.create_user(session, email=member.email, name=member.full_name, role="member",
                                    password=None, actor=None, now=now, member_id=member.id)
        record_audit(session, actor=None, action="user.create", entity=user, now=now, member_id=member.id,
                     summary=f"Member login created for {user.email} (asked for a password link)")
    if not (user.is_active_flag or signup.awaiting_confirmation(user)):
        return False
    link = templating.link(f"/password/reset/{reset_token(user)}")
    queue_password_reset(session, user, reset_link=link, now=now, link_expires_in=RESET_EXPIRES_TEXT)
    return True


def reset_password(session: Session, user: User, password: str, *, now: datetime, today: date) -> None:
    """Set the new password of a reset link; every session of the user ends (set_password rotates
    the session token). The link proved the mailbox, so an application waiting for confirmation is
    confirmed too. Raises ValidationError (field "password") for a weak password."""
    problem = accounts.password_problem(password or "", email=user.email, name=user.name)
    if problem:
        raise ValidationError(problem, field="password")
    if signup.awaiting_confirmation(user):
        signup.confirm(session, user, now=now, today=today)
    elif user.email_verified_at is None:
        user.email_verified_at = now
    accounts.set_password(session, user, password, actor=user, now=now)


# ---------------------------------------------------------------- change of email address


def email_change_token(user: User, new_email: str) -> str:
    serializer = URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=EMAIL_SALT)
    return serializer.dumps({"u": user.id, "old": _digest(user.email_normalized), "new": new_email,
                             "n": secrets.token_hex(4)})


def _address_taken(session: Session, email: str, user: User) -> bool:
    other_user = accounts.get_user_by_email(session, email)
    if other_user is not None and other_user.id != user.id:
        return True
    other_member = members.find_by_email(session, email)
    return other_member is not None and other_member.id != user.member_id


def request_email_change(session: Session, user: User, new_email: str, *, now: datetime) -> str:
    """Email a confirmation link to `new_email`; the address changes only when it is used.
    Returns the cleaned address. Raises ValidationError (field "email") for a bad, unchanged or
    taken address."""
    new_email = clean_email(new_email, required=True)
    if accounts.normalize_email(new_email) == user.email_normalized:
        raise ValidationError(_("This is already your email address."), field="email")
    if _address_taken(session, new_email, user):
        raise ValidationError(_("This address cannot be used for your account. If it is yours, "
                              "contact us."), field="email")
    link = templating.link(f"/account/email/confirm/{email_change_token(user, new_email)}")
    enqueue(session, template_key="email_change_confirm",
            dedupe_key=f"email_change:user:{user.id}:{_digest(link)}", now=now, member=user.member,
            to_address=new_email, to_name=user.name or None, source=user,
            context={"confirm_link": link, "link_expires_in": EMAIL_EXPIRES_TEXT, "new_email": new_email,
                     "old_email": user.email})
    record_audit(session, actor=user, action="user.email_change_request", entity=user, now=now,
                 member_id=user.member_id, summary=f"Asked to change the email address to {new_email}")
    return new_email


def pending_email_change(session: Session, token: str) -> tuple[User | None, str | None, str | None]:
    """(user, new address, None) for a usable link; (None, None, problem) otherwise, with problem
    "expired", "invalid" or "used" (the address has changed since the link was sent)."""
    data, problem = _loads(EMAIL_SALT, token, EMAIL_MAX_AGE)
    if problem:
        return None, None, problem
    user = session.get(User, data["u"])
    new_email = data.get("new")
    if user is None or not user.is_active or not isinstance(new_email, str):
        return None, None, "invalid"
    if _digest(user.email_normalized) != data.get("old"):
        return None, None, "used"
    return user, new_email, None


def change_email(session: Session, user: User, new_email: str, *, now: datetime) -> None:
    """Make `new_email` the address of the login and of its member record (audited, and recorded
    as the member's own change), and tell the old address. Raises Conflict when the address was
    taken meanwhile."""
    new_email = clean_email(new_email, required=True)
    if _address_taken(session, new_email, user):
        raise Conflict(_("This address is now used by another account, so it cannot be yours here. Contact us."))
    old = user.email
    member = user.member
    if member is not None:
        members.update_member(session, member, members.MemberData({"email": new_email}), actor=user, now=now,
                              by_member=True)
    user.email = new_email
    user.email_normalized = accounts.normalize_email(new_email)
    user.email_verified_at = now
    record_audit(session, actor=user, action="user.email", entity=user, now=now, member_id=user.member_id,
                 summary=f"Email address changed from {old} to {new_email}",
                 changes={"email": [old, new_email]})
    session.flush()
    key = f"email_changed:user:{user.id}:{_digest(old + new_email + now.isoformat())}"
    enqueue(session, template_key="email_changed", dedupe_key=key, now=now, member=member, to_address=old,
            to_name=user.name or None, source=user, context={"old_email": old, "new_email": new_email})
