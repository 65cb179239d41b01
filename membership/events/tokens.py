"""The signed links of event emails (a guest's confirm and cancel links, the feedback link): made by
the emails, read back by the services. Apart from services.py so the emails need not import it."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from flask import current_app
from flask_babel import gettext as _
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from membership.core.errors import ValidationError
from membership.core.time import as_utc
from membership.events.models import EventRegistration

GUEST_CONFIRM_SALT = "samiti.event-guest-confirm.v1"
GUEST_CONFIRM_MAX_AGE = timedelta(days=3)
GUEST_CANCEL_SALT = "samiti.event-guest-cancel.v1"
GUEST_CANCEL_MAX_AGE = timedelta(days=400)  # longer than any registration window
FEEDBACK_SALT = "samiti.event-feedback.v1"
FEEDBACK_MAX_AGE = timedelta(days=60)


def _serializer(salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=salt)


def load_token(token: str, salt: str, max_age: timedelta, now: datetime | None, what: str) -> dict:
    try:
        data, signed_at = _serializer(salt).loads(token, return_timestamp=True)
    except SignatureExpired:  # pragma: no cover - no max_age is given to itsdangerous
        raise ValidationError(" ".join(filter(None, [_("This link has expired."), _(what) if what else ""])),
                              field="token") from None
    except (BadSignature, ValueError, TypeError):
        raise ValidationError(_("This link is not valid. Please check that you copied all of it."),
                              field="token") from None
    now = now or datetime.now(timezone.utc)
    if now - as_utc(signed_at) > max_age:
        raise ValidationError(" ".join(filter(None, [_("This link has expired."), _(what) if what else ""])),
                              field="token")
    if not isinstance(data, dict) or not isinstance(data.get("r"), int):
        raise ValidationError(_("This link is not valid. Please check that you copied all of it."), field="token")
    return data


def guest_confirm_token(registration: EventRegistration) -> str:
    """The signed token of the guest's confirmation link (expires in 3 days)."""
    return _serializer(GUEST_CONFIRM_SALT).dumps({"r": registration.id, "k": registration.person_key})


def guest_cancel_token(registration: EventRegistration) -> str:
    """Signed token of the cancel link in a guest's emails (a guest has no login)."""
    return _serializer(GUEST_CANCEL_SALT).dumps({"r": registration.id, "k": registration.person_key})


def feedback_token(registration: EventRegistration) -> str:
    """Signed token for the feedback link in the feedback-request email (valid 60 days)."""
    return _serializer(FEEDBACK_SALT).dumps({"r": registration.id})
