"""Audit trail, activity recording and counters: the few writes every domain shares."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.orm import Session

from membership.core.db import conflict_insert
from membership.core.models import Activity, AuditLog, Counter

ACTIVITY_KINDS = {
    "joined", "renewed", "lapsed", "status_changed", "cancelled", "payment",
    "logged_in", "profile_updated", "interaction",
    "event_registered", "event_attended", "event_no_show", "event_cancelled", "feedback_given",
    "help_request", "email_opened", "email_clicked",
    "survey_answered",
    "website_visit", "external_contact",  # recorded by other systems through the API
}


def _jsonable(value: Any) -> Any:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def record_audit(session: Session, *, actor, action: str, entity, now: datetime,
                 member_id: int | None = None, summary: str = "",
                 changes: dict[str, Any] | None = None) -> AuditLog:
    """Add an audit row for `actor` doing `action` to `entity`. Flushes nothing; the caller commits.

    The client address comes from `session.info["ip"]`, which the web edge sets per request,
    so that domain code does not read the request.
    """
    row = AuditLog(
        at=now,
        actor_id=getattr(actor, "id", None),
        action=action,
        entity_type=type(entity).__name__.lower() if entity is not None else "system",
        entity_id=getattr(entity, "id", None),
        member_id=member_id,
        summary=summary,
        changes=_jsonable(changes) if changes else None,
        ip=session.info.get("ip"),
    )
    session.add(row)
    return row


def record_activity(session: Session, *, member_id: int, kind: str, occurred_at: datetime,
                    source=None, detail: dict[str, Any] | None = None) -> Activity:
    """The one function every part of Samiti uses to record a member touchpoint. Adds; caller commits."""
    if kind not in ACTIVITY_KINDS:
        raise ValueError(f"unknown activity kind {kind!r}")
    row = Activity(
        member_id=member_id,
        kind=kind,
        occurred_at=occurred_at,
        source_type=type(source).__name__.lower() if source is not None else None,
        source_id=getattr(source, "id", None),
        detail=_jsonable(detail) if detail else None,
    )
    session.add(row)
    return row


def record_activity_once(session: Session, *, dedupe_key: str, member_id: int, kind: str, occurred_at: datetime,
                         source=None, detail: dict[str, Any] | None = None) -> bool:
    """record_activity for a touchpoint counted once: inserts the row unless one with the same
    `dedupe_key` exists, with INSERT ... ON CONFLICT DO NOTHING, so two requests at the same moment
    (a double click, two tabs) record it once: on PostgreSQL the second waits for the first's
    transaction and then inserts nothing. Returns True when this call added the row. Executes at
    once (not at the next flush); the caller commits."""
    if kind not in ACTIVITY_KINDS:
        raise ValueError(f"unknown activity kind {kind!r}")
    dialect_insert = conflict_insert(session.get_bind().dialect.name)
    values = {"member_id": member_id, "kind": kind, "occurred_at": occurred_at, "dedupe_key": dedupe_key[:120],
              "source_type": type(source).__name__.lower() if source is not None else None,
              "source_id": getattr(source, "id", None), "detail": _jsonable(detail) if detail else None}
    stmt = (dialect_insert(Activity).values(**values)
            .on_conflict_do_nothing(index_elements=["dedupe_key"]).returning(Activity.id))
    return session.execute(stmt).scalar() is not None


def next_number(session: Session, name: str) -> int:
    """Next value of the counter `name`, inside the caller's transaction.

    The UPDATE locks the counter row until commit (PostgreSQL) or holds the write lock
    (SQLite), and a rollback returns the number: the sequence has no gaps.
    """
    dialect_insert = conflict_insert(session.get_bind().dialect.name)
    if dialect_insert is not None:
        session.execute(dialect_insert(Counter).values(name=name, value=0).on_conflict_do_nothing())
    elif session.get(Counter, name) is None:
        session.execute(insert(Counter).values(name=name, value=0))
    return session.execute(
        update(Counter).where(Counter.name == name).values(value=Counter.value + 1).returning(Counter.value)
    ).scalar_one()
