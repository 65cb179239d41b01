"""Forms of the survey pages (staff builder, invitations, follow-ups; the answer form's CSRF)."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, DateField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from membership.surveys.models import QUESTION_KINDS, SURVEY_TRIGGERS
from membership.surveys.services import KIND_LABELS, PROMPT_MAX, TITLE_MAX, TRIGGER_LABELS


class SurveyForm(FlaskForm):
    title = StringField(_l("Title"), validators=[DataRequired(_l("Give the survey a title.")),
                                                 Length(max=TITLE_MAX)])
    intro = TextAreaField(_l("Introduction (shown above the questions)"), validators=[Optional(), Length(max=4000)])
    opens_on = DateField(_l("First day"), validators=[DataRequired(_l("Enter the first day (YYYY-MM-DD)."))])
    closes_on = DateField(_l("Last day (empty: until you close it)"), validators=[Optional()])
    trigger = SelectField(_l("Sent"), choices=[SelectChoice(t, TRIGGER_LABELS[t]) for t in SURVEY_TRIGGERS], default="manual")
    event_id = SelectField(_l("Event (for surveys after events)"), coerce=str, choices=[], validate_choice=False)
    in_portal = BooleanField(_l("Members can answer it in the portal"), default=True)

    def raw(self) -> dict:
        event = (self.event_id.data or "").strip()
        return {"title": self.title.data, "intro": self.intro.data, "opens_on": self.opens_on.data,
                "closes_on": self.closes_on.data, "trigger": self.trigger.data,
                "event_id": int(event) if event.isascii() and event.isdigit() else None,
                "in_portal": self.in_portal.data}


class QuestionForm(FlaskForm):
    prompt = StringField(_l("Question"), validators=[DataRequired(_l("Write the question.")), Length(max=PROMPT_MAX)])
    kind = SelectField(_l("Kind"), choices=[SelectChoice(k, KIND_LABELS[k]) for k in QUESTION_KINDS], default="rating")
    required = BooleanField(_l("An answer is required"))
    options = TextAreaField(_l("Options, one per line (choice questions)"), validators=[Optional(), Length(max=5000)])

    def raw(self) -> dict:
        return {"prompt": self.prompt.data, "kind": self.kind.data, "required": self.required.data,
                "options": self.options.data}


class InviteForm(FlaskForm):
    audience = SelectField(_l("Send to"), coerce=str, choices=[], validate_choice=False)


class FollowUpForm(FlaskForm):
    note = TextAreaField(_l("What was done"), validators=[DataRequired(_l("Write what was said or done.")),
                                                          Length(max=2000)])


class ActionForm(FlaskForm):
    """Buttons that post nothing but the CSRF token (publish, close, delete, move)."""


class AnswerForm(FlaskForm):
    """The answer form's CSRF token; the answers are fields q<id> read by services.parse_answers."""
