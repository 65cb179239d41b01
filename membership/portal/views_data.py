"""My data: download everything Samiti holds about me (one ZIP with JSON and CSV), and ask for my
account to be closed (a confirm step, an optional reason; staff confirm, then the personal data
is erased), or withdraw that request while it waits."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_babel import gettext as _
from flask import Response, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from wtforms import BooleanField, TextAreaField
from wtforms.validators import DataRequired, Length

from membership.core.errors import Conflict, DomainError
from membership.core.models import Activity, AuditLog
from membership.core.time import local_today, utcnow
from membership.extensions import db
from membership.notifications.models import OutboxMessage
from membership.plans.models import Membership, Payment
from membership.portal import bp
from membership.portal.views_help import current_member, put_error
from membership.privacy import erasure, export
from membership.privacy.models import ClosureRequest
from membership.support.models import HelpRequest


class ClosureForm(FlaskForm):
    reason = TextAreaField(_l("Why are you leaving? (optional)"), validators=[
        Length(max=2000, message=_("Use at most 2,000 characters."))])
    confirm = BooleanField(_l("I understand that my personal details will be erased and I will not be able to "
                           "sign in any more."),
                           validators=[DataRequired(_l("Tick the box to confirm that you want your account closed."))])


def _counts(member) -> dict[str, int]:
    """How much we hold, per kind (one small count query each)."""
    def count(model, column):
        return db.session.scalar(select(func.count()).select_from(model).where(column == member.id))
    return {"terms": count(Membership, Membership.member_id), "payments": count(Payment, Payment.member_id),
            "activities": count(Activity, Activity.member_id), "emails": count(OutboxMessage, OutboxMessage.member_id),
            "help_requests": count(HelpRequest, HelpRequest.member_id), "audit": count(AuditLog, AuditLog.member_id)}


@bp.get("/data")
def my_data():
    member = current_member()
    closures = db.session.scalars(select(ClosureRequest).where(ClosureRequest.member_id == member.id)
                                  .order_by(ClosureRequest.requested_at.desc(), ClosureRequest.id.desc())
                                  .limit(5)).all()
    return render_template("portal/data/index.html", member=member, counts=_counts(member),
                           pending=erasure.pending_request(db.session, member), closures=closures,
                           descriptions=export.DESCRIPTIONS)


@bp.post("/data/export")
def export_my_data():
    """The archive, made on the fly (a member's data is small) and audited."""
    member = current_member()
    now = utcnow()
    data = export.build_archive(db.session, member, now=now, association=current_app.config["ASSOCIATION_NAME"])
    export.record_export(db.session, member, actor=current_user._get_current_object(), now=now)
    db.session.commit()
    name = export.archive_name(member, local_today(now))
    return Response(data, mimetype="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})


@bp.route("/data/close", methods=["GET", "POST"])
def close_account():
    member = current_member()
    pending = erasure.pending_request(db.session, member)
    if pending is not None:
        flash(_("You already asked for your account to be closed; our staff will confirm it soon."), "info")
        return redirect(url_for("portal.my_data"))
    form = ClosureForm()
    if request.method == "POST":
        if form.validate_on_submit():
            try:
                closure = erasure.request_closure(db.session, member, reason=form.reason.data, now=utcnow(),
                                                  actor=current_user._get_current_object())
                db.session.commit()
            except Conflict as e:
                db.session.rollback()
                flash(str(e), "info")
                return redirect(url_for("portal.my_data"))
            except DomainError as e:
                db.session.rollback()
                put_error(form, e)
                return render_template("portal/data/close.html", form=form, member=member), e.status_code
            flash(_("Request sent (#%(number)s). Our staff will check it and confirm; we will email you when "
                    "your account is closed. Until then you can change your mind here.", number=closure.id), "success")
            return redirect(url_for("portal.my_data"))
        return render_template("portal/data/close.html", form=form, member=member), 422
    return render_template("portal/data/close.html", form=form, member=member)


@bp.post("/data/close/withdraw")
def withdraw_closure():
    member = current_member()
    pending = erasure.pending_request(db.session, member)
    if pending is None:
        flash(_("There is no closure request waiting."), "info")
        return redirect(url_for("portal.my_data"))
    try:
        erasure.withdraw_closure(db.session, pending, now=utcnow(), actor=current_user._get_current_object())
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        flash(str(e), "info")
    else:
        flash(_("Withdrawn: your account stays open."), "success")
    return redirect(url_for("portal.my_data"))
