"""Forms of the staff email pages (outbox actions use the csrf-only post_button macro)."""
from __future__ import annotations

from flask_wtf import FlaskForm
from flask_babel import LazyString, lazy_gettext as _l
from wtforms import StringField, TextAreaField
from wtforms.validators import Length, Optional

from membership.core import formats
from membership.notifications.templating import BODY_MAX, SUBJECT_MAX

# The limits in the page's digits (formatted when the message is shown, not at import).
_BODY_MAX_TEXT = LazyString(formats.number, BODY_MAX)
_SUBJECT_MAX_TEXT = LazyString(lambda: formats.digits(str(SUBJECT_MAX)))


class EmailTemplateForm(FlaskForm):
    """Subject, text and HTML of one template; `preview_member` picks whom the preview is for.
    The template rules (compiles, renders, known placeholders) live in templating.save_template."""

    subject = StringField(_l('Subject'), validators=[
        Length(max=SUBJECT_MAX, message=_l("The subject can be at most %(subject_max)s characters.", subject_max=_SUBJECT_MAX_TEXT))])
    body_text = TextAreaField(_l('Plain-text body'), validators=[
        Length(max=BODY_MAX, message=_l("This body can be at most %(body_max)s characters.", body_max=_BODY_MAX_TEXT))])
    body_html = TextAreaField(_l('HTML body (optional)'), validators=[
        Optional(), Length(max=BODY_MAX, message=_l("This body can be at most %(body_max)s characters.", body_max=_BODY_MAX_TEXT))])
    preview_member = StringField(_l('Preview for member'), validators=[Optional(), Length(max=254)],
                                 description=_l('A member number or email address; empty: sample data'))
