"""The member directory: current members who chose to be listed, showing only what each chose.

A listed member always shows their name; organisation and job title, city, email and phone
each need their own "show" choice (all off by default). The search looks only at what is
shown: names, and the organisation of those who show it. It never matches email or phone,
so nobody can find out whether an address belongs to a member who keeps it hidden.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session, contains_eager

from membership.core.services import record_activity, record_audit
from membership.members.models import Member, Organization
from membership.members.services import format_phone, search_key

CURRENT = ("active", "grace")
SHARE_FIELDS = ("directory_show_organization", "directory_show_city", "directory_show_email",
                "directory_show_phone")
SETTING_FIELDS = ("directory_opt_in", *SHARE_FIELDS)
MAX_WORDS = 6
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def can_browse(member: Member | None) -> bool:
    """The directory is a benefit of current members: applicants and lapsed members do not see it."""
    return member is not None and member.erased_at is None and member.status in CURRENT


def clean_query(q: str | None) -> str:
    return _CONTROL.sub(" ", q or "").strip()[:100]


def _like(word: str) -> str:
    return "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def directory_query(q: str = "") -> Select:
    """Listed current members matching every word of `q` in their name or shown organisation,
    sorted by last and first name (their organisation loaded with them)."""
    stmt = (select(Member).outerjoin(Member.organization).options(contains_eager(Member.organization))
            .where(Member.directory_opt_in.is_(True), Member.erased_at.is_(None), Member.status.in_(CURRENT)))
    for word in search_key(q).split()[:MAX_WORDS]:
        pattern = _like(word)
        # Names through lower() (full Unicode on PostgreSQL, ASCII on SQLite); organisations through
        # their stored casefolded name.
        stmt = stmt.where(or_(
            func.lower(Member.first_name).like(pattern, escape="\\"),
            func.lower(Member.last_name).like(pattern, escape="\\"),
            and_(Member.directory_show_organization.is_(True),
                 Organization.name_normalized.like(pattern, escape="\\"))))
    return stmt.order_by(Member.last_name, Member.first_name, Member.id)


@dataclass(frozen=True)
class Entry:
    """One card of the directory: only the fields the member chose to show (None otherwise)."""
    member_id: int
    name: str
    organization: str | None
    job_title: str | None
    city: str | None
    email: str | None
    phone: str | None
    phone_link: str | None


def entry(member: Member) -> Entry:
    show_org = member.directory_show_organization
    organization_name = member.organization.name if member.organization is not None else None
    show_phone = member.directory_show_phone and member.phone
    return Entry(
        member_id=member.id, name=member.full_name,
        organization=organization_name if show_org else None,
        job_title=member.job_title if show_org else None,
        city=member.city if member.directory_show_city else None,
        email=member.email if member.directory_show_email else None,
        phone=format_phone(member.phone) if show_phone else None,
        phone_link=member.phone if show_phone else None)


def set_sharing(session: Session, member: Member, choices: dict[str, bool], *, actor, now: datetime) -> list[str]:
    """Save the member's directory choices (listed, and each field shown). Unknown keys are
    ignored. Records a profile-update activity and an audit row when something changed; returns
    the names of the changed settings. Caller commits."""
    changes = {}
    for name in SETTING_FIELDS:
        if name in choices:
            value = bool(choices[name])
            if getattr(member, name) != value:
                changes[name] = [getattr(member, name), value]
                setattr(member, name, value)
    if not changes:
        return []
    member.updated_at = now
    record_audit(session, actor=actor, action="member.directory", entity=member, now=now, member_id=member.id,
                 summary="Directory choices changed: " + ", ".join(sorted(changes)), changes=changes)
    record_activity(session, member_id=member.id, kind="profile_updated", occurred_at=now,
                    detail={"fields": sorted(changes)})
    session.flush()
    return sorted(changes)
