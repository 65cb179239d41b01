"""Admin: staff accounts (list, create with a password or an invitation link, role, deactivate)."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user
from sqlalchemy import func, or_, select

from membership.accounts import services as accounts
from membership.accounts.models import User
from membership.admin import bp
from membership.admin.forms import RoleForm, UserCreateForm
from membership.auth.views import INVITATION_MAX_AGE, invitation_token
from membership.core.errors import DomainError
from membership.core.models import AuditLog
from membership.core.services import record_audit
from membership.core.time import utcnow
from membership.extensions import db
from membership.members.services import clean_email, clean_text, search_key
from membership.web import is_safe_next

USERS_PER_PAGE = 50
STAFF_ROLES = ("admin", "staff")
SHOW = ("active", "deactivated", "all")


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


@bp.get("/users")
def users():
    q = (request.args.get("q") or "").strip()[:200]
    show = request.args.get("show", "active")
    if show not in SHOW:
        show = "active"
    query = select(User).where(User.role.in_(STAFF_ROLES))
    if show != "all":
        query = query.where(User.is_active_flag.is_(show == "active"))
    if q:
        pattern = _like(search_key(q))
        query = query.where(or_(User.email_normalized.like(pattern, escape="\\"),
                                func.lower(User.name).like(pattern, escape="\\")))
    query = query.order_by(User.role, func.lower(User.name), User.id)
    page = db.paginate(query, per_page=USERS_PER_PAGE, error_out=False)
    return render_template("admin/users/list.html", page=page, q=q, show=show)


def _staff_user(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None or user.role not in STAFF_ROLES:
        abort(404)  # member logins are managed from the member's page, not here
    return user


def _field_error(form, error: DomainError) -> None:
    if error.field and error.field in form:
        form[error.field].errors = list(form[error.field].errors) + [error.message]
    else:
        flash(error.message, "error")


@bp.route("/users/new", methods=["GET", "POST"])
def user_new():
    form = UserCreateForm()
    if request.method == "GET":
        return render_template("admin/users/new.html", form=form)
    if not form.validate():
        return render_template("admin/users/new.html", form=form), 422
    inviting = form.mode.data != "password"
    try:
        name = clean_text(form.name.data, field="name", label=_('Name'), max_length=200, required=True)
        email = clean_email(form.email.data, required=True)
        now = utcnow()
        user = accounts.create_user(db.session, email=email, name=name, role=form.role.data,
                                    password=None if inviting else form.password.data,
                                    actor=current_user, now=now)
        if inviting:
            _email_invitation(user, now)
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        _field_error(form, e)
        return render_template("admin/users/new.html", form=form), e.status_code
    if inviting:
        flash(_("Account created for %(email)s, and the invitation link emailed to them; they choose their own password with it. The link is also below, to pass on another way.", email=user.email), "success")
    else:
        flash(_("Account created for %(email)s with the password you set. Ask them to change it after signing in.", email=user.email), "success")
    return redirect(url_for("admin.user", user_id=user.id))


def invitation_link(user: User) -> str:
    """The invitation link, on BASE_URL (the address members and staff use), not on whatever host
    the admin's request came through."""
    from membership.notifications.templating import link
    return link(url_for("auth.accept_invitation", token=invitation_token(user)))


def _email_invitation(user: User, now) -> None:
    from membership.notifications.emails import queue_staff_invitation
    db.session.flush()
    queue_staff_invitation(db.session, user, invitation_link=invitation_link(user),
                           invited_by=current_user.name or current_user.email,
                           days=INVITATION_MAX_AGE // 86400, now=now)


def _render_user(user: User, role_form: RoleForm | None = None, status: int = 200):
    role_form = role_form or RoleForm(data={"role": user.role})
    invitation = None
    if user.password_hash is None and user.is_active:
        invitation = invitation_link(user)
    changes = db.session.scalars(select(AuditLog).where(AuditLog.entity_type == "user", AuditLog.entity_id == user.id)
                                 .order_by(AuditLog.at.desc(), AuditLog.id.desc()).limit(20)).all()
    actions = db.session.scalars(select(AuditLog).where(AuditLog.actor_id == user.id)
                                 .order_by(AuditLog.at.desc(), AuditLog.id.desc()).limit(20)).all()
    return render_template("admin/users/detail.html", user=user, role_form=role_form, invitation=invitation,
                           invitation_days=INVITATION_MAX_AGE // 86400, changes=changes, actions=actions), status


@bp.get("/users/<int:user_id>")
def user(user_id: int):
    return _render_user(_staff_user(user_id))


@bp.post("/users/<int:user_id>/role")
def user_role(user_id: int):
    user = _staff_user(user_id)
    form = RoleForm()
    if not form.validate():
        return _render_user(user, form, 422)
    old = user.role
    try:
        accounts.change_role(db.session, user, form.role.data, actor=current_user, now=utcnow())
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        form.role.errors = list(form.role.errors) + [e.message]
        return _render_user(user, form, e.status_code)
    if old == user.role:
        flash(_("%(email)s is already %(role)s.", email=user.email, role=user.role), "info")
        return redirect(url_for("admin.user", user_id=user.id))
    if user.id == current_user.id:
        # The role change renewed the session token; keep this browser signed in with the new one.
        login_user(user)
        if not user.is_admin:
            flash(_("You are now %(role)s; the admin pages are closed to you.", role=user.role), "success")
            return redirect(url_for("staff.home"))
    flash(_("%(email)s is now %(role)s (was %(old)s). Their other sessions have been signed out.", email=user.email, role=user.role, old=old), "success")
    return redirect(url_for("admin.user", user_id=user.id))


def _set_active(user_id: int, active: bool):
    user = _staff_user(user_id)
    try:
        accounts.set_active(db.session, user, active, actor=current_user, now=utcnow())
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        flash(e.message, "error")
        return _render_user(user, status=e.status_code)
    if active:
        flash(_("%(email)s is active again and can sign in.", email=user.email), "success")
    else:
        flash(_("%(email)s is deactivated and is signed out on their next request.", email=user.email), "success")
    back = request.form.get("back")
    return redirect(back if is_safe_next(back) else url_for("admin.user", user_id=user.id))


@bp.post("/users/<int:user_id>/deactivate")
def user_deactivate(user_id: int):
    return _set_active(user_id, False)


@bp.post("/users/<int:user_id>/activate")
def user_activate(user_id: int):
    return _set_active(user_id, True)


@bp.post("/users/<int:user_id>/invitation")
def user_reinvite(user_id: int):
    """A fresh invitation link; every earlier link (and any session) stops working."""
    user = _staff_user(user_id)
    if user.password_hash is not None:
        flash(_("%(email)s has already set a password; there is no invitation to renew.", email=user.email), "error")
        return _render_user(user, status=409)
    if not user.is_active:
        flash(_("%(email)s is deactivated; reactivate the account first.", email=user.email), "error")
        return _render_user(user, status=409)
    now = utcnow()
    accounts.logout_everywhere(user)
    record_audit(db.session, actor=current_user, action="user.invitation", entity=user, now=now,
                 summary=f"New invitation link for {user.email}; earlier links withdrawn")
    _email_invitation(user, now)
    db.session.commit()
    flash(_("New invitation link made and emailed to %(email)s; earlier links no longer work.", email=user.email), "success")
    return redirect(url_for("admin.user", user_id=user.id))
