"""The emails of events, through the outbox. Each queue_* adds one outbox row in the caller's
transaction, keyed by the registration and the kind of email, so each is sent at most once; it
returns the row, or None (sent already, or no address). The caller commits."""
from __future__ import annotations

import base64
import re
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from membership.core.i18n import in_language, language_of
from membership.core.time import as_utc
from membership.events.models import EventRegistration
from membership.notifications import templating
from membership.notifications.outbox import enqueue


def event_link(event) -> str:
    return templating.link(f"/events/{event.id}")


def _price(minor: int, currency: str) -> str:
    return templating.format_money(minor, currency) if minor else ""


def event_context(session: Session, registration: EventRegistration) -> dict[str, Any]:
    """The event placeholders of an email about `registration` (plain values)."""
    from membership.events.dates import format_local
    from membership.events.dues import amount_due
    from membership.events.tokens import guest_cancel_token

    event = registration.event
    deadline = event.cancellation_deadline or event.starts_at
    due = amount_due(session, registration) if registration.status in ("confirmed", "attended") else 0
    return {
        "event_title": event.title,
        "event_start": format_local(event.starts_at),
        "event_end": format_local(event.ends_at),
        "event_venue": event.venue or event.online_url or "",
        "event_online_url": event.online_url or "",
        "event_link": event_link(event),
        "registration_status": registration.status,
        "price": _price(registration.price_minor, registration.currency),
        "amount_due": _price(due, registration.currency),
        "cancellation_deadline": format_local(deadline),
        # members cancel on the event page once signed in; a guest has no login, so a signed link
        "cancel_link": (event_link(event) if registration.member_id is not None
                        else templating.link(f"/events/cancel/{guest_cancel_token(registration)}")),
    }


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:50] or "event"


def ics_attachment(registration: EventRegistration, *, now: datetime) -> dict[str, str]:
    from membership.events.ics import event_ics

    event = registration.event
    data = event_ics(event, url=event_link(event), now=now)
    return {"filename": f"{_slug(event.title)}.ics", "content_type": "text/calendar",
            "data_b64": base64.b64encode(data).decode("ascii")}


def _queue(session: Session, registration: EventRegistration, kind: str, *, now: datetime,
           extra: dict[str, Any] | None = None, attach_ics: bool = False, key_suffix: str = ""):
    member = registration.member
    # the dates, prices and changes in the context are written in the recipient's language too
    language = language_of(member=member)
    with in_language(language):
        context = event_context(session, registration)
        context.update(extra() if callable(extra) else (extra or {}))
        return enqueue(
            session, template_key=kind, dedupe_key=f"{kind}:registration:{registration.id}{key_suffix}", now=now,
            member=member, to_address=None if member is not None else registration.guest_email,
            to_name=None if member is not None else registration.guest_name, context=context, source=registration,
            attachments=[ics_attachment(registration, now=now)] if attach_ics else None, language=language)


def queue_confirmation(session: Session, registration: EventRegistration, *, now: datetime):
    """'Your place is confirmed', with the event's .ics attached."""
    return _queue(session, registration, "event_confirmation", now=now, attach_ics=True)


def queue_waitlisted(session: Session, registration: EventRegistration, *, now: datetime):
    return _queue(session, registration, "event_waitlisted", now=now)


def queue_promoted(session: Session, registration: EventRegistration, *, now: datetime):
    """'A place is yours' to someone moved up from the waitlist, with the .ics attached."""
    return _queue(session, registration, "event_promoted", now=now, attach_ics=True)


def queue_registration_cancelled(session: Session, registration: EventRegistration, *, now: datetime):
    return _queue(session, registration, "event_registration_cancelled", now=now,
                  extra={"cancelled_by_staff": registration.cancelled_by == "staff"})


def queue_event_cancelled(session: Session, registration: EventRegistration, *, now: datetime):
    return _queue(session, registration, "event_cancelled", now=now,
                  extra={"cancel_reason": registration.event.cancel_reason or ""})


def queue_event_changed(session: Session, registration: EventRegistration, *, now: datetime, changes,
                        change_key: str):
    """'The event has moved' (or its place changed), once per registration and change (`change_key`
    names the new values, so saving the form again sends nothing); people with a place get the
    updated .ics, which replaces the old one in their calendar (same UID, higher SEQUENCE)."""
    from membership.events.models import SEATED_STATUSES
    # `changes`: the lines, or a function making them (called in the recipient's language)
    return _queue(session, registration, "event_changed", now=now,
                  extra=lambda: {"changes": changes() if callable(changes) else changes},
                  attach_ics=registration.status in SEATED_STATUSES, key_suffix=f":{change_key}")


def queue_reminder(session: Session, registration: EventRegistration, *, now: datetime):
    """The reminder before the start; keyed by the start too, so a moved event reminds again."""
    start = int(as_utc(registration.event.starts_at).timestamp())
    return _queue(session, registration, "event_reminder", now=now, key_suffix=f":start:{start}")


def queue_feedback_request(session: Session, registration: EventRegistration, *, now: datetime):
    from membership.events.tokens import feedback_token
    return _queue(session, registration, "event_feedback_request", now=now,
                  extra={"feedback_link": templating.link(f"/events/feedback/{feedback_token(registration)}")})


def queue_guest_confirm(session: Session, registration: EventRegistration, *, now: datetime):
    """The confirm-your-address link of a registration made from the public page."""
    from membership.events.tokens import guest_confirm_token
    return _queue(session, registration, "event_guest_confirm", now=now,
                  extra={"confirm_link": templating.link(f"/events/confirm/{guest_confirm_token(registration)}"),
                         "link_expires_in": "3 days"})
