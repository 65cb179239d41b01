"""Forms of the staff email pages (outbox actions use the csrf-only post_button macro)."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import StringField, TextAreaField
from wtforms.validators import Length, Optional

from membership.notifications.templating import BODY_MAX, SUBJECT_MAX


class EmailTemplateForm(FlaskForm):
    """Subject, text and HTML of one template; `preview_member` picks whom the preview is for.
    The template rules (compiles, renders, known placeholders) live in templating.save_template."""

    subject = StringField("Subject", validators=[
        Length(max=SUBJECT_MAX, message=f"The subject can be at most {SUBJECT_MAX} characters.")])
    body_text = TextAreaField("Plain-text body", validators=[
        Length(max=BODY_MAX, message=f"This body can be at most {BODY_MAX:,} characters.")])
    body_html = TextAreaField("HTML body (optional)", validators=[
        Optional(), Length(max=BODY_MAX, message=f"This body can be at most {BODY_MAX:,} characters.")])
    preview_member = StringField("Preview for member", validators=[Optional(), Length(max=254)],
                                 description="A member number or email address; empty: sample data")
