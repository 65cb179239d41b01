"""Once-per-day sign-ins and once-per-message opens hold when two requests race, on PostgreSQL:
the second transaction's check cannot see the first's uncommitted row, so only the unique
dedupe key can keep the activity single."""
from __future__ import annotations

import threading
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from membership.core.models import Activity
from membership.engagement import tracking
from membership.extensions import db
from membership.notifications.models import OutboxMessage
from tests.conftest import NOW, require_postgres

ZONE = ZoneInfo("Asia/Dhaka")


@pytest.fixture
def postgres(app):
    return require_postgres("racing requests are a PostgreSQL matter (SQLite serialises writers)")


def interleave(app, engine, record):
    """A records and holds its transaction open; B records meanwhile (and must wait for A); A
    commits; B finishes. Returns (A's result, B's result)."""
    results: dict[str, object] = {}
    b_started = threading.Event()

    def b() -> None:
        with app.app_context(), Session(engine) as session:
            b_started.set()
            results["b"] = record(session)
            session.commit()

    with app.app_context(), Session(engine) as session_a:
        results["a"] = record(session_a)
        session_a.flush()
        thread = threading.Thread(target=b)
        thread.start()
        b_started.wait(10)
        thread.join(1.0)  # B is blocked on A's row (or, without the key, has inserted its own)
        session_a.commit()
    thread.join(20)
    assert not thread.is_alive()
    return results["a"], results["b"]


def count(kind: str, member_id: int) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(Activity)
                             .where(Activity.kind == kind, Activity.member_id == member_id))


def test_two_sign_ins_at_the_same_moment_record_one_login(app, postgres, make_member):
    member_id = make_member().id
    db.session.commit()
    first, second = interleave(app, postgres, lambda s: tracking.record_login(s, member_id, now=NOW, zone=ZONE))
    assert (first, second) == (True, False)
    assert count("logged_in", member_id) == 1
    # the next local day counts again
    with Session(postgres) as s:
        assert tracking.record_login(s, member_id, now=NOW + timedelta(days=1), zone=ZONE)
        s.commit()
    assert count("logged_in", member_id) == 2


def test_two_opens_and_two_clicks_of_one_email_at_the_same_moment_record_one_each(app, postgres,
                                                                                  make_member):
    member_id = make_member().id
    message = OutboxMessage(member_id=member_id, to_address="a@example.org", subject="Hello", body_text="Hi",
                            template_key="welcome", dedupe_key="race-test", status="sent", created_at=NOW,
                            next_attempt_at=NOW)
    db.session.add(message)
    db.session.commit()
    message_id = message.id

    def click(session):
        return tracking.record_click(session, session.get(OutboxMessage, message_id),
                                     "http://127.0.0.1:5000/my/", now=NOW)
    assert interleave(app, postgres, click) == (True, False)
    assert count("email_clicked", member_id) == 1
    assert count("email_opened", member_id) == 1  # the click's open, once
