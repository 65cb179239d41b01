"""Staff queue of account-closure requests: pending first (oldest first); the request page shows
what the erasure will remove and keep, with confirm (erases the member's personal data) and
decline (with a note emailed to the member)."""
from __future__ import annotations

import re

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_babel import gettext as _, lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload
from wtforms import BooleanField, TextAreaField
from wtforms.validators import DataRequired, Length

from membership.core.errors import DomainError
from membership.core.time import local_today, utcnow
from membership.extensions import db
from membership.plans import services as plans
from membership.plans.models import Payment
from membership.privacy import erasure
from membership.privacy.models import CLOSURE_STATUSES, ClosureRequest
from membership.staff import bp
from membership.support.models import UNRESOLVED, HelpRequest
from membership.web import get_or_404

PER_PAGE = 50
_ID = re.compile(r"[0-9]{1,9}")
STATUS_LABELS = {"pending": _l('Pending'), "confirmed": _l('Confirmed (erased)'), "declined": _l('Declined'),
                 "withdrawn": _l('Withdrawn by the member')}
STATUS_COLOURS = {"pending": "warning", "confirmed": "dark", "declined": "secondary", "withdrawn": "light"}


class ConfirmClosureForm(FlaskForm):
    confirm = BooleanField(_l("I checked this request: erase this member's personal data now. This cannot be undone."),
                           validators=[DataRequired(_l('Tick the box to confirm the erasure.'))])


class DeclineClosureForm(FlaskForm):
    note = TextAreaField(_l('Why (emailed to the member)'), validators=[
        DataRequired(_l('Say why, so the member knows what to do.')),
        Length(max=2000, message=_l('Use at most 2,000 characters.'))])


@bp.get("/closures")
def closures():
    status = request.args.get("status") or "pending"
    status = status if status in (*CLOSURE_STATUSES, "all") else "pending"
    stmt = select(ClosureRequest).options(joinedload(ClosureRequest.member), joinedload(ClosureRequest.decided_by))
    if status != "all":
        stmt = stmt.where(ClosureRequest.status == status)
    if status == "pending":
        stmt = stmt.order_by(ClosureRequest.requested_at, ClosureRequest.id)
    else:
        stmt = stmt.order_by(ClosureRequest.requested_at.desc(), ClosureRequest.id.desc())
    raw = (request.args.get("page") or "").strip()
    page = db.paginate(stmt, page=int(raw) if _ID.fullmatch(raw) else 1, per_page=PER_PAGE, error_out=False)
    counts = dict(db.session.execute(select(ClosureRequest.status, func.count()).group_by(ClosureRequest.status)).all())
    return render_template("staff/closures/queue.html", page=page, status=status, counts=counts,
                           statuses=CLOSURE_STATUSES, status_labels=STATUS_LABELS, status_colours=STATUS_COLOURS)


def _render(closure: ClosureRequest, confirm_form=None, decline_form=None, status: int = 200):
    member = closure.member
    today = local_today()
    terms = plans.terms_of(db.session, member) if member.erased_at is None else []
    ending = [t for t in terms if t.cancelled_on is None and (t.ends_on is None or t.ends_on >= today)]
    payments = db.session.scalar(select(func.count()).select_from(Payment).where(Payment.member_id == member.id))
    open_help = db.session.scalar(select(func.count()).select_from(HelpRequest).where(
        HelpRequest.member_id == member.id, HelpRequest.status.in_(UNRESOLVED)))
    return render_template(
        "staff/closures/detail.html", closure=closure, member=member, ending=ending, payments=payments,
        open_help=open_help, status_labels=STATUS_LABELS, status_colours=STATUS_COLOURS,
        confirm_form=confirm_form or ConfirmClosureForm(formdata=None),
        decline_form=decline_form or DeclineClosureForm(formdata=None)), status


@bp.get("/closures/<int:closure_id>")
def closure(closure_id: int):
    return _render(get_or_404(ClosureRequest, closure_id))


@bp.post("/closures/<int:closure_id>/confirm")
def confirm_closure(closure_id: int):
    closure = get_or_404(ClosureRequest, closure_id)
    form = ConfirmClosureForm()
    if not form.validate_on_submit():
        return _render(closure, confirm_form=form, status=422)
    number = closure.member.member_number
    now = utcnow()
    try:
        report = erasure.confirm_closure(db.session, closure, now=now, today=local_today(now),
                                         actor=current_user._get_current_object())
        db.session.commit()
        erasure.forget_mail_copies(report)
    except DomainError as e:
        db.session.rollback()
        flash(str(e), "error")
        return redirect(url_for("staff.closure", closure_id=closure_id))
    ended = _(" %(count)s term(s) cancelled from today,", count=report.terms_cancelled) if report.terms_cancelled else ""
    flash(_("Account closed: member %(number)s erased.%(ended)s %(emails_scrubbed)s email(s) and %(help_requests_redacted)s help request(s) scrubbed; payments kept. The member is emailed a confirmation.", number=number, ended=ended, emails_scrubbed=report.emails_scrubbed,
            help_requests_redacted=report.help_requests_redacted), "success")
    return redirect(url_for("staff.closures"))


@bp.post("/closures/<int:closure_id>/decline")
def decline_closure(closure_id: int):
    closure = get_or_404(ClosureRequest, closure_id)
    form = DeclineClosureForm()
    if not form.validate_on_submit():
        return _render(closure, decline_form=form, status=422)
    try:
        erasure.decline_closure(db.session, closure, note=form.note.data, now=utcnow(),
                                actor=current_user._get_current_object())
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        if e.field == "note":
            form.note.errors = [*form.note.errors, e.message]
            return _render(get_or_404(ClosureRequest, closure_id), decline_form=form, status=e.status_code)
        flash(str(e), "error")
        return redirect(url_for("staff.closure", closure_id=closure_id))
    flash(_("Declined: closure request #%(id)s of %(full_name)s. The member is emailed your note.", id=closure.id, full_name=closure.member.full_name),
          "success")
    return redirect(url_for("staff.closures"))
