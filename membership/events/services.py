"""Events domain: the one place that creates events, registers people, moves seats and records
attendance. Views (staff, public, portal), the scheduler and the CLI all call these functions.

CONTRACT (written first so the views were built in parallel): the names, arguments and return
values below are fixed. Every function takes a session and an
explicit `now` (aware UTC) and `actor` (a User or None); it adds and flushes, the caller commits.
Errors are membership.core.errors: ValidationError(message, field=...) for bad input (422),
Conflict(message) for a state that forbids the action (409), NotAllowed... (see below).

Rules (issue 5):
- Times are stored in UTC; the association's zone decides what the staff typed.
- Registration is open when the event is published, now >= registration_opens_at (or published),
  now < registration_closes_at (or the start), and the event has not started.
- Members-only events take only members whose status is current (active or grace) on the day.
- The price follows the registrant's status on the day of registering: member price for a
  current member, non-member price otherwise (a guest). 0 = free; a paid registration is
  confirmed (holds a seat) and shows what is due until staff record a payment against it.
- Seats: `seats_taken` changes only through one atomic UPDATE ... WHERE capacity IS NULL OR
  seats_taken < capacity; no seat and waitlist on: waitlisted (in the order people joined the waitlist: waitlisted_at, id;
  a guest joins it when they confirm their email, not when they filled in the form);
  no seat and waitlist off: Conflict(_("This event is full.")).
- One live registration per person and event (person_key "member:<id>" / "guest:<email>"):
  registering again returns the existing live registration (idempotent; a double click
  registers once).
- Cancelling a seated registration frees its seat and promotes the first waitlisted person
  (emailed). People cancel themselves until the cancellation deadline (or the start); staff any time.
- Emails through the outbox, each once (dedupe keys name the registration and the email).
- Activities (core.services.record_activity) for members: event_registered, event_cancelled,
  event_attended, event_no_show, feedback_given.
"""
from __future__ import annotations

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
import hashlib
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from membership.core import formats
from membership.core.errors import Conflict, ValidationError
from membership.core.i18n import N_
from membership.core.services import record_activity, record_audit
from membership.engagement.live import members_changed
from membership.core.time import as_utc, local_date, tz
from membership.core.validation import clean_email, clean_text, label_text
from membership.events.dates import format_local, zone_of as _zone
from membership.events.tokens import (
    FEEDBACK_MAX_AGE, FEEDBACK_SALT, GUEST_CANCEL_MAX_AGE, GUEST_CANCEL_SALT, GUEST_CONFIRM_MAX_AGE,
    GUEST_CONFIRM_SALT, load_token)
from membership.events.models import (
    LIVE_STATUSES, SEATED_STATUSES, Event, EventFeedback, EventRegistration)

E = Event.__table__
R_T = EventRegistration.__table__
# feedback requests go only for events that ended this recently (turning the feature on, or a
# scheduler down for a while, must not email people about events of months ago)
FEEDBACK_REQUEST_WINDOW = timedelta(days=14)
REMINDER_MAX_HOURS = 720

# ---------------------------------------------------------------- helpers


def _opens_text(dt: datetime) -> str:
    return format_local(dt, pattern="d MMMM y 'at' HH:mm")


def _is_current(session: Session, member, now: datetime) -> bool:
    """The member's status on the local day of `now`, from their terms (and their organisation's);
    the cached status when they have no terms at all (nothing better is known)."""
    if member is None:
        return False
    from membership.plans.services import effective_terms
    from membership.plans.status import holder_status
    terms = effective_terms(session, member)
    if not terms:
        return member.is_current
    return holder_status(terms, local_date(now, tz())).status in ("active", "grace")


def _member_key(member) -> str:
    return f"member:{member.id}"


def _guest_key(email: str) -> str:
    from membership.accounts.services import normalize_email
    return f"guest:{normalize_email(email)}"


def _live_registration(session: Session, event: Event, person_key: str) -> EventRegistration | None:
    return session.scalar(select(EventRegistration).where(
        EventRegistration.event_id == event.id, EventRegistration.person_key == person_key,
        EventRegistration.status != "cancelled"))


def _take_seat(session: Session, event: Event) -> bool:
    """One atomic UPDATE: a seat when there is one (on PostgreSQL it also locks the event row to
    the end of the transaction, so seat moves for one event are serialised)."""
    session.flush()
    taken = session.execute(
        update(E).where(E.c.id == event.id, or_(E.c.capacity.is_(None), E.c.seats_taken < E.c.capacity))
        .values(seats_taken=E.c.seats_taken + 1)).rowcount == 1
    session.expire(event, ["seats_taken"])
    return taken


def _release_seat(session: Session, event: Event) -> None:
    session.flush()
    session.execute(update(E).where(E.c.id == event.id, E.c.seats_taken > 0)
                    .values(seats_taken=E.c.seats_taken - 1))
    session.expire(event, ["seats_taken"])


def _claim(session: Session, registration: EventRegistration, was: str | tuple[str, ...], **values) -> bool:
    """Change a registration only if its status is still `was`: one conditional UPDATE, so two
    transactions acting on one registration at once (a double click, two staff) cannot both
    succeed (on PostgreSQL the second waits, then finds the status changed). Refreshes it."""
    session.flush()
    was = (was,) if isinstance(was, str) else was
    done = session.execute(update(R_T).where(R_T.c.id == registration.id, R_T.c.status.in_(was))
                           .values(**values)).rowcount == 1
    session.refresh(registration)
    return done


def _detail(event: Event, **extra) -> dict[str, Any]:
    return {"event_id": event.id, "title": event.title, **extra}


def _activity(session: Session, registration: EventRegistration, kind: str, at: datetime, **extra) -> None:
    if registration.member_id is not None:
        record_activity(session, member_id=registration.member_id, kind=kind, occurred_at=at,
                        source=registration, detail=_detail(registration.event, **extra))


def _is_staff_source(source: str) -> bool:
    return source in ("staff", "walk_in")


# ---------------------------------------------------------------- validation


@dataclass
class EventData:
    """Validated event fields, as the staff form gives them (local times are already UTC here)."""
    values: dict[str, Any] = field(default_factory=dict)


_TRUE = {"1", "true", "on", "yes", "y"}
_DATETIME_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S")
_LABELS = {"starts_at": N_("Start"), "ends_at": N_("End"), "registration_opens_at": N_("Registration opening"),
           "registration_closes_at": N_("Registration closing"), "cancellation_deadline": N_("Cancellation deadline")}
# An event's status in words, for messages ("this event is published").
_STATUS_WORDS = {"draft": N_("a draft"), "published": N_("published"), "cancelled": N_("cancelled"),
                 "finished": N_("finished")}


def _status_words(status: str) -> str:
    return _(_STATUS_WORDS.get(status, status))


def _blank(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _bool(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in _TRUE
    return bool(value)


def _moment(data: dict[str, Any], name: str, zone: ZoneInfo, *, required: bool = False) -> datetime | None:
    """A naive local time in `zone` (or an aware one) -> aware UTC. Refuses times the clocks skip."""
    value = data.get(name)
    label = label_text(_LABELS[name])
    if _blank(value):
        if required:
            raise ValidationError(_("%(label)s: enter a date and time.", label=label), field=name)
        return None
    if isinstance(value, str):
        text = value.strip()
        for fmt in _DATETIME_FORMATS:
            try:
                value = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
        else:
            raise ValidationError(_("%(label)s: enter a date and time like 2027-03-09 18:30.", label=label), field=name)
    elif isinstance(value, date) and not isinstance(value, datetime):
        value = datetime.combine(value, datetime.min.time())
    if not isinstance(value, datetime):
        raise ValidationError(_("%(label)s: enter a date and time.", label=label), field=name)
    if value.tzinfo is not None:
        return value.astimezone(timezone.utc)
    local = value.replace(tzinfo=zone)
    back = local.astimezone(timezone.utc).astimezone(zone)
    if back.replace(tzinfo=None) != value:
        raise ValidationError(_("%(label)s: %(time)s does not exist on %(day)s in %(zone)s (the clocks go forward); "
                                "choose another time.", label=label, time=formats.strftime(value, "%H:%M"),
                                day=formats.strftime(value, "%d %B %Y"), zone=zone.key), field=name)
    return local.astimezone(timezone.utc)


def _money(data: dict[str, Any], name: str, label: str) -> int:
    label = label_text(label)
    like = _("%(label)s: enter an amount like 250.00.", label=label)
    if f"{name}_minor" in data and name not in data:
        value = data[f"{name}_minor"]
        if _blank(value):
            return 0
        try:
            minor = int(value)
        except (TypeError, ValueError):
            raise ValidationError(like, field=name) from None
    else:
        value = data.get(name)
        if _blank(value):
            return 0
        try:
            amount = Decimal(str(value).strip().replace(",", ""))
        except InvalidOperation:
            raise ValidationError(like, field=name) from None
        if not amount.is_finite():
            raise ValidationError(like, field=name)
        if amount != amount.quantize(Decimal("0.01")):
            raise ValidationError(_("%(label)s: at most two decimals.", label=label), field=name)
        minor = int(amount * 100)
    if minor < 0:
        raise ValidationError(_("%(label)s cannot be negative.", label=label), field=name)
    if minor > 10**11:
        raise ValidationError(_("%(label)s is too large.", label=label), field=name)
    return minor


def _int(data: dict[str, Any], name: str, label: str, *, low: int, high: int | None = None,
         low_message: str | None = None) -> int | None:
    value = data.get(name)
    if _blank(value):
        return None
    label = label_text(label)
    if isinstance(value, bool):
        raise ValidationError(_("%(label)s must be a whole number.", label=label), field=name)
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ValidationError(_("%(label)s must be a whole number.", label=label), field=name) from None
    if number < low:
        raise ValidationError(low_message or _("%(label)s cannot be below %(low)s.", label=label,
                                               low=formats.digits(str(low))), field=name)
    if high is not None and number > high:
        raise ValidationError(_("%(label)s can be at most %(high)s.", label=label, high=formats.digits(str(high))),
                              field=name)
    return number


def _url(value) -> str | None:
    text = clean_text(value, field="online_url", label=N_("Online link"), max_length=500)
    if text is None:
        return None
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or re.search(r"\s", text):
        raise ValidationError(_("Online link: enter a web address starting with http:// or https://."),
                              field="online_url")
    return text


def validate_event(data: dict[str, Any], *, zone, currency: str) -> EventData:
    """Check and convert a staff form's raw values: title (required, <= 200), description,
    starts_at/ends_at (naive local datetimes in `zone`, or aware; end after start), venue,
    online_url (http/https), capacity (blank = unlimited, an integer >= 0), waitlist_enabled,
    registration_opens_at/closes_at (optional; closes after opens, closes no later than the end),
    cancellation_deadline (optional), members_only, member_price / non_member_price (decimal
    strings in major units, e.g. "250.00"; blank = 0; never negative), reminder_hours_before
    (blank = no reminder; 0..720). Raises ValidationError naming the field."""
    zone = _zone(zone)
    v: dict[str, Any] = {}
    v["title"] = clean_text(data.get("title"), field="title", label=N_("Title"), max_length=200, required=True)
    v["description"] = clean_text(data.get("description"), field="description", label=N_("Description"),
                                  max_length=20_000, multiline=True)
    v["starts_at"] = _moment(data, "starts_at", zone, required=True)
    v["ends_at"] = _moment(data, "ends_at", zone, required=True)
    if v["ends_at"] <= v["starts_at"]:
        raise ValidationError(_("The end must be after the start."), field="ends_at")
    v["venue"] = clean_text(data.get("venue"), field="venue", label=N_("Venue"), max_length=300)
    v["online_url"] = _url(data.get("online_url"))
    v["capacity"] = _int(data, "capacity", N_("Capacity"), low=0, high=1_000_000,
                         low_message=_("Capacity cannot be below zero (leave it blank for unlimited)."))
    v["waitlist_enabled"] = _bool(data.get("waitlist_enabled", True))
    v["registration_opens_at"] = _moment(data, "registration_opens_at", zone)
    v["registration_closes_at"] = _moment(data, "registration_closes_at", zone)
    opens, closes = v["registration_opens_at"], v["registration_closes_at"]
    if opens is not None and closes is not None and closes <= opens:
        raise ValidationError(_("Registration must close after it opens."), field="registration_closes_at")
    if closes is not None and closes > v["ends_at"]:
        raise ValidationError(_("Registration must close no later than the end of the event."),
                              field="registration_closes_at")
    if opens is not None and opens >= v["ends_at"]:
        raise ValidationError(_("Registration must open before the event ends."), field="registration_opens_at")
    v["cancellation_deadline"] = _moment(data, "cancellation_deadline", zone)
    if v["cancellation_deadline"] is not None and v["cancellation_deadline"] > v["ends_at"]:
        raise ValidationError(_("The cancellation deadline must be no later than the end of the event."),
                              field="cancellation_deadline")
    v["members_only"] = _bool(data.get("members_only", False))
    v["member_price_minor"] = _money(data, "member_price", N_("Member price"))
    v["non_member_price_minor"] = _money(data, "non_member_price", N_("Non-member price"))
    v["reminder_hours_before"] = _int(data, "reminder_hours_before", N_("Reminder hours before"), low=0,
                                      high=REMINDER_MAX_HOURS,
                                      low_message=_("Reminder hours before cannot be negative."))
    if not currency or len(currency) != 3:
        raise ValidationError(_("Currency: a three-letter code."), field="currency")
    v["currency"] = currency.upper()
    return EventData(v)


# ---------------------------------------------------------------- events


def create_event(session: Session, data: EventData, *, now: datetime, actor) -> Event:
    """A new draft event (audited)."""
    event = Event(**data.values, status="draft", seats_taken=0, created_at=now, updated_at=now,
                  created_by_id=getattr(actor, "id", None))
    session.add(event)
    session.flush()
    record_audit(session, actor=actor, action="event.create", entity=event, now=now,
                 summary=f"Event '{event.title}' created (draft)")
    return event


def _check_editable(event: Event) -> None:
    if event.status == "cancelled":
        raise Conflict(_("This event was cancelled; it can no longer be changed."))
    if event.status == "finished":
        raise Conflict(_("This event has finished; it can no longer be changed."))


# Changes to a published event that people registered for need to hear about.
TOLD_CHANGES = {"starts_at": _l("Start"), "ends_at": _l("End"), "venue": _l("Place"), "online_url": _l("Online link")}


def _change_lines(changes: dict[str, list]) -> list[str]:
    lines = []
    for name, label in TOLD_CHANGES.items():
        if name in changes:
            old, new = changes[name]
            if isinstance(new, datetime):
                old, new = format_local(old), format_local(new)
            lines.append(_("%(what)s: was %(old)s; now %(new)s", what=label, old=old or _("not given"),
                           new=new or _("not given")))
    return lines


def _tell_of_change(session: Session, event: Event, changes: dict[str, list], *, now: datetime) -> int:
    """Email everyone registered or waiting when a published event moved or changed its place,
    once per change (keyed by the new times and place). Returns how many were emailed."""
    from membership.events import emails

    lines = _change_lines(changes)
    if not lines:
        return 0
    key = hashlib.sha256(repr([as_utc(event.starts_at), as_utc(event.ends_at), event.venue,
                               event.online_url]).encode()).hexdigest()[:16]
    live = session.scalars(select(EventRegistration).where(
        EventRegistration.event_id == event.id,
        EventRegistration.status.in_(("confirmed", "waitlisted"))).order_by(EventRegistration.id))
    # each email lists the changes in its recipient's language (dates too)
    return sum(emails.queue_event_changed(session, registration, now=now, changes=lambda: _change_lines(changes),
                                          change_key=key) is not None
               for registration in live)


def update_event(session: Session, event: Event, data: EventData, *, now: datetime, actor) -> int:
    """Edit an event (not a cancelled or finished one). A capacity below the seats already taken
    is refused (ValidationError on "capacity"); a larger capacity promotes waitlisted people. When
    a published event moves or changes its place, everyone registered or waiting is emailed.
    Returns how many people were emailed."""
    _check_editable(event)
    session.refresh(event, ["seats_taken"])
    capacity = data.values.get("capacity", event.capacity)
    if capacity is not None and capacity < event.seats_taken:
        raise ValidationError(_("%(count)s seats are taken already; the capacity cannot be lower "
                                "(cancel registrations first).", count=formats.digits(str(event.seats_taken))),
                              field="capacity")
    changes = {}
    for name, value in data.values.items():
        old = getattr(event, name)
        if isinstance(old, datetime):
            old = as_utc(old)
        if old != value:
            changes[name] = [old, value]
            setattr(event, name, value)
    if not changes:
        return 0
    event.updated_at = now
    session.flush()
    record_audit(session, actor=actor, action="event.update", entity=event, now=now,
                 summary=f"Event '{event.title}' edited ({', '.join(changes)})", changes=changes)
    if event.status != "published":
        return 0
    fill_from_waitlist(session, event, now=now, actor=actor)
    return _tell_of_change(session, event, changes, now=now)


def publish_event(session: Session, event: Event, *, now: datetime, actor) -> None:
    """draft -> published (Conflict otherwise)."""
    if event.status != "draft":
        raise Conflict(_("Only a draft can be published; this event is %(status)s.", status=_status_words(event.status)))
    event.status = "published"
    event.published_at = now
    event.updated_at = now
    session.flush()
    record_audit(session, actor=actor, action="event.publish", entity=event, now=now,
                 summary=f"Event '{event.title}' published")


def cancel_event(session: Session, event: Event, *, reason: str, now: datetime, actor) -> int:
    """Cancel the event and every live registration, emailing each person once. Returns how many
    were told. Conflict when already cancelled or finished."""
    from membership.events import emails

    _check_editable(event)
    reason = clean_text(reason, field="reason", label=N_("Reason"), max_length=2000, multiline=True)
    live = list(session.scalars(select(EventRegistration).where(
        EventRegistration.event_id == event.id, EventRegistration.status.in_(LIVE_STATUSES))
        .order_by(EventRegistration.id)))
    event.status = "cancelled"
    event.cancelled_at = now
    event.cancel_reason = reason
    event.updated_at = now
    for registration in live:
        registration.status = "cancelled"
        registration.cancelled_at = now
        registration.cancelled_by = "event"
    session.flush()
    session.execute(update(E).where(E.c.id == event.id).values(seats_taken=0))
    session.expire(event, ["seats_taken"])
    told = 0
    for registration in live:
        if emails.queue_event_cancelled(session, registration, now=now) is not None:
            told += 1
    record_audit(session, actor=actor, action="event.cancel", entity=event, now=now,
                 summary=f"Event '{event.title}' cancelled; {len(live)} registration(s) cancelled, {told} emailed",
                 changes={"reason": reason})
    return told


def duplicate_event(session: Session, event: Event, *, now: datetime, actor) -> Event:
    """A draft copy with the same details and no registrations ("(copy)" after the title)."""
    names = ("description", "starts_at", "ends_at", "venue", "online_url", "capacity", "waitlist_enabled",
             "registration_opens_at", "registration_closes_at", "cancellation_deadline", "members_only",
             "member_price_minor", "non_member_price_minor", "currency", "reminder_hours_before")
    title = event.title[:193] + " (copy)"
    copy = Event(title=title, **{n: getattr(event, n) for n in names}, status="draft", seats_taken=0,
                 duplicated_from_id=event.id, created_at=now, updated_at=now,
                 created_by_id=getattr(actor, "id", None))
    session.add(copy)
    session.flush()
    record_audit(session, actor=actor, action="event.duplicate", entity=copy, now=now,
                 summary=f"Event '{copy.title}' created as a copy of event {event.id}")
    return copy


def finish_event(session: Session, event: Event, *, now: datetime, actor=None) -> dict[str, int]:
    """After the end: confirmed registrations not checked in become no_show, checked-in ones
    attended (activities written), status finished. Idempotent. Returns counts."""
    counts = {"attended": 0, "no_show": 0}
    attended: list[int | None] = []
    if event.status == "finished":
        return counts
    if event.status != "published":
        raise Conflict(_("Only a published event can be finished; this one is %(status)s.",
                         status=_status_words(event.status)))
    if as_utc(event.ends_at) > now:
        raise Conflict(_("This event has not ended yet."))
    rows = session.scalars(select(EventRegistration).where(
        EventRegistration.event_id == event.id, EventRegistration.status.in_(("confirmed", "attended")))
        .order_by(EventRegistration.id))
    for registration in rows:
        if registration.status == "confirmed" and registration.checked_in_at is None:
            registration.status = "no_show"
            counts["no_show"] += 1
            _activity(session, registration, "event_no_show", event.ends_at)
        else:
            registration.status = "attended"
            counts["attended"] += 1
            attended.append(registration.member_id)
            _activity(session, registration, "event_attended", registration.checked_in_at or event.starts_at)
    event.status = "finished"
    event.finished_at = now
    session.flush()
    members_changed(session, attended, now=now)  # risk follows reality (issue 10)
    record_audit(session, actor=actor, action="event.finish", entity=event, now=now,
                 summary=f"Event '{event.title}' finished: {counts['attended']} attended, "
                 f"{counts['no_show']} no-show(s)", changes=counts)
    return counts


# ---------------------------------------------------------------- availability


@dataclass
class Availability:
    """What the event page tells a viewer."""
    open: bool                   # can register now (a seat or the waitlist)
    reason: str | None           # why not, in plain words: "Registration opens on 3 March 2027 at 09:00.",
                                 # "Registration has closed.", "This event is for members only.",
                                 # "Your membership is not current...", "This event is full."
    seats_left: int | None       # None: unlimited
    full: bool
    waitlist: bool               # registering now would put the person on the waitlist
    price_minor: int             # the price for this viewer
    member_price: bool           # that price is the member price


NOT_CURRENT = ("Your membership is not current, so you cannot register for this members-only event. "
               "Renew your membership to register.")
MEMBERS_ONLY = "This event is for members only."
FULL = "This event is full."


def _window_problem(event: Event, now: datetime, *, staff: bool = False, at_door: bool = False) -> str | None:
    if event.status == "cancelled":
        return "This event was cancelled."
    if event.status == "finished" or now >= as_utc(event.ends_at):
        return "This event has ended."
    if event.status != "published":
        return "Registration is not open yet."
    if now >= as_utc(event.starts_at) and not at_door:
        return "Registration has closed: the event has started."
    if staff:
        return None
    if event.registration_opens_at is not None and now < as_utc(event.registration_opens_at):
        return f"Registration opens on {_opens_text(event.registration_opens_at)}."
    if event.registration_closes_at is not None and now >= as_utc(event.registration_closes_at):
        return "Registration has closed."
    return None


def _availability(session: Session, event: Event, member, now: datetime, *, staff: bool = False,
                  at_door: bool = False) -> Availability:
    current = _is_current(session, member, now)
    price = event.member_price_minor if current else event.non_member_price_minor
    capacity, taken = event.capacity, event.seats_taken or 0
    seats_left = None if capacity is None else max(0, capacity - taken)
    full = seats_left == 0
    waitlist = full and bool(event.waitlist_enabled) and not at_door
    reason = _window_problem(event, now, staff=staff, at_door=at_door)
    if reason is None and event.members_only:
        if member is None:
            reason = MEMBERS_ONLY
        elif not current:
            reason = NOT_CURRENT
    if reason is None and full and not waitlist:
        reason = FULL
    if reason is None and waitlist:
        return Availability(True, "This event is full; you can join the waitlist.", seats_left, full, True,
                            price, current)
    return Availability(reason is None, reason, seats_left, full, waitlist and reason is None, price, current)


def availability(session: Session, event: Event, *, member=None, now: datetime) -> Availability:
    """What `member` (a Member, or None for a guest / visitor) sees on the event page now.
    When the event is full and has a waitlist, `open` and `waitlist` are True and `reason` says so."""
    return _availability(session, event, member, now)


# ---------------------------------------------------------------- registration


def _new_registration(session: Session, event: Event, *, person_key: str, member=None, name=None, email=None,
                      status: str, source: str, price_minor: int, member_price: bool, now: datetime,
                      actor) -> EventRegistration | None:
    """Insert the registration; None when a live one for this person exists (a concurrent double
    click): the unique index refuses the second and the savepoint keeps the transaction usable."""
    registration = EventRegistration(
        event_id=event.id, member_id=getattr(member, "id", None), guest_name=name, guest_email=email,
        person_key=person_key, status=status, source=source, price_minor=price_minor, currency=event.currency,
        member_price=member_price, registered_at=now, created_by_id=getattr(actor, "id", None))
    try:
        with session.begin_nested():
            session.add(registration)
            session.flush()
    except IntegrityError:
        return None
    return registration


def _seat_or_waitlist(session: Session, registration: EventRegistration, *, now: datetime,
                      allow_waitlist: bool = True) -> None:
    """pending/new -> confirmed with a seat, else waitlisted (or Conflict when full and no waitlist)."""
    event = registration.event
    if registration.status == "pending" and registration.id is not None:
        # claim it (a confirmation link clicked twice at once must take one seat, not two)
        if not _claim(session, registration, "pending", status="waitlisted", waitlisted_at=now):
            raise Conflict(_("This registration was confirmed a moment ago."))
    if _take_seat(session, event):
        registration.status = "confirmed"
        registration.confirmed_at = now
        registration.waitlisted_at = None
    elif event.waitlist_enabled and allow_waitlist:
        registration.status = "waitlisted"
        registration.waitlisted_at = now
    else:
        raise Conflict(FULL)
    session.flush()


def _after_registered(session: Session, registration: EventRegistration, *, now: datetime, actor,
                      email: bool = True) -> None:
    from membership.events import emails

    event = registration.event
    _activity(session, registration, "event_registered", now, status=registration.status,
              source=registration.source)
    if email:
        if registration.status == "confirmed":
            emails.queue_confirmation(session, registration, now=now)
        elif registration.status == "waitlisted":
            emails.queue_waitlisted(session, registration, now=now)
    if _is_staff_source(registration.source):
        record_audit(session, actor=actor, action="event.register", entity=registration, now=now,
                     member_id=registration.member_id,
                     summary=f"{registration.name} registered for '{event.title}' by staff ({registration.status})")


def register_member(session: Session, event: Event, member, *, now: datetime, actor,
                    source: str = "member", email: bool = True) -> EventRegistration:
    """Register a member in one step: confirmed (seat taken) or waitlisted; emails the
    confirmation (with the .ics attached) or the waitlist notice (not with email=False: the demo's
    past events). Raises Conflict with the availability reason when registration is not open for
    them. Idempotent per person. Staff (source "staff") may register someone outside the
    registration window, before the start."""
    key = _member_key(member)
    existing = _live_registration(session, event, key)
    if existing is not None and existing.status != "pending":
        return existing
    av = _availability(session, event, member, now, staff=_is_staff_source(source))
    if not av.open:
        raise Conflict(av.reason)
    if existing is not None:  # pending (registered from the public page with their address): confirm it
        existing.source = source if source != "member" else existing.source
        existing.price_minor, existing.member_price = av.price_minor, av.member_price
        _seat_or_waitlist(session, existing, now=now)
        _after_registered(session, existing, now=now, actor=actor, email=email)
        return existing
    registration = _new_registration(session, event, person_key=key, member=member, status="waitlisted",
                                     source=source, price_minor=av.price_minor, member_price=av.member_price,
                                     now=now, actor=actor)
    if registration is None:
        return _live_registration(session, event, key)
    _seat_or_waitlist(session, registration, now=now)
    _after_registered(session, registration, now=now, actor=actor, email=email)
    return registration


def _member_by_email(session: Session, email: str):
    from membership.accounts.services import normalize_email
    from membership.members.models import Member
    return session.scalar(select(Member).where(Member.email_normalized == normalize_email(email),
                                               Member.erased_at.is_(None)))


def register_guest(session: Session, event: Event, *, name: str, email: str, now: datetime, actor=None,
                   source: str = "guest", confirmed_email: bool = False) -> EventRegistration:
    """Register a non-member by name and email. From the public page (confirmed_email False) the
    registration is "pending" and an email with a signed confirmation link is queued; it takes a
    seat only when confirmed (`confirm_guest`). Staff on someone's behalf or a walk-in
    (confirmed_email True) takes the seat at once. An email that belongs to a member is
    registered as that member. Validation errors name "name" or "email"."""
    from membership.events import emails

    name = clean_text(name, field="name", label="Name", max_length=200, required=True)
    email = clean_email(email, required=True, field="email")
    member = _member_by_email(session, email)
    if member is not None and confirmed_email:
        return register_member(session, event, member, now=now, actor=actor, source=source)
    key = _member_key(member) if member is not None else _guest_key(email)
    existing = _live_registration(session, event, key)
    if existing is not None:
        return existing
    av = _availability(session, event, member, now, staff=_is_staff_source(source))
    if not av.open:
        raise Conflict(av.reason)
    registration = _new_registration(
        session, event, person_key=key, member=member, name=None if member is not None else name,
        email=None if member is not None else email, status="pending", source=source,
        price_minor=av.price_minor, member_price=av.member_price, now=now, actor=actor)
    if registration is None:
        return _live_registration(session, event, key)
    if confirmed_email:
        _seat_or_waitlist(session, registration, now=now)
        _after_registered(session, registration, now=now, actor=actor)
    else:
        emails.queue_guest_confirm(session, registration, now=now)
    return registration


def confirm_guest(session: Session, token: str, *, now: datetime) -> EventRegistration:
    """The guest's link: pending -> confirmed or waitlisted (as register_member). Raises
    ValidationError(_("This link has expired...")) / ("This link is not valid...");
    an already confirmed registration is returned as it is (the link may be clicked twice).
    Conflict when the event can no longer take registrations or is full without a waitlist."""
    data = load_token(token, GUEST_CONFIRM_SALT, GUEST_CONFIRM_MAX_AGE, now,
                       N_("Please register again on the event's page."))
    registration = session.get(EventRegistration, data["r"])
    if registration is None or registration.person_key != data.get("k"):
        raise ValidationError(_("This link is not valid. Please check that you copied all of it."), field="token")
    if registration.status == "cancelled":
        raise Conflict(_("This registration was cancelled. You can register again on the event's page."))
    if registration.status != "pending":
        return registration
    event = registration.event
    # They asked while registration was open; the confirmation may come a little later, but not
    # once the event has started (or was cancelled).
    problem = _window_problem(event, now, staff=True)
    if problem:
        raise Conflict(problem)
    if event.members_only and not _is_current(session, registration.member, now):
        raise Conflict(MEMBERS_ONLY if registration.member is None else NOT_CURRENT)
    current = _is_current(session, registration.member, now)
    registration.price_minor = event.member_price_minor if current else event.non_member_price_minor
    registration.member_price = current
    _seat_or_waitlist(session, registration, now=now)
    _after_registered(session, registration, now=now, actor=None)
    return registration


def promote_next(session: Session, event: Event, *, now: datetime, actor=None) -> EventRegistration | None:
    """Give a free seat to the first waitlisted person (registered_at, id), emailed. None when no
    seat is free or nobody waits. On PostgreSQL the event row is locked first, so two
    transactions never promote the same person (the second waits, then sees the first's choice)."""
    from membership.events import emails

    session.flush()
    session.execute(select(E.c.id).where(E.c.id == event.id).with_for_update())
    candidate = session.scalar(
        select(EventRegistration).where(EventRegistration.event_id == event.id,
                                        EventRegistration.status == "waitlisted")
        .order_by(EventRegistration.waitlisted_at, EventRegistration.id).limit(1)
        .with_for_update(skip_locked=True))
    if candidate is None:
        return None
    session.refresh(candidate)  # its status as of now, not as of an earlier read in this session
    if candidate.status != "waitlisted" or not _take_seat(session, event):
        return None
    candidate.status = "confirmed"
    candidate.confirmed_at = now
    candidate.promoted_at = now
    session.flush()
    emails.queue_promoted(session, candidate, now=now)
    record_audit(session, actor=actor, action="event.promote", entity=candidate, now=now,
                 member_id=candidate.member_id,
                 summary=f"{candidate.name} moved from the waitlist to a seat at '{event.title}'")
    return candidate


def fill_from_waitlist(session: Session, event: Event, *, now: datetime, actor=None) -> list[EventRegistration]:
    """Promote waitlisted people while seats are free (after a capacity increase)."""
    promoted = []
    while (p := promote_next(session, event, now=now, actor=actor)) is not None:
        promoted.append(p)
    return promoted


def can_cancel_self(registration: EventRegistration, now: datetime) -> bool:
    """Whether the person may still cancel this registration themselves."""
    if registration.status in ("waitlisted", "pending"):
        return registration.event.status == "published" and now < as_utc(registration.event.ends_at)
    if registration.status != "confirmed" or registration.event.status != "published":
        return False
    event = registration.event
    deadline = event.cancellation_deadline or event.starts_at
    return now < as_utc(deadline)


def cancel_registration(session: Session, registration: EventRegistration, *, now: datetime, actor,
                        by: str = "self") -> EventRegistration | None:
    """Cancel (by "self": refused with Conflict after the cancellation deadline - a waitlisted or
    pending person may leave any time; by "staff": any time before the event finishes). Frees the
    seat and promotes the first waitlisted person; returns that promoted registration (emailed)
    or None. Emails the cancellation. Cancelling a cancelled registration does nothing."""
    from membership.events import emails

    if by not in ("self", "staff"):
        raise ValueError(f"by must be 'self' or 'staff', not {by!r}")
    if registration.status == "cancelled":
        return None
    event = registration.event
    if event.status == "finished":
        raise Conflict(_("This event has finished; its registrations can no longer be cancelled."))
    if registration.status in ("attended", "no_show"):
        raise Conflict(_("This person has been checked in; undo the check-in first."))
    if by == "self" and not can_cancel_self(registration, now):
        deadline = event.cancellation_deadline or event.starts_at
        raise Conflict(_("Registrations can no longer be cancelled online: the deadline was %(deadline)s. "
                         "Please contact us.", deadline=format_local(deadline)))
    seated = registration.status in SEATED_STATUSES
    was = registration.status
    if not _claim(session, registration, was, status="cancelled", cancelled_at=now, cancelled_by=by):
        if registration.status == "cancelled":
            return None  # cancelled a moment ago by another request
        raise Conflict(_("This registration changed a moment ago; please look again."))
    promoted = None
    if seated:
        _release_seat(session, event)
        if event.status == "published":
            promoted = promote_next(session, event, now=now, actor=actor)
    if was != "pending":
        emails.queue_registration_cancelled(session, registration, now=now)
        _activity(session, registration, "event_cancelled", now, by=by, was=was)
    if by == "staff":
        record_audit(session, actor=actor, action="event.cancel_registration", entity=registration, now=now,
                     member_id=registration.member_id,
                     summary=f"Registration of {registration.name} for '{event.title}' cancelled"
                     + (f"; {promoted.name} moved up from the waitlist" if promoted else ""))
    return promoted


def check_in(session: Session, registration: EventRegistration, *, now: datetime, actor) -> None:
    """Mark as arrived (confirmed -> attended, checked_in_at). Idempotent. Conflict for a
    waitlisted, pending or cancelled registration. A no-show corrected after the event becomes
    attended (and the attendance activity is written then)."""
    if registration.status == "attended":
        return
    if registration.event.status == "cancelled":
        raise Conflict(_("This event was cancelled."))
    if registration.status not in ("confirmed", "no_show"):
        words = {"waitlisted": _("Cannot check in: this registration is on the waitlist."),
                 "pending": _("Cannot check in: this person has not confirmed their email yet."),
                 "cancelled": _("Cannot check in: this registration was cancelled.")}
        raise Conflict(words.get(registration.status, _("Cannot check in: this registration is not confirmed.")))
    was = registration.status
    if not _claim(session, registration, was, status="attended", checked_in_at=now,
                  checked_in_by_id=getattr(actor, "id", None)):
        return  # checked in a moment ago by another tap
    if was == "no_show":
        _activity(session, registration, "event_attended", now, corrected=True)
    record_audit(session, actor=actor, action="event.check_in", entity=registration, now=now,
                 member_id=registration.member_id,
                 summary=f"{registration.name} checked in at '{registration.event.title}'")
    members_changed(session, [registration.member_id], now=now)  # risk follows reality (issue 10)


def undo_check_in(session: Session, registration: EventRegistration, *, now: datetime, actor) -> None:
    """attended -> confirmed (before the event is finished). Idempotent for a confirmed one."""
    if registration.status == "confirmed":
        return
    if registration.event.status == "finished":
        raise Conflict(_("This event has finished; attendance can no longer be undone."))
    if registration.status != "attended":
        raise Conflict(_("This registration is not checked in."))
    registration.status = "confirmed"
    registration.checked_in_at = None
    registration.checked_in_by_id = None
    session.flush()
    record_audit(session, actor=actor, action="event.undo_check_in", entity=registration, now=now,
                 member_id=registration.member_id,
                 summary=f"Check-in of {registration.name} at '{registration.event.title}' undone")


def walk_in(session: Session, event: Event, *, now: datetime, actor, member=None, name: str | None = None,
            email: str | None = None) -> EventRegistration:
    """Register at the door and check in at once (a member, or a guest by name and email); may
    exceed the capacity only if staff say so - here it does not: Conflict when full.
    Works once the event has started (until it ends); members-only rules apply."""
    if member is None:
        name = clean_text(name, field="name", label="Name", max_length=200, required=True)
        email = clean_email(email, required=True, field="email")
        member = _member_by_email(session, email)
    key = _member_key(member) if member is not None else _guest_key(email)
    existing = _live_registration(session, event, key)
    if existing is not None:
        if existing.status in ("waitlisted", "pending"):
            problem = _window_problem(event, now, staff=True, at_door=True)
            if problem:
                raise Conflict(problem)
            if not _take_seat(session, event):
                raise Conflict(FULL)
            if not _claim(session, existing, ("waitlisted", "pending"), status="confirmed", confirmed_at=now):
                _release_seat(session, event)
                raise Conflict(_("This registration changed a moment ago; please look again."))
        check_in(session, existing, now=now, actor=actor)
        return existing
    av = _availability(session, event, member, now, staff=True, at_door=True)
    if not av.open:
        raise Conflict(av.reason)
    registration = _new_registration(
        session, event, person_key=key, member=member, name=None if member is not None else name,
        email=None if member is not None else email, status="pending", source="walk_in",
        price_minor=av.price_minor, member_price=av.member_price, now=now, actor=actor)
    if registration is None:
        raise Conflict(_("This person was registered a moment ago; refresh the list."))
    _seat_or_waitlist(session, registration, now=now, allow_waitlist=False)
    _after_registered(session, registration, now=now, actor=actor, email=False)
    check_in(session, registration, now=now, actor=actor)
    return registration


# ---------------------------------------------------------------- payments


def record_registration_payment(session: Session, registration: EventRegistration, *, amount_minor: int,
                                method: str, received_at: datetime, reference: str | None, now: datetime,
                                actor, idempotency_key: str | None = None, note: str | None = None):
    """A Payment (receipt number as for memberships, plans.services.record_payment) against the
    registration, with its receipt emailed (to the member, or to the guest's address). Returns the
    Payment. ValidationError for an amount of zero or less."""
    from membership.notifications.outbox import enqueue
    from membership.plans.services import PaymentInput, record_payment

    if amount_minor is None or amount_minor <= 0:
        raise ValidationError(_("Enter an amount above zero."), field="amount")
    payment = record_payment(
        session, PaymentInput(amount_minor=amount_minor, method=method, received_at=received_at,
                              reference=reference, note=note, idempotency_key=idempotency_key),
        actor=actor, now=now, member=registration.member, currency=registration.currency,
        registration=registration)
    if registration.member is None and registration.guest_email:
        enqueue(session, template_key="payment_receipt", dedupe_key=f"receipt:payment:{payment.id}", now=now,
                to_address=registration.guest_email, to_name=registration.guest_name,
                context={"payment": payment}, source=payment)
    return payment


# ---------------------------------------------------------------- feedback


def submit_feedback(session: Session, registration: EventRegistration, *, rating: int,
                    would_recommend: bool | None, comment: str | None, now: datetime) -> EventFeedback:
    """Once per registration that attended (Conflict otherwise or when given already); rating 1-5
    (ValidationError on "rating")."""
    if registration.status != "attended":
        raise Conflict(_("Feedback can be given only by people who attended the event."))
    existing = session.scalar(select(EventFeedback).where(EventFeedback.registration_id == registration.id))
    if existing is not None:
        raise Conflict(_("You have already given your feedback on this event. Thank you!"))
    try:
        rating = int(rating)
    except (TypeError, ValueError):
        raise ValidationError(_("Choose a rating from 1 to 5."), field="rating") from None
    if not 1 <= rating <= 5:
        raise ValidationError(_("Choose a rating from 1 to 5."), field="rating")
    comment = clean_text(comment, field="comment", label="Comment", max_length=5000, multiline=True)
    feedback = EventFeedback(registration_id=registration.id, event_id=registration.event_id, rating=rating,
                             would_recommend=would_recommend, comment=comment, submitted_at=now)
    try:
        with session.begin_nested():
            session.add(feedback)
            session.flush()
    except IntegrityError:
        raise Conflict(_("You have already given your feedback on this event. Thank you!")) from None
    _activity(session, registration, "feedback_given", now, rating=rating)
    return feedback


def registration_from_cancel_token(session: Session, token: str, *, now: datetime | None = None
                                   ) -> EventRegistration:
    """The registration a guest's cancel link names; ValidationError when the link is bad."""
    data = load_token(token, GUEST_CANCEL_SALT, GUEST_CANCEL_MAX_AGE, now, "")
    registration = session.get(EventRegistration, data["r"])
    if registration is None or registration.person_key != data.get("k"):
        raise ValidationError(_("This link is not valid. Please check that you copied all of it."), field="token")
    return registration


def registration_from_feedback_token(session: Session, token: str, *, now: datetime | None = None
                                     ) -> EventRegistration:
    """ValidationError when the token is bad or expired (60 days after it was made)."""
    data = load_token(token, FEEDBACK_SALT, FEEDBACK_MAX_AGE, now, N_("Feedback is collected for 60 days."))
    registration = session.get(EventRegistration, data["r"])
    if registration is None:
        raise ValidationError(_("This link is not valid. Please check that you copied all of it."), field="token")
    return registration


# ---------------------------------------------------------------- scheduler jobs (registered in jobs.py)


def reminder_due_at(event: Event, zone=None) -> datetime | None:
    """When the reminder of `event` is due (aware UTC), or None. Counted on the association's
    wall clock: 24 hours before 18:30 on a Monday is 18:30 on the Sunday even when the clocks
    change in between (what people mean by "the day before")."""
    if event.reminder_hours_before is None:
        return None
    local_start = as_utc(event.starts_at).astimezone(_zone(zone))
    return (local_start - timedelta(hours=event.reminder_hours_before)).astimezone(timezone.utc)


def queue_event_reminders(session: Session, *, now: datetime) -> dict[str, int]:
    """Email confirmed people of published events whose start minus reminder_hours_before has
    passed (and the event has not started): once each (the dedupe key names the registration
    and the start, so a rescheduled event reminds again). People who registered after the
    reminder time got the details in their confirmation a moment ago and get no reminder."""
    from membership.events import emails

    zone = tz()
    counts = {"events": 0, "queued": 0}
    events = session.scalars(select(Event).where(
        Event.status == "published", Event.reminder_hours_before.is_not(None), Event.starts_at > now,
        Event.starts_at <= now + timedelta(hours=REMINDER_MAX_HOURS + 2)).order_by(Event.starts_at, Event.id))
    for event in events:
        due = reminder_due_at(event, zone)
        if due is None or due > now:
            continue
        counts["events"] += 1
        rows = session.scalars(select(EventRegistration).where(
            EventRegistration.event_id == event.id, EventRegistration.status == "confirmed",
            EventRegistration.confirmed_at < due).order_by(EventRegistration.id))
        for registration in rows:
            if emails.queue_reminder(session, registration, now=now) is not None:
                counts["queued"] += 1
    return counts


def finish_ended_events(session: Session, *, now: datetime) -> dict[str, int]:
    """finish_event for published events that ended; then queue feedback requests to attendees
    (once each) of events that ended within FEEDBACK_REQUEST_WINDOW."""
    from membership.events import emails

    counts = {"finished": 0, "attended": 0, "no_show": 0, "feedback_requests": 0}
    ended = list(session.scalars(select(Event).where(Event.status == "published", Event.ends_at <= now)
                                 .order_by(Event.ends_at, Event.id)))
    for event in ended:
        result = finish_event(session, event, now=now, actor=None)
        counts["finished"] += 1
        counts["attended"] += result["attended"]
        counts["no_show"] += result["no_show"]
    rows = session.scalars(
        select(EventRegistration).join(Event, Event.id == EventRegistration.event_id)
        .where(Event.status == "finished", Event.ends_at > now - FEEDBACK_REQUEST_WINDOW,
               Event.ends_at <= now, EventRegistration.status == "attended")
        .order_by(EventRegistration.id))
    for registration in rows:
        if registration.feedback is None and \
                emails.queue_feedback_request(session, registration, now=now) is not None:
            counts["feedback_requests"] += 1
    return counts


# ---------------------------------------------------------------- reports


@dataclass
class EventReport:
    event_id: int
    title: str
    starts_at: datetime
    capacity: int | None
    registrations: int      # live registrations (confirmed, attended, no_show) + waitlisted
    confirmed: int          # holding a seat (confirmed + attended + no_show)
    waitlisted: int
    cancelled: int
    attended: int
    no_shows: int
    attendance_rate: float | None   # attended / (attended + no_shows), finished events
    no_show_rate: float | None
    revenue_minor: int              # payments received against its registrations
    member_share: float | None      # share of seated registrations that are members
    feedback_count: int
    feedback_average: float | None
    recommend_share: float | None


def _reports(session: Session, events: list[Event]) -> list[EventReport]:
    from membership.plans.models import Payment

    if not events:
        return []
    ids = [e.id for e in events]
    R = EventRegistration
    by_status: dict[tuple[int, str], int] = {}
    members_seated: dict[int, int] = {}
    for event_id, status, n, members in session.execute(
            select(R.event_id, R.status, func.count(), func.count(R.member_id))
            .where(R.event_id.in_(ids)).group_by(R.event_id, R.status)):
        by_status[event_id, status] = n
        if status in SEATED_STATUSES:
            members_seated[event_id] = members_seated.get(event_id, 0) + members
    revenue = dict(session.execute(
        select(R.event_id, func.coalesce(func.sum(Payment.amount_minor), 0))
        .join(Payment, Payment.registration_id == R.id).where(R.event_id.in_(ids)).group_by(R.event_id)).all())
    F = EventFeedback
    feedback = {row[0]: row[1:] for row in session.execute(
        select(F.event_id, func.count(), func.avg(F.rating),
               func.sum(case((F.would_recommend.is_(True), 1), else_=0)), func.count(F.would_recommend))
        .where(F.event_id.in_(ids)).group_by(F.event_id))}
    out = []
    for e in events:
        def n(status, _id=e.id):
            return by_status.get((_id, status), 0)
        seated = sum(n(s) for s in SEATED_STATUSES)
        attended, no_shows = n("attended"), n("no_show")
        judged = attended + no_shows
        finished = e.status == "finished"
        fb_count, fb_avg, fb_yes, fb_answered = feedback.get(e.id, (0, None, 0, 0))
        out.append(EventReport(
            event_id=e.id, title=e.title, starts_at=as_utc(e.starts_at), capacity=e.capacity,
            registrations=seated + n("waitlisted"), confirmed=seated, waitlisted=n("waitlisted"),
            cancelled=n("cancelled"), attended=attended, no_shows=no_shows,
            attendance_rate=attended / judged if finished and judged else None,
            no_show_rate=no_shows / judged if finished and judged else None,
            revenue_minor=int(revenue.get(e.id, 0) or 0),
            member_share=members_seated.get(e.id, 0) / seated if seated else None,
            feedback_count=int(fb_count or 0),
            feedback_average=float(fb_avg) if fb_avg is not None else None,
            recommend_share=int(fb_yes or 0) / fb_answered if fb_answered else None))
    return out


def event_report(session: Session, event: Event) -> EventReport:
    """The numbers of one event (see EventReport)."""
    session.flush()
    return _reports(session, [event])[0]


def period_report(session: Session, *, starts_from: datetime, starts_before: datetime) -> list[EventReport]:
    """One row per event starting in [starts_from, starts_before), oldest first (not drafts)."""
    session.flush()
    events = list(session.scalars(select(Event).where(
        Event.starts_at >= starts_from, Event.starts_at < starts_before, Event.status != "draft")
        .order_by(Event.starts_at, Event.id)))
    return _reports(session, events)
