"""The member's one-click unsubscribe: signed links (RFC 8058) and turning marketing emails off.

Apart from emails.py so the outbox, which puts the link in every marketing email, needs only this
module (and this one needs only the outbox's table): no import loop between emails and outbox.
"""
from __future__ import annotations

import functools
from datetime import datetime

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import update
from sqlalchemy.orm import Session

from membership.core.services import record_activity, record_audit
from membership.notifications.models import OutboxMessage
from membership.notifications.templating import link

UNSUBSCRIBE_SALT = "samiti.unsubscribe.v1"
UNSUBSCRIBE_PATH = "/mail/unsubscribe/"



def _serializer() -> URLSafeSerializer:
    return _serializer_for(current_app.config["SECRET_KEY"])


@functools.lru_cache(maxsize=8)
def _serializer_for(secret_key: str) -> URLSafeSerializer:
    # made once per key: a campaign signs one link per email, thousands in a run
    return URLSafeSerializer(secret_key, salt=UNSUBSCRIBE_SALT)


def unsubscribe_token(member, campaign_id: int | None = None) -> str:
    """A signed token naming the member (and the campaign whose email carried it, so the
    campaign's report counts the unsubscribe). It does not expire: an unsubscribe link in an old
    email must still work (RFC 8058)."""
    data = {"m": member.id}
    if campaign_id is not None:
        data["c"] = campaign_id
    return _serializer().dumps(data)


def unsubscribe_url(member, campaign_id: int | None = None) -> str:
    return link(UNSUBSCRIBE_PATH + unsubscribe_token(member, campaign_id))


def campaign_from_token(token: str) -> int | None:
    """The campaign id a (validly signed) unsubscribe token names, else None."""
    try:
        data = _serializer().loads(token)
    except BadSignature:
        return None
    value = data.get("c") if isinstance(data, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def member_from_token(session: Session, token: str):
    """The member a token names, or None for a bad signature or a member who no longer exists."""
    from membership.members.models import Member

    try:
        data = _serializer().loads(token)
    except BadSignature:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("m"), int):
        return None
    return session.get(Member, data["m"])


def unsubscribe(session: Session, member, *, now: datetime, via: str, source=None) -> bool:
    """Turn off marketing emails for `member` and cancel the marketing emails still queued.

    Records a 'profile_updated' activity (its source: `source`, e.g. the campaign whose link was
    used, else the member) and an audit row. Returns False when the member had already opted out
    (nothing written). Caller commits.
    """
    if not member.marketing_opt_in:
        return False
    member.marketing_opt_in = False
    member.updated_at = now
    cancelled = session.execute(
        update(OutboxMessage).where(OutboxMessage.member_id == member.id, OutboxMessage.category == "marketing",
                                    OutboxMessage.status == "queued").values(status="cancelled")).rowcount
    record_activity(session, member_id=member.id, kind="profile_updated", occurred_at=now, source=source or member,
                    detail={"marketing_opt_in": False, "via": via})
    record_audit(session, actor=None, action="member.unsubscribe", entity=member, now=now, member_id=member.id,
                 summary=f"Unsubscribed from marketing emails ({via})"
                 + (f"; {cancelled} queued email(s) cancelled" if cancelled else ""),
                 changes={"marketing_opt_in": [True, False]})
    session.flush()
    return True
