"""Forms of the member page and the actions started from it (join, renew, pay, cancel, override,
interaction). They check shapes (numbers, dates, choices, lengths); the membership rules live in
membership.plans.services, whose ValidationError the views put beside the field it names."""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta

from flask_wtf import FlaskForm
from flask_babel import gettext as _, lazy_gettext as _l
from wtforms import HiddenField, RadioField, SelectField, StringField, SubmitField, TextAreaField
from wtforms.fields import DateField as _DateField
from wtforms.fields import DateTimeLocalField as _DateTimeLocalField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, Optional, Regexp, ValidationError

from membership.core import time as clock
from membership.core.errors import DomainError
from membership.core.errors import ValidationError as DomainValidationError
from membership.members.models import INTERACTION_CHANNELS
from membership.members.services import clean_text
from membership.plans.catalog import parse_amount
from membership.plans.models import PAYMENT_METHODS
from membership.plans.services import OVERRIDABLE, PaymentInput

METHOD_LABELS = {"cash": _l('Cash'), "cheque": _l('Cheque'), "bank_transfer": _l('Bank transfer'), "card": _l('Card'),
                 "online": _l('Online'), "other": _l('Other')}
CHANNEL_LABELS = {"call": _l('Phone call'), "meeting": _l('Meeting'), "email": _l('Email'), "visit": _l('Visit'),
                  "event": _l('At an event'), "volunteering": _l('Volunteering'), "committee": _l('Committee'),
                  "other": _l('Other')}
SOURCE_LABELS = {"join": _l('Joined'), "renewal": _l('Renewal'), "staff": _l('Staff'), "import": _l('Import'),
                 "autorenew": _l('Automatic renewal')}
OVERRIDE_LABELS = {"active": _l('Active'), "grace": _l('Grace period'), "lapsed": _l('Lapsed'), "cancelled": _l('Cancelled'),
                   "pending": _l('Pending')}
EARLIEST = date(2000, 1, 1)  # a received date before this is a typo (0026 for 2026), not history
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def plain_text(form, field):
    """No control characters (PostgreSQL refuses NUL; they are never meant)."""
    if field.data and _CONTROL.search(field.data):
        raise ValidationError(_('This contains characters that are not allowed.'))


def to_id(value):
    """A row id from a form value, or None for anything else ('' or 'abc' or '²')."""
    if isinstance(value, int):
        return value
    value = (value or "").strip()
    return int(value) if re.fullmatch(r"[0-9]{1,9}", value) else None


class DateField(_DateField):
    """A date input whose parse error tells the user what to type."""

    def process_formdata(self, valuelist):
        try:
            super().process_formdata(valuelist)
        except ValueError:
            raise ValueError(_('Use a date like 2026-01-31.')) from None


class LocalDateTimeField(_DateTimeLocalField):
    """A datetime-local input read in the association's time zone; `.data` is aware."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("format", ["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"])
        super().__init__(*args, tz=clock.tz, **kwargs)

    def process_formdata(self, valuelist):
        try:
            super().process_formdata(valuelist)
        except ValueError:
            raise ValueError(_('Use a date and time like 2026-01-31 14:30.')) from None


def put_error(form: FlaskForm, error: DomainError, aliases: dict[str, str] | None = None) -> None:
    """Show a domain error beside the field it names, or above the form when it names none."""
    name = (aliases or {}).get(error.field, error.field)
    if name and name in form._fields and form[name].type not in ("HiddenField", "CSRFTokenField"):
        form[name].errors = [*form[name].errors, error.message]
    else:
        form.form_errors.append(error.message)


class PaymentForm(FlaskForm):
    """Money received: used alone (pay a pending term) and inside the join and renewal forms."""

    amount = StringField(_l('Amount'), validators=[Optional(), Length(max=20)])
    method = SelectField(_l('Method'), choices=[SelectChoice(m, METHOD_LABELS[m]) for m in PAYMENT_METHODS], default="cash")
    reference = StringField(_l('Reference'), validators=[Optional(), Length(max=100), plain_text],
                            description=_l('Cheque number, transfer id, card slip...'))
    received_on = DateField(_l('Received on'), validators=[Optional()])
    # One key per rendered form (the template fills it with form_token()): the same form posted
    # twice records one payment.
    token = HiddenField(validators=[DataRequired(_l('This form is out of date: reload the page and try again.')),
                                    Length(max=64), Regexp(r"^[A-Za-z0-9_-]+$")])
    submit = SubmitField(_l('Record payment'))

    def wants_payment(self) -> bool:
        return True

    def payment_input(self, *, today: date, now: datetime) -> PaymentInput | None:
        """The payment typed in, or None with errors put beside the fields. Call after validate()."""
        ok = True
        try:
            amount = parse_amount(self.amount.data, field="amount", label=_('Amount'))
            if amount == 0:
                raise DomainValidationError(_('Enter the amount received (more than zero).'), field="amount")
        except DomainError as e:
            put_error(self, e)
            amount, ok = None, False
        received_on = self.received_on.data
        if received_on is None:
            if not self.received_on.errors:
                self.received_on.errors = [*self.received_on.errors, _('Enter the day the money was received.')]
            ok = False
        elif received_on > today:
            self.received_on.errors = [*self.received_on.errors, _('The payment date cannot be in the future.')]
            ok = False
        elif received_on < EARLIEST:
            self.received_on.errors = [*self.received_on.errors, _('This date is too far in the past.')]
            ok = False
        if not ok:
            return None
        # Today's payment carries the time it was recorded; an earlier day starts at its local midnight,
        # so the receipt (and its year) shows the day staff typed, in the association's zone.
        received_at = now if received_on == today else clock.local_midnight_utc(received_on, clock.tz())
        return PaymentInput(amount_minor=amount, method=self.method.data, received_at=received_at,
                            reference=(self.reference.data or "").strip() or None,
                            idempotency_key=self.token.data)


class _TermPaymentForm(PaymentForm):
    """A plan choice plus "paid now" or "pay later"."""

    plan = SelectField(_l('Plan'), coerce=to_id, validate_choice=False)
    payment_mode = RadioField(_l('Payment'), choices=[SelectChoice("now", _l('Payment received now')),
                                                  SelectChoice("later", _l('Record the payment later (the term waits)'))],
                              default="now", validators=[InputRequired(_l('Choose when the payment is recorded.'))])

    def wants_payment(self) -> bool:
        return self.payment_mode.data == "now"


class RenewForm(_TermPaymentForm):
    term_id = HiddenField(validators=[DataRequired(_l('This form is out of date: reload the page and try again.'))])
    # The dates shown for the chosen plan ("2026-07-01/2027-06-30"): if they no longer match
    # (another plan chosen without JavaScript, or the day changed), staff see the new ones first.
    shown_dates = HiddenField()
    submit = SubmitField(_l('Record renewal'))


class JoinForm(_TermPaymentForm):
    starts_on = DateField(_l('Starts on'), validators=[InputRequired(_l('Enter the first day of the membership.'))])
    preview = SubmitField(_l('Show the dates'))
    submit = SubmitField(_l('Record membership'))

    def validate_starts_on(self, field):
        today = clock.local_today()
        if field.data and field.data.year < 1900:
            raise ValidationError(_('This date is too far in the past.'))
        if field.data and field.data > today + timedelta(days=366):
            raise ValidationError(_('A membership cannot start more than a year from now.'))


class CancelForm(FlaskForm):
    cancelled_on = DateField(_l('Cancelled from'), validators=[InputRequired(_l('Enter the day the cancellation takes effect.'))])
    reason = TextAreaField(_l('Reason'), validators=[DataRequired(_l('Give a reason for the cancellation.')),
                                                 Length(max=2000), plain_text])
    submit = SubmitField(_l('Cancel this term'))


class OverrideForm(FlaskForm):
    status = SelectField(_l('Status to show'), choices=[SelectChoice(s, OVERRIDE_LABELS[s]) for s in OVERRIDABLE],
                         validators=[InputRequired()])
    duration = RadioField(_l('For how long'), choices=[SelectChoice("until", _l('Until a date')), SelectChoice("forever", _l('Until further notice'))],
                          default="until", validators=[InputRequired(_l('Choose for how long.'))])
    until = DateField(_l('Until (inclusive)'), validators=[Optional()])
    reason = TextAreaField(_l('Reason'), validators=[DataRequired(_l('Give a reason for the override.')),
                                                 Length(max=2000), plain_text])
    submit = SubmitField(_l('Set status'))

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        # Checked here, not in validate_until: Optional() ends the field's own checks when it is empty.
        if self.duration.data == "until" and self.until.data is None and not self.until.errors:
            self.until.errors = [*self.until.errors,
                                 _('Enter the last day of the override, or choose until further notice.')]
            ok = False
        return ok

    @property
    def until_date(self) -> date | None:
        return self.until.data if self.duration.data == "until" else None


class InteractionForm(FlaskForm):
    channel = SelectField(_l('Channel'), choices=[SelectChoice(c, CHANNEL_LABELS[c]) for c in INTERACTION_CHANNELS],
                          default="call")
    summary = TextAreaField(_l('Summary'), validators=[DataRequired(_l('Write what was said or done.')), Length(max=5000)])
    outcome = StringField(_l('Outcome'), validators=[Optional(), Length(max=200), plain_text])
    follow_up_on = DateField(_l('Follow up on'), validators=[Optional()])
    occurred_at = LocalDateTimeField(_l('When'), validators=[InputRequired(_l('Enter when it happened.'))])
    submit = SubmitField(_l('Add interaction'))

    def validate_summary(self, field):
        try:
            clean_text(field.data, field="summary", label=_('Summary'), max_length=5000, multiline=True)
        except DomainError as e:
            raise ValidationError(e.message) from None

    def validate_follow_up_on(self, field):
        if field.data and field.data < clock.local_today():
            raise ValidationError(_('The follow-up date is in the past.'))

    def validate_occurred_at(self, field):
        if field.data and field.data.year < 1900:
            raise ValidationError(_('This date is too far in the past.'))
