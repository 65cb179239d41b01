"""Forms of the campaign pages. Each checks its own input; the domain functions check the rest
(templates render, the segment exists, the campaign is still a draft)."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import RadioField, SelectField, SelectMultipleField, StringField, SubmitField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from membership.members.models import MEMBER_STATUSES
from membership.staff.forms_member_page import plain_text
from membership.notifications.templating import BODY_MAX, SUBJECT_MAX


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class CampaignForm(FlaskForm):
    name = StringField(_l("Name (for staff)"), validators=[DataRequired(_l("Enter a name.")), Length(max=120),
                                                          plain_text])
    kind = RadioField(_l("Kind"), choices=[SelectChoice("marketing", _l("Marketing: news and offers, only to members who opted in")),
                               SelectChoice("service", _l("Service announcement (e.g. AGM notice): to every current "
                                                          "member, whatever their marketing choice"))],
                      default="marketing", validators=[DataRequired(_l("Choose a kind."))])
    segment = SelectField(_l("Saved segment"), choices=[], validate_choice=False)
    status = MultiCheckboxField(_l("Membership status"), choices=[SelectChoice(s, s) for s in MEMBER_STATUSES],
                                validate_choice=False)
    plan_id = SelectField(_l("Plan"), choices=[], validate_choice=False)
    tag = StringField(_l("Tag"), validators=[Optional(), Length(max=50), plain_text])
    en_subject = StringField(_l("Subject (English)"), validators=[Optional(), Length(max=SUBJECT_MAX)])
    en_body_text = TextAreaField(_l("Text (English)"), validators=[Optional(), Length(max=BODY_MAX)])
    en_body_html = TextAreaField(_l("HTML (English, optional)"), validators=[Optional(), Length(max=BODY_MAX)])
    bn_subject = StringField(_l("Subject (Bengali)"), validators=[Optional(), Length(max=SUBJECT_MAX)])
    bn_body_text = TextAreaField(_l("Text (Bengali)"), validators=[Optional(), Length(max=BODY_MAX)])
    bn_body_html = TextAreaField(_l("HTML (Bengali, optional)"), validators=[Optional(), Length(max=BODY_MAX)])
    submit = SubmitField(_l("Save draft"))


class ScheduleForm(FlaskForm):
    send_at = StringField(_l("Send at (association's time)"),
                          validators=[DataRequired(_l("Enter the date and time.")), Length(max=20)])
    submit = SubmitField(_l("Schedule"))


class TestForm(FlaskForm):
    member = StringField(_l("As member (number or email)"), validators=[Optional(), Length(max=254)])
    language = SelectField(_l("Version"), choices=[SelectChoice("", _l("The member's language")), SelectChoice("en", "English"),
                                                   SelectChoice("bn", "বাংলা")], validate_choice=True, default="")
    submit = SubmitField(_l("Send a test to me"))


class ActionForm(FlaskForm):
    """A button (Send now, Unschedule, Delete): only the CSRF token."""
