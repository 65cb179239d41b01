"""Forms of the staff events pages. They check shapes only (a date and time that parses, lengths);
the event rules (end after start, capacity, prices, links, windows) live in
membership.events.services.validate_event, whose ValidationError the views put beside the field."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from flask_babel import gettext as _, lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, StringField, SubmitField, TextAreaField
from wtforms.fields import DateTimeLocalField
from wtforms.validators import DataRequired, Length, Optional

from membership.core import time as clock
from membership.events.models import Event
from membership.plans.catalog import format_minor
from membership.staff.forms_member_page import plain_text

DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"]


class NaiveLocalDateTimeField(DateTimeLocalField):
    """A datetime-local input; `.data` is the naive wall-clock time typed (the service reads it in
    the association's zone, so a time that a daylight-saving change skips is its call)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("format", DATETIME_FORMATS)
        kwargs.setdefault("validators", [Optional()])
        super().__init__(*args, **kwargs)

    def process_formdata(self, valuelist):
        try:
            super().process_formdata(valuelist)
        except ValueError:
            raise ValueError(_('Use a date and time like 2026-01-31 14:30.')) from None


EVENT_FIELDS = ("title", "description", "starts_at", "ends_at", "venue", "online_url", "capacity",
                "waitlist_enabled", "registration_opens_at", "registration_closes_at", "cancellation_deadline",
                "members_only", "member_price", "non_member_price", "reminder_hours_before")


class EventForm(FlaskForm):
    """Create and edit: the field names are validate_event's, so its errors land beside them."""

    title = StringField(_l('Title'), validators=[Length(max=400)])
    description = TextAreaField(_l('Description'), validators=[Length(max=20000)])
    starts_at = NaiveLocalDateTimeField(_l('Starts'))
    ends_at = NaiveLocalDateTimeField(_l('Ends'))
    venue = StringField(_l('Venue'), validators=[Length(max=600)])
    online_url = StringField(_l('Online link'), validators=[Length(max=1000)],
                             description=_l('For an online or hybrid event: https://...'))
    capacity = StringField(_l('Capacity'), validators=[Length(max=20)], description=_l('Leave blank for unlimited.'))
    waitlist_enabled = BooleanField(_l('Waitlist when full'), default=True)
    registration_opens_at = NaiveLocalDateTimeField(_l('Registration opens'),
                                                    description=_l('Blank: as soon as the event is published.'))
    registration_closes_at = NaiveLocalDateTimeField(_l('Registration closes'), description=_l('Blank: at the start.'))
    cancellation_deadline = NaiveLocalDateTimeField(_l('People may cancel until'),
                                                    description=_l('Blank: until the start.'))
    members_only = BooleanField(_l('Members only'))
    member_price = StringField(_l('Member price'), validators=[Length(max=20)], description=_l('Blank or 0: free.'))
    non_member_price = StringField(_l('Non-member price'), validators=[Length(max=20)], description=_l('Blank or 0: free.'))
    reminder_hours_before = StringField(_l('Reminder (hours before the start)'), validators=[Length(max=10)], default="24",
                                        description=_l('Blank: no reminder.'))
    submit = SubmitField(_l('Save'))

    def raw(self) -> dict[str, Any]:
        """What staff typed, for services.validate_event (times naive, in the association's zone)."""
        out: dict[str, Any] = {}
        for name in EVENT_FIELDS:
            value = self[name].data
            if isinstance(value, str):
                value = value.strip()
            out[name] = value
        return out

    def fill_from(self, event: Event) -> None:
        """The event's values as staff would type them (local times, prices in major units)."""
        def local(value: datetime | None):
            return clock.to_local(value).replace(tzinfo=None) if value is not None else None

        self.title.data = event.title
        self.description.data = event.description or ""
        self.starts_at.data = local(event.starts_at)
        self.ends_at.data = local(event.ends_at)
        self.venue.data = event.venue or ""
        self.online_url.data = event.online_url or ""
        self.capacity.data = "" if event.capacity is None else str(event.capacity)
        self.waitlist_enabled.data = bool(event.waitlist_enabled)
        self.registration_opens_at.data = local(event.registration_opens_at)
        self.registration_closes_at.data = local(event.registration_closes_at)
        self.cancellation_deadline.data = local(event.cancellation_deadline)
        self.members_only.data = bool(event.members_only)
        self.member_price.data = format_minor(event.member_price_minor or 0)
        self.non_member_price.data = format_minor(event.non_member_price_minor or 0)
        self.reminder_hours_before.data = "" if event.reminder_hours_before is None else str(event.reminder_hours_before)


class CancelEventForm(FlaskForm):
    reason = TextAreaField(_l('Reason (sent to everyone registered)'),
                           validators=[DataRequired(_l('Give a reason for the cancellation.')), Length(max=2000)])
    submit = SubmitField(_l('Cancel the event'))


class RegisterMemberForm(FlaskForm):
    """Register a member on their behalf: by member number, email or name."""
    lookup = StringField(_l("Member number, email or name"), validators=[
        DataRequired(_l("Enter a member number, an email address or a name.")), Length(max=254), plain_text])
    member_id = HiddenField()  # one of several members with the name typed, chosen from a list
    submit = SubmitField("Register member")


class RegisterGuestForm(FlaskForm):
    name = StringField(_l('Name'), validators=[DataRequired(_l("Enter the guest's name.")), Length(max=200), plain_text])
    email = StringField(_l('Email'), validators=[DataRequired(_l("Enter the guest's email.")), Length(max=254), plain_text])
    submit = SubmitField(_l('Register guest'))


class WalkInForm(FlaskForm):
    """At the door: a member by number or email, or a guest by name and email."""
    lookup = StringField(_l("Member number, email or name"), validators=[Optional(), Length(max=254), plain_text])
    member_id = HiddenField()  # one of several members with the name typed, chosen from a list
    confirm_early = BooleanField(_l("Check in although the event is not today"))
    name = StringField(_l("Guest name"), validators=[Optional(), Length(max=200), plain_text])
    email = StringField(_l("Guest email"), validators=[Optional(), Length(max=254), plain_text])
    q = StringField(validators=[Optional(), Length(max=100)])  # the search to go back to
    submit = SubmitField(_l('Register and check in'))

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        if ok and not (self.lookup.data or "").strip() and not (self.name.data or "").strip() \
                and not self.member_id.data:
            self.lookup.errors = [*self.lookup.errors,
                                  _("Enter a member number or email, or a guest's name and email.")]
            ok = False
        if ok and not (self.lookup.data or "").strip() and not (self.email.data or "").strip():
            self.email.errors = [*self.email.errors, _("Enter the guest's email.")]
            ok = False
        return ok
