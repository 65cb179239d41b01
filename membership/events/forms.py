"""Forms of the public events pages: a guest's registration, the feedback form, plain action buttons."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, RadioField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

COMMENT_MAX = 2000


class GuestRegistrationForm(FlaskForm):
    name = StringField(_l("Your name"), validators=[DataRequired(_l("Tell us your name.")), Length(max=200)],
                       render_kw={"autocomplete": "name", "maxlength": 200})
    email = EmailField(_l("Email"), validators=[DataRequired(_l("Email is required: we send the confirmation link there.")),
                                            Length(max=254)],
                       render_kw={"autocomplete": "email", "maxlength": 254})
    # Hidden from people (samiti.css), filled in by form robots: they get the usual answer and nothing is stored.
    website = StringField(_l("Leave this empty"), render_kw={"autocomplete": "off", "tabindex": "-1"})


class ActionForm(FlaskForm):
    """A button that changes something (register, cancel, confirm): only the CSRF token."""


class FeedbackForm(FlaskForm):
    rating = RadioField(_l("How was the event?"), coerce=int,
                        choices=[SelectChoice(5, _l("5 - excellent")), SelectChoice(4, _l("4 - good")),
                                 SelectChoice(3, _l("3 - fair")), SelectChoice(2, _l("2 - poor")),
                                 SelectChoice(1, _l("1 - very poor"))],
                        validators=[DataRequired(_l("Choose a rating from 1 to 5."))])
    would_recommend = RadioField(_l("Would you recommend it to a friend?"),
                                 choices=[SelectChoice("yes", _l("Yes")), SelectChoice("no", _l("No"))],
                                 validators=[Optional()])
    comment = TextAreaField(_l("Anything you want to tell us? (optional)"),
                            validators=[Optional(), Length(max=COMMENT_MAX,
                                                           message=_l("Use at most %(max)s characters.", max=format(COMMENT_MAX, ",")))])

    def recommend(self) -> bool | None:
        return {"yes": True, "no": False}.get(self.would_recommend.data)
