"""Admin pages for API tokens: list, create (the secret is shown once), revoke."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _, lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import DateField, SelectMultipleField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from membership.api import tokens
from membership.api.models import ApiToken
from membership.core.errors import DomainError
from membership.core.time import local_midnight_utc, local_today, tz, utcnow
from membership.extensions import db
from membership.web import require_roles

bp = Blueprint("api_admin", __name__, url_prefix="/staff/admin/api-tokens")
bp.before_request(require_roles("admin"))


class TokenForm(FlaskForm):
    name = StringField(_l("Name (what uses it)"), validators=[DataRequired(message=_l("Name is required.")),
                                                                Length(max=100)])
    scopes = SelectMultipleField(_l("Scopes"), choices=[
        SelectChoice("read", _l("read: see members, terms, payments, events, activities")),
        SelectChoice("write", _l("write: create and update members, record activities and registrations"))],
                                 default=["read"], option_widget=CheckboxInput(), widget=ListWidget(prefix_label=False))
    expires_on = DateField(_l("Expires on (optional)"), validators=[Optional()])


class RevokeForm(FlaskForm):
    pass


@bp.get("")
def tokens_list():
    return render_template("admin/api_tokens/list.html", tokens=tokens.list_tokens(db.session), form=TokenForm(),
                           revoke_form=RevokeForm())


@bp.post("")
def token_create():
    form = TokenForm()
    if not form.validate_on_submit():
        return render_template("admin/api_tokens/list.html", tokens=tokens.list_tokens(db.session), form=form,
                               revoke_form=RevokeForm()), 422
    now = utcnow()
    expires_at = None
    if form.expires_on.data:
        if form.expires_on.data <= local_today(now) or form.expires_on.data.year > 2999:
            form.expires_on.errors = list(form.expires_on.errors) + [_("Choose a day after today.")]
            return render_template("admin/api_tokens/list.html", tokens=tokens.list_tokens(db.session), form=form,
                                   revoke_form=RevokeForm()), 422
        expires_at = local_midnight_utc(form.expires_on.data, tz())
    try:
        token, secret = tokens.create_token(db.session, name=form.name.data, scopes=form.scopes.data,
                                            owner=current_user, actor=current_user, now=now, expires_at=expires_at)
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        form.name.errors = list(form.name.errors) + [e.message]
        return render_template("admin/api_tokens/list.html", tokens=tokens.list_tokens(db.session), form=form,
                               revoke_form=RevokeForm()), 422
    # The secret is shown on this response only; it is not stored and cannot be shown again.
    return render_template("admin/api_tokens/created.html", token=token, secret=secret)


@bp.post("/<int:token_id>/revoke")
def token_revoke(token_id: int):
    token = db.session.get(ApiToken, token_id)
    if token is None:
        abort(404)
    if not RevokeForm().validate_on_submit():
        abort(400)
    try:
        tokens.revoke_token(db.session, token, actor=current_user, now=utcnow())
        db.session.commit()
        flash(_("Token %(prefix)s… revoked: it no longer works.", prefix=token.prefix), "success")
    except DomainError as e:
        db.session.rollback()
        flash(e.message, "error")
    return redirect(url_for("api_admin.tokens_list"))


