"""Forms of the engagement pages: the action taken on a risk alert, tags, saved segments."""
from __future__ import annotations

from flask_wtf import FlaskForm
from flask_babel import lazy_gettext as _l
from wtforms import HiddenField, SelectField, StringField, SubmitField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from membership.members.models import INTERACTION_CHANNELS
from membership.staff.forms_member_page import CHANNEL_LABELS, plain_text


class AlertActionForm(FlaskForm):
    """What staff did about a member at risk: becomes an interaction and closes the alert. (Field
    names differ from the interaction form's, which is on the same page.)"""
    alert_id = HiddenField()
    action_channel = SelectField(_l('Channel'), choices=[SelectChoice(c, CHANNEL_LABELS[c]) for c in INTERACTION_CHANNELS],
                          default="call")
    action_summary = TextAreaField(_l('What was done'), validators=[DataRequired(_l('Write what was said or done.')),
                                                         Length(max=5000)])
    action_outcome = StringField(_l('Outcome'), validators=[Optional(), Length(max=200), plain_text])
    submit = SubmitField(_l('Record action and close the alert'))


class TagForm(FlaskForm):
    tag = StringField(_l('Tag'), validators=[DataRequired(_l('Enter a tag.')), Length(max=50), plain_text])
    submit = SubmitField(_l('Add tag'))


class SegmentForm(FlaskForm):
    name = StringField(_l('Segment name'), validators=[DataRequired(_l('Enter a name.')), Length(max=120), plain_text])
    submit = SubmitField(_l('Save as segment'))
