"""Admin forms. They only carry what was typed; plans.catalog and accounts.services validate it,
so the pages and the API give the same messages."""
from __future__ import annotations

from flask_wtf import FlaskForm
from flask_babel import LazyString, gettext as _, lazy_gettext as _l
from wtforms import BooleanField, EmailField, PasswordField, RadioField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Email, EqualTo, Length, StopValidation
from wtforms.fields.choices import SelectChoice
from wtforms.widgets import NumberInput

from membership.plans.catalog import PERIOD_KIND_LABELS, PLAN_FIELDS, month_name

# Month names and period kinds in the page's language (read when the form is drawn, not at import).
MONTH_CHOICES = [SelectChoice("", "-")] + [SelectChoice(str(i), LazyString(month_name, i)) for i in range(1, 13)]
STAFF_ROLES = [SelectChoice("staff", _l('Staff')), SelectChoice("admin", _l('Admin'))]


def _number(**kw):
    return StringField(widget=NumberInput(), **kw)


class PlanForm(FlaskForm):
    code = StringField(_l('Code'), render_kw={"maxlength": 32, "autocomplete": "off"})
    name = StringField(_l('Name'), render_kw={"maxlength": 120})
    description = TextAreaField(_l('Description'), render_kw={"maxlength": 5000})
    fee = StringField(_l('Fee'), render_kw={"inputmode": "decimal", "placeholder": "1500.00"})
    # validate_choice=False: the catalogue names a bad value beside the field, like the API would.
    period_kind = SelectField(_l('Period'), choices=[SelectChoice(k, _l(v)) for k, v in PERIOD_KIND_LABELS.items()], validate_choice=False)
    period_months = _number(label=_l('Period length (months)'), render_kw={"min": 1, "max": 120})
    period_start_month = SelectField(_l('Period starts: month'), choices=MONTH_CHOICES, validate_choice=False)
    period_start_day = _number(label=_l('Period starts: day'), render_kw={"min": 1, "max": 31})
    rollover_month = SelectField(_l('Rollover: month'), choices=MONTH_CHOICES, validate_choice=False)
    rollover_day = _number(label=_l('Rollover: day'), render_kw={"min": 1, "max": 31})
    grace_days = _number(label=_l('Grace days'), default="30", render_kw={"min": 0, "max": 365})
    renewal_opens_days = _number(label=_l('Online renewal opens (days before the end)'), render_kw={"min": 0, "max": 365})
    backdate_after_lapse = BooleanField(_l('After a lapse, start the renewal where the old term ended'))
    joinable_online = BooleanField(_l('Members can join online'), default=True)
    needs_approval = BooleanField(_l('Applications need staff approval'))
    is_organizational = BooleanField(_l('For organisations (covers their contacts)'))
    max_contacts = _number(label=_l('Maximum contacts'), render_kw={"min": 1})
    sort_order = _number(label=_l('Sort order'), default="0")

    def plan_data(self) -> dict:
        return {key: self[key].data for key in PLAN_FIELDS}

    @classmethod
    def for_plan(cls, plan_data: dict) -> "PlanForm":
        # Selects compare strings; numbers from the model become their text.
        data = {k: ("" if v is None else str(v)) if not isinstance(v, bool) else v for k, v in plan_data.items()}
        return cls(data=data)


class UserCreateForm(FlaskForm):
    name = StringField(_l('Name'), validators=[DataRequired(message=_l('Name is required.')), Length(max=200)])
    email = EmailField(_l('Email'), validators=[DataRequired(message=_l('Email is required.')), Length(max=254),
                                            Email(message=_l('This is not a valid email address.'))])
    role = SelectField(_l('Role'), choices=STAFF_ROLES, default="staff")
    mode = RadioField(_l('How will they sign in?'), default="invite",
                      choices=[SelectChoice("invite", _l('Send an invitation link (they choose their password)')),
                               SelectChoice("password", _l('Set a password now'))])
    password = PasswordField(_l('Password'), validators=[Length(max=256)])
    confirm = PasswordField(_l('Repeat the password'),
                            validators=[EqualTo("password", message=_l('The passwords differ.'))])

    def validate_password(self, field):
        if self.mode.data == "password" and not field.data:
            raise StopValidation(_('Enter a password, or choose the invitation link.'))


class RoleForm(FlaskForm):
    role = SelectField(_l('Role'), choices=STAFF_ROLES)
