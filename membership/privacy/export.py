"""Everything Samiti holds about a member, as one ZIP archive: data.json (all of it) and one CSV
file per section, plus a README that says what each file is.

What is in it, and what is not:
- the member record, including the staff notes field, and the staff's logged interactions
  (calls, meetings...). A member has the right to see what an organisation writes about them,
  and staff write those notes knowing it; the staff member's name is left out (it is the staff
  member's data, not the member's), the note itself is in;
- the login (email, role, dates; never the password hash or session token);
- membership terms, payments (receipt numbers and amounts), activities, help requests with
  every message, account-closure requests;
- every email sent (or queued) to the member, with its text, except the text of emails that
  carry a secret link (a password reset): their subject and dates are listed, the text is not;
- the audit rows about the member: when, what, and who in broad terms ("you", "staff",
  "system"); staff names and staff's network addresses are left out, the member's own are in.

CSV files are UTF-8 with a byte-order mark and neutralise spreadsheet formulas (a cell that
starts with = + - @, tab or CR gets a leading apostrophe).
"""
from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from membership.accounts.models import User
from membership.core.models import Activity, AuditLog
from membership.core.services import record_audit
from membership.members.csvio import neutralise
from membership.members.models import Interaction, Member
from membership.notifications.models import OutboxMessage
from membership.notifications.templating import is_sensitive
from membership.plans.models import Membership, Payment
from membership.privacy.models import ClosureRequest
from membership.support.models import HelpMessage, HelpRequest

SECTIONS = ("member", "login", "terms", "payments", "activities", "interactions", "emails", "help_requests",
            "help_messages", "closure_requests", "survey_answers", "audit")
DESCRIPTIONS = {
    "member": "Your member record: names, contact details, address, preferences, directory choices, "
              "membership status, and the notes staff keep about you.",
    "login": "Your sign-in account (no password: only a one-way hash of it is stored, and it is not included).",
    "terms": "Your membership terms: plan, dates, fee, status, payment and approval.",
    "payments": "Payments we received from you, with receipt numbers.",
    "activities": "Your touchpoints with us (joined, renewed, payments, events, help requests...).",
    "interactions": "Contacts staff logged with you (calls, meetings...), with their notes.",
    "emails": "Emails we sent or queued to you, with their text (not for emails holding a sign-in link).",
    "help_requests": "Your help requests.",
    "help_messages": "Every message of your help requests, yours and ours.",
    "closure_requests": "Your requests to close your account.",
    "survey_answers": "Your answers to our surveys, one row per question answered.",
    "audit": "Our audit trail of changes to your records: when, what, and whether you, staff or the system did it.",
}
WITHHELD = "[not included: this email held a sign-in link]"


def _value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def _row(obj, columns: tuple[str, ...], **extra) -> dict[str, Any]:
    out = {c: _value(getattr(obj, c)) for c in columns}
    out.update({k: _value(v) for k, v in extra.items()})
    return out


MEMBER_COLUMNS = ("member_number", "first_name", "last_name", "email", "phone", "address_line1", "address_line2",
                  "city", "postcode", "country", "date_of_birth", "job_title", "is_primary_contact", "joined_on",
                  "language", "marketing_opt_in", "directory_opt_in", "directory_show_organization",
                  "directory_show_city", "directory_show_email", "directory_show_phone", "email_bouncing",
                  "notes", "status", "term_starts_on", "expires_on", "created_at", "updated_at")
TERM_COLUMNS = ("id", "starts_on", "ends_on", "fee_minor", "currency", "source", "status", "awaiting_payment",
                "awaiting_approval", "paid_on", "approved_at", "cancelled_on", "cancel_reason", "created_at")
PAYMENT_COLUMNS = ("id", "receipt_number", "amount_minor", "currency", "method", "reference", "note",
                   "received_at", "membership_id")
ACTIVITY_COLUMNS = ("occurred_at", "kind", "source_type", "source_id")
INTERACTION_COLUMNS = ("occurred_at", "channel", "summary", "outcome", "follow_up_on")
EMAIL_COLUMNS = ("created_at", "sent_at", "status", "to_address", "subject", "template_key", "category")
HELP_COLUMNS = ("id", "created_at", "category", "subject", "status", "first_response_at", "resolved_at")
CLOSURE_COLUMNS = ("id", "requested_at", "status", "reason", "decided_at", "decision_note")


def collect(session: Session, member: Member) -> dict[str, list[dict[str, Any]]]:
    """Every section as a list of flat dicts (JSON values: strings, numbers, booleans, null)."""
    user = session.scalar(select(User).where(User.member_id == member.id))
    data: dict[str, list[dict[str, Any]]] = {}

    org = member.organization
    referrer = member.referred_by
    data["member"] = [_row(member, MEMBER_COLUMNS, organization=org.name if org else None,
                           plan=member.plan.name if member.plan else None,
                           referred_by_member_number=referrer.member_number if referrer else None)]
    data["login"] = [] if user is None else [{
        "email": user.email, "name": user.name, "role": user.role, "active": user.is_active_flag,
        "email_verified_at": _value(user.email_verified_at), "last_login_at": _value(user.last_login_at),
        "created_at": _value(user.created_at)}]

    terms = session.scalars(select(Membership).where(Membership.member_id == member.id)
                            .order_by(Membership.starts_on, Membership.id)).all()
    data["terms"] = [_row(t, TERM_COLUMNS, plan=t.plan.name if t.plan else None) for t in terms]
    payments = session.scalars(select(Payment).where(Payment.member_id == member.id)
                               .order_by(Payment.received_at, Payment.id)).all()
    data["payments"] = [_row(p, PAYMENT_COLUMNS) for p in payments]
    activities = session.scalars(select(Activity).where(Activity.member_id == member.id)
                                 .order_by(Activity.occurred_at, Activity.id)).all()
    data["activities"] = [_row(a, ACTIVITY_COLUMNS, detail=a.detail) for a in activities]
    interactions = session.scalars(select(Interaction).where(Interaction.member_id == member.id)
                                   .order_by(Interaction.occurred_at, Interaction.id)).all()
    data["interactions"] = [_row(i, INTERACTION_COLUMNS) for i in interactions]

    emails = session.scalars(select(OutboxMessage).where(OutboxMessage.member_id == member.id)
                             .order_by(OutboxMessage.created_at, OutboxMessage.id)).all()
    data["emails"] = [_row(m, EMAIL_COLUMNS, body=WITHHELD if is_sensitive(m.template_key) else m.body_text)
                      for m in emails]

    requests = session.scalars(select(HelpRequest).where(HelpRequest.member_id == member.id)
                               .order_by(HelpRequest.created_at, HelpRequest.id)).all()
    data["help_requests"] = [_row(r, HELP_COLUMNS) for r in requests]
    messages = session.scalars(
        select(HelpMessage).join(HelpRequest, HelpRequest.id == HelpMessage.request_id)
        .where(HelpRequest.member_id == member.id).order_by(HelpMessage.created_at, HelpMessage.id)).all()
    data["help_messages"] = [{"request_id": m.request_id, "created_at": _value(m.created_at),
                              "from": "you" if m.author_kind == "member" else "staff", "body": m.body}
                             for m in messages]
    closures = session.scalars(select(ClosureRequest).where(ClosureRequest.member_id == member.id)
                               .order_by(ClosureRequest.requested_at, ClosureRequest.id)).all()
    data["closure_requests"] = [_row(c, CLOSURE_COLUMNS) for c in closures]

    from membership.surveys.services import member_answers
    data["survey_answers"] = member_answers(session, member.id)

    about_login = and_(AuditLog.entity_type == "user", AuditLog.entity_id == user.id) if user else None
    where = AuditLog.member_id == member.id if about_login is None else or_(AuditLog.member_id == member.id,
                                                                           about_login)
    audit = session.execute(
        select(AuditLog, User.role).outerjoin(User, User.id == AuditLog.actor_id).where(where)
        .order_by(AuditLog.at, AuditLog.id)).all()
    data["audit"] = []
    for row, role in audit:
        mine = user is not None and row.actor_id == user.id
        who = "you" if mine else ("system" if row.actor_id is None else "staff" if role in ("staff", "admin")
                                  else "another user")
        data["audit"].append({"at": _value(row.at), "action": row.action, "record": row.entity_type,
                              "record_id": row.entity_id, "by": who, "summary": row.summary,
                              "changes": row.changes, "ip": row.ip if mine else None})
    return data


def _csv(rows: list[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (dict, list)):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return neutralise(str(value))


def _readme(member: Member, now: datetime, association: str, data: dict[str, list]) -> str:
    lines = [f"Your data held by {association}", "",
             f"Member number: {member.member_number}", f"Made on: {now.isoformat()} (UTC)", "",
             "data.json holds everything below in one file. Each CSV file holds one part:", ""]
    for name in SECTIONS:
        lines.append(f"{name}.csv ({len(data[name])} row{'' if len(data[name]) == 1 else 's'}): {DESCRIPTIONS[name]}")
    lines += ["", "Times are in UTC (ISO 8601). Amounts are in minor units (cents, paisa): 5000 means 50.00.",
              "A cell that starts with = + - or @ has a leading apostrophe, so spreadsheets do not run it.", ""]
    return "\r\n".join(lines)


def build_archive(session: Session, member: Member, *, now: datetime, association: str = "Samiti") -> bytes:
    """The ZIP archive of `collect`: README.txt, data.json and one CSV per section."""
    data = collect(session, member)
    document = {"generated_at": now.isoformat(), "association": association,
                "member_number": member.member_number, **{name: data[name] for name in SECTIONS}}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("README.txt", _readme(member, now, association, data))
        archive.writestr("data.json", json.dumps(document, ensure_ascii=False, indent=2))
        for name in SECTIONS:
            archive.writestr(f"{name}.csv", _csv(data[name]))
    return buffer.getvalue()


def record_export(session: Session, member: Member, *, actor, now: datetime) -> None:
    """Audit that the member's data was downloaded (who, when, from where). Caller commits."""
    record_audit(session, actor=actor, action="member.data_export", entity=member, now=now, member_id=member.id,
                 summary="Downloaded a copy of their data")


def archive_name(member: Member, today: date) -> str:
    return f"my-data-{member.member_number}-{today.isoformat()}.zip"
