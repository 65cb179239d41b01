"""Forms of the organisations area. They carry what was typed; members.services and
plans.services validate it."""
from __future__ import annotations

from flask_wtf import FlaskForm
from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, DateField, HiddenField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice

from membership.plans.models import PAYMENT_METHODS

METHOD_LABELS = {"cash": _l('Cash'), "cheque": _l('Cheque'), "bank_transfer": _l('Bank transfer'), "card": _l('Card'),
                 "online": _l('Online'), "other": _l('Other')}


class OrganizationForm(FlaskForm):
    name = StringField(_l('Name'), render_kw={"maxlength": 200})
    email = StringField(_l('Email'), render_kw={"type": "email", "maxlength": 254})
    phone = StringField(_l('Phone'), render_kw={"type": "tel", "maxlength": 40})
    website = StringField(_l('Website'), render_kw={"maxlength": 300})
    address = TextAreaField(_l('Address'), render_kw={"maxlength": 1000})
    notes = TextAreaField(_l('Notes'), render_kw={"maxlength": 5000})

    def values(self) -> dict:
        return {key: self[key].data for key in ("name", "email", "phone", "website", "address", "notes")}


class ContactForm(FlaskForm):
    """Add a contact: an existing member (email or member number) or a new one (names and email)."""

    lookup = StringField(_l('Existing member: email or member number'), render_kw={"maxlength": 254})
    first_name = StringField(_l('First name'), render_kw={"maxlength": 100})
    last_name = StringField(_l('Last name'), render_kw={"maxlength": 100})
    email = StringField(_l('Email'), render_kw={"type": "email", "maxlength": 254})
    primary = BooleanField(_l('Make primary contact'))


class MembershipForm(FlaskForm):
    """Join or renew the organisation's membership, with its payment."""

    plan = SelectField(_l('Plan'), validate_choice=False)
    amount = StringField(_l('Amount paid'), render_kw={"inputmode": "decimal"})
    method = SelectField(_l('Method'), validate_choice=False,
                         choices=[SelectChoice(m, METHOD_LABELS.get(m, m)) for m in PAYMENT_METHODS])
    reference = StringField(_l('Reference'), render_kw={"maxlength": 100})
    received_on = DateField(_l('Received on'), format="%Y-%m-%d")
    # A fresh key per rendered form (jinja global form_token): the same form posted twice pays once.
    idempotency_key = HiddenField()
    # The term being renewed: a second post of the same form renews nothing twice.
    term_id = HiddenField()

    def set_plans(self, plans, label=lambda plan: plan.name) -> None:
        self.plan.choices = [SelectChoice(str(p.id), label(p)) for p in plans]
