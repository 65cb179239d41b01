"""Sign in, sign out, change password, accept a staff invitation (forgotten passwords and changes of
email address: views_account.py)."""
from __future__ import annotations

from flask_babel import gettext as _
from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from werkzeug.security import check_password_hash
from werkzeug.urls import iri_to_uri

from membership.accounts import services as accounts
from membership.accounts.models import User
from membership.auth import bp
from membership.auth.forms import ChangePasswordForm, LoginForm, SetPasswordForm
from membership.signup import services as signup
from membership.core import i18n
from membership.core.errors import DomainError
from membership.core.time import utcnow
from membership.extensions import db, limiter
from membership.web import is_safe_next


def _account_key() -> str:
    return "login-account:" + accounts.normalize_email(request.form.get("email", ""))


def _user_key() -> str:
    return f"password-change:{getattr(current_user, 'id', None)}"


def _home_for(user: User) -> str:
    return url_for("staff.home") if user.is_staff else url_for("portal.home")


@bp.get("/")
def index():
    if current_user.is_authenticated:
        return redirect(_home_for(current_user))
    return redirect(url_for("auth.login"))


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_LIMIT_PER_ADDRESS"], methods=["POST"])
@limiter.limit(lambda: current_app.config["LOGIN_LIMIT_PER_ACCOUNT"], methods=["POST"], key_func=_account_key)
def login():
    if current_user.is_authenticated:
        return redirect(_home_for(current_user))
    form = LoginForm()
    if request.method == "GET":
        form.next.data = request.args.get("next", "")
    if form.validate_on_submit():
        waiting = accounts.get_user_by_email(db.session, form.email.data)
        if signup.awaiting_confirmation(waiting):
            # Joined online, address not confirmed yet: with the right password, say so (and offer
            # a new link); with a wrong one, the same answer as for any other failure.
            if check_password_hash(waiting.password_hash or "", form.password.data):
                return render_template("auth/login.html", form=form, unconfirmed=waiting.email), 403
            user = None
        else:
            user = accounts.authenticate(db.session, form.email.data, form.password.data)
        if user is None:
            form.password.errors.append(_("The email or password is not right."))
            return render_template("auth/login.html", form=form), 401
        # A fresh session at sign-in: nothing from before (a planted session id) carries over,
        # except the language the visitor just chose with the switch, which becomes their login's.
        chosen = i18n.clean_language(session.get(i18n.SESSION_KEY))
        session.clear()
        now = utcnow()
        if chosen is not None:
            session[i18n.SESSION_KEY] = chosen
            if user.language != chosen:
                i18n.set_language(db.session, user, chosen, now=now)
        user.last_login_at = now
        if user.member_id:
            from membership.core.time import tz
            from membership.engagement.tracking import record_login
            record_login(db.session, user.member_id, now=now, zone=tz())  # once per local day
        db.session.commit()
        login_user(user, remember=form.remember.data)
        target = form.next.data
        # iri_to_uri: a page with a Bengali search in its address must still give an ASCII Location.
        return redirect(iri_to_uri(target) if is_safe_next(target) else _home_for(user))
    status = 422 if request.method == "POST" else 200
    return render_template("auth/login.html", form=form), status


@bp.post("/logout")
def logout():
    if current_user.is_authenticated:
        # Rotate the token: copies of this session cookie stop working too.
        accounts.logout_everywhere(current_user)
        db.session.commit()
    logout_user()
    session.clear()
    flash(_("You are signed out."), "success")
    return redirect(url_for("auth.login"))


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
@limiter.limit(lambda: current_app.config["LOGIN_LIMIT_PER_ACCOUNT"], methods=["POST"], key_func=_user_key)
def change_password():
    form = ChangePasswordForm()
    if form.validate_on_submit():
        if not check_password_hash(current_user.password_hash or "", form.current_password.data):
            form.current_password.errors.append(_("This is not your current password."))
        else:
            try:
                accounts.set_password(db.session, current_user, form.new_password.data, actor=current_user,
                                      now=utcnow())
                db.session.commit()
            except DomainError as e:
                db.session.rollback()
                form.new_password.errors.append(str(e))
            else:
                # The token changed: sign in again in this browser only; every other session has ended.
                user = current_user._get_current_object()  # the user, not the proxy (login_user stores it)
                login_user(user)
                flash(_("Your password is changed. Other devices have been signed out."), "success")
                return redirect(_home_for(user))
    status = 422 if request.method == "POST" else 200
    return render_template("auth/change_password.html", form=form), status


def invitation_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="staff-invitation")


def invitation_token(user: User) -> str:
    # Includes the session token: the link stops working once a password is set.
    return invitation_serializer().dumps({"id": user.id, "t": user.session_token})


INVITATION_MAX_AGE = 7 * 24 * 3600


@bp.route("/invitation/<token>", methods=["GET", "POST"])
def accept_invitation(token: str):
    try:
        data = invitation_serializer().loads(token, max_age=INVITATION_MAX_AGE)
    except SignatureExpired:
        return render_template("errors/error.html", code=400,
                               message=_("This invitation has expired. Ask an admin for a new one.")), 400
    except BadSignature:
        return render_template("errors/error.html", code=404, message=_("This invitation link is not valid.")), 404
    user = db.session.get(User, data.get("id"))
    if user is None or user.session_token != data.get("t") or user.password_hash or not user.is_active:
        return render_template("errors/error.html", code=404,
                               message=_("This invitation was already used or withdrawn.")), 404
    form = SetPasswordForm()
    if request.method == "GET":
        form.name.data = user.name
    if form.validate_on_submit():
        try:
            user.name = form.name.data.strip()
            accounts.set_password(db.session, user, form.new_password.data, actor=user, now=utcnow())
            user.email_verified_at = utcnow()
            db.session.commit()
        except DomainError as e:
            db.session.rollback()
            form.new_password.errors.append(str(e))
        else:
            session.clear()
            login_user(user)
            flash(_("Welcome to Samiti. Your password is set."), "success")
            return redirect(_home_for(user))
    status = 422 if request.method == "POST" else 200
    return render_template("auth/invitation.html", form=form, user=user), status
