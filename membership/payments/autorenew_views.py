"""Auto-renewal on the pages: the member's "Automatic renewal: on ..." box with its Stop button
(portal home), the same box on the staff member page, and the two Stop actions. The box reads
payments.autorenew.status_of; stopping goes through payments.autorenew.stop (audited, emailed)."""
from __future__ import annotations

from flask import Blueprint, Flask, flash, redirect, url_for
from flask_babel import gettext as _
from flask_login import current_user

from membership.core import time as clock
from membership.extensions import db
from membership.members.models import Member
from membership.payments import autorenew
from membership.web import get_or_404, require_roles

portal_bp = Blueprint("autorenew_portal", __name__, url_prefix="/my/autorenew")
portal_bp.before_request(require_roles("member"))
staff_bp = Blueprint("autorenew_staff", __name__, url_prefix="/staff/members")
staff_bp.before_request(require_roles("staff", "admin"))


def init_app(app: Flask) -> None:
    app.register_blueprint(portal_bp)
    app.register_blueprint(staff_bp)


@portal_bp.app_template_global()
def auto_renewal_of(member):
    """The member's auto-renewal (payments.autorenew.AutoRenewal) or None: for the two partials."""
    if member is None:
        return None
    return autorenew.status_of(db.session, member, today=clock.local_today())


@portal_bp.post("/stop")
def portal_stop():
    member = current_user.member
    if member is None or member.erased_at is not None:
        flash(_("Your login is not linked to a membership record. Please contact us."), "warning")
        return redirect(url_for("portal.home"))
    if autorenew.stop(db.session, member, actor=current_user, now=clock.utcnow(), via="member"):
        db.session.commit()
        flash(_("Automatic renewal is stopped: your card will not be charged. We have sent you an email to confirm."),
              "success")
    else:
        flash(_("Automatic renewal was already off."), "info")
    return redirect(url_for("portal.home") + "#autorenew")


@staff_bp.post("/<int:member_id>/autorenew/stop")
def staff_stop(member_id: int):
    member = get_or_404(Member, member_id)
    if autorenew.stop(db.session, member, actor=current_user, now=clock.utcnow(), via="staff"):
        db.session.commit()
        flash(_("Automatic renewal stopped for %(name)s; they have been sent an email.", name=member.full_name),
              "success")
    else:
        flash(_("Automatic renewal was already off."), "info")
    return redirect(url_for("staff.member", member_id=member.id) + "#autorenew")
