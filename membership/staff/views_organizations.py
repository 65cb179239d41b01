"""Organisations: list, create, edit, contacts, and the organisation's membership with its payments."""
from __future__ import annotations

import re
from datetime import date, datetime, time

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _, ngettext
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from membership.core import formats
from membership.core.errors import Conflict, DomainError, DuplicateEmail, ValidationError
from membership.core.services import record_audit
from membership.core.time import local_today, tz, utcnow
from membership.extensions import db
from membership.members import services as members
from membership.members.models import MEMBER_STATUSES, Member, Organization
from membership.plans import catalog
from membership.plans import services as plans
from membership.plans.models import Membership, Payment, Plan
from membership.plans.status import history_with_gaps, holder_status, status_on
from membership.staff import bp
from membership.staff.forms_organizations import ContactForm, MembershipForm, OrganizationForm
from membership.web import get_or_404, money

ORGS_PER_PAGE = 50
SORTS = {
    "name": (Organization.name_normalized, Organization.id),
    "status": (Organization.status, Organization.name_normalized, Organization.id),
    "expires": (Organization.expires_on, Organization.name_normalized, Organization.id),
}
_TOKEN = re.compile(r"[A-Za-z0-9_-]{8,64}")


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


# ---------------------------------------------------------------- list


@bp.get("/organizations")
def organizations():
    q = (request.args.get("q") or "").strip()[:200]
    status = request.args.get("status", "")
    if status not in MEMBER_STATUSES:
        status = ""
    sort = request.args.get("sort") or "name"
    if sort.lstrip("-") not in SORTS:
        sort = "name"
    query = select(Organization).options(joinedload(Organization.plan))
    if q:
        query = query.where(Organization.name_normalized.like(_like(members.search_key(q)), escape="\\"))
    if status:
        query = query.where(Organization.status == status)
    columns = SORTS[sort.lstrip("-")]
    query = query.order_by(*(c.desc() for c in columns) if sort.startswith("-") else columns)
    page = db.paginate(query, per_page=ORGS_PER_PAGE, error_out=False)
    ids = [o.id for o in page.items]
    counts, primaries = {}, {}
    if ids:
        # Two small queries for the page, not one per row.
        counts = dict(db.session.execute(
            select(Member.organization_id, func.count()).where(Member.organization_id.in_(ids))
            .group_by(Member.organization_id)).all())
        primaries = {m.organization_id: m for m in db.session.scalars(
            select(Member).where(Member.organization_id.in_(ids), Member.is_primary_contact.is_(True)))}
    args = {k: v for k, v in {"q": q, "status": status, "sort": sort}.items() if v}
    return render_template("staff/organizations/list.html", page=page, q=q, status=status, sort=sort,
                           args=args, counts=counts, primaries=primaries, statuses=MEMBER_STATUSES)


# ---------------------------------------------------------------- create and edit


def _put_error(form, error: DomainError) -> bool:
    """Show the error beside its field; False when it belongs to no field of the form."""
    if error.field and error.field in form:
        form[error.field].errors = list(form[error.field].errors) + [error.message]
        return True
    return False


def _save(form: OrganizationForm, org: Organization | None):
    template = "staff/organizations/form.html"
    if not form.validate():
        return render_template(template, form=form, org=org), 422
    try:
        values = members.validate_organization(form.values(), region=current_app.config["PHONE_REGION"])
        saved = members.save_organization(db.session, values, actor=current_user, now=utcnow(), org=org)
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        general = None if _put_error(form, e) else e.message
        return render_template(template, form=form, org=org, general_error=general), e.status_code
    flash((_("Organisation %(name)s updated.", name=saved.name) if org else _("Organisation %(name)s created.", name=saved.name)), "success")
    return redirect(url_for("staff.organization", org_id=saved.id))


@bp.route("/organizations/new", methods=["GET", "POST"])
def organization_new():
    form = OrganizationForm()
    if request.method == "GET":
        return render_template("staff/organizations/form.html", form=form, org=None)
    return _save(form, None)


@bp.route("/organizations/<int:org_id>/edit", methods=["GET", "POST"])
def organization_edit(org_id: int):
    org = get_or_404(Organization, org_id)
    if request.method == "GET":
        form = OrganizationForm(obj=org)
        return render_template("staff/organizations/form.html", form=form, org=org)
    return _save(OrganizationForm(), org)


# ---------------------------------------------------------------- the organisation page


def _plan_label(plan: Plan) -> str:
    return f"{plan.name} ({money(plan.fee_minor, plan.currency)}, {catalog.describe_period(plan)})"


def _membership_form(org: Organization, form: MembershipForm | None, offered: list[Plan], latest, today: date):
    if form is None:
        form = MembershipForm(prefix="membership")
        current_ids = [p.id for p in offered]
        wanted = latest.plan_id if latest is not None and latest.plan_id in current_ids else org.plan_id
        form.plan.data = str(wanted if wanted in current_ids else (current_ids[0] if current_ids else ""))
        form.received_on.data = today
        form.term_id.data = str(latest.id) if latest is not None else ""
    form.set_plans(offered, label=_plan_label)
    return form


def _render_org(org: Organization, *, contact_form: ContactForm | None = None,
                membership_form: MembershipForm | None = None, contact_error: str | None = None,
                membership_error: str | None = None, status: int = 200):
    today = local_today()
    terms = plans.terms_of(db.session, org)
    latest = terms[-1] if terms else None
    offered = catalog.offered_plans(db.session, organizational=True)
    payments = db.session.scalars(select(Payment).where(Payment.organization_id == org.id)
                                  .order_by(Payment.received_at.desc(), Payment.id.desc()).limit(50)).all()
    return render_template(
        "staff/organizations/detail.html", org=org, contacts=org.contacts, history=history_with_gaps(terms),
        latest=latest, latest_status=status_on(latest, today) if latest else None,
        live=holder_status(terms, today), today=today, payments=payments, offered=offered,
        contact_form=contact_form or ContactForm(prefix="contact"),
        membership_form=_membership_form(org, membership_form, offered, latest, today),
        contact_error=contact_error, membership_error=membership_error,
    ), status


@bp.get("/organizations/<int:org_id>")
def organization(org_id: int):
    return _render_org(get_or_404(Organization, org_id))


# ---------------------------------------------------------------- contacts


def _find_member(lookup: str) -> Member:
    if "@" in lookup:
        member = members.find_by_email(db.session, lookup)
    else:
        member = db.session.scalar(select(Member).where(func.upper(Member.member_number) == lookup.upper()))
    if member is None or member.erased_at is not None:
        raise ValidationError(_('No member has this email or member number. To add someone new, leave this empty and fill in their names below.'), field="lookup")
    return member


@bp.post("/organizations/<int:org_id>/contacts")
def organization_add_contact(org_id: int):
    org = get_or_404(Organization, org_id)
    form = ContactForm(prefix="contact")
    if not form.validate():
        return _render_org(org, contact_form=form, status=422)
    now, today = utcnow(), local_today()
    try:
        lookup = members.clean_text(form.lookup.data, field="lookup", label=_('Email or member number'),
                                    max_length=254)
        if lookup:
            member, created = _find_member(lookup), False
        elif any((f.data or "").strip() for f in (form.first_name, form.last_name, form.email)):
            data = members.validate_member(
                {"first_name": form.first_name.data, "last_name": form.last_name.data, "email": form.email.data},
                region=current_app.config["PHONE_REGION"], today=today)
            member, created = members.create_member(db.session, data, actor=current_user, now=now), True
        else:
            raise ValidationError(_("Enter an existing member's email or member number, or a new member's first name."), field="lookup")
        members.add_contact(db.session, org, member, primary=form.primary.data, actor=current_user, now=now,
                            today=today)
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        if isinstance(e, DuplicateEmail):
            e = ValidationError(_("%(message)s Enter this email under Existing member to add them.", message=e.message), field="email")
        general = None if _put_error(form, e) else e.message
        return _render_org(org, contact_form=form, contact_error=general, status=e.status_code)
    flash(_contact_added(member, org, created), "success")
    return redirect(url_for("staff.organization", org_id=org.id))


def _contact_added(member: Member, org: Organization, created: bool) -> str:
    """The flash after adding a contact: one whole sentence per case, so each translates as a whole."""
    values = {"name": member.full_name, "number": member.member_number, "org": org.name, "status": member.status}
    if created and member.is_primary_contact:
        return _("New member %(name)s (%(number)s) added as a contact of %(org)s and made primary; "
                 "status: %(status)s.", **values)
    if created:
        return _("New member %(name)s (%(number)s) added as a contact of %(org)s; status: %(status)s.", **values)
    if member.is_primary_contact:
        return _("%(name)s (%(number)s) added as a contact of %(org)s and made primary; status: %(status)s.",
                 **values)
    return _("%(name)s (%(number)s) added as a contact of %(org)s; status: %(status)s.", **values)


def _contact(org: Organization, member_id: int) -> Member:
    member = get_or_404(Member, member_id)
    if member.organization_id != org.id:
        abort(404)
    return member


@bp.post("/organizations/<int:org_id>/contacts/<int:member_id>/remove")
def organization_remove_contact(org_id: int, member_id: int):
    org = get_or_404(Organization, org_id)
    member = _contact(org, member_id)
    try:
        members.remove_contact(db.session, org, member, actor=current_user, now=utcnow(), today=local_today())
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        return _render_org(org, contact_error=e.message, status=e.status_code)
    flash(_("%(full_name)s is no longer a contact of %(name)s; their own status is now %(status)s.", full_name=member.full_name, name=org.name, status=member.status), "success")
    return redirect(url_for("staff.organization", org_id=org.id))


@bp.post("/organizations/<int:org_id>/contacts/<int:member_id>/primary")
def organization_primary_contact(org_id: int, member_id: int):
    org = get_or_404(Organization, org_id)
    member = _contact(org, member_id)
    if not member.is_primary_contact:
        old = org.primary_contact
        members.set_primary_contact(db.session, org, member)
        record_audit(db.session, actor=current_user, action="organization.primary_contact", entity=org,
                     now=utcnow(), member_id=member.id,
                     summary=f"{member.full_name} is the primary contact of {org.name}",
                     changes={"primary_contact": [old.member_number if old else None, member.member_number]})
        db.session.commit()
    flash(_("%(full_name)s is the primary contact of %(name)s.", full_name=member.full_name, name=org.name), "success")
    return redirect(url_for("staff.organization", org_id=org.id))


# ---------------------------------------------------------------- membership and payments


def _received_at(day: date | None, now: datetime, today: date) -> datetime:
    """Payments received today keep the moment; earlier days are taken at local noon."""
    if day is None or day == today:
        return now
    return datetime.combine(day, time(12), tzinfo=tz()).astimezone(now.tzinfo)


def _payment_input(form: MembershipForm, fee_minor: int, now: datetime, today: date,
                   *, required: bool) -> plans.PaymentInput | None:
    amount = catalog.parse_amount(form.amount.data, field="amount", label=_('Amount'), required=False)
    if amount is None:
        amount = fee_minor
    if amount == 0:
        if required:
            raise ValidationError(_('Enter the amount received.'), field="amount")
        return None
    reference = members.clean_text(form.reference.data, field="reference", label=_('Reference'), max_length=100)
    key = (form.idempotency_key.data or "").strip()
    if key and not _TOKEN.fullmatch(key):
        raise ValidationError(_('This form is damaged; reload the page and try again.'))
    return plans.PaymentInput(amount_minor=amount, method=form.method.data or "", reference=reference,
                              received_at=_received_at(form.received_on.data, now, today),
                              idempotency_key=key or None)


def _describe(term: Membership) -> str:
    if term.ends_on:
        text = _("%(start)s to %(end)s", start=formats.strftime(term.starts_on, "%d %b %Y"),
                 end=formats.strftime(term.ends_on, "%d %b %Y"))
    else:
        text = _("from %(start)s for life", start=formats.strftime(term.starts_on, "%d %b %Y"))
    receipts = ", ".join(p.receipt_number for p in term.payments)
    if receipts:
        text += _(", receipt %(number)s", number=receipts)
    if term.awaiting_payment:
        paid = sum(p.amount_minor for p in term.payments)
        text += _("; waiting for %(amount)s more", amount=money(term.fee_minor - paid, term.currency))
    return text


@bp.post("/organizations/<int:org_id>/membership")
def organization_membership(org_id: int):
    """Join (no term yet) or renew (the term named in the form) with the payment received."""
    org = get_or_404(Organization, org_id)
    form = MembershipForm(prefix="membership")
    if not form.validate():
        return _render_org(org, membership_form=form, status=422)
    now, today = utcnow(), local_today()
    renewing = bool((form.term_id.data or "").strip())
    try:
        plan = db.session.get(Plan, int(form.plan.data)) if (form.plan.data or "").isdigit() else None
        if plan is None:
            raise ValidationError(_('Choose a plan.'), field="plan")
        payment = _payment_input(form, plan.fee_minor, now, today, required=False)
        if renewing:
            term = db.session.get(Membership, int(form.term_id.data)) if form.term_id.data.isdigit() else None
            if term is None or term.organization_id != org.id:
                raise Conflict(_("This term is not one of this organisation's; reload the page."))
            new = plans.renew(db.session, term, today=today, now=now, actor=current_user, plan=plan,
                              payment=payment, source="renewal")
        else:
            new = plans.join(db.session, org, plan, today=today, now=now, actor=current_user, payment=payment,
                             source="staff")
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        general = None if _put_error(form, e) else e.message
        return _render_org(org, membership_form=form, membership_error=general, status=e.status_code)
    except IntegrityError:
        # The same form posted twice at the same moment: the unique keys let one through.
        db.session.rollback()
        return _render_org(org, membership_error=_('This form was already submitted; see the history below.'),
                           status=409)
    values = {"org": org.name, "plan": plan.name, "term": _describe(new)}
    if renewing:
        text = ngettext("Renewed: %(org)s on %(plan)s, %(term)s. Its %(num)s contact follows this membership.",
                        "Renewed: %(org)s on %(plan)s, %(term)s. Its %(num)s contacts follow this membership.",
                        len(org.contacts), **values)
    else:
        text = ngettext("Joined: %(org)s on %(plan)s, %(term)s. Its %(num)s contact follows this membership.",
                        "Joined: %(org)s on %(plan)s, %(term)s. Its %(num)s contacts follow this membership.",
                        len(org.contacts), **values)
    flash(text, "success")
    return redirect(url_for("staff.organization", org_id=org.id))


def _org_term(org: Organization, term_id: int) -> Membership:
    term = get_or_404(Membership, term_id)
    if term.organization_id != org.id:
        abort(404)
    return term


@bp.post("/organizations/<int:org_id>/terms/<int:term_id>/pay")
def organization_pay_term(org_id: int, term_id: int):
    """Record a payment for a term that waits for one."""
    org = get_or_404(Organization, org_id)
    term = _org_term(org, term_id)
    form = MembershipForm(prefix="membership")
    if not form.validate():
        return _render_org(org, membership_form=form, status=422)
    now, today = utcnow(), local_today()
    try:
        if not term.awaiting_payment:
            raise Conflict(_('This term is already paid.'))
        due = term.fee_minor - sum(p.amount_minor for p in term.payments)
        payment = _payment_input(form, max(due, 0), now, today, required=True)
        row = plans.pay_term(db.session, term, payment, today=today, now=now, actor=current_user)
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        general = None if _put_error(form, e) else e.message
        return _render_org(org, membership_form=form, membership_error=general, status=e.status_code)
    except IntegrityError:
        db.session.rollback()
        return _render_org(org, membership_error=_('This payment was already recorded.'), status=409)
    flash(_("Payment %(receipt_number)s of %(amount_minor)s recorded for %(name)s; status: %(status)s.", receipt_number=row.receipt_number, amount_minor=money(row.amount_minor, row.currency), name=org.name, status=org.status), "success")
    return redirect(url_for("staff.organization", org_id=org.id))


@bp.post("/organizations/<int:org_id>/terms/<int:term_id>/approve")
def organization_approve_term(org_id: int, term_id: int):
    org = get_or_404(Organization, org_id)
    term = _org_term(org, term_id)
    try:
        plans.approve(db.session, term, today=local_today(), now=utcnow(), actor=current_user)
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        return _render_org(org, membership_error=e.message, status=e.status_code)
    flash(_("Application of %(name)s approved; status: %(status)s.", name=org.name, status=org.status), "success")
    return redirect(url_for("staff.organization", org_id=org.id))
