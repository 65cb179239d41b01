"""Forms of the referral pages: the admin's reward rule, staff recording a member's referrer."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import RadioField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from membership.referrals.models import REWARD_RULES
from membership.referrals.services import RULE_LABELS


class RewardRuleForm(FlaskForm):
    rule = RadioField(_l("Reward for a referral"), choices=[SelectChoice(r, RULE_LABELS[r]) for r in REWARD_RULES],
                      validators=[DataRequired(_l("Choose a rule."))])


class ReferrerForm(FlaskForm):
    referrer = StringField(_l("Referred by (referral code or member number)"),
                           validators=[DataRequired(_l("Type the referrer's referral code or member number.")),
                                       Length(max=40)])
