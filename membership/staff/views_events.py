"""Events for staff: the list, create / edit / publish / cancel / duplicate, the event page with its
registrations and waitlist, registering people on their behalf, payments against registrations,
the check-in page for the door, and the reports (per event, over a period, CSV).

Every action parses its form, calls one function of membership.events.services (which checks the
rules, moves seats, audits and queues the emails), commits once and redirects. A DomainError rolls
the session back and is shown beside the field it names (422) or as a message (409).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from flask import Response, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _, ngettext, lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select

from membership.core import time as clock
from membership.core.errors import DomainError
from membership.core.services import record_audit
from membership.events import door, queries
from membership.events import services as events
from membership.events.models import Event, EventRegistration
from membership.extensions import db
from membership.members import csvio
from membership.plans.catalog import format_minor
from membership.plans.models import Payment
from membership.staff import bp
from membership.staff.forms_events import (
    CancelEventForm, EventForm, RegisterGuestForm, RegisterMemberForm, WalkInForm)
from membership.staff.forms_member_page import PaymentForm, put_error, to_id
from membership.web import format_when, get_or_404, page_or_last
from membership.events.dues import amount_due

EVENTS_PER_PAGE = 30
REGISTRATION_LABELS = {"pending": _l('Awaiting email confirmation'), "confirmed": _l('Confirmed'), "waitlisted": _l('Waitlisted'),
                       "cancelled": _l('Cancelled'), "attended": _l('Attended'), "no_show": _l('No-show')}
EVENT_STATUS_LABELS = {"draft": _l('Draft'), "published": _l('Published'), "cancelled": _l('Cancelled'), "finished": _l('Finished')}


def _actor():
    return current_user._get_current_object()


def _event_url(event: Event, anchor: str | None = None) -> str:
    return url_for("staff.event_page", event_id=event.id, _anchor=anchor)


def _registration_of(event: Event, registration_id: int) -> EventRegistration:
    """The event's own registration, or 404 (another event's registration is not found here)."""
    registration = db.session.get(EventRegistration, registration_id)
    if registration is None or registration.event_id != event.id:
        abort(404)
    return registration


def _search_text(raw: str | None, limit: int = 100) -> str:
    """A search box's value without control characters (never an error)."""
    return "".join(c for c in (raw or "").strip()[:limit] if ord(c) >= 32 and ord(c) != 127)


@bp.context_processor
def _event_labels():
    return {"registration_labels": REGISTRATION_LABELS, "event_status_labels": EVENT_STATUS_LABELS}


# ---------------------------------------------------------------- the list


@bp.get("/events")
def events_list():
    """Upcoming / past / drafts / cancelled, searched by title, a page at a time."""
    now = clock.utcnow()
    tab = request.args.get("tab", "upcoming")
    if tab not in queries.EVENT_TABS:
        tab = "upcoming"
    q = _search_text(request.args.get("q"))
    page = db.paginate(queries.events_statement(tab, q=q, now=now), page=to_id(request.args.get("page")) or 1,
                       per_page=EVENTS_PER_PAGE, error_out=False)
    args = {k: v for k, v in {"tab": tab, "q": q}.items() if v}
    return render_template("staff/events/list.html", page=page, tab=tab, q=q, args=args,
                           counts=queries.tab_counts(db.session, q=q, now=now),
                           waitlisted=queries.waitlist_counts(db.session, [e.id for e in page.items]))


# ---------------------------------------------------------------- create, edit, publish, cancel, duplicate


def _validated(form: EventForm):
    """validate_event's result, or None with its error beside the field it names."""
    try:
        return events.validate_event(form.raw(), zone=clock.tz(), currency=current_app.config["CURRENCY"])
    except DomainError as e:
        put_error(form, e)
        return None


@bp.route("/events/new", methods=["GET", "POST"])
def new_event():
    form = EventForm()
    if request.method == "GET":
        return render_template("staff/events/form.html", form=form, event=None)
    data = _validated(form) if form.validate() else None
    if data is None:
        return render_template("staff/events/form.html", form=form, event=None), 422
    try:
        event = events.create_event(db.session, data, now=clock.utcnow(), actor=_actor())
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        put_error(form, e)
        return render_template("staff/events/form.html", form=form, event=None), e.status_code
    flash(_("Event created as a draft: %(title)s. Publish it when it is ready.", title=event.title), "success")
    return redirect(_event_url(event))


@bp.route("/events/<int:event_id>/edit", methods=["GET", "POST"])
def edit_event(event_id: int):
    event = get_or_404(Event, event_id)
    if event.status in ("cancelled", "finished"):
        flash(_("A %(status)s event cannot be edited.", status=str(EVENT_STATUS_LABELS[event.status]).lower()), "warning")
        return redirect(_event_url(event))
    form = EventForm()
    if request.method == "GET":
        form.fill_from(event)
        return render_template("staff/events/form.html", form=form, event=event)
    data = _validated(form) if form.validate() else None
    if data is None:
        return render_template("staff/events/form.html", form=form, event=event), 422
    try:
        told = events.update_event(db.session, event, data, now=clock.utcnow(), actor=_actor())
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        put_error(form, e)
        return render_template("staff/events/form.html", form=form, event=event), e.status_code
    if told:
        flash(ngettext("Event saved. %(num)s person registered or waiting was emailed about the change.",
                       "Event saved. %(num)s people registered or waiting were emailed about the change.", told), "success")
    else:
        flash(_('Event saved.'), "success")
    return redirect(_event_url(event))


@bp.post("/events/<int:event_id>/publish")
def publish_event(event_id: int):
    event = get_or_404(Event, event_id)
    try:
        events.publish_event(db.session, event, now=clock.utcnow(), actor=_actor())
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        flash(e.message, "error")
        return redirect(_event_url(event))
    flash(_("Published: %(title)s is now on the events page.", title=event.title), "success")
    return redirect(_event_url(event))


@bp.route("/events/<int:event_id>/cancel", methods=["GET", "POST"])
def cancel_event(event_id: int):
    """Cancel with a reason; the service cancels every registration and emails each person once."""
    event = get_or_404(Event, event_id)
    form = CancelEventForm()
    live = sum(1 for r in queries.registrations(db.session, event) if r.status != "cancelled")
    live += len(queries.waitlist(db.session, event))

    def render(status=200):
        return render_template("staff/events/cancel.html", event=event, form=form, live=live), status

    if event.status in ("cancelled", "finished"):
        flash(_("This event is already %(status)s.", status=str(EVENT_STATUS_LABELS[event.status]).lower()), "warning")
        return redirect(_event_url(event))
    if request.method == "GET":
        return render()
    if not form.validate():
        return render(422)
    try:
        told = events.cancel_event(db.session, event, reason=form.reason.data.strip(), now=clock.utcnow(),
                                   actor=_actor())
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        put_error(form, e)
        return render(e.status_code)
    flash(ngettext("Event cancelled; %(num)s person was told by email.", "Event cancelled; %(num)s people were told by email.", told), "success")
    return redirect(_event_url(event))


@bp.post("/events/<int:event_id>/duplicate")
def duplicate_event(event_id: int):
    event = get_or_404(Event, event_id)
    try:
        copy = events.duplicate_event(db.session, event, now=clock.utcnow(), actor=_actor())
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        flash(e.message, "error")
        return redirect(_event_url(event))
    flash(_("Copied as a new draft: %(title)s. Check the dates before publishing.", title=copy.title), "success")
    return redirect(url_for("staff.edit_event", event_id=copy.id))


# ---------------------------------------------------------------- the event page

REGISTRATIONS_PER_PAGE = 50


def render_event_page(event: Event, *, member_form: RegisterMemberForm | None = None,
                      guest_form: RegisterGuestForm | None = None, status: int = 200, candidates: list | None = None):
    now = clock.utcnow()
    page = page_or_last(queries.registrations_query(event), per_page=REGISTRATIONS_PER_PAGE)
    regs = page.items
    due = {r.id: amount_due(db.session, r) for r in regs
           if r.price_minor and r.status in ("confirmed", "attended", "no_show")}
    finished = event.status == "finished" or (event.status == "published" and clock.as_utc(event.ends_at) <= now)
    return render_template(
        "staff/events/page.html", event=event, report=events.event_report(db.session, event),
        registrations=regs, registrations_page=page, waitlist=queries.waitlist(db.session, event), due=due,
        finished=finished,
        comments=queries.feedback_comments(db.session, event) if finished else [],
        member_form=member_form or RegisterMemberForm(formdata=None), candidates=candidates or [],
        name_matches=queries.NAME_MATCHES,
        guest_form=guest_form or RegisterGuestForm(formdata=None),
    ), status


@bp.get("/events/<int:event_id>")
def event_page(event_id: int):
    return render_event_page(get_or_404(Event, event_id))


def _registered_message(registration: EventRegistration) -> str:
    what = {"confirmed": _("%(name)s registered (seat confirmed)"), "waitlisted": _("%(name)s put on the waitlist"),
            "pending": _("%(name)s registered, awaiting email confirmation"),
            "attended": _("%(name)s registered and checked in")}
    text = what[registration.status] % {"name": registration.name} if registration.status in what \
        else f"{registration.name} {registration.status}"
    if registration.price_minor and registration.status != "waitlisted":
        text += _("; %(amount)s %(currency)s to pay", amount=format_minor(registration.price_minor),
                  currency=registration.currency)
    return text + "."


def _chosen_member(member_id: str):
    """The member picked from a list of name matches (a hidden member_id); 404 when unknown."""
    from membership.members.models import Member
    member = db.session.get(Member, int(member_id)) if member_id.isdigit() and len(member_id) < 10 else None
    if member is None or member.erased_at is not None:
        abort(404)
    return member


@bp.post("/events/<int:event_id>/register-member")
def register_member(event_id: int):
    """Register a member on their behalf: by member number, email or name (several members with
    that name: the page lists them to choose from)."""
    event = get_or_404(Event, event_id)
    form = RegisterMemberForm()
    if form.member_id.data:
        member = _chosen_member(form.member_id.data)
    else:
        if not form.validate():
            return render_event_page(event, member_form=form, status=422)
        found = queries.find_members(db.session, form.lookup.data)
        if not found:
            form.lookup.errors = [*form.lookup.errors, _("No member has this number, email or name.")]
            return render_event_page(event, member_form=form, status=422)
        if len(found) > 1:
            return render_event_page(event, member_form=form, candidates=found)
        member = found[0]
    try:
        registration = events.register_member(db.session, event, member, now=clock.utcnow(), actor=_actor(),
                                              source="staff")
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        # every refusal here is about this person (not open to them, members only...): beside the lookup
        form.lookup.errors = [*form.lookup.errors, e.message]
        return render_event_page(event, member_form=form, status=e.status_code)
    flash(_registered_message(registration), "success")
    return redirect(_event_url(event, "registrations"))


@bp.post("/events/<int:event_id>/register-guest")
def register_guest(event_id: int):
    """Register a guest on their behalf: no email confirmation needed (staff vouch for it)."""
    event = get_or_404(Event, event_id)
    form = RegisterGuestForm()
    if not form.validate():
        return render_event_page(event, guest_form=form, status=422)
    try:
        registration = events.register_guest(db.session, event, name=form.name.data.strip(),
                                             email=form.email.data.strip(), now=clock.utcnow(), actor=_actor(),
                                             source="staff", confirmed_email=True)
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        put_error(form, e)
        return render_event_page(event, guest_form=form, status=e.status_code)
    flash(_registered_message(registration), "success")
    return redirect(_event_url(event, "registrations"))


@bp.post("/events/<int:event_id>/registrations/<int:registration_id>/cancel")
def cancel_registration(event_id: int, registration_id: int):
    event = get_or_404(Event, event_id)
    registration = _registration_of(event, registration_id)
    try:
        promoted = events.cancel_registration(db.session, registration, now=clock.utcnow(), actor=_actor(),
                                              by="staff")
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        flash(e.message, "error")
        return redirect(_event_url(event, "registrations"))
    text = _("Registration of %(name)s cancelled.", name=registration.name)
    if promoted is not None:
        text += " " + _("%(name)s moved up from the waitlist and was emailed.", name=promoted.name)
    flash(text, "success")
    return redirect(_event_url(event, "registrations"))


@bp.route("/events/<int:event_id>/registrations/<int:registration_id>/pay", methods=["GET", "POST"])
def pay_registration(event_id: int, registration_id: int):
    """Record money received for a registration; the hidden token makes a double submit record one."""
    event = get_or_404(Event, event_id)
    registration = _registration_of(event, registration_id)
    now = clock.utcnow()
    today = clock.local_today(now)
    form = PaymentForm()
    due = amount_due(db.session, registration)

    def render(status=200):
        return render_template("staff/events/pay.html", event=event, registration=registration, form=form,
                               due=due), status

    if request.method == "GET":
        form.amount.data = format_minor(due) if due else ""
        form.received_on.data = today
        return render()
    done = _payment_with_key(form.token.data)
    if done is not None:
        flash(_("This payment was already recorded (receipt %(receipt_number)s). Nothing more was recorded.", receipt_number=done.receipt_number),
              "warning")
        return redirect(_event_url(event, "registrations"))
    payment = form.payment_input(today=today, now=now) if form.validate() else None
    if payment is None:
        return render(422)
    try:
        row = events.record_registration_payment(
            db.session, registration, amount_minor=payment.amount_minor, method=payment.method,
            received_at=payment.received_at, reference=payment.reference, now=now, actor=_actor(),
            idempotency_key=payment.idempotency_key)
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        done = _payment_with_key(form.token.data)
        if done is not None:
            # The same form posted twice at once: the other request recorded it.
            flash(_("This payment was already recorded (receipt %(receipt_number)s). Nothing more was recorded.", receipt_number=done.receipt_number),
                  "warning")
            return redirect(_event_url(event, "registrations"))
        put_error(form, e, {"amount_minor": "amount", "received_at": "received_on"})
        return render(e.status_code)
    left = amount_due(db.session, registration)
    text = _("Payment recorded for %(name)s, receipt %(number)s", name=registration.name, number=row.receipt_number)
    text += _("; %(amount)s %(currency)s still to pay.", amount=format_minor(left), currency=registration.currency) \
        if left else _("; paid in full.")
    flash(text, "success")
    return redirect(_event_url(event, "registrations"))


def _payment_with_key(key: str | None) -> Payment | None:
    if not key:
        return None
    return db.session.scalar(select(Payment).where(Payment.idempotency_key == key))


# ---------------------------------------------------------------- check-in (the door, on a phone)


def render_check_in(event: Event, *, walk_in_form: WalkInForm | None = None, status: int = 200,
                    confirm: EventRegistration | None = None, candidates: list | None = None):
    q = _search_text(request.values.get("q"))
    people = queries.attendees(db.session, event, q=q)
    return render_template(
        "staff/events/check_in.html", event=event, q=q, people=people,
        counts=queries.check_in_counts(db.session, event),
        form=walk_in_form or WalkInForm(formdata=None),
        early=door.early_check_in(event, now=clock.utcnow(), zone=clock.tz()),
        due=queries.amounts_due(db.session, people), confirm=confirm, candidates=candidates or [],
    ), status


def _early_unconfirmed(event: Event) -> bool:
    """A check-in before the event's day that staff have not confirmed (door.early_check_in)."""
    return door.early_check_in(event, now=clock.utcnow(), zone=clock.tz()) is not None \
        and request.form.get("confirm_early") not in ("1", "y")


def _still_to_pay(registration: EventRegistration) -> str:
    due = amount_due(db.session, registration)
    return " " + _("%(amount)s %(currency)s still to pay.", amount=format_minor(due),
                   currency=registration.currency) if due else ""


def _back_to_check_in(event: Event, anchor: str | None = None):
    q = _search_text(request.form.get("q"))
    return redirect(url_for("staff.event_check_in", event_id=event.id, q=q or None, _anchor=anchor))


@bp.get("/events/<int:event_id>/check-in")
def event_check_in(event_id: int):
    return render_check_in(get_or_404(Event, event_id))


@bp.post("/events/<int:event_id>/check-in/<int:registration_id>")
def check_in(event_id: int, registration_id: int):
    event = get_or_404(Event, event_id)
    registration = _registration_of(event, registration_id)
    if registration.status != "attended" and _early_unconfirmed(event):
        return render_check_in(event, confirm=registration)
    try:
        events.check_in(db.session, registration, now=clock.utcnow(), actor=_actor())
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        flash(e.message, "error")
        return _back_to_check_in(event, f"r{registration.id}")
    flash(_("%(name)s checked in.", name=registration.name) + _still_to_pay(registration), "success")
    return _back_to_check_in(event, f"r{registration.id}")


@bp.post("/events/<int:event_id>/check-in/<int:registration_id>/undo")
def undo_check_in(event_id: int, registration_id: int):
    event = get_or_404(Event, event_id)
    registration = _registration_of(event, registration_id)
    try:
        events.undo_check_in(db.session, registration, now=clock.utcnow(), actor=_actor())
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        flash(e.message, "error")
        return _back_to_check_in(event, f"r{registration.id}")
    flash(_("Check-in of %(name)s undone.", name=registration.name), "info")
    return _back_to_check_in(event, f"r{registration.id}")


@bp.post("/events/<int:event_id>/walk-in")
def walk_in(event_id: int):
    event = get_or_404(Event, event_id)
    form = WalkInForm()
    if not form.validate():
        return render_check_in(event, walk_in_form=form, status=422)
    lookup = (form.lookup.data or "").strip()
    member = None
    if form.member_id.data:
        member = _chosen_member(form.member_id.data)
    elif lookup:
        found = queries.find_members(db.session, lookup)
        if not found:
            form.lookup.errors = [*form.lookup.errors, _("No member has this number, email or name.")]
            return render_check_in(event, walk_in_form=form, status=422)
        if len(found) > 1:
            return render_check_in(event, walk_in_form=form, candidates=found)
        member = found[0]
    if _early_unconfirmed(event):
        form.confirm_early.errors = [_("This event is not today: tick the box to check in anyway.")]
        return render_check_in(event, walk_in_form=form, status=422)
    try:
        if member is not None:
            registration = events.walk_in(db.session, event, now=clock.utcnow(), actor=_actor(), member=member)
        else:
            registration = events.walk_in(db.session, event, now=clock.utcnow(), actor=_actor(),
                                          name=form.name.data.strip(), email=form.email.data.strip())
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        put_error(form, e, {"member": "lookup"})
        return render_check_in(event, walk_in_form=form, status=e.status_code)
    text = _("%(name)s registered at the door and checked in.", name=registration.name)
    if registration.price_minor:
        text += " " + _("%(amount)s %(currency)s to pay.", amount=format_minor(registration.price_minor),
                        currency=registration.currency)
    flash(text, "success")
    return redirect(url_for("staff.event_check_in", event_id=event.id, _anchor=f"r{registration.id}"))


# ---------------------------------------------------------------- reports


@bp.get("/events/<int:event_id>/report")
def event_report(event_id: int):
    event = get_or_404(Event, event_id)
    return render_template("staff/events/report.html", event=event, report=events.event_report(db.session, event),
                           comments=queries.feedback_comments(db.session, event))


@dataclass
class Period:
    """The report's period: days in the association's zone, read leniently (a bad value is
    reported and replaced by the default: the last twelve months)."""
    starts_on: date
    ends_on: date
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_args(cls, args, today: date) -> "Period":
        period = cls(starts_on=clock.add_months(today, -12) + timedelta(days=1), ends_on=today)
        for name, attr, label in (("from", "starts_on", _("From")), ("to", "ends_on", _("To"))):
            raw = (args.get(name) or "").strip()
            if not raw:
                continue
            try:
                value = date.fromisoformat(raw)
                if not 1900 <= value.year <= 2999:
                    raise ValueError
                setattr(period, attr, value)
            except ValueError:
                period.errors[name] = _("%(label)s: use a date like 2026-01-31.", label=label)
        if period.starts_on > period.ends_on:
            period.errors["to"] = _('The end of the period was before its start; the dates were swapped.')
            period.starts_on, period.ends_on = period.ends_on, period.starts_on
        return period

    def bounds(self):
        zone = clock.tz()
        return (clock.local_midnight_utc(self.starts_on, zone),
                clock.local_midnight_utc(self.ends_on + timedelta(days=1), zone))

    def as_args(self) -> dict[str, str]:
        return {"from": self.starts_on.isoformat(), "to": self.ends_on.isoformat()}


def _period_rows(period: Period):
    starts_from, starts_before = period.bounds()
    return events.period_report(db.session, starts_from=starts_from, starts_before=starts_before)


@bp.get("/events/reports")
def events_report():
    period = Period.from_args(request.args, clock.local_today())
    rows = _period_rows(period)
    return render_template("staff/events/period.html", period=period, rows=rows,
                           totals=queries.summarise(rows), args=period.as_args())


CSV_HEADER = ["event_id", "title", "starts", "capacity", "registrations", "confirmed", "waitlisted", "cancelled",
              "attended", "no_shows", "attendance_rate", "no_show_rate", "revenue", "member_share",
              "non_member_share", "feedback_count", "feedback_average", "recommend_share"]


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def _csv_rows(rows, currency: str):
    yield CSV_HEADER
    for r in rows:
        yield [str(r.event_id), csvio.neutralise(r.title), format_when(r.starts_at, "%Y-%m-%d %H:%M"),
               "" if r.capacity is None else str(r.capacity), str(r.registrations), str(r.confirmed),
               str(r.waitlisted), str(r.cancelled), str(r.attended), str(r.no_shows), _ratio(r.attendance_rate),
               _ratio(r.no_show_rate), format_minor(r.revenue_minor), _ratio(r.member_share),
               _ratio(None if r.member_share is None else 1 - r.member_share), str(r.feedback_count),
               "" if r.feedback_average is None else f"{r.feedback_average:.2f}", _ratio(r.recommend_share)]


@bp.get("/events/reports.csv")
def events_report_csv():
    """The period report as CSV (UTF-8 with a byte-order mark, formula-safe cells); audited."""
    period = Period.from_args(request.args, clock.local_today())
    rows = _period_rows(period)
    record_audit(db.session, actor=_actor(), action="event.report_export", entity=None, now=clock.utcnow(),
                 summary=f"Exported the events report {period.starts_on.isoformat()} to "
                         f"{period.ends_on.isoformat()} ({len(rows)} event{'s' if len(rows) != 1 else ''})",
                 changes={"period": period.as_args(), "count": len(rows)})
    db.session.commit()
    body = "".join(csvio.iter_csv_text(_csv_rows(rows, current_app.config["CURRENCY"])))
    name = f"events-{period.starts_on.isoformat()}-{period.ends_on.isoformat()}.csv"
    return Response(body.encode("utf-8"), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})



# ---------------------------------------------------------------- name suggestions


@bp.get("/members/lookup.json")
def member_lookup():
    """Members matching what staff type in a registration or walk-in field (number, email or
    name), for the suggestions under it: at most queries.NAME_MATCHES, the number first."""
    q = _search_text(request.args.get("q"))
    found = queries.find_members(db.session, q)[:queries.NAME_MATCHES] if len(q) >= 2 else []
    return {"members": [{"member_number": m.member_number, "name": m.full_name,
                         "label": " · ".join(p for p in (m.full_name, m.member_number, m.email or "", m.city or "")
                                             if p)} for m in found]}
