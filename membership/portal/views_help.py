"""Help requests in the member portal: ask a question or make a complaint, follow the
conversation, reply, and say when it is sorted. A member sees only their own requests: another
member's request id is "not found" (404), the same as an id that does not exist."""
from __future__ import annotations

from flask_babel import gettext as _, lazy_gettext as _l
import re

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import HiddenField, RadioField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from membership.core.errors import DomainError, NotFound
from membership.core.time import utcnow
from membership.extensions import db
from membership.portal import bp
from membership.support import services as support
from membership.support.models import HELP_CATEGORIES, HelpRequest

PER_PAGE = 20
_PAGE = re.compile(r"[0-9]{1,6}")


class HelpRequestForm(FlaskForm):
    subject = StringField(_l("Subject"), validators=[
        DataRequired(_l("Say in a few words what it is about.")),
        Length(max=support.SUBJECT_MAX, message=f"Use at most {support.SUBJECT_MAX} characters.")])
    category = RadioField(_l("What is it?"), choices=[SelectChoice(c, support.CATEGORY_LABELS[c]) for c in HELP_CATEGORIES],
                          default="question", validators=[DataRequired(_l("Choose what kind of request this is."))])
    body = TextAreaField(_l("Your message"), validators=[
        DataRequired(_l("Write your question or complaint.")),
        Length(max=support.BODY_MAX, message=f"Use at most {support.BODY_MAX:,} characters.")])
    # The form's key: the same form sent twice (a double click) opens one request.
    token = HiddenField()


class ReplyForm(FlaskForm):
    body = TextAreaField(_l("Your reply"), validators=[
        DataRequired(_l("Write your reply.")),
        Length(max=support.BODY_MAX, message=f"Use at most {support.BODY_MAX:,} characters.")])
    token = HiddenField()


def current_member():
    """The signed-in member's record (the portal blueprint already requires a member login)."""
    member = current_user.member
    if member is None or member.erased_at is not None:
        abort(403)
    return member


def page_arg() -> int:
    raw = request.args.get("page") or ""
    return int(raw) if _PAGE.fullmatch(raw) and int(raw) > 0 else 1


def put_error(form: FlaskForm, error: DomainError) -> None:
    if error.field and error.field in form._fields and error.field != "token":
        form[error.field].errors = [*form[error.field].errors, error.message]
    else:
        form.form_errors.append(error.message)


def _owned(member, request_id: int) -> HelpRequest:
    try:
        return support.owned_request(db.session, member, request_id)
    except NotFound:
        abort(404)


@bp.get("/help")
def help_requests():
    """The member's requests, the most recently active first."""
    member = current_member()
    stmt = (select(HelpRequest).where(HelpRequest.member_id == member.id)
            .order_by(HelpRequest.updated_at.desc(), HelpRequest.id.desc()))
    page = db.paginate(stmt, page=page_arg(), per_page=PER_PAGE, error_out=False)
    return render_template("portal/help/index.html", page=page, labels=support.MEMBER_STATUS_LABELS,
                           categories=support.CATEGORY_LABELS)


@bp.route("/help/new", methods=["GET", "POST"])
def new_help_request():
    member = current_member()
    form = HelpRequestForm()
    status = 200
    if request.method == "POST":
        if form.validate_on_submit():
            try:
                created = support.open_request(
                    db.session, member, subject=form.subject.data, category=form.category.data,
                    body=form.body.data, now=utcnow(), actor=current_user._get_current_object(),
                    client_key=form.token.data)
                db.session.commit()
            except DomainError as e:
                db.session.rollback()
                put_error(form, e)
                status = e.status_code
            else:
                flash(_("Sent: your request %(number)s “%(subject)s”. We will reply here and by email.",
                        number=created.number, subject=created.subject), "success")
                return redirect(url_for("portal.help_request", request_id=created.id))
        else:
            status = 422
    return render_template("portal/help/new.html", form=form), status


def _render_detail(member, help_request: HelpRequest, form: ReplyForm | None = None, status: int = 200):
    return render_template("portal/help/detail.html", req=help_request, form=form or ReplyForm(formdata=None),
                           labels=support.MEMBER_STATUS_LABELS, categories=support.CATEGORY_LABELS), status


@bp.get("/help/<int:request_id>")
def help_request(request_id: int):
    member = current_member()
    return _render_detail(member, _owned(member, request_id))


@bp.post("/help/<int:request_id>/reply")
def help_reply(request_id: int):
    member = current_member()
    help_req = _owned(member, request_id)
    form = ReplyForm()
    if not form.validate_on_submit():
        return _render_detail(member, help_req, form, 422)
    was_resolved = help_req.status == "resolved"
    try:
        support.member_reply(db.session, help_req, member, body=form.body.data, now=utcnow(),
                             actor=current_user._get_current_object(), client_key=form.token.data)
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        put_error(form, e)
        return _render_detail(member, _owned(member, request_id), form, e.status_code)
    flash(_("Reply sent. Your request is open again; we will answer here and by email.") if was_resolved
          else _("Reply sent. We will answer here and by email."), "success")
    return redirect(url_for("portal.help_request", request_id=request_id, _anchor="latest"))


@bp.post("/help/<int:request_id>/resolve")
def help_resolve(request_id: int):
    member = current_member()
    help_req = _owned(member, request_id)
    try:
        support.resolve(db.session, help_req, now=utcnow(), actor=current_user._get_current_object(),
                        by_member=True)
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        flash(str(e), "info")
    else:
        flash(_("Marked as resolved: %(number)s. Thank you! Reply any time if you need more help.",
                number=help_req.number), "success")
    return redirect(url_for("portal.help_request", request_id=request_id))
