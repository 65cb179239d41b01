"""Seats under concurrency, on PostgreSQL: many transactions racing for the last seats never
confirm more people than the capacity, and concurrent cancellations promote distinct people."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from membership.events import services as ev
from membership.events.models import SEATED_STATUSES, Event, EventRegistration
from membership.extensions import db
from membership.members.models import Member
from tests.conftest import require_postgres

N = 24
CAPACITY = 5


@pytest.fixture
def postgres(app):
    return require_postgres("the seat race runs on PostgreSQL only")


def race(app, engine, n, work):
    """Run work(i, session) in n threads that start together, each with its own session; commit each."""
    start = threading.Barrier(n, timeout=30)
    errors: list[BaseException] = []
    results: dict[int, object] = {}

    def worker(i: int) -> None:
        try:
            with app.app_context(), Session(engine) as session:
                start.wait()
                results[i] = work(i, session)
                session.commit()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)
    return results


def test_racing_registrations_never_overfill_and_cancellations_promote_distinct_people(
        app, postgres, make_event, make_member):
    now = datetime.now(timezone.utc).replace(microsecond=0)
    event_id = make_event(capacity=CAPACITY, waitlist=True).id
    member_ids = [make_member().id for _ in range(N)]
    db.session.commit()

    def register(i, session):
        event = session.get(Event, event_id)
        member = session.get(Member, member_ids[i])
        # registered_at follows the thread number, so "registered order" is known
        return ev.register_member(session, event, member, now=now + timedelta(milliseconds=i), actor=None).id

    race(app, postgres, N, register)
    db.session.expire_all()
    regs = list(db.session.scalars(select(EventRegistration).where(EventRegistration.event_id == event_id)))
    event = db.session.get(Event, event_id)
    seated = [r for r in regs if r.status in SEATED_STATUSES]
    waiting = [r for r in regs if r.status == "waitlisted"]
    assert len(regs) == N
    assert len(seated) == CAPACITY and event.seats_taken == CAPACITY
    assert len(waiting) == N - CAPACITY
    # the waitlist is in the order people registered
    queue = list(db.session.scalars(
        select(EventRegistration.member_id).where(EventRegistration.event_id == event_id,
                                                  EventRegistration.status == "waitlisted")
        .order_by(EventRegistration.registered_at, EventRegistration.id)))
    assert queue == sorted((r.member_id for r in waiting), key=member_ids.index)
    first_waiting = queue[:CAPACITY]

    # everyone seated cancels at the same moment (some twice, as a double click would)
    seated_ids = [r.id for r in seated]
    cancellers = seated_ids + seated_ids[:3]

    def cancel(i, session):
        registration = session.get(EventRegistration, cancellers[i])
        promoted = ev.cancel_registration(session, registration, now=now + timedelta(seconds=1), actor=None,
                                          by="staff")
        return promoted.member_id if promoted is not None else None

    results = race(app, postgres, len(cancellers), cancel)
    promoted = [m for m in results.values() if m is not None]
    assert sorted(promoted, key=member_ids.index) == first_waiting  # distinct, first in line
    db.session.expire_all()
    event = db.session.get(Event, event_id)
    seated_now = db.session.scalar(select(func.count()).select_from(EventRegistration).where(
        EventRegistration.event_id == event_id, EventRegistration.status.in_(SEATED_STATUSES)))
    assert seated_now == CAPACITY and event.seats_taken == CAPACITY
    from membership.notifications.models import OutboxMessage
    assert db.session.scalar(select(func.count()).select_from(OutboxMessage).where(
        OutboxMessage.template_key == "event_promoted")) == CAPACITY


def test_racing_for_the_last_seat_without_a_waitlist(app, postgres, make_event, make_member):
    now = datetime.now(timezone.utc).replace(microsecond=0)
    event_id = make_event(capacity=1, waitlist=False).id
    member_ids = [make_member().id for _ in range(10)]
    db.session.commit()
    outcomes: list[str] = []

    def register(i, session):
        event = session.get(Event, event_id)
        try:
            ev.register_member(session, event, session.get(Member, member_ids[i]), now=now, actor=None)
            outcomes.append("seat")
        except ev.Conflict as exc:
            outcomes.append(str(exc))
            session.rollback()

    race(app, postgres, 10, register)
    assert sorted(outcomes) == ["This event is full."] * 9 + ["seat"]
    db.session.expire_all()
    assert db.session.get(Event, event_id).seats_taken == 1
