"""Two identical notifications at the same moment (a provider retrying while the first is still
being processed), on PostgreSQL: one payment; the other sees the dedupe key and records nothing."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from membership.core.settings import Settings
from membership.core.time import local_today, utcnow
from membership.extensions import db
from membership.payments import checkout as payments
from membership.plans.models import Membership, Payment
from membership.plans.services import join
from tests.conftest import require_postgres


@pytest.fixture
def postgres(app):
    return require_postgres("the duplicate-notification race runs on PostgreSQL only")


def test_two_identical_notifications_at_once_record_one_payment(app, postgres, make_member, make_plan, fake_stripe):
    settings = Settings.from_config(app.config)
    plan = make_plan(fee_minor=150000)
    member = make_member()
    now = utcnow()
    term = join(db.session, member, plan, today=local_today(now), now=now, actor=None, notify=False)
    payments.start_checkout(db.session, settings, "stripe", purpose="join", member=member, term=term, now=now,
                            urls=lambda ref: payments.ReturnUrls("http://x/ok", "http://x/no", "http://x/ipn"))
    db.session.commit()
    [session_id] = fake_stripe.sessions
    body, headers = fake_stripe.event(session_id, event_id="evt_twice")
    n = 4
    start = threading.Barrier(n, timeout=30)
    outcomes, errors = [], []

    def deliver() -> None:
        try:
            with app.app_context(), Session(postgres) as session:
                start.wait()
                result = payments.handle_notification(session, settings, "stripe", headers, body, {}, utcnow())
                session.commit()
                outcomes.append(result.outcome)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=deliver) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert sorted(outcomes) == ["duplicate"] * (n - 1) + ["paid"]
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(Payment).where(Payment.method == "online")) == 1
    assert not db.session.get(Membership, term.id).awaiting_payment
