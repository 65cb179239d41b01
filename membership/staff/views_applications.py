"""The approval queue: online applications for plans that need staff approval, oldest first, with
approve and decline (with a reason). Each decision emails the applicant (membership.signup.services)."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_babel import gettext as _, lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload
from wtforms import TextAreaField
from wtforms.validators import DataRequired, Length

from membership.core import time as clock
from membership.core.errors import DomainError
from membership.extensions import db
from membership.plans.models import Membership
from membership.signup import services as signup
from membership.staff import bp
from membership.web import format_day, money

APPLICATIONS_PER_PAGE = 50


class DeclineForm(FlaskForm):
    reason = TextAreaField(_l('Reason (sent to the applicant)'),
                           validators=[DataRequired(_l('Give the reason: the applicant receives it.')), Length(max=2000)])


def _application(term_id: int) -> Membership:
    """A term that is (or was) an application of a member, or 404."""
    term = db.session.get(Membership, term_id)
    if term is None or term.member_id is None:
        abort(404)
    return term


def _back():
    return redirect(url_for("staff.applications"))


@bp.get("/applications")
def applications():
    """Applications waiting for a decision, oldest first, with what each applicant will pay."""
    page_no = request.args.get("page", "1")
    page_no = int(page_no) if page_no.isdigit() and len(page_no) < 7 and int(page_no) > 0 else 1
    stmt = signup.applications_query().options(joinedload(Membership.member))
    page = db.paginate(stmt, page=page_no, per_page=APPLICATIONS_PER_PAGE, error_out=False)
    total = db.session.scalar(select(func.count()).select_from(signup.applications_query().subquery()))
    today = clock.local_today()

    def waited(term: Membership) -> int:
        return max(0, (today - clock.local_date(term.created_at, clock.tz())).days)

    return render_template("staff/applications/list.html", page=page, total=total, waited=waited)


@bp.post("/applications/<int:term_id>/approve")
def approve_application(term_id: int):
    term = _application(term_id)
    now = clock.utcnow()
    try:
        signup.approve_application(db.session, term, actor=current_user._get_current_object(), now=now,
                                   today=clock.local_today(now))
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        flash(_("%(full_name)s: %(message)s", full_name=term.member.full_name, message=e.message), "warning")
        return _back()
    if term.awaiting_payment:
        text = _("Approved: %(name)s, %(plan)s; waiting for payment of %(amount)s. The applicant has been emailed.",
                 name=term.member.full_name, plan=term.plan.name,
                 amount=money(signup.amount_due(db.session, term), term.currency))
    else:
        text = _("Approved: %(name)s, %(plan)s. The applicant has been emailed.", name=term.member.full_name,
                 plan=term.plan.name)
    flash(text, "success")
    return _back()


@bp.route("/applications/<int:term_id>/decline", methods=["GET", "POST"])
def decline_application(term_id: int):
    term = _application(term_id)
    form = DeclineForm()
    if request.method == "GET":
        if not term.awaiting_approval or term.cancelled_on is not None:
            flash(_("The application of %(full_name)s no longer waits for a decision.", full_name=term.member.full_name), "info")
            return _back()
        return render_template("staff/applications/decline.html", term=term, form=form)
    if not form.validate():
        return render_template("staff/applications/decline.html", term=term, form=form), 422
    now = clock.utcnow()
    try:
        signup.decline_application(db.session, term, reason=form.reason.data, actor=current_user._get_current_object(),
                                   now=now, today=clock.local_today(now))
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        if e.field == "reason":
            form.reason.errors = [*form.reason.errors, e.message]
            return render_template("staff/applications/decline.html", term=term, form=form), e.status_code
        flash(_("%(full_name)s: %(message)s", full_name=term.member.full_name, message=e.message), "warning")
        return _back()
    flash(_("Declined: %(full_name)s, %(name)s (applied %(created_at)s). The applicant has been emailed the reason.", full_name=term.member.full_name, name=term.plan.name, created_at=format_day(term.created_at)), "success")
    return _back()
