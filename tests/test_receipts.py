"""Receipt numbers: gap-free per local year, given back by a rollback, distinct under concurrency."""
from __future__ import annotations

import os
import threading
from datetime import datetime, timezone

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from membership.core.errors import Conflict, ValidationError
from membership.core.models import Counter
from membership.extensions import db
from membership.members.models import Member
from membership.plans.models import Payment
from membership.plans.services import PaymentInput, receipt_year, record_payment

JUNE = datetime(2026, 6, 15, 9, 0, tzinfo=timezone.utc)
NEW_YEAR_EVE = datetime(2026, 12, 31, 18, 30, tzinfo=timezone.utc)  # 00:30 on 1 Jan 2027 in Dhaka


def pay(member, received_at=JUNE, *, now=None, key=None, amount=5000, method="cash", session=None):
    return record_payment(session or db.session,
                          PaymentInput(amount_minor=amount, method=method, received_at=received_at,
                                       idempotency_key=key),
                          actor=None, now=now or max(received_at, JUNE), member=member, currency="BDT")


def receipts():
    return list(db.session.scalars(select(Payment.receipt_number).order_by(Payment.id)))


def test_numbers_are_consecutive_per_year(make_member):
    a, b = make_member(), make_member()
    pay(a)
    pay(b)
    db.session.commit()
    pay(a, datetime(2027, 1, 5, 6, 0, tzinfo=timezone.utc), now=datetime(2027, 1, 5, 7, tzinfo=timezone.utc))
    pay(b, datetime(2026, 12, 1, 6, 0, tzinfo=timezone.utc))
    db.session.commit()
    assert receipts() == ["R-2026-00001", "R-2026-00002", "R-2027-00001", "R-2026-00003"]


@pytest.mark.parametrize("zone, expected", [("Asia/Dhaka", "R-2027-00001"), ("America/New_York", "R-2026-00001"),
                                             ("UTC", "R-2026-00001")])
def test_the_year_is_the_associations_year_at_new_year(app, monkeypatch, make_member, zone, expected):
    monkeypatch.setitem(app.config, "TIMEZONE", zone)
    row = pay(make_member(), NEW_YEAR_EVE, now=NEW_YEAR_EVE)
    assert receipt_year(NEW_YEAR_EVE) == int(expected[2:6])
    assert row.receipt_number == expected


def test_a_rolled_back_payment_gives_its_number_back(make_member):
    member = make_member()
    db.session.commit()
    pay(member)
    db.session.commit()
    lost = pay(member)
    assert lost.receipt_number == "R-2026-00002"
    db.session.rollback()  # the view failed after recording it: nothing was issued

    again = pay(db.session.get(Member, member.id))
    db.session.commit()
    assert again.receipt_number == "R-2026-00002"
    assert receipts() == ["R-2026-00001", "R-2026-00002"]


def test_refused_payments_take_no_number(make_member):
    member = make_member()
    pay(member, key="form-1")
    db.session.commit()
    for kw, error in (({"amount": -1}, ValidationError), ({"method": "barter"}, ValidationError),
                      ({"key": "form-1"}, Conflict),
                      ({"received_at": datetime(2026, 7, 1, tzinfo=timezone.utc), "now": JUNE}, ValidationError)):
        with pytest.raises(error):
            pay(member, **kw)
    assert pay(member).receipt_number == "R-2026-00002"


def test_a_duplicate_key_refused_by_the_database_gives_its_number_back(make_member, monkeypatch):
    """The race case: the key check passed, but another request committed the same key first.
    The unique constraint refuses the row; the counter goes back with it and the error is a Conflict."""
    from membership.plans import services
    member = make_member()
    pay(member, key="form-9")
    db.session.commit()
    monkeypatch.setattr(services, "_payment_with_key", lambda session, key: None)  # as if not committed yet
    with pytest.raises(Conflict):
        pay(member, key="form-9")
    monkeypatch.undo()
    assert pay(member).receipt_number == "R-2026-00002"
    db.session.commit()
    assert db.session.get(Counter, "receipt:2026").value == 2


def test_receipt_numbers_are_unique_in_the_database(make_member):
    from sqlalchemy.exc import IntegrityError
    member = make_member()
    row = pay(member)
    db.session.commit()
    db.session.add(Payment(member_id=member.id, amount_minor=1, currency="BDT", method="cash", received_at=JUNE,
                           receipt_number=row.receipt_number, created_at=JUNE))
    with pytest.raises(IntegrityError):
        db.session.flush()
    db.session.rollback()


def test_concurrent_payments_get_distinct_consecutive_numbers(app, make_member):
    if not os.environ.get("TEST_DATABASE_URL", "").startswith("postgresql"):
        pytest.skip("POSTGRES-ONLY TEST SKIPPED: set TEST_DATABASE_URL=postgresql+psycopg://... to run the "
                    "concurrent receipt numbering proof")
    member_id = make_member().id
    db.session.commit()
    engine, n = db.engine, 8
    start = threading.Barrier(n, timeout=20)
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            with app.app_context(), Session(engine) as session:
                member = session.get(Member, member_id)
                start.wait()
                pay(member, key=f"k{i}", session=session)
                if i % 4 == 3:
                    session.rollback()  # some fail after taking a number: it must come back
                else:
                    session.commit()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and not any(t.is_alive() for t in threads)
    db.session.expire_all()
    numbers = sorted(receipts())
    assert numbers == [f"R-2026-{i:05d}" for i in range(1, 7)]  # 6 committed, no gap, no duplicate
    assert db.session.scalar(select(func.count()).select_from(Payment)) == 6
