"""The join form: contact details, email, password."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from membership.portal.forms import ContactFields


class JoinForm(ContactFields):
    email = EmailField(_l("Email"), validators=[DataRequired(_l("Email is required: we send the confirmation link there.")),
                                            Length(max=254)],
                       render_kw={"autocomplete": "email", "maxlength": 254})
    password = PasswordField(_l("Choose a password"), validators=[DataRequired(_l("Choose a password.")), Length(max=256)],
                             render_kw={"autocomplete": "new-password"})
    confirm = PasswordField(_l("Repeat the password"),
                            validators=[DataRequired(_l("Repeat the password.")),
                                        EqualTo("password", message=_l("The passwords differ."))],
                            render_kw={"autocomplete": "new-password"})
    referral_code = StringField(_l("Referral code (if a member invited you)"), validators=[Length(max=20)],
                                render_kw={"autocomplete": "off", "maxlength": 20, "autocapitalize": "characters"})
    # A field people never see (hidden by samiti.css, skipped by keyboard and screen readers); form
    # robots fill it in. A filled one gets the usual "check your email" page and nothing is stored.
    website = StringField(_l("Leave this empty"), render_kw={"autocomplete": "off", "tabindex": "-1"})
