"""Admin: renewal reminder rules (list, create, edit, deactivate and reactivate)."""
from __future__ import annotations

from datetime import timedelta

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_babel import gettext as _, lazy_gettext as _l
from sqlalchemy import select
from wtforms import BooleanField, DateField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.widgets import NumberInput

from membership.core import formats
from membership.admin import bp
from membership.core.errors import DomainError, ValidationError
from membership.core.time import local_today, utcnow
from membership.extensions import db
from membership.notifications import reminders
from membership.notifications.models import ReminderRule
from membership.plans.models import Plan
from membership.web import get_or_404

RULES_PER_PAGE = 50


class ReminderRuleForm(FlaskForm):
    name = StringField(_l('Name'), render_kw={"maxlength": 120})
    # Text with a number widget: a bad value comes back as a message beside the field, not a 500.
    offset_days = StringField(_l('Days from the end of the term'), widget=NumberInput(),
                              render_kw={"min": -reminders.OFFSET_LIMIT, "max": reminders.OFFSET_LIMIT})
    plan_id = SelectField(_l('Plan'), validate_choice=False)
    template_key = SelectField(_l('Email template'), validate_choice=False)
    template_key_text = StringField(_l('Email template key'), render_kw={"maxlength": 64})
    effective_from = DateField(_l('Effective from'), format="%Y-%m-%d")
    is_active = BooleanField(_l('Active'), default=True)


def _template_keys() -> list[str] | None:
    return reminders.known_template_keys()


def _fill_choices(form: ReminderRuleForm, keys: list[str] | None) -> None:
    plans = db.session.scalars(select(Plan).order_by(Plan.is_active.desc(), Plan.sort_order, Plan.name)).all()
    form.plan_id.choices = [SelectChoice("", _('All plans'))] + [
        SelectChoice(str(p.id), p.name if p.is_active else _("%(name)s (retired)", name=p.name)) for p in plans]
    if keys is not None:
        choices = reminders.template_choices() or [(k, k) for k in keys]
        current = form.template_key.data
        if current and current not in keys:
            choices.append((current, _("%(key)s (unknown)", key=current)))  # shown so the error beside it makes sense
        form.template_key.choices = [SelectChoice("", _('Choose a template'))] + [SelectChoice(k, v) for k, v in choices]


def _rule_input(form: ReminderRuleForm, keys: list[str] | None) -> reminders.RuleInput:
    raw = (form.offset_days.data or "").strip()
    try:
        offset = int(raw) if raw else None
    except ValueError:
        raise ValidationError(_('Give a whole number of days, e.g. -30 for 30 days before the end.'),
                          field="offset_days") from None
    plan_raw = form.plan_id.data or ""
    try:
        plan_id = int(plan_raw) if plan_raw else None
    except ValueError:
        raise ValidationError(_('Choose a plan from the list.'), field="plan_id") from None
    key = form.template_key.data if keys is not None else form.template_key_text.data
    if form.effective_from.raw_data and form.effective_from.raw_data[0] and form.effective_from.data is None:
        raise ValidationError(_('Give a date like 2026-07-01.'), field="effective_from")
    return reminders.RuleInput(name=form.name.data or "", offset_days=offset, plan_id=plan_id,
                               template_key=key or "", is_active=bool(form.is_active.data),
                               effective_from=form.effective_from.data)


def _show_error(form: ReminderRuleForm, error: DomainError, keys: list[str] | None) -> list[str]:
    field = error.field
    if field == "template_key" and keys is None:
        field = "template_key_text"
    if field and field in form:
        # DateField puts its own parse error there; one message is enough.
        form[field].errors = [error.message]
        return []
    return [error.message]


def _render(form, rule, keys, general=None, status=200):
    return render_template("admin/reminders/form.html", form=form, rule=rule, keys=keys, general_errors=general or [],
                           horizon=current_app.config.get("REMINDER_CATCH_UP_DAYS", reminders.DEFAULT_CATCH_UP_DAYS),
                           today=local_today()), status


@bp.get("/reminders")
def reminder_rules():
    show = request.args.get("show", "all")
    query = select(ReminderRule)
    if show == "active":
        query = query.where(ReminderRule.is_active.is_(True))
    elif show == "inactive":
        query = query.where(ReminderRule.is_active.is_(False))
    else:
        show = "all"
    query = query.order_by(ReminderRule.is_active.desc(), ReminderRule.offset_days, ReminderRule.id)
    page = db.paginate(query, per_page=RULES_PER_PAGE, error_out=False)
    today = local_today()
    horizon = int(current_app.config.get("REMINDER_CATCH_UP_DAYS", reminders.DEFAULT_CATCH_UP_DAYS))
    keys = _template_keys()
    return render_template("admin/reminders/list.html", page=page, show=show, today=today, horizon=horizon,
                           keys=keys, describe=reminders.describe_offset,
                           next_days={r.id: today - timedelta(days=r.offset_days) for r in page.items})


@bp.route("/reminders/new", methods=["GET", "POST"])
def reminder_rule_new():
    keys = _template_keys()
    form = ReminderRuleForm()
    if request.method == "GET":
        form.effective_from.data = local_today()
        form.is_active.data = True
    _fill_choices(form, keys)
    if request.method == "GET":
        return _render(form, None, keys)
    try:
        data = _rule_input(form, keys)
        rule = reminders.create_rule(db.session, data, actor=current_user, now=utcnow(), today=local_today(),
                                     template_keys=keys)
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        return _render(form, None, keys, _show_error(form, e, keys), status=422)
    flash(_("Reminder rule '%(name)s' added: %(offset_days)s, template %(template_key)s, from %(effective_from)s.", name=rule.name, offset_days=reminders.describe_offset(rule.offset_days), template_key=rule.template_key, effective_from=formats.strftime(rule.effective_from, "%d %b %Y")), "success")
    return redirect(url_for("admin.reminder_rules"))


@bp.route("/reminders/<int:rule_id>/edit", methods=["GET", "POST"])
def reminder_rule_edit(rule_id: int):
    rule = get_or_404(ReminderRule, rule_id)
    keys = _template_keys()
    if request.method == "GET":
        form = ReminderRuleForm(data={"name": rule.name, "offset_days": str(rule.offset_days),
                                      "plan_id": str(rule.plan_id or ""), "template_key": rule.template_key,
                                      "template_key_text": rule.template_key, "effective_from": rule.effective_from,
                                      "is_active": rule.is_active})
        _fill_choices(form, keys)
        return _render(form, rule, keys)
    form = ReminderRuleForm()
    _fill_choices(form, keys)
    today = local_today()
    try:
        data = _rule_input(form, keys)
        changed = reminders.update_rule(db.session, rule, data, actor=current_user, now=utcnow(), today=today,
                                        template_keys=keys)
        effective = rule.effective_from
        name = rule.name
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        return _render(form, rule, keys, _show_error(form, e, keys), status=422)
    if not changed:
        flash(_('Nothing changed.'), "info")
    else:
        message = _("Reminder rule '%(name)s' saved (%(fields)s changed).", name=name,
                    fields=", ".join(c.replace("_", " ") for c in changed))
        if effective == today and data.effective_from is not None and data.effective_from < today:
            message += _(" It applies from today, so it does not reach back to terms that passed the new day before.")
        flash(message, "success")
    return redirect(url_for("admin.reminder_rules"))


def _set_active(rule_id: int, active: bool):
    rule = get_or_404(ReminderRule, rule_id)
    reminders.set_rule_active(db.session, rule, active, actor=current_user, now=utcnow(), today=local_today())
    name, effective = rule.name, rule.effective_from
    db.session.commit()
    if active:
        flash(_("Reminder rule '%(name)s' is active again, from %(effective)s (days it missed while inactive are not sent).", name=name, effective=formats.strftime(effective, "%d %b %Y")), "success")
    else:
        flash(_("Reminder rule '%(name)s' deactivated: it sends nothing until you reactivate it.", name=name), "success")
    return redirect(url_for("admin.reminder_rules"))


@bp.post("/reminders/<int:rule_id>/deactivate")
def reminder_rule_deactivate(rule_id: int):
    return _set_active(rule_id, False)


@bp.post("/reminders/<int:rule_id>/activate")
def reminder_rule_activate(rule_id: int):
    return _set_active(rule_id, True)
