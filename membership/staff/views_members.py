"""Staff member list (search, filters, sorting, pagination) and the create/edit member forms."""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _, lazy_gettext as _l, ngettext
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.datastructures import MultiDict
from wtforms.fields.choices import SelectChoice

from membership.core import formats
from membership.core.errors import DomainError, DuplicateEmail
from membership.core.time import local_today, utcnow
from membership.extensions import db
from membership.members import services as member_services
from membership.members.models import MEMBER_STATUSES, Member, Organization
from membership.engagement.models import ENGAGEMENT_BANDS, RISK_BANDS, CurrentScore, Segment
from membership.members.queries import MemberFilter, member_query, resolve_segment
from membership.plans import services as plans
from membership.plans.models import Payment, Plan
from membership.staff import bp
from membership.staff.forms_members import MemberForm, NewMemberForm, parse_amount
from membership.web import format_day as day, money, page_or_last

# Filter ids must fit a database integer; "²".isdigit() is True but int("²") fails, so a strict pattern.
_ID = re.compile(r"[0-9]{1,9}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def count_label(n: int) -> str:
    """'1 member', '1,234 members'."""
    return ngettext("%(count)s member", "%(count)s members", n, count=formats.number(n))


def parse_member_filter(args) -> MemberFilter:
    """MemberFilter.from_args, with input it does not yet refuse (ids too big for the database or
    not ASCII digits, control characters in the search, which PostgreSQL rejects) turned into
    messages instead of a 500."""
    args = MultiDict(args)
    errors: dict[str, str] = {}
    for name in ("plan_id", "organization_id"):
        raw = (args.get(name) or "").strip()
        if raw and not _ID.fullmatch(raw):
            args.poplist(name)
            errors[name] = _("Not a valid choice.")
    q = args.get("q") or ""
    if _CONTROL.search(q):
        args["q"] = _CONTROL.sub(" ", q)
        errors["q"] = _("The search contained characters that are not allowed; they were ignored.")
    f = MemberFilter.from_args(args)
    f.errors.update(errors)
    return resolve_segment(db.session, f)


FILTER_LABELS = {"q": _l('Search'), "plan_id": _l('Plan'), "organization_id": _l('Organisation'),
                 "joined_from": _l('Joined from'), "joined_to": _l('Joined to'),
                 "expires_from": _l('Term ending from'), "expires_to": _l('Term ending to'),
                 "engagement": _l('Engagement'), "risk": _l('Churn risk'), "active_before": _l('Last active before'),
                 "active_after": _l('Last active on or after'), "tag": _l('Tag'), "segment": _l('Segment'),
                 "was": _l('Status on a day'), "outcome": _l('Term outcome'), "ended_from": _l('Term ended from'),
                 "ended_to": _l('Term ended to'), "as_of": _l('Outcomes as of'), "current_years": _l('Current after years'),
                 "attended_from": _l('Attended an event from'), "attended_to": _l('Attended an event to')}
ENGAGEMENT_LABELS = {"highly_engaged": _l('Highly engaged'), "engaged": _l('Engaged'), "drifting": _l('Drifting'),
                     "dormant": _l('Dormant')}
RISK_LABELS = {"high": _l('High'), "medium": _l('Medium'), "low": _l('Low')}


@bp.get("/members")
def members():
    """The member list: one COUNT, one page of rows, and the plans and organisations for the
    filter form (whose names also label the rows, so no query per row)."""
    f = parse_member_filter(request.args)
    args = f.as_args()
    per_page = current_app.config["MEMBERS_PER_PAGE"]
    page = page_or_last(member_query(f), per_page=per_page)
    plan_list = db.session.scalars(select(Plan).order_by(Plan.is_active.desc(), Plan.sort_order, Plan.name)).all()
    org_list = db.session.execute(select(Organization.id, Organization.name).order_by(Organization.name)).all()
    segments = db.session.execute(select(Segment.id, Segment.name).order_by(Segment.name)).all()
    scores = {row.member_id: row for row in db.session.execute(
        select(CurrentScore.member_id, CurrentScore.engagement, CurrentScore.engagement_band, CurrentScore.risk_band)
        .where(CurrentScore.member_id.in_([m.id for m in page.items])))} if page.items else {}
    from membership.staff.forms_engagement import SegmentForm
    return render_template(
        "staff/members/list.html", page=page, filter=f, args=args, plans=plan_list,
        plan_names={p.id: p.name for p in plan_list}, organizations=org_list,
        org_names={o.id: o.name for o in org_list}, statuses=MEMBER_STATUSES,
        total_label=count_label(page.total or 0), filter_labels=FILTER_LABELS,
        format_phone=member_services.format_phone, segments=segments,
        engagement_bands=ENGAGEMENT_BANDS, risk_bands=RISK_BANDS, engagement_labels=ENGAGEMENT_LABELS,
        risk_labels=RISK_LABELS, segment_form=SegmentForm(formdata=None), scores=scores,
        history_filters=history_filter_labels(f))


HISTORY_STATUS_LABELS = {"active": _l('active'), "grace": _l('in grace'), "current": _l('current (active or in grace)'),
                         "former": _l('lapsed or cancelled')}
OUTCOME_LABELS = {"renewed": _l('was renewed'), "lapsed": _l('lapsed'), "due": _l('came due (renewed or lapsed)')}


def history_filter_labels(f: MemberFilter) -> list[tuple[str, dict]]:
    """The dashboard's filters that the filter form has no fields for, in words, each with the URL
    arguments of the list without it (to remove it)."""
    args = f.as_args()
    args.pop("page", None)

    def without(*names: str, was: str | None = None) -> dict:
        rest = {k: v for k, v in args.items() if k not in names}
        if was is not None:
            rest["was"] = [w for w in f.was if w != was]
        return rest

    out = []
    for entry in f.was:
        status, _sep, when = entry.partition(":")
        out.append((_("%(status)s on %(day)s", status=str(HISTORY_STATUS_LABELS[status]).capitalize(),
                      day=day(date.fromisoformat(when))),
                    without(was=entry)))
    if f.outcome:
        span = ""
        if f.ended_from and f.ended_to:
            span = _(" between %(start)s and %(end)s", start=day(f.ended_from), end=day(f.ended_to))
        elif f.ended_from:
            span = _(" on or after %(day)s", day=day(f.ended_from))
        elif f.ended_to:
            span = _(" on or before %(day)s", day=day(f.ended_to))
        as_of = _(" (as of %(day)s)", day=day(f.as_of)) if f.as_of and f.as_of != local_today() else ""
        out.append((_("Had a term that ended%(span)s and %(outcome)s%(as_of)s", span=span,
                      outcome=OUTCOME_LABELS[f.outcome], as_of=as_of),
                    without("outcome", "ended_from", "ended_to", "as_of")))
    if f.current_years:
        out.append((ngettext("Current %(num)s year after joining", "Current %(num)s years after joining",
                             f.current_years),
                    without("current_years")))
    if f.attended_from or f.attended_to:
        if f.attended_from and f.attended_to:
            text = _("Attended an event that started between %(start)s and %(end)s", start=day(f.attended_from),
                     end=day(f.attended_to))
        elif f.attended_from:
            text = _("Attended an event that started on or after %(day)s", day=day(f.attended_from))
        else:
            text = _("Attended an event that started on or before %(day)s", day=day(f.attended_to))
        out.append((text, without("attended_from", "attended_to")))
    return out


# ---------------------------------------------------------------- create and edit


def _set_choices(form: MemberForm) -> None:
    orgs = db.session.execute(select(Organization.id, Organization.name).order_by(Organization.name)).all()
    form.organization_id.choices = [SelectChoice("", _('None'))] + [SelectChoice(str(o.id), o.name) for o in orgs]
    if isinstance(form, NewMemberForm):
        available = db.session.scalars(
            select(Plan).where(Plan.is_active.is_(True), Plan.is_organizational.is_(False))
            .order_by(Plan.sort_order, Plan.name)).all()
        form.plan_id.choices = [SelectChoice("", _('No membership yet'))] + [
            SelectChoice(str(p.id), _("%(name)s (%(fee)s)", name=p.name, fee=money(p.fee_minor, p.currency) if p.fee_minor else _("free")))
            for p in available]


def _add_error(field, message: str) -> None:
    field.errors = list(field.errors) + [message]


def _check_fields(form: MemberForm, data: dict, *, today: date, member: Member | None) -> dict | None:
    """Validate each member field on its own, so every bad field gets its message at once (the
    service stops at the first). Returns the duplicate-email details, if any."""
    region = current_app.config["PHONE_REGION"]
    for name, value in data.items():
        field = form[name]
        if field.errors:
            continue  # the form already said what is wrong (a date that is not a date...)
        try:
            member_services.validate_member({name: value}, region=region, today=today, partial=True)
        except DomainError as e:
            _add_error(field, e.message)
    if not form.email.errors and data.get("email"):
        other = member_services.find_by_email(db.session, data["email"])
        if other is not None and (member is None or other.id != member.id):
            return _duplicate(form, _("%(name)s (%(number)s) already has this email.", name=other.full_name,
                                           number=other.member_number),
                              other.id)
    return None


def _duplicate(form: MemberForm, message: str, existing_id: int | None) -> dict:
    # The template renders the message as text and builds the link itself: nothing user-typed is
    # marked safe.
    _add_error(form.email, message)
    return {"message": message, "member_id": existing_id}


def _place_error(form, e: DomainError, fields: dict[str, str] | None = None) -> None:
    """Put a service error beside its field, or at the top of the form."""
    name = (fields or {}).get(e.field, e.field)
    if name and name in form._fields and name not in ("csrf_token", "form_key"):
        _add_error(form[name], e.message)
    else:
        form.form_errors.append(e.message)


def _render_form(form, member=None, duplicate=None, status=200):
    return render_template("staff/members/form.html", form=form, member=member, duplicate=duplicate), status


def _membership_input(form: NewMemberForm, *, joined_on: date | None, today: date, now: datetime):
    """The optional first term: (plan, PaymentInput or None). Problems go beside their fields."""
    if form.plan_id.errors:
        return None, None
    if not form.plan_id.data:
        if form.payment_received.data:
            _add_error(form.plan_id, _("Choose the plan this payment is for."))
        return None, None
    plan = db.session.get(Plan, form.plan_id.data)
    start = form.starts_on.data
    if start is None and not form.starts_on.errors:
        _add_error(form.starts_on, _("Enter the date the membership starts."))
    elif start is not None:
        if joined_on is not None and start < joined_on:
            _add_error(form.starts_on, _("The membership cannot start before the member joined (%(day)s).",
                                          day=formats.strftime(joined_on, "%d %b %Y")))
        elif start > today + timedelta(days=366):
            _add_error(form.starts_on, _("The membership can start at most a year from today."))
    if not form.payment_received.data:
        return plan, None
    try:
        amount = parse_amount(form.amount.data)
    except ValueError as e:
        _add_error(form.amount, str(e))
        return plan, None
    if amount is None:
        amount = plan.fee_minor
    try:
        reference = member_services.clean_text(form.reference.data, field="reference", label=_('Reference'),
                                               max_length=100)
    except DomainError as e:
        _add_error(form.reference, e.message)
        return plan, None
    if amount == 0 and plan.fee_minor == 0:
        return plan, None  # a free plan: nothing to record
    key = (form.form_key.data or "")[:64] or None
    if key and _CONTROL.search(key):
        key = None
    return plan, plans.PaymentInput(amount_minor=amount, method=form.method.data, received_at=now,
                                    reference=reference, idempotency_key=key)


def _already_saved(form: NewMemberForm):
    """The payment of this very form (same key) is recorded: it was posted before."""
    key = (form.form_key.data or "")[:64]
    if not (key and form.payment_received.data):
        return None
    done = db.session.scalar(select(Payment).where(Payment.idempotency_key == key))
    if done is None or not done.member_id:
        return None
    flash(_("This form was already saved (receipt %(receipt_number)s); nothing new was created.", receipt_number=done.receipt_number), "info")
    return redirect(url_for("staff.member", member_id=done.member_id))


def _attach_organization(member: Member, org_id: int, *, now: datetime, today: date) -> None:
    try:
        member_services.add_contact(db.session, db.session.get(Organization, org_id), member, primary=False,
                            actor=current_user, now=now, today=today)
    except DomainError as e:
        e.field = e.field or "organization_id"
        raise


@bp.route("/members/new", methods=["GET", "POST"])
def new_member():
    """Create a member and, optionally, their first membership term with its payment: one
    transaction, so a refused join leaves no member behind."""
    form = NewMemberForm()
    _set_choices(form)
    today = local_today()
    if request.method == "GET":
        form.joined_on.data = today
        form.starts_on.data = today
        form.country.data = current_app.config["PHONE_REGION"]
        return _render_form(form)

    done = _already_saved(form)
    if done is not None:
        return done
    now = utcnow()
    form.validate()
    data = form.member_values()
    duplicate = _check_fields(form, data, today=today, member=None)
    plan, payment = _membership_input(form, joined_on=form.joined_on.data, today=today, now=now)
    if form.errors:
        return _render_form(form, duplicate=duplicate, status=422)

    org_id = data.pop("organization_id", None)
    try:
        values = member_services.validate_member(data, region=current_app.config["PHONE_REGION"], today=today)
        member = member_services.create_member(db.session, values, actor=current_user, now=now)
        term = None
        if plan is not None:
            term = plans.join(db.session, member, plan, today=today, now=now, actor=current_user,
                              starts_on=form.starts_on.data, payment=payment)
        if org_id:
            _attach_organization(member, org_id, now=now, today=today)
        db.session.commit()
    except DuplicateEmail as e:
        db.session.rollback()
        duplicate = _duplicate(form, e.message, e.existing_id)
        return _render_form(form, duplicate=duplicate, status=422)
    except DomainError as e:
        db.session.rollback()
        _place_error(form, e, {"plan": "plan_id", "organization": "organization_id"})
        return _render_form(form, duplicate=duplicate, status=e.status_code if e.status_code in (409, 422) else 422)
    except IntegrityError:
        # Two submissions raced past the checks above; the database kept one.
        db.session.rollback()
        done = _already_saved(form)
        if done is not None:
            return done
        form.form_errors.append(_('Someone saved a conflicting record at the same moment. Nothing was saved; check the member list and try again.'))
        return _render_form(form, duplicate=duplicate, status=409)

    message = _("Created member %(number)s %(name)s", number=member.member_number, name=member.full_name)
    if term is not None:
        if term.ends_on:
            message += _("; %(plan)s from %(start)s to %(end)s", plan=plan.name, start=formats.strftime(term.starts_on, "%d %b %Y"),
                         end=formats.strftime(term.ends_on, "%d %b %Y"))
        else:
            message += _("; %(plan)s from %(start)s for life", plan=plan.name, start=formats.strftime(term.starts_on, "%d %b %Y"))
        receipts = [p.receipt_number for p in term.payments]
        if receipts:
            message += _(", receipt %(number)s", number=receipts[-1])
        elif term.awaiting_payment:
            message += _(" (waiting for payment)")
    flash(message + ".", "success")
    return redirect(url_for("staff.member", member_id=member.id))


@bp.route("/members/<int:member_id>/edit", methods=["GET", "POST"])
def edit_member(member_id: int):
    """Edit a member's details; the audit trail records the changed fields."""
    member = db.session.get(Member, member_id)
    if member is None or member.erased_at is not None:
        abort(404)
    form = MemberForm(obj=member) if request.method == "GET" else MemberForm()
    _set_choices(form)
    if request.method == "GET":
        form.phone.data = member_services.format_phone(member.phone)
        return _render_form(form, member=member)

    today = local_today()
    form.validate()
    data = form.member_values()
    duplicate = _check_fields(form, data, today=today, member=member)
    if form.errors:
        return _render_form(form, member=member, duplicate=duplicate, status=422)

    now = utcnow()
    org_id = data.pop("organization_id", None)
    try:
        # partial: fields this form does not show (member number, external id) stay as they are.
        values = member_services.validate_member(data, region=current_app.config["PHONE_REGION"], today=today,
                                         partial=True)
        changes = member_services.update_member(db.session, member, values, actor=current_user, now=now)
        changed = [str(form[name].label.text) for name in sorted(changes) if name in form._fields]
        if org_id != member.organization_id:
            if member.organization_id:
                member_services.remove_contact(db.session, member.organization, member, actor=current_user, now=now,
                                       today=today)
            if org_id:
                _attach_organization(member, org_id, now=now, today=today)
            changed.append("Organisation")
        db.session.commit()
    except DuplicateEmail as e:
        db.session.rollback()
        duplicate = _duplicate(form, e.message, e.existing_id)
        return _render_form(form, member=member, duplicate=duplicate, status=422)
    except DomainError as e:
        db.session.rollback()
        _place_error(form, e, {"organization": "organization_id"})
        return _render_form(form, member=member, duplicate=duplicate, status=422)
    except IntegrityError:
        db.session.rollback()
        form.form_errors.append(_('Someone changed this member at the same moment. Nothing was saved; reload the page and try again.'))
        return _render_form(form, member=member, duplicate=duplicate, status=409)

    if changed:
        flash(_("Saved %(number)s %(name)s: changed %(fields)s.", number=member.member_number, name=member.full_name,
                fields=", ".join(changed).lower()), "success")
    else:
        flash(_("No changes to %(number)s %(name)s.", number=member.member_number, name=member.full_name), "info")
    return redirect(url_for("staff.member", member_id=member.id))
