"""API token operations: create (the secret is shown once), list, revoke, authenticate."""
from __future__ import annotations

from flask_babel import gettext as _

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from membership.accounts.models import User
from membership.api.models import API_SCOPES, ApiToken
from membership.core.errors import Conflict, NotFound, ValidationError
from membership.core.services import record_audit
from membership.core.validation import clean_text

TOKEN_PREFIX = "smt_"
# last_used_at is written at most this often, so a busy integration does not write on every read
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def clean_scopes(scopes) -> str:
    """The scopes as stored ("read", "write" or "read write"). Raises ValidationError."""
    chosen = [s for s in API_SCOPES if s in set(scopes or ())]
    unknown = set(scopes or ()) - set(API_SCOPES)
    if unknown or not chosen:
        raise ValidationError(_("Choose the scopes: read, write or both."), field="scopes")
    return " ".join(chosen)


def create_token(session: Session, *, name: str, scopes, owner: User, actor, now: datetime,
                 expires_at: datetime | None = None) -> tuple[ApiToken, str]:
    """Create a token for `owner` (an active admin or staff login: writes are audited as them) and
    return it with its secret, which is never stored and cannot be shown again. Flushes; the caller
    commits. Raises ValidationError."""
    name = clean_text(name, field="name", label="Name", max_length=100, required=True)
    scope_text = clean_scopes(scopes)
    if owner is None or owner.role not in ("admin", "staff") or not owner.is_active:
        raise ValidationError(_("The owner must be an active staff account."), field="owner")
    if expires_at is not None and expires_at <= now:
        raise ValidationError(_("The expiry must be in the future."), field="expires_on")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(name=name, token_hash=hash_secret(secret), prefix=secret[:len(TOKEN_PREFIX) + 6],
                     scopes=scope_text, owner_id=owner.id, created_by_id=getattr(actor, "id", None),
                     created_at=now, expires_at=expires_at)
    session.add(token)
    session.flush()
    record_audit(session, actor=actor, action="api_token.create", entity=token, now=now,
                 summary=f"Created API token {token.prefix}… {name!r} ({scope_text}) for {owner.email}")
    return token, secret


def revoke_token(session: Session, token: ApiToken, *, actor, now: datetime) -> None:
    """Revoke a token for good. Raises Conflict if it is already revoked. The caller commits."""
    if token.revoked_at is not None:
        raise Conflict(_("This token is already revoked."))
    token.revoked_at = now
    record_audit(session, actor=actor, action="api_token.revoke", entity=token, now=now,
                 summary=f"Revoked API token {token.prefix}… {token.name!r}")


def find_token(session: Session, ident: str) -> ApiToken:
    """A token by id or by its prefix (as listed). Raises NotFound."""
    ident = (ident or "").strip()
    token = None
    if ident.isdigit() and int(ident) < 2**31:
        token = session.get(ApiToken, int(ident))
    if token is None and ident:
        token = session.scalar(select(ApiToken).where(ApiToken.prefix == ident.rstrip("…")))
    if token is None:
        raise NotFound(f"No API token {ident!r}.")
    return token


def list_tokens(session: Session, *, include_revoked: bool = True) -> list[ApiToken]:
    stmt = select(ApiToken).order_by(ApiToken.revoked_at.is_not(None), ApiToken.created_at.desc(), ApiToken.id.desc())
    if not include_revoked:
        stmt = stmt.where(ApiToken.revoked_at.is_(None))
    return list(session.scalars(stmt))


def authenticate(session: Session, secret: str, *, now: datetime) -> ApiToken | None:
    """The usable token with this secret (not revoked, not expired, owner still active staff), or
    None. Notes when it was used (at most once a minute); the caller commits."""
    if not secret or len(secret) > 200 or not secret.startswith(TOKEN_PREFIX):
        return None
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_secret(secret)))
    if token is None or not token.is_usable(now):
        return None
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        token.last_used_at = now
    return token
