"""The public events pages (/events): upcoming and past events, the event page, registering (a member
in one step, a guest by name and email confirmed by email), cancelling one's own registration,
calendar files and the feedback form. Every rule is in membership.events.services; these views
translate its answers and errors into pages."""
from __future__ import annotations

from flask_babel import gettext as _
import re

from flask import Blueprint, abort, current_app, flash, make_response, redirect, render_template, request, \
    session, url_for
from flask_login import current_user
from sqlalchemy.exc import IntegrityError

from membership.core import formats
from membership.core.errors import DomainError, ValidationError
from membership.core.time import to_local, utcnow
from membership.events import ics
from membership.events import public_queries as queries
from membership.events import services
from membership.events.forms import ActionForm, FeedbackForm, GuestRegistrationForm
from membership.events.models import SEATED_STATUSES, Event, EventRegistration
from membership.extensions import db, limiter
from membership.web import is_safe_next, money
from membership.events.dues import amount_due

bp = Blueprint("events", __name__, url_prefix="/events")

PER_PAGE = 20
_PAGE = re.compile(r"[0-9]{1,6}")
GUEST_EMAIL = "event_guest_email"


# ---------------------------------------------------------------- helpers


def viewer_member():
    """The signed-in member's record, or None for a visitor (and for staff, who see the public page)."""
    if not current_user.is_authenticated or current_user.role != "member":
        return None
    member = current_user.member
    if member is None or member.erased_at is not None:
        return None
    return member


def _page_arg() -> int:
    raw = request.args.get("page") or ""
    return int(raw) if _PAGE.fullmatch(raw) and int(raw) > 0 else 1


def _event_or_404(event_id: int) -> Event:
    event = queries.visible_event(db.session, event_id)
    if event is None:
        abort(404)
    return event


def _guest_limit() -> str:
    return current_app.config.get("EVENT_GUEST_LIMIT_PER_ADDRESS") or \
        current_app.config.get("JOIN_LIMIT_PER_ADDRESS") or "10 per hour"


def _not_a_guest_post() -> bool:
    # Members register in one step and are not counted against the guests' limit per address.
    return viewer_member() is not None


def payment_instructions() -> str:
    return (current_app.config.get("EVENT_PAYMENT_INSTRUCTIONS") or "").strip()


@bp.app_template_filter("event_when")
def event_when(event: Event) -> str:
    """"Sat 20 Jun 2026, 18:00 to 20:00" in the association's zone (both dates when it spans days)."""
    starts, ends = to_local(event.starts_at), to_local(event.ends_at)
    first = formats.strftime(starts, "%a %-d %b %Y, %H:%M")
    if ends.date() == starts.date():
        return _("%(start)s to %(end)s", start=first, end=formats.strftime(ends, "%H:%M"))
    return _("%(start)s to %(end)s", start=first, end=formats.strftime(ends, "%a %-d %b %Y, %H:%M"))


@bp.app_template_filter("price_words")
def price_words(minor: int, currency: str | None = None) -> str:
    return money(minor, currency) if minor else _("Free")


@bp.context_processor
def _layout():
    # Members see the portal's navigation on the events pages; everyone else the public one.
    portal = current_user.is_authenticated and current_user.role == "member"
    return {"events_layout": "portal/base.html" if portal else "portal/public.html",
            "zone_name": current_app.config["TIMEZONE"]}


# ---------------------------------------------------------------- listings


def _listing(stmt, template: str):
    now = utcnow()
    member = viewer_member()
    page = db.paginate(stmt, page=_page_arg(), per_page=PER_PAGE, error_out=False)
    seen = {e.id: services.availability(db.session, e, member=member, now=now) for e in page.items}
    return render_template(template, page=page, seen=seen, member=member)


@bp.get("/")
def index():
    """Upcoming events, soonest first, with the price and places for this viewer."""
    return _listing(queries.upcoming(utcnow()), "events/index.html")


@bp.get("/past")
def past():
    return _listing(queries.past(utcnow()), "events/past.html")


# ---------------------------------------------------------------- the event page


def _render_event(event: Event, *, guest_form: GuestRegistrationForm | None = None, status: int = 200):
    now = utcnow()
    member = viewer_member()
    seen = services.availability(db.session, event, member=member, now=now)
    registration = queries.live_registration(db.session, event, member)
    due = position = None
    if registration is not None:
        position = queries.waitlist_position(db.session, registration)
        if registration.status in SEATED_STATUSES and registration.price_minor:
            due = amount_due(db.session, registration)
    if member is None and guest_form is None:
        guest_form = GuestRegistrationForm(formdata=None)
    return render_template(
        "events/event.html", event=event, seen=seen, member=member, registration=registration,
        position=position, due=due, instructions=payment_instructions(), guest_form=guest_form,
        action_form=ActionForm(formdata=None),
        show_online_link=registration is not None and registration.status in SEATED_STATUSES,
        ended=event.status == "finished" or event.ends_at <= now,
        login_url=url_for("auth.login", next=url_for("events.event", event_id=event.id)),
    ), status


@bp.get("/<int:event_id>")
def event(event_id: int):
    return _render_event(_event_or_404(event_id))


@bp.post("/<int:event_id>/register")
@limiter.limit(_guest_limit, exempt_when=_not_a_guest_post)
def register(event_id: int):
    """A member registers in one step; a visitor sends the guest form and confirms by email."""
    event = _event_or_404(event_id)
    member = viewer_member()
    now = utcnow()
    if member is not None:
        if not ActionForm().validate_on_submit():
            abort(400)
        try:
            registration = services.register_member(db.session, event, member, now=now, actor=current_user)
            db.session.commit()
        except IntegrityError:
            # The same click arrived twice at the same moment: the first one registered.
            db.session.rollback()
        except DomainError as e:
            db.session.rollback()
            flash(e.message, "warning")
        else:
            if registration.status == "waitlisted":
                flash(_("You are on the waitlist. We will email you if a place frees up."), "info")
            else:
                flash(_("You are registered. We have emailed you the details."), "success")
        return redirect(url_for("events.event", event_id=event.id), 303)

    if event.members_only:
        # The page explains: sign in or join.
        return redirect(url_for("events.event", event_id=event.id), 303)
    form = GuestRegistrationForm()
    shape_ok = form.validate_on_submit()
    if form.website.data:
        session[GUEST_EMAIL] = (form.email.data or "")[:254]
        return redirect(url_for("events.check_email", event_id=event.id), 303)
    if not shape_ok:
        return _render_event(event, guest_form=form, status=422)
    try:
        services.register_guest(db.session, event, name=form.name.data, email=form.email.data, now=now)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
    except DomainError as e:
        db.session.rollback()
        if e.field in ("name", "email"):
            form[e.field].errors = [*form[e.field].errors, e.message]
            return _render_event(event, guest_form=form, status=e.status_code)
        flash(e.message, "warning")
        return redirect(url_for("events.event", event_id=event.id), 303)
    session[GUEST_EMAIL] = form.email.data.strip()[:254]
    return redirect(url_for("events.check_email", event_id=event.id), 303)


@bp.get("/<int:event_id>/check-email")
def check_email(event_id: int):
    """The same page whatever happened to the guest's registration."""
    event = _event_or_404(event_id)
    return render_template("events/check_email.html", event=event, email=session.get(GUEST_EMAIL))


@bp.route("/confirm/<token>", methods=["GET", "POST"])
def confirm(token: str):
    """The guest's confirmation link. Opening it shows a button (mail scanners open links); the
    button confirms."""
    form = ActionForm()
    if request.method == "GET" or not form.validate_on_submit():
        return render_template("events/confirm.html", form=form, token=token)
    try:
        registration = services.confirm_guest(db.session, token, now=utcnow())
        db.session.commit()
    except ValidationError as e:
        db.session.rollback()
        return render_template("events/link_problem.html", message=e.message), 410 \
            if "expired" in e.message.lower() else 404
    except DomainError as e:
        db.session.rollback()
        return render_template("events/link_problem.html", message=e.message), e.status_code
    session.pop(GUEST_EMAIL, None)
    return render_template("events/confirmed.html", registration=registration, event=registration.event,
                           position=queries.waitlist_position(db.session, registration),
                           instructions=payment_instructions())


# ---------------------------------------------------------------- cancelling


@bp.post("/registrations/<int:registration_id>/cancel")
def cancel(registration_id: int):
    """The member cancels their own registration or leaves the waitlist. Someone else's is 404."""
    if not current_user.is_authenticated:
        return current_app.login_manager.unauthorized()
    registration = queries.owned_registration(db.session, viewer_member(), registration_id)
    if registration is None:
        abort(404)
    if not ActionForm().validate_on_submit():
        abort(400)
    was = registration.status
    event_id = registration.event_id
    try:
        services.cancel_registration(db.session, registration, now=utcnow(), actor=current_user, by="self")
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        flash(e.message, "warning")
    else:
        flash(_("You have left the waitlist.") if was == "waitlisted" else _("Your registration is cancelled."),
              "success")
    target = request.form.get("next")
    if not is_safe_next(target):
        target = url_for("events.event", event_id=event_id)
    return redirect(target, 303)


# ---------------------------------------------------------------- calendar files


def _calendar(body: bytes, filename: str, disposition: str = "attachment"):
    response = make_response(body)
    response.mimetype = "text/calendar"
    response.headers["Content-Disposition"] = f'{disposition}; filename="{filename}"'
    return response


@bp.get("/<int:event_id>.ics")
def event_ics(event_id: int):
    event = _event_or_404(event_id)
    body = ics.event_ics(event, url=url_for("events.event", event_id=event.id, _external=True))
    return _calendar(body, f"event-{event.id}.ics")


@bp.get("/feed.ics")
def feed():
    """Every upcoming published event, for calendar programs that subscribe."""
    events = queries.feed_events(db.session, utcnow())
    body = ics.feed_ics(events, url_for_event=lambda e: url_for("events.event", event_id=e.id, _external=True))
    return _calendar(body, "events.ics", "inline")


# ---------------------------------------------------------------- feedback


def _feedback_registration(token: str) -> tuple[EventRegistration | None, str | None]:
    try:
        return services.registration_from_feedback_token(db.session, token), None
    except ValidationError as e:
        return None, e.message


@bp.route("/feedback/<token>", methods=["GET", "POST"])
def feedback(token: str):
    """The short form the feedback-request email links to; once per registration."""
    registration, problem = _feedback_registration(token)
    if registration is None:
        return render_template("events/link_problem.html", message=problem,
                               title=_("Feedback link")), 410 if "expired" in (problem or "").lower() else 404
    event = registration.event
    if registration.feedback is not None:
        return render_template("events/feedback_given.html", event=event)
    form = FeedbackForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            return render_template("events/feedback.html", form=form, event=event), 422
        try:
            services.submit_feedback(db.session, registration, rating=form.rating.data,
                                     would_recommend=form.recommend(),
                                     comment=(form.comment.data or "").strip() or None, now=utcnow())
            db.session.commit()
        except DomainError as e:
            db.session.rollback()
            db.session.expire_all()
            fresh = db.session.get(EventRegistration, registration.id)
            if fresh is not None and fresh.feedback is not None:
                return render_template("events/feedback_given.html", event=event)
            if e.field in form._fields:
                form[e.field].errors = [*form[e.field].errors, e.message]
            else:
                form.form_errors.append(e.message)
            return render_template("events/feedback.html", form=form, event=event), e.status_code
        return redirect(url_for("events.feedback_thanks", event_id=event.id), 303)
    return render_template("events/feedback.html", form=form, event=event)


@bp.get("/<int:event_id>/feedback/thanks")
def feedback_thanks(event_id: int):
    return render_template("events/feedback_thanks.html", event=_event_or_404(event_id))


# ---------------------------------------------------------------- a guest cancels from the link in their email


@bp.route("/cancel/<token>", methods=["GET", "POST"])
def cancel_by_link(token: str):
    """A guest has no login: the link in their emails names the registration. Opening it shows
    what will be cancelled and a button (mail scanners open links); the button cancels."""
    try:
        registration = services.registration_from_cancel_token(db.session, token)
    except ValidationError as e:
        return render_template("events/link_problem.html", message=e.message, title=_("Cancel link")), 404
    event = registration.event
    form = ActionForm()
    if request.method == "POST" and form.validate_on_submit() and registration.status != "cancelled":
        was = registration.status
        try:
            services.cancel_registration(db.session, registration, now=utcnow(), actor=None, by="self")
            db.session.commit()
        except DomainError as e:
            db.session.rollback()
            return render_template("events/cancel_link.html", form=form, token=token, registration=registration,
                                   event=event, error=e.message), e.status_code
        flash(_("You have left the waitlist.") if was == "waitlisted" else _("Your registration is cancelled."),
              "success")
        return redirect(url_for("events.cancel_by_link", token=token), 303)
    return render_template("events/cancel_link.html", form=form, token=token, registration=registration,
                           event=event, error=None)
