"""Touchpoints recorded from the web edges: sign-ins (once per member and local day), email opens
(a 1x1 image) and email link clicks (signed redirect links limited to the site's own URLs).

Tokens are signed with the app's SECRET_KEY and do not expire: a link in an old email must still
lead somewhere. They name the outbox message (and, for clicks, the target URL), never the member,
so a forwarded email cannot be used to learn whose it was.

All functions add rows to the caller's session; the caller commits.
"""
from __future__ import annotations

import hashlib
import html
import re
from datetime import datetime
from urllib.parse import urlsplit

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy.orm import Session

from membership.core.services import record_activity_once
from membership.core.time import local_date

OPEN_SALT = "samiti.mail-open.v1"
CLICK_SALT = "samiti.mail-click.v1"
OPEN_PATH = "/mail/o/"
CLICK_PATH = "/mail/c/"
# Never tracked: the unsubscribe link must work exactly as sent (RFC 8058), and our own tracking
# links must not be wrapped twice.
UNTRACKED_PATHS = ("/mail/unsubscribe/", OPEN_PATH, CLICK_PATH)
SOURCE_TYPE = "outboxmessage"

# The smallest transparent GIF (43 bytes).
PIXEL_GIF = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
             b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")

_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)


def _base_url() -> str:
    return (current_app.config.get("BASE_URL") or "http://127.0.0.1:5000").rstrip("/")


def _serializer(salt: str) -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=salt)


def is_own_url(url: str) -> bool:
    """An absolute http(s) URL on the host (and port) of BASE_URL."""
    try:
        target, base = urlsplit(url), urlsplit(_base_url())
    except ValueError:
        return False
    return (target.scheme in ("http", "https") and bool(target.netloc)
            and target.netloc.lower() == base.netloc.lower() and "\\" not in url
            and not any(ord(c) < 33 for c in url))


def open_token(message_id: int) -> str:
    return _serializer(OPEN_SALT).dumps(message_id)


def click_token(message_id: int, url: str) -> str:
    return _serializer(CLICK_SALT).dumps({"m": message_id, "u": url})


def read_open_token(token: str) -> int | None:
    """The outbox message id a pixel token names, or None for anything not signed by us."""
    try:
        value = _serializer(OPEN_SALT).loads(token)
    except (BadSignature, ValueError, UnicodeError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def read_click_token(token: str) -> tuple[int, str] | None:
    """(message id, target URL) of a click token, or None for anything not signed by us."""
    try:
        value = _serializer(CLICK_SALT).loads(token)
    except (BadSignature, ValueError, UnicodeError):
        return None
    if not isinstance(value, dict):
        return None
    message_id, url = value.get("m"), value.get("u")
    if not isinstance(message_id, int) or isinstance(message_id, bool) or not isinstance(url, str):
        return None
    return message_id, url


def _trackable(url: str) -> bool:
    if not is_own_url(url):
        return False
    path = urlsplit(url).path
    return not any(path.startswith(p) for p in UNTRACKED_PATHS)


def add_tracking(body_html: str, message_id: int) -> str:
    """The HTML part of email `message_id` with its links to the site's own pages wrapped in click
    links and an open pixel before </body>. Links elsewhere (and the unsubscribe link) stay as they
    are; the text part is never touched."""
    base = _base_url()

    def wrap(match: re.Match) -> str:
        url = html.unescape(match.group(3)).strip()
        if not _trackable(url):
            return match.group(0)
        tracked = base + CLICK_PATH + click_token(message_id, url)
        return f"{match.group(1)}{match.group(2)}{html.escape(tracked)}{match.group(2)}"

    out = _HREF.sub(wrap, body_html)
    pixel = (f'<img src="{html.escape(base + OPEN_PATH + open_token(message_id))}.gif" width="1" height="1" '
             f'alt="" style="display:block;border:0;width:1px;height:1px">')
    lower = out.lower()
    at = lower.rfind("</body>")
    return out[:at] + pixel + out[at:] if at >= 0 else out + pixel


def record_open(session: Session, message, *, now: datetime) -> bool:
    """Record `email_opened` for the member of outbox `message`, once per message (the activity's
    unique dedupe key holds that under concurrent requests too). Returns True when a row was added
    (False: no member, or already recorded)."""
    if message is None or message.member_id is None:
        return False
    return record_activity_once(session, dedupe_key=f"email_opened:{message.id}", member_id=message.member_id,
                                kind="email_opened", occurred_at=now, source=message,
                                detail={"template": message.template_key})


def record_click(session: Session, message, url: str, *, now: datetime) -> bool:
    """Record `email_clicked` (once per message and link) and, since a click proves the email was
    read even with images blocked, its `email_opened` if none was recorded."""
    if message is None or message.member_id is None:
        return False
    record_open(session, message, now=now)
    digest = hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return record_activity_once(session, dedupe_key=f"email_clicked:{message.id}:{digest}",
                                member_id=message.member_id, kind="email_clicked", occurred_at=now,
                                source=message, detail={"template": message.template_key, "url": url[:500]})


def record_login(session: Session, member_id: int, *, now: datetime, zone) -> bool:
    """Record `logged_in` for the member once per local day (in the association's `zone`), also
    when two sign-ins race. Returns True when a row was added."""
    day = local_date(now, zone)
    return record_activity_once(session, dedupe_key=f"logged_in:{member_id}:{day.isoformat()}",
                                member_id=member_id, kind="logged_in", occurred_at=now)
