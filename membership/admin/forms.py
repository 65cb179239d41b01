"""Admin forms. They only carry what was typed; plans.catalog and accounts.services validate it,
so the pages and the API give the same messages."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, RadioField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Email, EqualTo, Length, StopValidation
from wtforms.fields.choices import SelectChoice
from wtforms.widgets import NumberInput

from membership.plans.catalog import MONTH_NAMES, PERIOD_KIND_LABELS, PLAN_FIELDS

MONTH_CHOICES = [SelectChoice("", "-")] + [SelectChoice(str(i), name) for i, name in enumerate(MONTH_NAMES, start=1)]
STAFF_ROLES = [SelectChoice("staff", "Staff"), SelectChoice("admin", "Admin")]


def _number(**kw):
    return StringField(widget=NumberInput(), **kw)


class PlanForm(FlaskForm):
    code = StringField("Code", render_kw={"maxlength": 32, "autocomplete": "off"})
    name = StringField("Name", render_kw={"maxlength": 120})
    description = TextAreaField("Description", render_kw={"maxlength": 5000})
    fee = StringField("Fee", render_kw={"inputmode": "decimal", "placeholder": "1500.00"})
    # validate_choice=False: the catalogue names a bad value beside the field, like the API would.
    period_kind = SelectField("Period", choices=[SelectChoice(k, v) for k, v in PERIOD_KIND_LABELS.items()], validate_choice=False)
    period_months = _number(label="Period length (months)", render_kw={"min": 1, "max": 120})
    period_start_month = SelectField("Period starts: month", choices=MONTH_CHOICES, validate_choice=False)
    period_start_day = _number(label="Period starts: day", render_kw={"min": 1, "max": 31})
    rollover_month = SelectField("Rollover: month", choices=MONTH_CHOICES, validate_choice=False)
    rollover_day = _number(label="Rollover: day", render_kw={"min": 1, "max": 31})
    grace_days = _number(label="Grace days", default="30", render_kw={"min": 0, "max": 365})
    renewal_opens_days = _number(label="Online renewal opens (days before the end)", render_kw={"min": 0, "max": 365})
    backdate_after_lapse = BooleanField("After a lapse, start the renewal where the old term ended")
    joinable_online = BooleanField("Members can join online", default=True)
    needs_approval = BooleanField("Applications need staff approval")
    is_organizational = BooleanField("For organisations (covers their contacts)")
    max_contacts = _number(label="Maximum contacts", render_kw={"min": 1})
    sort_order = _number(label="Sort order", default="0")

    def plan_data(self) -> dict:
        return {key: self[key].data for key in PLAN_FIELDS}

    @classmethod
    def for_plan(cls, plan_data: dict) -> "PlanForm":
        # Selects compare strings; numbers from the model become their text.
        data = {k: ("" if v is None else str(v)) if not isinstance(v, bool) else v for k, v in plan_data.items()}
        return cls(data=data)


class UserCreateForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(message="Name is required."), Length(max=200)])
    email = EmailField("Email", validators=[DataRequired(message="Email is required."), Length(max=254),
                                            Email(message="This is not a valid email address.")])
    role = SelectField("Role", choices=STAFF_ROLES, default="staff")
    mode = RadioField("How will they sign in?", default="invite",
                      choices=[SelectChoice("invite", "Send an invitation link (they choose their password)"),
                               SelectChoice("password", "Set a password now")])
    password = PasswordField("Password", validators=[Length(max=256)])
    confirm = PasswordField("Repeat the password",
                            validators=[EqualTo("password", message="The passwords differ.")])

    def validate_password(self, field):
        if self.mode.data == "password" and not field.data:
            raise StopValidation("Enter a password, or choose the invitation link.")


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=STAFF_ROLES)
