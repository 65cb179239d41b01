"""Factories for the events tests (and the staff / public events pages' tests)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from membership.extensions import db


@pytest.fixture
def make_event(app):
    """make_event(**kw): an Event row added and flushed (nothing committed). Times aware UTC;
    starts_at defaults to now + 7 days, ends `hours` later; published unless told otherwise."""
    from membership.events.models import Event

    def make(title="Annual general meeting", starts_at=None, hours=2, capacity=None, waitlist=True,
             members_only=False, member_price_minor=0, non_member_price_minor=0, status="published",
             opens_at=None, closes_at=None, cancellation_deadline=None, reminder_hours_before=24, **kw):
        now = datetime.now(timezone.utc).replace(microsecond=0)
        if starts_at is None:
            starts_at = now + timedelta(days=7)
        values = {
            "title": title, "starts_at": starts_at, "ends_at": starts_at + timedelta(hours=hours),
            "capacity": capacity, "waitlist_enabled": waitlist, "members_only": members_only,
            "member_price_minor": member_price_minor, "non_member_price_minor": non_member_price_minor,
            "currency": app.config.get("CURRENCY", "BDT"), "status": status,
            "registration_opens_at": opens_at, "registration_closes_at": closes_at,
            "cancellation_deadline": cancellation_deadline, "reminder_hours_before": reminder_hours_before,
            "seats_taken": 0, "venue": "Community Hall", "description": "An evening together.",
            "published_at": now if status in ("published", "cancelled", "finished") else None,
            "created_at": now, "updated_at": now,
        }
        values.update(kw)
        event = Event(**values)
        db.session.add(event)
        db.session.flush()
        return event
    return make


@pytest.fixture
def current_member(app, make_member, make_plan, make_term):
    """current_member(**member_kw): a member with a paid term running today (status active)."""
    from membership.core.time import local_today

    plan = {}

    def make(**kw):
        p = plan.get("p") or plan.setdefault("p", make_plan(fee_minor=0))
        member = make_member(**kw)
        today = local_today()
        make_term(member, p, starts_on=today - timedelta(days=30), today=today)
        assert member.is_current, member.status
        return member
    return make


@pytest.fixture
def lapsed_member(app, make_member, make_plan, make_term):
    """lapsed_member(**member_kw): a member whose only term ended (and its grace) long ago."""
    from membership.core.time import local_today

    def make(**kw):
        member = make_member(**kw)
        today = local_today()
        make_term(member, make_plan(fee_minor=0, grace_days=30), starts_on=today - timedelta(days=800),
                  today=today)
        assert member.status == "lapsed", member.status
        return member
    return make


def sent(template_key=None, *, to=None):
    """Outbox rows (optionally of one template / to one address), oldest first."""
    from sqlalchemy import select

    from membership.notifications.models import OutboxMessage

    stmt = select(OutboxMessage).order_by(OutboxMessage.id)
    if template_key:
        stmt = stmt.where(OutboxMessage.template_key == template_key)
    if to:
        stmt = stmt.where(OutboxMessage.to_address == to)
    db.session.flush()
    return list(db.session.scalars(stmt))
