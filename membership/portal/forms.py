"""Forms of the members' portal. They check shapes and lengths; the member rules (phone numbers,
country codes, unique addresses) live in membership.members.services.validate_member, whose
message goes beside the field it names."""
from __future__ import annotations

from functools import lru_cache

from babel import Locale
from flask import current_app
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, RadioField, SelectField, StringField, TelField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, Optional, Regexp

from membership.members.services import LANGUAGES

LANGUAGE_LABELS = {"en": "English", "bn": "বাংলা (Bengali)"}

# The member fields a member may change themselves (everything else is staff's: status, plan,
# dates, member number, notes...). Views build the data for validate_member from these only, so a
# field added to a request (role, status, member_id...) is never read.
CONTACT_FIELDS = ("first_name", "last_name", "phone", "address_line1", "address_line2", "city", "postcode",
                  "country")
PREFERENCE_FIELDS = ("language", "marketing_opt_in", "directory_opt_in")
PROFILE_FIELDS = CONTACT_FIELDS + PREFERENCE_FIELDS


# Two-letter codes CLDR names that are not countries (unions, pseudo-regions).
_NOT_COUNTRIES = {"EU", "EZ", "UN", "QO", "ZZ", "XA", "XB"}


def country_choices(home: str | None = None) -> list[tuple[str, str]]:
    """Every country named in the page's language (Bengali names on a Bengali page), the
    association's own (`home`, a two-letter code) first."""
    from flask_babel import get_locale

    return _country_choices(str(get_locale() or "en"), (home or "").upper())


@lru_cache(maxsize=8)
def _country_choices(language: str, home: str) -> list[tuple[str, str]]:
    names = Locale.parse(language).territories
    countries = sorted(((code, name) for code, name in names.items()
                        if len(code) == 2 and code.isalpha() and code not in _NOT_COUNTRIES),
                       key=lambda item: item[1])
    first = [item for item in countries if item[0] == home]
    return [("", "—")] + first + [item for item in countries if item[0] != home]


def home_country(config) -> str:
    """The association's own country: COUNTRY, else the PHONE_REGION numbers are read in."""
    return (config.get("COUNTRY") or config.get("PHONE_REGION") or "").upper()


class ContactFields(FlaskForm):
    """Name, phone, address and preferences: the join form and the profile page."""

    first_name = StringField(_l("First name"), validators=[InputRequired(_l("First name is required.")), Length(max=100)],
                             render_kw={"autocomplete": "given-name", "maxlength": 100})
    last_name = StringField(_l("Last name"), validators=[Optional(), Length(max=100)],
                            render_kw={"autocomplete": "family-name", "maxlength": 100})
    phone = TelField(_l("Phone"), validators=[Optional(), Length(max=40)],
                     render_kw={"autocomplete": "tel", "maxlength": 40, "inputmode": "tel"})
    address_line1 = StringField(_l("Address"), validators=[Optional(), Length(max=200)],
                                render_kw={"autocomplete": "address-line1", "maxlength": 200})
    address_line2 = StringField(_l("Address line 2"), validators=[Optional(), Length(max=200)],
                                render_kw={"autocomplete": "address-line2", "maxlength": 200})
    city = StringField(_l("Town or city"), validators=[Optional(), Length(max=100)],
                       render_kw={"autocomplete": "address-level2", "maxlength": 100})
    postcode = StringField(_l("Postcode"), validators=[Optional(), Length(max=20)],
                           render_kw={"autocomplete": "postal-code", "maxlength": 20})
    country = SelectField(_l("Country"), validators=[Optional()], validate_choice=False,
                          render_kw={"autocomplete": "country"})
    language = RadioField(_l("Language of our emails"), default="en",
                          choices=[SelectChoice(code, LANGUAGE_LABELS[code]) for code in LANGUAGES],
                          validators=[InputRequired(_l("Choose a language."))])
    marketing_opt_in = BooleanField(_l("Send me news and announcements"))
    directory_opt_in = BooleanField(_l("List me in the members' directory (only other members can see it)"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.country.choices = country_choices(home_country(current_app.config))

    def member_data(self, fields=PROFILE_FIELDS) -> dict:
        """The typed values in validate_member's names, for the given fields only."""
        data = {}
        for name in fields:
            value = self[name].data
            if isinstance(value, str):
                value = value.strip()
            data[name] = value
        return data


class ProfileForm(ContactFields):
    pass


class RenewForm(FlaskForm):
    """Renew the term named in the form: a second post of the same form names a term that now has a
    successor, so it renews nothing (AlreadyRenewed)."""

    plan = RadioField(_l("Plan"), coerce=lambda v: int(v) if str(v).isdigit() else None, validate_choice=False,
                      validators=[InputRequired(_l("Choose a plan."))])
    term_id = HiddenField(validators=[DataRequired(_l("This form is out of date: reload the page.")),
                                      Regexp(r"^[0-9]{1,9}$")])
    # Each option also carries the dates the member saw (shown_<plan id>), so what is recorded is
    # what was shown (the day may change between showing and confirming).
