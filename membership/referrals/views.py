"""Referral pages: the staff overview and reward rule (/staff/referrals), a member's referrer set by
staff; the template globals behind the member page, portal home and dashboard partials."""
from __future__ import annotations

from flask import Blueprint, Flask, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user

from membership.core import time as clock
from membership.core.errors import DomainError
from membership.extensions import db
from membership.members.models import Member
from membership.referrals import services
from membership.referrals.forms import ReferrerForm, RewardRuleForm
from membership.web import get_or_404, page_or_last, require_roles

bp = Blueprint("referrals", __name__, url_prefix="/staff/referrals")
bp.before_request(require_roles("staff", "admin"))
PER_PAGE = 50


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


@bp.app_template_global()
def member_referrals(member):
    """A member's code, link and referrals (member page and portal home partials)."""
    return services.member_referrals(db.session, member, now=clock.utcnow())


@bp.app_template_global()
def referral_rate_figure():
    """The dashboard's referral rate: members who joined in the last year and were referred."""
    return services.referral_rate(db.session, today=clock.local_today())


@bp.app_template_global()
def referrer_form():
    return ReferrerForm(formdata=None)


def _render(form=None, status=200):
    today = clock.local_today()
    form = form or RewardRuleForm(formdata=None, rule=services.reward_rule(db.session))
    page = page_or_last(services.referrals_query(), per_page=PER_PAGE)
    return render_template("staff/referrals/index.html", page=page, form=form,
                           joined=services.joined_ids(db.session, [m.id for m in page.items]),
                           rule=services.reward_rule(db.session), rule_labels=services.RULE_LABELS,
                           rate=services.referral_rate(db.session, today=today),
                           top=services.top_referrers(db.session), code_for_id=services.code_for_id), status


@bp.get("/")
def index():
    return _render()


@bp.post("/rule")
def set_rule():
    if not current_user.is_admin:
        abort(403)
    form = RewardRuleForm()
    if not form.validate_on_submit():
        return _render(form, 422)
    try:
        services.set_reward_rule(db.session, form.rule.data, actor=current_user._get_current_object(),
                                 now=clock.utcnow())
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        form.rule.errors = [e.message]
        return _render(form, 422)
    flash(_("Referral reward rule saved."), "success")
    return redirect(url_for("referrals.index"))


@bp.post("/members/<int:member_id>/referrer")
def set_referrer(member_id: int):
    member = get_or_404(Member, member_id)
    form = ReferrerForm()
    target = url_for("staff.member", member_id=member.id) + "#referrals"
    if not form.validate_on_submit():
        for errors in form.errors.values():
            flash(" ".join(errors), "danger")
        return redirect(target)
    try:
        referrer = services.staff_set_referrer(db.session, member, form.referrer.data,
                                               actor=current_user._get_current_object(), now=clock.utcnow())
        db.session.commit()
        flash(_("Recorded: referred by %(name)s.", name=referrer.full_name), "success")
    except DomainError as e:
        db.session.rollback()
        flash(e.message, "danger")
    return redirect(target)
