"""Forms of the staff member pages. They parse and check shapes (dates, choices); the rules live
in membership.members.services.validate_member, which the views call field by field."""
from __future__ import annotations

import re
import secrets
from decimal import Decimal

from flask_wtf import FlaskForm
from flask_babel import gettext as _, lazy_gettext as _l
from wtforms import BooleanField, EmailField, HiddenField, SelectField, StringField, TelField, TextAreaField
from wtforms.fields import DateField as _DateField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Optional

from membership.members.services import LANGUAGES
from membership.plans.models import PAYMENT_METHODS

MEMBER_FIELD_NAMES = ("first_name", "last_name", "email", "phone", "address_line1", "address_line2", "city",
                      "postcode", "country", "date_of_birth", "organization_id", "job_title", "joined_on",
                      "language", "marketing_opt_in", "directory_opt_in", "notes")

LANGUAGE_LABELS = {"en": "English", "bn": "বাংলা (Bengali)"}
METHOD_LABELS = {"cash": _l('Cash'), "cheque": _l('Cheque'), "bank_transfer": _l('Bank transfer'), "card": _l('Card'),
                 "online": _l('Online'), "other": _l('Other')}
_ID = re.compile(r"[0-9]{1,9}")
# Amounts are typed in major units; the integer column holds minor units.
MAX_AMOUNT_MINOR = 1_000_000_000


def optional_id(value):
    """'' -> None, '12' -> 12; anything else is not a choice."""
    if value is None or value == "" or value == "None":
        return None
    if isinstance(value, int):
        return value
    if not _ID.fullmatch(str(value)):
        raise ValueError(_('Not a valid choice.'))
    return int(value)


class DateField(_DateField):
    """A date input whose parse error tells the user what to type."""

    def process_formdata(self, valuelist):
        try:
            super().process_formdata(valuelist)
        except ValueError:
            raise ValueError(_('Use a date like 2026-01-31.')) from None


def id_select(label: str) -> SelectField:
    """A select whose value is empty (None) or a row id; choices are set by the view."""
    return SelectField(label, coerce=optional_id, invalid_value_message=_('Not a valid choice.'))


_AMOUNT = re.compile(r"(-?)([0-9]+)(?:\.([0-9]*))?|(-?)\.([0-9]+)")


def parse_amount(text: str | None) -> int | None:
    """'1,250.50' -> 125050 minor units; '' -> None. Raises ValueError with a message for the user.
    Plain digits only: no exponents, NaN or infinity (which Decimal would accept)."""
    text = (text or "").strip().replace(",", "")
    if not text:
        return None
    match = _AMOUNT.fullmatch(text)
    if not match:
        raise ValueError(_('Enter an amount like 500 or 500.00.'))
    if text.startswith("-"):
        raise ValueError(_('The amount cannot be negative.'))
    decimals = (match.group(3) or match.group(5) or "").rstrip("0")
    if len(decimals) > 2:
        raise ValueError(_('Use at most two decimals.'))
    value = Decimal(text)
    if value * 100 > MAX_AMOUNT_MINOR:
        raise ValueError(_('This amount is too large.'))
    return int(value * 100)


class MemberForm(FlaskForm):
    """A member's details (create and edit)."""

    first_name = StringField(_l('First name'), validators=[InputRequired(_l('First name is required.'))],
                             render_kw={"maxlength": 100, "autocomplete": "off"})
    last_name = StringField(_l('Last name'), render_kw={"maxlength": 100, "autocomplete": "off"})
    email = EmailField(_l('Email'), render_kw={"maxlength": 254, "autocomplete": "off"})
    phone = TelField(_l('Phone'), render_kw={"maxlength": 40, "autocomplete": "off"})
    address_line1 = StringField(_l('Address'), render_kw={"maxlength": 200})
    address_line2 = StringField(_l('Address line 2'), render_kw={"maxlength": 200})
    city = StringField(_l('City'), render_kw={"maxlength": 100})
    postcode = StringField(_l('Postcode'), render_kw={"maxlength": 20})
    country = StringField(_l('Country (2-letter code)'), render_kw={"maxlength": 2, "size": 2})
    date_of_birth = DateField(_l('Date of birth'), validators=[Optional()])
    organization_id = id_select(_l('Organisation'))
    job_title = StringField(_l('Job title'), render_kw={"maxlength": 100})
    joined_on = DateField(_l('Joined on'), validators=[InputRequired(_l('Enter the date the member joined.'))])
    language = SelectField(_l('Language'), choices=[SelectChoice(code, LANGUAGE_LABELS[code]) for code in LANGUAGES])
    marketing_opt_in = BooleanField(_l('Sends marketing emails (opt-in)'))
    directory_opt_in = BooleanField(_l("Listed in the members' directory"))
    notes = TextAreaField(_l('Notes'), render_kw={"maxlength": 5000})

    def member_values(self) -> dict:
        """The member fields as the service takes them (a field that failed to parse gives None)."""
        values = {name: self[name].data for name in MEMBER_FIELD_NAMES}
        if values["notes"]:
            # Browsers send CRLF from a textarea; store one kind of line end, so a save without
            # edits is not a change.
            values["notes"] = values["notes"].replace("\r\n", "\n").replace("\r", "\n")
        return values


class NewMemberForm(MemberForm):
    """A new member, optionally with a first membership term and its payment."""

    plan_id = id_select(_l('Plan'))
    starts_on = DateField(_l('Membership starts on'), validators=[Optional()])
    payment_received = BooleanField(_l('Payment received'))
    amount = StringField(_l('Amount'), render_kw={"inputmode": "decimal", "maxlength": 20})
    method = SelectField(_l('Method'), choices=[SelectChoice(m, METHOD_LABELS[m]) for m in PAYMENT_METHODS], default="cash")
    reference = StringField(_l('Reference (cheque or transfer number)'), render_kw={"maxlength": 100})
    # One key per rendered form: the same form posted twice records one payment (and one member).
    form_key = HiddenField(default=lambda: secrets.token_urlsafe(16))
