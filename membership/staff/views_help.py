"""Staff help-request queue: open (waiting for us), answered (waiting for the member), resolved;
filters by category, age and member, a search on subject, member name or number; oldest first.
The request page shows the conversation; staff reply (emailed to the member through the outbox
and shown in the portal), resolve, or reopen."""
from __future__ import annotations

import re

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_babel import LazyString, gettext as _, lazy_gettext as _l
from sqlalchemy import or_, select
from sqlalchemy.orm import joinedload
from wtforms import BooleanField, HiddenField, TextAreaField
from wtforms.validators import DataRequired, Length

from membership.core import formats
from membership.core.errors import DomainError
from membership.core.time import utcnow
from membership.extensions import db
from membership.members.models import Member
from membership.members.queries import search_condition
from membership.staff import bp
from membership.support import figures
from membership.support import services as support
from membership.support.models import HELP_CATEGORIES, UNRESOLVED, HelpRequest
from membership.web import get_or_404

PER_PAGE = 50
_ID = re.compile(r"[0-9]{1,9}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
TABS = ("open", "answered", "unresolved", "resolved", "closed", "all")
TAB_LABELS = {"open": _l('Open'), "answered": _l('Answered'), "unresolved": _l('All unresolved'), "resolved": _l('Resolved'),
              "closed": _l('Closed'), "all": _l('All')}
STATUS_COLOURS = {"open": "danger", "answered": "info", "resolved": "success", "closed": "secondary"}


class StaffReplyForm(FlaskForm):
    body = TextAreaField(_l('Reply'), validators=[
        DataRequired(_l('Write the reply.')),
        Length(max=support.BODY_MAX, message=_l("Use at most %(body_max)s characters.", body_max=LazyString(formats.number, support.BODY_MAX)))])
    resolve = BooleanField(_l('Mark as resolved after sending'))
    token = HiddenField()


def _int_arg(name: str) -> int | None:
    raw = (request.args.get(name) or "").strip()
    return int(raw) if _ID.fullmatch(raw) else None


def _queue_filter() -> dict:
    status = request.args.get("status") or "open"
    category = request.args.get("category") or ""
    age = request.args.get("age") or ""
    return {"status": status if status in TABS else "open",
            "category": category if category in HELP_CATEGORIES else "",
            "age": age if age in figures.AGE_KEYS else "",
            "q": _CONTROL.sub(" ", request.args.get("q") or "").strip()[:200],
            "member": _int_arg("member")}


@bp.get("/help")
def help_queue():
    f = _queue_filter()
    now = utcnow()
    stmt = select(HelpRequest).join(Member, Member.id == HelpRequest.member_id).options(
        joinedload(HelpRequest.member))
    if f["status"] == "unresolved":
        stmt = stmt.where(HelpRequest.status.in_(UNRESOLVED))
    elif f["status"] != "all":
        stmt = stmt.where(HelpRequest.status == f["status"])
    if f["category"]:
        stmt = stmt.where(HelpRequest.category == f["category"])
    if f["age"]:
        stmt = stmt.where(figures.age_condition(f["age"], now))
    if f["member"]:
        stmt = stmt.where(HelpRequest.member_id == f["member"])
    if f["q"]:
        pattern = "%" + f["q"].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(or_(HelpRequest.subject.ilike(pattern, escape="\\"), search_condition(f["q"])))
    stmt = stmt.order_by(HelpRequest.created_at, HelpRequest.id)
    page_no = _int_arg("page") or 1
    page = db.paginate(stmt, page=page_no, per_page=PER_PAGE, error_out=False)
    args = {k: v for k, v in f.items() if v not in (None, "")}
    member = db.session.get(Member, f["member"]) if f["member"] else None
    age_labels = {key: label for key, label, _lo, _hi in figures.AGE_BUCKETS}
    return render_template("staff/help/queue.html", page=page, filter=f, args=args, now=now, member=member,
                           counts=support.status_counts(db.session), tabs=TABS, tab_labels=TAB_LABELS,
                           categories=support.CATEGORY_LABELS, status_labels=support.STATUS_LABELS,
                           status_colours=STATUS_COLOURS, age_labels=age_labels,
                           format_duration=figures.format_duration)


def _render_request(help_req: HelpRequest, form: StaffReplyForm | None = None, status: int = 200):
    return render_template("staff/help/detail.html", req=help_req, form=form or StaffReplyForm(formdata=None),
                           categories=support.CATEGORY_LABELS, status_labels=support.STATUS_LABELS,
                           status_colours=STATUS_COLOURS, now=utcnow(),
                           format_duration=figures.format_duration), status


@bp.get("/help/<int:request_id>")
def help_request(request_id: int):
    return _render_request(get_or_404(HelpRequest, request_id))


@bp.post("/help/<int:request_id>/reply")
def help_reply(request_id: int):
    help_req = get_or_404(HelpRequest, request_id)
    form = StaffReplyForm()
    if not form.validate_on_submit():
        return _render_request(help_req, form, 422)
    try:
        support.staff_reply(db.session, help_req, body=form.body.data, now=utcnow(),
                            actor=current_user._get_current_object(), resolve=form.resolve.data,
                            client_key=form.token.data)
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        if e.field == "body":
            form.body.errors = [*form.body.errors, e.message]
        else:
            form.form_errors.append(e.message)
        return _render_request(get_or_404(HelpRequest, request_id), form, e.status_code)
    member = help_req.member
    values = {"number": help_req.number, "status": str(support.STATUS_LABELS[help_req.status]).lower()}
    if member is not None and member.email:
        text = _("Reply sent and emailed to %(email)s. Request %(number)s is now %(status)s.", email=member.email,
                 **values)
    else:
        text = _("Reply sent (not emailed: the member has no email address). Request %(number)s is now %(status)s.",
                 **values)
    flash(text, "success")
    if help_req.status == "resolved":
        return redirect(url_for("staff.help_queue"))
    return redirect(url_for("staff.help_request", request_id=request_id))


@bp.post("/help/<int:request_id>/resolve")
def help_resolve(request_id: int):
    help_req = get_or_404(HelpRequest, request_id)
    try:
        support.resolve(db.session, help_req, now=utcnow(), actor=current_user._get_current_object())
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        flash(str(e), "error")
        return redirect(url_for("staff.help_request", request_id=request_id))
    flash(_("Resolved: request %(number)s “%(subject)s”.", number=help_req.number, subject=help_req.subject), "success")
    return redirect(url_for("staff.help_queue"))


@bp.post("/help/<int:request_id>/reopen")
def help_reopen(request_id: int):
    help_req = get_or_404(HelpRequest, request_id)
    try:
        support.reopen(db.session, help_req, now=utcnow(), actor=current_user._get_current_object())
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        flash(str(e), "error")
    else:
        flash(_("Reopened: request %(number)s is waiting for a staff reply again.", number=help_req.number), "success")
    return redirect(url_for("staff.help_request", request_id=request_id))

