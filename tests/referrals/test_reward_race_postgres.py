"""The referral reward under concurrency, on PostgreSQL: two payments of the referred member
recorded at the same moment (two staff, two tabs) reward the referrer once."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from membership.core.time import local_today, utcnow
from membership.extensions import db
from membership.plans.models import Membership
from membership.plans.services import PaymentInput, join, record_payment
from membership.referrals import services as rf
from membership.referrals.models import ReferralReward
from tests.conftest import require_postgres


@pytest.fixture
def postgres(app):
    return require_postgres("the referral reward race runs on PostgreSQL only")


def test_two_first_payments_at_the_same_moment_reward_once(app, postgres, make_member, make_plan):
    plan = make_plan(fee_minor=150000)
    referrer = make_member()
    member = make_member()
    member.referred_by_id = referrer.id
    now = utcnow()
    term = join(db.session, member, plan, today=local_today(now), now=now, actor=None, notify=False)
    rf.set_reward_rule(db.session, "month", actor=None, now=now)
    db.session.commit()
    term_id = term.id
    n = 4
    start = threading.Barrier(n, timeout=30)
    errors: list[BaseException] = []

    def pay(i: int) -> None:
        try:
            with app.app_context(), Session(postgres) as session:
                t = session.get(Membership, term_id)
                start.wait()
                record_payment(session, PaymentInput(amount_minor=50000, method="cash", received_at=now,
                                                     idempotency_key=f"tab-{i}"),
                               actor=None, now=now, membership=t, currency="BDT", notify=False)
                session.commit()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=pay, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert db.session.scalar(select(func.count()).select_from(ReferralReward)) == 1
