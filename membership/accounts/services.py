"""Accounts: create staff and member logins, passwords, roles, deactivation."""
from __future__ import annotations

from flask_babel import gettext as _

import re
import unicodedata
from datetime import datetime
from functools import lru_cache
from importlib import resources

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from membership.accounts.models import ROLES, User, new_session_token
from membership.core.errors import Conflict, ValidationError
from membership.core.services import record_audit
from membership.core.validation import clean_email, clean_text

MIN_PASSWORD_LENGTH = 10
# scrypt is Werkzeug's default: a slow, memory-hard hash.
PASSWORD_METHOD = "scrypt"


def normalize_email(email: str) -> str:
    """The comparison key of an address: stripped, NFC, casefolded."""
    return unicodedata.normalize("NFC", (email or "").strip()).casefold()


@lru_cache(maxsize=1)
def _common_passwords() -> frozenset[str]:
    text = resources.files("membership").joinpath("data/common-passwords.txt").read_text("utf-8")
    return frozenset(line.strip().casefold() for line in text.splitlines() if line.strip())


# Runs of keys that people type as "passwords": the alphabet, digits, keyboard rows.
_SEQUENCES = ("abcdefghijklmnopqrstuvwxyz", "01234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm",
              "1qaz2wsx3edc4rfv5tgb6yhn", "qazwsxedcrfvtgbyhnujmikolp")
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "@": "a",
                       "$": "s", "!": "i", "|": "l", "+": "t"})
_EDGE_JUNK = re.compile(r"^[\W\d_]+|[\W\d_]+$")


def _guessable_cores(folded: str) -> set[str]:
    """The password with the decorations people add to a common word taken off: digits and symbols
    at either end ("Password2024!"), look-alike characters ("p@ssw0rd"), spaces and dashes."""
    cores = set()
    for text in (folded, folded.translate(_LEET)):
        joined = re.sub(r"[\s\-_.]+", "", text)
        cores.update((text, joined, _EDGE_JUNK.sub("", text), _EDGE_JUNK.sub("", joined)))
    return {c for c in cores if c}


def _is_sequence_or_repeat(text: str) -> bool:
    for unit in range(1, 5):  # "abcabcabcabc", "12121212121"
        if len(text) >= 6 and text == (text[:unit] * (len(text) // unit + 1))[:len(text)]:
            return True
    for run in _SEQUENCES:
        for source in (run, run[::-1]):
            if len(text) >= 6 and (source * 3).find(text) != -1:
                return True
    return False


def password_problem(password: str, *, email: str = "", name: str = "") -> str | None:
    """Why `password` is not acceptable, or None: at least 10 characters, not a common password
    (nor one dressed up with digits, symbols or look-alike letters), not a keyboard run or a
    repetition, and not built from the user's own email or name. In the language of the request."""
    from flask_babel import gettext as _

    if len(password) < MIN_PASSWORD_LENGTH:
        return _("Use at least %(count)s characters.", count=MIN_PASSWORD_LENGTH)
    if len(password) > 256:
        return _("Use at most %(count)s characters.", count=256)
    folded = unicodedata.normalize("NFC", password).casefold()
    too_common = _("This password is too common; choose one that is harder to guess.")
    if len(set(folded)) < 4:
        return too_common
    common = _common_passwords()
    for core in _guessable_cores(folded):
        if core in common or _is_sequence_or_repeat(core):
            return too_common
    local = normalize_email(email).split("@")[0]
    if local and len(local) >= 4 and local in folded:
        return _("The password must not contain your email address.")
    names = [part for part in re.split(r"\W+", unicodedata.normalize("NFC", name or "").casefold()) if part]
    joined = re.sub(r"[\s\-_.]+", "", folded)
    for part in names + (["".join(names)] if len(names) > 1 else []):
        # The name plus a few characters ("Rahman2026!") is guessed first by anyone who knows you.
        if len(part) >= 4 and part in joined and len(joined.replace(part, "", 1)) < 6:
            return _("The password must not be your name with a few characters added.")
    return None


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=PASSWORD_METHOD)


def get_user_by_email(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email_normalized == normalize_email(email)))


def authenticate(session: Session, email: str, password: str) -> User | None:
    """The active user with this email and password, or None (same answer for every failure)."""
    user = get_user_by_email(session, email)
    if user is None or not user.password_hash:
        # Spend the same time as a real check so timing does not reveal whether the email exists.
        check_password_hash(_dummy_hash(), password)
        return None
    if not check_password_hash(user.password_hash, password) or not user.is_active:
        return None
    return user


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return hash_password("not-a-real-password-at-all")


def create_user(session: Session, *, email: str, name: str, role: str, password: str | None,
                actor, now: datetime, member_id: int | None = None) -> User:
    """Create a login. Raises Conflict for a taken email, ValidationError for a bad role or password."""
    if role not in ROLES:
        raise ValidationError(f"Unknown role {role!r}.", field="role")
    email = clean_email(email, required=True)
    name = clean_text(name, field="name", label="Name", max_length=200) or ""
    if get_user_by_email(session, email) is not None:
        raise Conflict(_("A user with this email already exists."), field="email")
    if password is not None:
        problem = password_problem(password, email=email, name=name)
        if problem:
            raise ValidationError(problem, field="password")
    user = User(
        email=email.strip(), email_normalized=normalize_email(email), name=name.strip(), role=role,
        password_hash=hash_password(password) if password else None, created_at=now, member_id=member_id,
    )
    session.add(user)
    session.flush()
    if actor is not None:
        record_audit(session, actor=actor, action="user.create", entity=user, now=now,
                     summary=f"Created {role} account {user.email}")
    return user


def set_password(session: Session, user: User, password: str, *, actor, now: datetime) -> None:
    """Set a new password and end every other session of the user."""
    problem = password_problem(password, email=user.email, name=user.name)
    if problem:
        raise ValidationError(problem, field="password")
    user.password_hash = hash_password(password)
    user.session_token = new_session_token()
    record_audit(session, actor=actor, action="user.password", entity=user, now=now,
                 summary=f"Password changed for {user.email}")


def change_role(session: Session, user: User, role: str, *, actor, now: datetime) -> None:
    if role not in ROLES:
        raise ValidationError(f"Unknown role {role!r}.", field="role")
    if user.role == role:
        return
    if user.role == "admin" and role != "admin":
        _keep_one_admin(session, user)
    old = user.role
    user.role = role
    user.session_token = new_session_token()
    record_audit(session, actor=actor, action="user.role", entity=user, now=now,
                 summary=f"Role of {user.email}: {old} -> {role}", changes={"role": [old, role]})


def set_active(session: Session, user: User, active: bool, *, actor, now: datetime) -> None:
    """Deactivate (the user is logged out on their next request) or reactivate a login."""
    if user.is_active_flag == active:
        return
    if not active:
        if actor is not None and actor.id == user.id:
            raise Conflict(_("You cannot deactivate your own account."))
        if user.role == "admin":
            _keep_one_admin(session, user)
    user.is_active_flag = active
    user.deactivated_at = None if active else now
    user.session_token = new_session_token()
    record_audit(session, actor=actor, action="user.activate" if active else "user.deactivate",
                 entity=user, now=now,
                 summary=f"{'Reactivated' if active else 'Deactivated'} {user.email}")


def logout_everywhere(user: User) -> None:
    """Revoke every session of the user (logout)."""
    user.session_token = new_session_token()


def _keep_one_admin(session: Session, user: User) -> None:
    others = session.scalar(
        select(User.id).where(User.role == "admin", User.is_active_flag.is_(True), User.id != user.id).limit(1)
    )
    if others is None:
        raise Conflict(_("Samiti needs at least one active admin."))
