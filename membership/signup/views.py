"""The public joining pages: the plans open for joining, the application form, "check your email",
the confirmation link and "send the link again". No page says whether an address has an account."""
from __future__ import annotations

from flask_babel import gettext as _
from flask_babel import get_locale

from membership.core import i18n
from flask import abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user
from sqlalchemy.exc import IntegrityError

from membership.accounts import services as accounts
from membership.auth.forms import ConfirmForm, EmailOnlyForm
from membership.core.errors import DomainError
from membership.core.time import local_today, utcnow
from membership.extensions import db, limiter
from membership.referrals import services as referrals
from membership.signup import bp
from membership.signup import services as signup
from membership.signup.forms import JoinForm

CHECK_EMAIL = "signup.check_email"


def _email_key() -> str:
    return "email-link:" + accounts.normalize_email(request.form.get("email", ""))


def _email_link_limit() -> str:
    return current_app.config.get("EMAIL_LINK_LIMIT") or "5 per hour"


def _join_limit() -> str:
    return current_app.config.get("JOIN_LIMIT_PER_ADDRESS") or "10 per hour"


def _members_go_home():
    if current_user.is_authenticated and current_user.role == "member":
        flash(_("You are signed in as a member already: here is your membership."), "info")
        return redirect(url_for("portal.home"))
    return None


def _remember_referral() -> None:
    """A referral link (/join/?ref=CODE) fills the code in, on whichever plan is chosen next."""
    code = (request.args.get("ref") or "").strip()[:20]
    if code:
        session["join_ref"] = code


@bp.get("/")
def plans():
    """The plans open for joining online, with fee and period in words."""
    home = _members_go_home()
    if home:
        return home
    _remember_referral()
    offered = signup.joinable_plans(db.session)
    return render_template("portal/join/plans.html", plans=offered, period=signup.period_in_words)


def _render_form(plan, form, status=200):
    return render_template("portal/join/form.html", plan=plan, form=form,
                           period=signup.period_in_words(plan)), status


@bp.route("/<int:plan_id>", methods=["GET", "POST"])
@limiter.limit(_join_limit, methods=["POST"])
def apply(plan_id: int):
    home = _members_go_home()
    if home:
        return home
    plan = signup.joinable_plan(db.session, plan_id)
    if plan is None:
        abort(404)
    form = JoinForm()
    if request.method == "GET":
        _remember_referral()
        form.country.data = current_app.config.get("PHONE_REGION") or ""
        form.referral_code.data = session.get("join_ref") or ""
        form.language.data = str(get_locale() or "en")  # emails in the language of the page, unless changed
        return _render_form(plan, form)

    shape_ok = form.validate_on_submit()
    if form.website.data:
        # A robot filled the hidden field: the usual answer, nothing stored or sent.
        session["join_email"] = (form.email.data or "")[:254]
        return redirect(url_for(CHECK_EMAIL))
    now = utcnow()
    today = local_today(now)
    data, errors = signup.validate_application(form.member_data(signup.APPLICATION_FIELDS),
                                               region=current_app.config["PHONE_REGION"], today=today)
    for name, message in errors.items():
        if name in form._fields and message not in form[name].errors:
            form[name].errors = [*form[name].errors, message]
    if form.password.data and not form.password.errors:
        name = f"{form.first_name.data or ''} {form.last_name.data or ''}"
        problem = accounts.password_problem(form.password.data, email=form.email.data or "", name=name)
        if problem:
            form.password.errors = [*form.password.errors, problem]
    referrer = None
    try:
        referrer = referrals.referrer_by_code(db.session, form.referral_code.data)
    except DomainError as e:
        form.referral_code.errors = [*form.referral_code.errors, e.message]
    if not shape_ok or data is None or form.password.errors or form.referral_code.errors:
        return _render_form(plan, form, 422)
    try:
        result = signup.apply(db.session, plan=plan, data=data, password=form.password.data, now=now, today=today,
                              page_language=i18n.clean_language(session.get(i18n.SESSION_KEY)))
        if result.outcome == "created":
            referrals.record_referral(db.session, result.member, referrer, actor=None, now=now,
                                      via="link" if referrals.normalize_code(session.get("join_ref"))
                                      == referrals.normalize_code(form.referral_code.data) else "code")
        db.session.commit()
        session.pop("join_ref", None)
    except IntegrityError:
        # The same address submitted twice at the same moment: the first one made the application.
        db.session.rollback()
    except DomainError as e:
        db.session.rollback()
        target = e.field if e.field in form._fields else "email"
        form[target].errors = [*form[target].errors, e.message]
        return _render_form(plan, form, e.status_code)
    session["join_email"] = data.values["email"]
    return redirect(url_for(CHECK_EMAIL))


@bp.get("/check-email")
def check_email():
    """The same page whatever happened to the application (new, already waiting, address taken)."""
    email = session.get("join_email")
    return render_template("portal/join/check_email.html", email=email, form=EmailOnlyForm(formdata=None,
                                                                                          email=email))


@bp.route("/resend", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_LIMIT_PER_ADDRESS"], methods=["POST"])
@limiter.limit(_email_link_limit, methods=["POST"], key_func=_email_key)
def resend():
    """Send the confirmation link again (same answer whether or not an application waits)."""
    form = EmailOnlyForm()
    if request.method == "GET" and request.args.get("email"):
        form.email.data = request.args["email"][:254]
    if form.validate_on_submit():
        try:
            signup.resend_confirmation(db.session, form.email.data, now=utcnow())
            db.session.commit()
        except DomainError:
            db.session.rollback()
        session["join_email"] = form.email.data.strip()
        flash(_("If an application with this address waits for confirmation, we have sent a new link to it."), "info")
        return redirect(url_for(CHECK_EMAIL))
    return render_template("portal/join/resend.html", form=form), 422 if request.method == "POST" else 200


@bp.route("/confirm/<token>", methods=["GET", "POST"])
def confirm(token: str):
    """Opening the link shows a button (mail scanners open links); the button confirms."""
    user, problem = signup.user_from_confirm_token(db.session, token)
    if problem == "used":
        flash(_("Your email address is already confirmed. Sign in with your email and password."), "info")
        return redirect(url_for("auth.login"))
    if problem:
        form = EmailOnlyForm(formdata=None, email=user.email if user is not None else "")
        status = 410 if problem == "expired" else 404
        return render_template("portal/join/link_problem.html", problem=problem, form=form), status
    form = ConfirmForm()
    plan = signup.applied_plan(db.session, user.member) if user.member is not None else None
    if request.method == "POST" and form.validate_on_submit():
        now = utcnow()
        try:
            term = signup.confirm(db.session, user, now=now, today=local_today(now))
            db.session.commit()
        except DomainError as e:
            db.session.rollback()
            flash(e.message, "warning")
            return redirect(url_for("auth.login"))
        if term is None:
            message = _("Your email address is confirmed. The plan you chose is no longer offered online: sign in, "
                        "and contact us to choose another.")
        elif term.awaiting_approval:
            message = _("Your email address is confirmed. Our staff will review your application and email you. "
                        "Sign in to follow it.")
        elif term.awaiting_payment:
            message = _("Your email address is confirmed. Sign in to see how to pay; your membership starts once "
                        "we receive your payment.")
        else:
            message = _("Your email address is confirmed and your membership is active. Sign in to see it.")
        flash(message, "success")
        session.pop("join_email", None)
        return redirect(url_for("auth.login"))
    return render_template("portal/join/confirm.html", form=form, user=user, plan=plan)
