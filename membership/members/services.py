"""Member and organisation records: validation, create, update, contacts, interactions."""
from __future__ import annotations

from flask_babel import gettext as _
import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import phonenumbers
from sqlalchemy import select
from sqlalchemy.orm import Session

from membership.accounts.services import normalize_email
from membership.core import formats
from membership.core.errors import Conflict, DuplicateEmail, ValidationError
from membership.core.validation import clean_email, clean_text  # noqa: F401  (re-exported)
from membership.core.services import next_number, record_activity, record_audit
from membership.engagement.live import members_changed
from membership.members.models import INTERACTION_CHANNELS, Interaction, Member, Organization


MEMBER_FIELDS = ("first_name", "last_name", "email", "phone", "address_line1", "address_line2", "city",
                 "postcode", "country", "date_of_birth", "organization_id", "job_title", "joined_on",
                 "language", "marketing_opt_in", "directory_opt_in", "notes", "member_number", "external_id")
LANGUAGES = ("en", "bn")


def clean_phone(value: str | None, *, region: str, field: str = "phone") -> str | None:
    """E.164 form of a valid number; local numbers are read in the association's region."""
    value = clean_text(value, field=field, label="Phone", max_length=40)
    if value is None:
        return None
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        raise ValidationError(_("Phone: this is not a phone number."), field=field) from None
    if not phonenumbers.is_valid_number(number):
        raise ValidationError(_("Phone: this number is not valid (add the country code, e.g. +44...)."),
                              field=field)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def format_phone(value: str | None) -> str:
    if not value:
        return ""
    try:
        return phonenumbers.format_number(phonenumbers.parse(value, None),
                                          phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    except phonenumbers.NumberParseException:
        return value


def search_key(text: str) -> str:
    """How search text is compared: NFC, casefolded (works for any script, not only ASCII)."""
    return unicodedata.normalize("NFC", text or "").casefold().strip()


def build_search_text(member: Member) -> str:
    parts = [member.first_name, member.last_name, member.full_name, member.email or "",
             member.member_number or "", member.phone or "", re.sub(r"\D", "", member.phone or "")]
    if member.phone and member.phone.startswith("+"):
        # Local forms too, so "01712..." finds "+8801712...".
        try:
            national = phonenumbers.parse(member.phone, None).national_number
            parts.append("0" + str(national))
            parts.append(str(national))
        except phonenumbers.NumberParseException:
            pass
    return search_key(" | ".join(p for p in parts if p))


@dataclass
class MemberData:
    """Validated member fields, ready to be written."""
    values: dict[str, Any]


class MemberInvalid(ValidationError):
    """One or more member fields are wrong. `errors` maps each bad field to its message, in the
    order the fields are checked; `field` and the message are the first of them, so a caller that
    shows one error still can."""

    def __init__(self, errors: dict[str, str]):
        field, message = next(iter(errors.items()))
        super().__init__(message, field=field)
        self.errors = dict(errors)


def validate_member(data: dict[str, Any], *, region: str, today: date, partial: bool = False) -> MemberData:
    """Check and normalise member fields from any edge (form, CSV, API). Raises MemberInvalid (a
    ValidationError naming the first bad field) with every bad field in `errors`."""
    out: dict[str, Any] = {}
    errors: dict[str, str] = {}

    def has(key):
        return key in data or not partial

    def check(key, fn):
        try:
            out[key] = fn()
        except ValidationError as e:
            errors.setdefault(e.field or key, e.message)

    def country():
        value = clean_text(data.get("country"), field="country", label="Country", max_length=2)
        if value and not re.fullmatch(r"[A-Za-z]{2}", value):
            raise ValidationError(_("Country: use the two-letter code (e.g. BD, GB)."), field="country")
        return value.upper() if value else None

    def date_of_birth():
        dob = data.get("date_of_birth")
        if dob is not None and not isinstance(dob, date):
            raise ValidationError(_("Date of birth is not a date."), field="date_of_birth")
        if dob is not None and (dob > today or dob.year < 1900):
            raise ValidationError(_("Date of birth must be a past date after 1900."), field="date_of_birth")
        return dob

    def joined_on():
        joined = data.get("joined_on") or (None if partial else today)
        if joined is not None:
            if not isinstance(joined, date):
                raise ValidationError(_("Joined on is not a date."), field="joined_on")
            if joined > today:
                raise ValidationError(_("Joined on cannot be in the future."), field="joined_on")
            if joined.year < 1900:
                raise ValidationError(_("Joined on is too far in the past."), field="joined_on")
        return joined

    def language():
        value = data.get("language") or "en"
        if value not in LANGUAGES:
            raise ValidationError(_("Choose English or Bengali."), field="language")
        return value

    if has("first_name"):
        check("first_name", lambda: clean_text(data.get("first_name"), field="first_name", label="First name",
                                               max_length=100, required=True))
    if has("last_name"):
        check("last_name", lambda: clean_text(data.get("last_name"), field="last_name", label="Last name",
                                              max_length=100) or "")
    if has("email"):
        check("email", lambda: clean_email(data.get("email")))
    if has("phone"):
        check("phone", lambda: clean_phone(data.get("phone"), region=region))
    for key, label, size in (("address_line1", "Address", 200), ("address_line2", "Address line 2", 200),
                             ("city", "City", 100), ("postcode", "Postcode", 20),
                             ("job_title", "Job title", 100), ("external_id", "External id", 64)):
        if has(key):
            check(key, lambda key=key, label=label, size=size: clean_text(data.get(key), field=key, label=label,
                                                                          max_length=size))
    if has("notes"):
        check("notes", lambda: clean_text(data.get("notes"), field="notes", label="Notes", max_length=5000,
                                          multiline=True))
    if has("country"):
        check("country", country)
    if has("date_of_birth"):
        check("date_of_birth", date_of_birth)
    if has("joined_on"):
        check("joined_on", joined_on)
        if out.get("joined_on", 0) is None:
            del out["joined_on"]
    if has("language"):
        check("language", language)
    for key in ("marketing_opt_in", "directory_opt_in"):
        if key in data:
            out[key] = bool(data[key])
    if "organization_id" in data:
        out["organization_id"] = data["organization_id"] or None
    if data.get("member_number"):
        check("member_number", lambda: clean_text(data["member_number"], field="member_number",
                                                  label="Member number", max_length=32))
    if errors:
        raise MemberInvalid(errors)
    return MemberData(out)


def find_by_email(session: Session, email: str | None) -> Member | None:
    if not email:
        return None
    return session.scalar(select(Member).where(Member.email_normalized == normalize_email(email)))


def _check_unique(session: Session, values: dict[str, Any], member: Member | None = None) -> None:
    email = values.get("email")
    if email:
        other = find_by_email(session, email)
        if other is not None and (member is None or other.id != member.id):
            raise DuplicateEmail(_("%(name)s (%(number)s) already has this email.", name=other.full_name,
                                   number=other.member_number),
                                 existing_id=other.id)
    number = values.get("member_number")
    if number:
        other = session.scalar(select(Member).where(Member.member_number == number))
        if other is not None and (member is None or other.id != member.id):
            raise Conflict(_("Member number %(number)s belongs to %(name)s.", number=number, name=other.full_name),
                           field="member_number")
    external = values.get("external_id")
    if external:
        other = session.scalar(select(Member).where(Member.external_id == external))
        if other is not None and (member is None or other.id != member.id):
            raise Conflict(_("External id %(id)s belongs to %(name)s.", id=external, name=other.full_name), field="external_id")


def next_member_number(session: Session) -> str:
    while True:
        number = f"M{next_number(session, 'member'):06d}"
        if session.scalar(select(Member.id).where(Member.member_number == number)) is None:
            return number  # numbers given by an import may already use this one


def create_member(session: Session, data: MemberData, *, actor, now: datetime, audit: bool = True) -> Member:
    """Add a member from validated data. Raises DuplicateEmail or Conflict. Flushes; caller commits."""
    values = dict(data.values)
    _check_unique(session, values)
    if not values.get("member_number"):
        values["member_number"] = next_member_number(session)
    member = Member(**values, email_normalized=normalize_email(values["email"]) if values.get("email") else None,
                    created_at=now, updated_at=now)
    member.search_text = build_search_text(member)
    session.add(member)
    session.flush()
    if audit:
        record_audit(session, actor=actor, action="member.create", entity=member, now=now, member_id=member.id,
                     summary=f"Created member {member.member_number} {member.full_name}")
    return member


def update_member(session: Session, member: Member, data: MemberData, *, actor, now: datetime,
                  by_member: bool = False) -> dict[str, list[Any]]:
    """Apply validated changes; audit the changed fields (and record a profile-update activity when
    the member made them). Returns {field: [old, new]}."""
    values = dict(data.values)
    _check_unique(session, values, member)
    changes: dict[str, list[Any]] = {}
    for key, value in values.items():
        old = getattr(member, key)
        if old != value:
            changes[key] = [old, value]
            setattr(member, key, value)
    if not changes:
        return changes
    if "email" in changes:
        member.email_normalized = normalize_email(member.email) if member.email else None
        member.email_bouncing = False
    member.search_text = build_search_text(member)
    member.updated_at = now
    record_audit(session, actor=actor, action="member.update", entity=member, now=now, member_id=member.id,
                 summary="Updated " + ", ".join(sorted(changes)), changes=changes)
    if by_member:
        record_activity(session, member_id=member.id, kind="profile_updated", occurred_at=now,
                        detail={"fields": sorted(changes)})
    return changes


def add_interaction(session: Session, member: Member, *, channel: str, summary: str, outcome: str | None,
                    follow_up_on: date | None, occurred_at: datetime, actor, now: datetime) -> Interaction:
    """Log a staff contact with a member; it also counts as the member's activity."""
    if channel not in INTERACTION_CHANNELS:
        raise ValidationError(_("Choose how you were in touch."), field="channel")
    summary = clean_text(summary, field="summary", label="Summary", max_length=5000, required=True,
                         multiline=True)
    outcome = clean_text(outcome, field="outcome", label="Outcome", max_length=200)
    if occurred_at > now:
        raise ValidationError(_("The interaction cannot be in the future."), field="occurred_on")
    row = Interaction(member_id=member.id, staff_id=getattr(actor, "id", None), channel=channel,
                      summary=summary, outcome=outcome, follow_up_on=follow_up_on,
                      occurred_at=occurred_at, created_at=now)
    session.add(row)
    session.flush()
    record_activity(session, member_id=member.id, kind="interaction", occurred_at=occurred_at, source=row,
                    detail={"channel": channel})
    record_audit(session, actor=actor, action="interaction.add", entity=row, now=now, member_id=member.id,
                 summary=f"Logged {channel}: {summary[:80]}")
    members_changed(session, [member.id], now=now)  # risk follows reality (issue 10)
    return row


# ---------------------------------------------------------------- organisations


def validate_organization(data: dict[str, Any], *, region: str) -> dict[str, Any]:
    return {
        "name": clean_text(data.get("name"), field="name", label="Name", max_length=200, required=True),
        "email": clean_email(data.get("email")),
        "phone": clean_phone(data.get("phone"), region=region),
        "website": clean_text(data.get("website"), field="website", label="Website", max_length=300),
        "address": clean_text(data.get("address"), field="address", label="Address", max_length=1000,
                              multiline=True),
        "notes": clean_text(data.get("notes"), field="notes", label="Notes", max_length=5000, multiline=True),
    }


def save_organization(session: Session, values: dict[str, Any], *, actor, now: datetime,
                      org: Organization | None = None) -> Organization:
    """Create or update an organisation. Raises Conflict for a name already in use."""
    key = search_key(values["name"])
    other = session.scalar(select(Organization).where(Organization.name_normalized == key))
    if other is not None and (org is None or other.id != org.id):
        raise Conflict(_("An organisation named %(name)s already exists.", name=other.name), field="name")
    created = org is None
    if created:
        org = Organization(created_at=now, status="none")
        session.add(org)
    changes = {k: [getattr(org, k), v] for k, v in values.items() if getattr(org, k) != v}
    for k, v in values.items():
        setattr(org, k, v)
    org.name_normalized = key
    org.updated_at = now
    session.flush()
    record_audit(session, actor=actor, action="organization.create" if created else "organization.update",
                 entity=org, now=now, summary=f"{'Created' if created else 'Updated'} organisation {org.name}",
                 changes=None if created else changes)
    return org


def find_or_create_organization(session: Session, name: str, *, actor, now: datetime) -> Organization:
    key = search_key(name)
    org = session.scalar(select(Organization).where(Organization.name_normalized == key))
    if org is None:
        org = save_organization(session, {"name": name.strip()}, actor=actor, now=now)
    return org


def add_contact(session: Session, org: Organization, member: Member, *, primary: bool, actor, now: datetime,
                today: date) -> None:
    """Attach a member to an organisation as a contact (covered by its membership)."""
    from membership.plans.services import refresh_status

    if member.organization_id not in (None, org.id):
        raise Conflict(_("%(name)s is a contact of another organisation; remove them there first.", name=member.full_name))
    if org.plan is not None and org.plan.max_contacts is not None and member.organization_id != org.id:
        if len(org.contacts) >= org.plan.max_contacts:
            raise Conflict(_("The plan %(plan)s covers at most %(count)s contacts.", plan=org.plan.name,
                             count=formats.digits(str(org.plan.max_contacts))))
    member.organization_id = org.id
    if primary or not any(c.is_primary_contact for c in org.contacts if c.id != member.id):
        set_primary_contact(session, org, member)
    member.updated_at = now
    session.flush()
    session.refresh(org, ["contacts"])
    record_audit(session, actor=actor, action="organization.add_contact", entity=org, now=now,
                 member_id=member.id, summary=f"{member.full_name} added as a contact of {org.name}")
    refresh_status(session, member, today=today, now=now)


def set_primary_contact(session: Session, org: Organization, member: Member, *, actor=None,
                        now: datetime | None = None) -> None:
    """Make `member` (a contact of `org`) its primary contact; audited when `now` is given."""
    if member.organization_id != org.id:
        raise Conflict(_("%(name)s is not a contact of %(organisation)s.", name=member.full_name, organisation=org.name))
    for contact in session.scalars(select(Member).where(Member.organization_id == org.id)):
        contact.is_primary_contact = contact.id == member.id
    member.is_primary_contact = True
    if now is not None:
        record_audit(session, actor=actor, action="organization.primary_contact", entity=org, now=now,
                     member_id=member.id, summary=f"{member.full_name} is now the primary contact of {org.name}")


def remove_contact(session: Session, org: Organization, member: Member, *, actor, now: datetime,
                   today: date) -> None:
    from membership.plans.services import refresh_status

    if member.organization_id != org.id:
        raise Conflict(_("%(name)s is not a contact of %(organisation)s.", name=member.full_name, organisation=org.name))
    was_primary = member.is_primary_contact
    member.organization_id = None
    member.is_primary_contact = False
    member.updated_at = now
    session.flush()
    session.refresh(org, ["contacts"])
    if was_primary and org.contacts:
        set_primary_contact(session, org, org.contacts[0])
    record_audit(session, actor=actor, action="organization.remove_contact", entity=org, now=now,
                 member_id=member.id, summary=f"{member.full_name} removed from {org.name}")
    refresh_status(session, member, today=today, now=now)
