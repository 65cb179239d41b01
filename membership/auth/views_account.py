"""Forgotten password (an emailed single-use link) and change of email address (confirmed from the
new address; the old one is told). Links change nothing when opened: a button on the page does
(mail scanners open links)."""
from __future__ import annotations

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user
from werkzeug.security import check_password_hash

from membership.accounts import services as accounts
from membership.auth import bp
from membership.auth import services as auth_services
from membership.auth.forms import ChangeEmailForm, ConfirmForm, EmailOnlyForm, ResetPasswordForm
from membership.auth.views import _home_for
from membership.core.errors import DomainError
from membership.core.time import local_today, utcnow
from membership.extensions import db, limiter

LINK_PROBLEMS = {
    "expired": _l("This link has expired."),
    "used": _l("This link was already used."),
    "invalid": _l("This link is not valid. If you copied it from an email, check that you copied all of it."),
}


def _email_key() -> str:
    return "email-link:" + accounts.normalize_email(request.form.get("email", ""))


def _email_change_key() -> str:
    return f"email-change:{getattr(current_user, 'id', None)}"


def email_link_limit() -> str:
    """How many link emails (reset, confirmation) one address may ask for."""
    return current_app.config.get("EMAIL_LINK_LIMIT") or "5 per hour"


def link_problem(kind: str, problem: str):
    """The page for a link that cannot be used, with the way to get a new one."""
    status = 410 if problem in ("expired", "used") else 404
    return render_template("auth/link_problem.html", kind=kind, problem=problem,
                           message=LINK_PROBLEMS.get(problem, LINK_PROBLEMS["invalid"])), status


# ---------------------------------------------------------------- forgotten password


@bp.route("/password/forgot", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_LIMIT_PER_ADDRESS"], methods=["POST"])
@limiter.limit(email_link_limit, methods=["POST"], key_func=_email_key)
def forgot_password():
    form = EmailOnlyForm()
    if request.method == "GET" and request.args.get("email"):
        form.email.data = request.args.get("email", "")[:254]
    if form.validate_on_submit():
        try:
            auth_services.request_password_reset(db.session, form.email.data, now=utcnow())
            db.session.commit()
        except DomainError:
            db.session.rollback()
        # The same answer whether or not the address has an account.
        return render_template("auth/link_sent.html", kind="reset", email=form.email.data.strip())
    return render_template("auth/forgot_password.html", form=form), 422 if request.method == "POST" else 200


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
def reset_password(token: str):
    user, problem = auth_services.user_from_reset_token(db.session, token)
    if problem:
        return link_problem("reset", problem)
    form = ResetPasswordForm()
    if form.validate_on_submit():
        now = utcnow()
        try:
            auth_services.reset_password(db.session, user, form.new_password.data, now=now, today=local_today(now))
            user.last_login_at = now
            db.session.commit()
        except DomainError as e:
            db.session.rollback()
            form.new_password.errors.append(str(e))
        else:
            session.clear()
            login_user(user)
            flash(_("Your new password is set. You are signed in; any other device has been signed out."), "success")
            return redirect(_home_for(user))
    status = 422 if request.method == "POST" else 200
    return render_template("auth/reset_password.html", form=form, user=user), status


# ---------------------------------------------------------------- change of email address


@bp.route("/account/email", methods=["GET", "POST"])
@login_required
@limiter.limit(lambda: current_app.config["LOGIN_LIMIT_PER_ACCOUNT"], methods=["POST"], key_func=_email_change_key)
def change_email():
    form = ChangeEmailForm()
    if form.validate_on_submit():
        user = current_user._get_current_object()
        if not check_password_hash(user.password_hash or "", form.current_password.data):
            form.current_password.errors.append(_("This is not your password."))
        else:
            try:
                new_email = auth_services.request_email_change(db.session, user, form.email.data, now=utcnow())
                db.session.commit()
            except DomainError as e:
                db.session.rollback()
                form.email.errors.append(str(e))
            else:
                flash(_("We sent a link to %(new)s. Open it to confirm the new address; until then we keep "
                        "writing to %(old)s.", new=new_email, old=user.email), "success")
                return redirect(url_for("portal.profile") if user.member_id else _home_for(user))
    status = 422 if request.method == "POST" else 200
    return render_template("auth/change_email.html", form=form), status


@bp.route("/account/email/confirm/<token>", methods=["GET", "POST"])
def confirm_email_change(token: str):
    user, new_email, problem = auth_services.pending_email_change(db.session, token)
    if problem:
        return link_problem("email", problem)
    form = ConfirmForm()
    if request.method == "POST" and form.validate_on_submit():
        try:
            auth_services.change_email(db.session, user, new_email, now=utcnow())
            db.session.commit()
        except DomainError as e:
            db.session.rollback()
            return render_template("auth/confirm_email_change.html", form=form, user=user, new_email=new_email,
                                   error=str(e)), e.status_code
        flash(_("Your email address is now %(email)s.", email=user.email), "success")
        signed_in = current_user.is_authenticated and current_user.id == user.id
        return redirect(_home_for(user) if signed_in else url_for("auth.login"))
    return render_template("auth/confirm_email_change.html", form=form, user=user, new_email=new_email)
