"""Forms of the organisations area. They carry what was typed; members.services and
plans.services validate it."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, DateField, HiddenField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice

from membership.plans.models import PAYMENT_METHODS

METHOD_LABELS = {"cash": "Cash", "cheque": "Cheque", "bank_transfer": "Bank transfer", "card": "Card",
                 "online": "Online", "other": "Other"}


class OrganizationForm(FlaskForm):
    name = StringField("Name", render_kw={"maxlength": 200})
    email = StringField("Email", render_kw={"type": "email", "maxlength": 254})
    phone = StringField("Phone", render_kw={"type": "tel", "maxlength": 40})
    website = StringField("Website", render_kw={"maxlength": 300})
    address = TextAreaField("Address", render_kw={"maxlength": 1000})
    notes = TextAreaField("Notes", render_kw={"maxlength": 5000})

    def values(self) -> dict:
        return {key: self[key].data for key in ("name", "email", "phone", "website", "address", "notes")}


class ContactForm(FlaskForm):
    """Add a contact: an existing member (email or member number) or a new one (names and email)."""

    lookup = StringField("Existing member: email or member number", render_kw={"maxlength": 254})
    first_name = StringField("First name", render_kw={"maxlength": 100})
    last_name = StringField("Last name", render_kw={"maxlength": 100})
    email = StringField("Email", render_kw={"type": "email", "maxlength": 254})
    primary = BooleanField("Make primary contact")


class MembershipForm(FlaskForm):
    """Join or renew the organisation's membership, with its payment."""

    plan = SelectField("Plan", validate_choice=False)
    amount = StringField("Amount paid", render_kw={"inputmode": "decimal"})
    method = SelectField("Method", validate_choice=False,
                         choices=[SelectChoice(m, METHOD_LABELS.get(m, m)) for m in PAYMENT_METHODS])
    reference = StringField("Reference", render_kw={"maxlength": 100})
    received_on = DateField("Received on", format="%Y-%m-%d")
    # A fresh key per rendered form (jinja global form_token): the same form posted twice pays once.
    idempotency_key = HiddenField()
    # The term being renewed: a second post of the same form renews nothing twice.
    term_id = HiddenField()

    def set_plans(self, plans, label=lambda plan: plan.name) -> None:
        self.plan.choices = [SelectChoice(str(p.id), label(p)) for p in plans]
