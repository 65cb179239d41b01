"""Renewal rules (DESIGN.md "Renewal rules"): where the next term starts and ends, double submits,
races, fixed periods, calendar edge cases and the association's midnight."""
from __future__ import annotations

import os
import threading
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from membership.core.errors import AlreadyRenewed, Conflict, ValidationError
from membership.core.models import Activity, AuditLog
from membership.core.time import local_date, local_today
from membership.extensions import db
from membership.plans.models import Membership, Payment
from membership.plans.services import PaymentInput, apply_status_transitions, join, renew, terms_of
from membership.plans.status import history_with_gaps, holder_status


def at(day: date) -> datetime:
    """Noon in Dhaka on `day` (06:00 UTC), so the UTC and the local date agree."""
    return datetime(day.year, day.month, day.day, 6, 0, tzinfo=timezone.utc)


def pay(plan, day: date, key: str | None = None) -> PaymentInput:
    return PaymentInput(amount_minor=plan.fee_minor, method="cash", received_at=at(day), idempotency_key=key)


def renew_on(term, day: date, **kw):
    kw.setdefault("payment", pay(kw.get("plan") or term.plan, day) if (kw.get("plan") or term.plan).fee_minor
                  else None)
    return renew(db.session, term, today=day, now=at(day), actor=None, **kw)


def chain(member):
    return [(t.starts_on, t.ends_on) for t in terms_of(db.session, member)]


def count(model, *where):
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


@pytest.fixture
def yearly(make_plan):
    return make_plan(code="YEAR", name="Yearly", fee_minor=120000, period_months=12, grace_days=30)


# ---------------------------------------------------------------- where a renewal starts


def test_renewal_while_active_starts_the_day_after_the_current_end(make_member, make_term, yearly):
    member = make_member()
    term = make_term(member, yearly, starts_on=date(2025, 7, 1))
    assert term.ends_on == date(2026, 6, 30)

    new = renew_on(term, date(2026, 6, 15))  # 15 days early: none lost, none given away

    assert (new.starts_on, new.ends_on) == (date(2026, 7, 1), date(2027, 6, 30))
    assert new.renews_id == term.id
    assert new.status == "upcoming" and term.status == "active"
    assert member.status == "active" and member.expires_on == date(2027, 6, 30)
    [payment] = new.payments
    assert payment.amount_minor == 120000 and not new.awaiting_payment


@pytest.mark.parametrize("today", [date(2026, 7, 1), date(2026, 7, 30)], ids=["first-grace-day", "last-grace-day"])
def test_renewal_in_grace_starts_the_day_after_the_current_end(make_member, make_term, yearly, today):
    member = make_member()
    term = make_term(member, yearly, starts_on=date(2025, 7, 1))
    apply_status_transitions(db.session, today=today, now=at(today))
    assert member.status == "grace"

    new = renew_on(term, today)

    assert (new.starts_on, new.ends_on) == (date(2026, 7, 1), date(2027, 6, 30))
    assert member.status == "active"
    assert [r.is_gap for r in history_with_gaps(terms_of(db.session, member))] == [False, False]


def test_renewal_after_lapse_starts_today_and_the_gap_stays_in_the_history(make_member, make_term, yearly):
    member = make_member()
    term = make_term(member, yearly, starts_on=date(2025, 7, 1))
    lapse_day = date(2026, 7, 31)  # 30 grace days after 30 June
    apply_status_transitions(db.session, today=lapse_day, now=at(lapse_day))
    assert member.status == "lapsed"

    today = date(2026, 9, 10)
    new = renew_on(term, today)

    assert (new.starts_on, new.ends_on) == (date(2026, 9, 10), date(2027, 9, 9))
    assert member.status == "active" and member.term_starts_on == date(2026, 9, 10)
    history = history_with_gaps(terms_of(db.session, member))
    assert [(r.is_gap, r.starts_on, r.ends_on) for r in history] == [
        (False, date(2025, 7, 1), date(2026, 6, 30)),
        (True, date(2026, 7, 1), date(2026, 9, 9)),  # the 71 days without membership
        (False, date(2026, 9, 10), date(2027, 9, 9)),
    ]
    assert history[1].days == 71
    renewed = db.session.scalars(select(Activity).where(Activity.member_id == member.id,
                                                        Activity.kind == "renewed")).one()
    assert renewed.detail["days_late"] == 72 and renewed.detail["previous_term"] == term.id


def test_a_plan_that_backdates_after_lapse_keeps_continuity(make_member, make_term, make_plan):
    plan = make_plan(fee_minor=1000, backdate_after_lapse=True, grace_days=0)
    member = make_member()
    term = make_term(member, plan, starts_on=date(2025, 7, 1))

    new = renew_on(term, date(2026, 9, 10))

    assert (new.starts_on, new.ends_on) == (date(2026, 7, 1), date(2027, 6, 30))
    assert not any(r.is_gap for r in history_with_gaps(terms_of(db.session, member)))
    assert member.status == "active"


def test_backdating_never_sells_a_term_that_is_already_over(make_member, make_term, make_plan):
    # Lapsed for more than a whole term: a backdated term would end before it is paid for.
    plan = make_plan(fee_minor=1000, backdate_after_lapse=True, grace_days=0)
    member = make_member()
    term = make_term(member, plan, starts_on=date(2023, 7, 1))

    new = renew_on(term, date(2026, 9, 10))

    assert (new.starts_on, new.ends_on) == (date(2026, 9, 10), date(2027, 9, 9))
    assert member.status == "active"


def test_renewal_of_a_cancelled_term_starts_today(make_member, make_term, yearly):
    from membership.plans.services import cancel
    member = make_member()
    term = make_term(member, yearly, starts_on=date(2025, 7, 1))
    cancel(db.session, term, on=date(2026, 1, 10), reason="moved abroad", today=date(2026, 1, 10),
           now=at(date(2026, 1, 10)), actor=None)

    new = renew_on(term, date(2026, 3, 1))

    assert new.starts_on == date(2026, 3, 1)
    assert member.status == "active"


# ---------------------------------------------------------------- double submits and races


def test_renewing_the_same_term_twice_records_one_renewal_and_one_payment(make_member, make_term, yearly):
    member = make_member()
    term = make_term(member, yearly, starts_on=date(2025, 7, 1))
    db.session.commit()
    renew_on(term, date(2026, 6, 15))
    db.session.commit()
    before = (count(Membership), count(Payment), count(AuditLog), count(Activity))

    with pytest.raises(AlreadyRenewed, match="already renewed"):
        renew_on(term, date(2026, 6, 15))
    db.session.rollback()

    assert (count(Membership), count(Payment), count(AuditLog), count(Activity)) == before
    assert chain(member) == [(date(2025, 7, 1), date(2026, 6, 30)), (date(2026, 7, 1), date(2027, 6, 30))]


def test_the_same_payment_key_twice_records_one_renewal(make_member, make_term, yearly):
    """A double click posts the same form (same key) twice. The second post may name the original
    term or, if the view renews "the latest term", the term the first post created: both refused."""
    member = make_member()
    term = make_term(member, yearly, starts_on=date(2025, 7, 1))
    db.session.commit()
    first = renew_on(term, date(2026, 6, 15), payment=pay(yearly, date(2026, 6, 15), key="form-123"))
    db.session.commit()
    receipt = first.payments[0].receipt_number

    for target in (term, first):
        with pytest.raises(AlreadyRenewed, match=receipt):
            renew_on(target, date(2026, 6, 15), payment=pay(yearly, date(2026, 6, 15), key="form-123"))
        db.session.rollback()

    assert count(Membership, Membership.member_id == member.id) == 2
    assert count(Payment, Payment.idempotency_key == "form-123") == 1
    assert count(Payment) == 2  # the join's payment and one renewal payment


def test_a_second_payment_with_the_same_key_is_a_conflict(make_member, make_term, yearly):
    from membership.plans.services import pay_term
    member = make_member()
    term = make_term(member, yearly, starts_on=date(2025, 7, 1), paid=False)
    pay_term(db.session, term, pay(yearly, date(2025, 7, 1), key="k-1"), today=date(2025, 7, 1),
             now=at(date(2025, 7, 1)), actor=None)
    db.session.commit()
    with pytest.raises(Conflict, match="already recorded"):
        pay_term(db.session, term, pay(yearly, date(2025, 7, 1), key="k-1"), today=date(2025, 7, 1),
                 now=at(date(2025, 7, 1)), actor=None)
    db.session.rollback()
    assert count(Payment, Payment.membership_id == term.id) == 1


def _require_postgres():
    url = os.environ.get("TEST_DATABASE_URL", "")
    if not url.startswith("postgresql"):
        pytest.skip("POSTGRES-ONLY TEST SKIPPED: set TEST_DATABASE_URL=postgresql+psycopg://... to run "
                    "the concurrency proof (SQLite serialises writers, so it cannot race)")


def test_two_concurrent_renewals_of_one_term_make_one_term_and_one_payment(app, make_member, make_term, yearly):
    """Two staff members renew the same member at the same moment, each in their own connection.
    Both pass the "already renewed?" check before either writes; the unique renews_id decides."""
    _require_postgres()
    member = make_member()
    term = make_term(member, yearly, starts_on=date(2025, 7, 1))
    db.session.commit()
    term_id, engine = term.id, db.engine
    both_checked = threading.Barrier(2, timeout=20)
    outcomes: list[object] = []

    def worker(key: str) -> None:
        with app.app_context(), Session(engine) as session:
            waited = []

            @event.listens_for(session, "before_flush")
            def wait_for_the_other(sess, ctx, instances):
                # Both threads have passed every check and are about to insert their new term.
                if not waited and any(isinstance(o, Membership) and o.renews_id == term_id for o in sess.new):
                    waited.append(True)
                    both_checked.wait()
            try:
                t = session.get(Membership, term_id)
                today = date(2026, 6, 15)
                renew(session, t, today=today, now=at(today), actor=None,
                      payment=PaymentInput(amount_minor=120000, method="cash", received_at=at(today),
                                           idempotency_key=key))
                session.commit()
                outcomes.append("renewed")
            except AlreadyRenewed as e:
                session.rollback()
                outcomes.append(e)
            except Exception as e:  # noqa: BLE001 - reported by the assertion below
                session.rollback()
                outcomes.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in ("form-a", "form-b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)

    assert sorted(map(type, outcomes), key=str) == sorted([str, AlreadyRenewed], key=str), outcomes
    db.session.expire_all()
    assert count(Membership, Membership.renews_id == term_id) == 1
    assert count(Payment, Payment.idempotency_key.in_(["form-a", "form-b"])) == 1
    assert count(Payment) == 2  # join + one renewal
    receipts = sorted(db.session.scalars(select(Payment.receipt_number)))
    assert receipts == ["R-2026-00001", "R-2026-00002"]  # the loser's number went back


# ---------------------------------------------------------------- fixed periods


def test_calendar_year_plan_aligns_to_the_year(make_member, make_term, make_plan):
    plan = make_plan(period_kind="fixed", period_months=12, period_start_month=1, period_start_day=1)
    member = make_member()
    term = make_term(member, plan, starts_on=date(2026, 3, 15))
    assert (term.starts_on, term.ends_on) == (date(2026, 3, 15), date(2026, 12, 31))

    new = renew_on(term, date(2026, 12, 20))
    assert (new.starts_on, new.ends_on) == (date(2027, 1, 1), date(2027, 12, 31))

    # After a lapse the term starts today and still ends with the year.
    apply_status_transitions(db.session, today=date(2028, 3, 1), now=at(date(2028, 3, 1)))
    assert member.status == "lapsed"
    late = renew_on(new, date(2028, 3, 1))
    assert (late.starts_on, late.ends_on) == (date(2028, 3, 1), date(2028, 12, 31))


def test_fiscal_year_from_1_july(make_member, make_term, make_plan):
    plan = make_plan(period_kind="fixed", period_months=12, period_start_month=7, period_start_day=1)
    a, b = make_member(), make_member()
    term = make_term(a, plan, starts_on=date(2026, 3, 15))
    assert term.ends_on == date(2026, 6, 30)
    new = renew_on(term, date(2026, 6, 1))
    assert (new.starts_on, new.ends_on) == (date(2026, 7, 1), date(2027, 6, 30))

    on_the_first_day = make_term(b, plan, starts_on=date(2026, 7, 1))
    assert on_the_first_day.ends_on == date(2027, 6, 30)


@pytest.mark.parametrize("joined, ends", [
    (date(2026, 9, 30), date(2026, 12, 31)),   # the day before the rollover: this year only
    (date(2026, 10, 1), date(2027, 12, 31)),   # on the rollover day: also next year
    (date(2026, 12, 31), date(2027, 12, 31)),  # nobody pays a full year for one day in December
    (date(2027, 1, 1), date(2027, 12, 31)),
])
def test_calendar_plan_rollover_day(make_member, make_term, make_plan, joined, ends):
    plan = make_plan(period_kind="fixed", period_months=12, period_start_month=1, period_start_day=1,
                     rollover_month=10, rollover_day=1)
    term = make_term(make_member(), plan, starts_on=joined)
    assert (term.starts_on, term.ends_on) == (joined, ends)


def test_rollover_does_not_stretch_a_renewal(make_member, make_term, make_plan):
    plan = make_plan(period_kind="fixed", period_months=12, period_start_month=1, period_start_day=1,
                     rollover_month=10, rollover_day=1)
    member = make_member()
    term = make_term(member, plan, starts_on=date(2026, 11, 2))
    assert term.ends_on == date(2027, 12, 31)
    # Renewed early (after the rollover day of 2027): the next term is one year, not two.
    new = renew_on(term, date(2027, 11, 15))
    assert (new.starts_on, new.ends_on) == (date(2028, 1, 1), date(2028, 12, 31))
    # Renewed after a lapse, after the rollover day: today to the end of next year.
    apply_status_transitions(db.session, today=date(2029, 10, 20), now=at(date(2029, 10, 20)))
    late = renew_on(new, date(2029, 10, 20))
    assert (late.starts_on, late.ends_on) == (date(2029, 10, 20), date(2030, 12, 31))


def test_fiscal_plan_rollover_day(make_member, make_term, make_plan):
    plan = make_plan(period_kind="fixed", period_months=12, period_start_month=7, period_start_day=1,
                     rollover_month=4, rollover_day=1)
    assert make_term(make_member(), plan, starts_on=date(2026, 3, 31)).ends_on == date(2026, 6, 30)
    assert make_term(make_member(), plan, starts_on=date(2026, 4, 1)).ends_on == date(2027, 6, 30)
    assert make_term(make_member(), plan, starts_on=date(2026, 7, 1)).ends_on == date(2027, 6, 30)


def test_a_rollover_on_the_period_start_is_ignored(make_member, make_term, make_plan):
    plan = make_plan(period_kind="fixed", period_months=12, period_start_month=1, period_start_day=1,
                     rollover_month=1, rollover_day=1)
    assert make_term(make_member(), plan, starts_on=date(2026, 3, 1)).ends_on == date(2026, 12, 31)


# ---------------------------------------------------------------- calendar edge cases


def test_join_on_29_february_for_twelve_months(make_member, make_term, yearly):
    member = make_member()
    term = make_term(member, yearly, starts_on=date(2024, 2, 29))
    assert term.ends_on == date(2025, 2, 28)
    new = renew_on(term, date(2025, 2, 20))
    assert (new.starts_on, new.ends_on) == (date(2025, 3, 1), date(2026, 2, 28))


def test_renewal_of_a_term_ending_28_february_of_a_leap_year(make_member, make_term, make_plan, yearly):
    monthly = make_plan(fee_minor=1000, period_months=1, grace_days=7)
    member = make_member()
    term = make_term(member, monthly, starts_on=date(2028, 1, 29))
    assert term.ends_on == date(2028, 2, 28)
    new = renew_on(term, date(2028, 2, 25), plan=yearly)
    # Starts on the leap day itself; no day is lost and none overlaps.
    assert (new.starts_on, new.ends_on) == (date(2028, 2, 29), date(2029, 2, 28))
    nxt = renew_on(new, date(2029, 2, 1))
    assert (nxt.starts_on, nxt.ends_on) == (date(2029, 3, 1), date(2030, 2, 28))


def test_renewal_of_a_term_ending_29_february(make_member, make_term, yearly):
    member = make_member()
    term = make_term(member, yearly, starts_on=date(2027, 3, 1))
    assert term.ends_on == date(2028, 2, 29)
    new = renew_on(term, date(2028, 2, 10))
    assert (new.starts_on, new.ends_on) == (date(2028, 3, 1), date(2029, 2, 28))


def test_a_chain_of_renewals_has_no_gap_and_no_overlap(make_member, make_term, yearly, make_plan):
    monthly = make_plan(fee_minor=500, period_months=1)
    for plan, start, n in ((yearly, date(2024, 2, 29), 6), (monthly, date(2026, 1, 31), 14)):
        member = make_member()
        term = make_term(member, plan, starts_on=start)
        for _ in range(n):
            term = renew_on(term, term.ends_on - timedelta(days=3))
        spans = chain(member)
        for (_, end), (nxt, _) in zip(spans, spans[1:]):
            assert nxt == end + timedelta(days=1), spans


def test_31_january_plus_one_month(make_member, make_term, make_plan):
    monthly = make_plan(fee_minor=1000, period_months=1, grace_days=5)
    member = make_member()
    term = make_term(member, monthly, starts_on=date(2026, 1, 31))
    assert term.ends_on == date(2026, 2, 28)  # not 3 March, not 27 February
    new = renew_on(term, date(2026, 2, 27))
    assert (new.starts_on, new.ends_on) == (date(2026, 3, 1), date(2026, 3, 31))
    leap = make_term(make_member(), monthly, starts_on=date(2028, 1, 31))
    assert leap.ends_on == date(2028, 2, 29)
    assert make_term(make_member(), monthly, starts_on=date(2026, 1, 30)).ends_on == date(2026, 2, 28)
    assert make_term(make_member(), monthly, starts_on=date(2026, 1, 28)).ends_on == date(2026, 2, 27)


def test_year_end(make_member, make_term, make_plan):
    plan = make_plan(fee_minor=1000, period_months=12, grace_days=0)
    member = make_member()
    term = make_term(member, plan, starts_on=date(2026, 1, 1))
    assert term.ends_on == date(2026, 12, 31)
    new = renew_on(term, date(2026, 12, 31))
    assert (new.starts_on, new.ends_on) == (date(2027, 1, 1), date(2027, 12, 31))
    apply_status_transitions(db.session, today=date(2027, 1, 1), now=at(date(2027, 1, 1)))
    assert (new.status, member.status) == ("active", "active")
    assert member.term_starts_on == date(2027, 1, 1)


# ---------------------------------------------------------------- the association's midnight


NEW_YEAR_EVE = datetime(2026, 12, 31, 18, 30, tzinfo=timezone.utc)


def test_local_date_at_new_year():
    assert local_date(NEW_YEAR_EVE, "Asia/Dhaka") == date(2027, 1, 1)        # 00:30 on 1 January
    assert local_date(NEW_YEAR_EVE, "America/New_York") == date(2026, 12, 31)  # 13:30 on 31 December
    assert local_date(NEW_YEAR_EVE, "UTC") == date(2026, 12, 31)


@pytest.mark.parametrize("zone, today, status, receipt", [
    ("Asia/Dhaka", date(2027, 1, 1), "lapsed", "R-2027-00001"),
    ("America/New_York", date(2026, 12, 31), "active", "R-2026-00003"),  # after the two joins' receipts
])
def test_renewal_and_status_use_the_associations_day(app, monkeypatch, make_member, make_term, make_plan,
                                                        zone, today, status, receipt):
    monkeypatch.setitem(app.config, "TIMEZONE", zone)
    plan = make_plan(fee_minor=1000, period_months=12, grace_days=0)
    member, other = make_member(), make_member()
    term = make_term(member, plan, starts_on=date(2026, 1, 1))
    old = make_term(other, plan, starts_on=date(2024, 1, 1))

    now = NEW_YEAR_EVE
    assert local_today(now) == today
    apply_status_transitions(db.session, today=local_today(now), now=now)
    assert member.status == status  # the term ends on 31 December, with no grace

    late = renew(db.session, old, today=local_today(now), now=now, actor=None,
                 payment=PaymentInput(amount_minor=1000, method="cash", received_at=now))
    assert late.starts_on == today  # "today" after a lapse is the association's today
    assert late.payments[0].receipt_number == receipt  # the receipt year is the local year too
    assert late.paid_on == today
    renewed = renew(db.session, term, today=local_today(now), now=now, actor=None,
                    payment=PaymentInput(amount_minor=1000, method="cash", received_at=now))
    assert renewed.starts_on == date(2027, 1, 1)  # lapsed for no days, or still active: no gap either way


# ---------------------------------------------------------------- future terms, plans, lifetime


def test_an_early_renewal_is_upcoming_and_the_current_term_stays_current(make_member, make_term, yearly):
    member = make_member()
    term = make_term(member, yearly, starts_on=date(2025, 7, 1))
    new = renew_on(term, date(2026, 6, 1))
    db.session.commit()

    def status_changes():
        return count(Activity, Activity.member_id == member.id, Activity.kind == "status_changed")

    changes = status_changes()
    for day in (date(2026, 6, 1), date(2026, 6, 30)):
        apply_status_transitions(db.session, today=day, now=at(day))
        assert (term.status, new.status) == ("active", "upcoming")
        assert (member.status, member.term_starts_on) == ("active", date(2025, 7, 1))
        hs = holder_status(terms_of(db.session, member), day)
        assert hs.term is term and hs.expires_on == date(2027, 6, 30)

    apply_status_transitions(db.session, today=date(2026, 7, 1), now=at(date(2026, 7, 1)))
    assert new.status == "active"
    assert (member.status, member.term_starts_on, member.expires_on) == ("active", date(2026, 7, 1),
                                                                          date(2027, 6, 30))
    assert status_changes() == changes  # active all along: no status change recorded


def test_change_of_plan_at_renewal(make_member, make_term, make_plan, yearly):
    calendar_plan = make_plan(code="CAL", name="Calendar", fee_minor=90000, period_kind="fixed",
                              period_months=12, period_start_month=1, period_start_day=1, grace_days=10)
    member = make_member()
    term = make_term(member, yearly, starts_on=date(2025, 1, 1))

    new = renew_on(term, date(2025, 12, 1), plan=calendar_plan)

    assert (new.plan_id, new.starts_on, new.ends_on) == (calendar_plan.id, date(2026, 1, 1), date(2026, 12, 31))
    assert (new.fee_minor, new.grace_days) == (90000, 10)
    assert new.payments[0].amount_minor == 90000
    activity = db.session.scalars(select(Activity).where(Activity.member_id == member.id,
                                                         Activity.kind == "renewed")).one()
    assert activity.detail["previous_plan"] == "YEAR" and activity.detail["plan"] == "CAL"
    apply_status_transitions(db.session, today=date(2026, 1, 1), now=at(date(2026, 1, 1)))
    assert member.plan_id == calendar_plan.id


def test_renewal_onto_a_retired_or_unsuitable_plan_is_refused(make_member, make_term, make_plan, yearly):
    member = make_member()
    term = make_term(member, yearly, starts_on=date(2025, 7, 1))
    retired = make_plan(is_active=False)
    for_orgs = make_plan(is_organizational=True)
    db.session.commit()
    for plan, words in ((retired, "retired"), (for_orgs, "for organisations")):
        with pytest.raises(ValidationError, match=words) as e:
            renew_on(term, date(2026, 6, 1), plan=plan)
        assert e.value.field == "plan"
        db.session.rollback()
    assert count(Membership, Membership.member_id == member.id) == 1


def test_lifetime_plans(make_member, make_term, make_plan, yearly):
    lifetime = make_plan(code="LIFE", fee_minor=1000000, period_kind="lifetime")
    member = make_member()
    term = make_term(member, lifetime, starts_on=date(2020, 5, 1))
    assert term.ends_on is None
    apply_status_transitions(db.session, today=date(2090, 1, 1), now=at(date(2026, 1, 1)))
    assert (term.status, member.status, member.expires_on) == ("active", "active", None)
    with pytest.raises(Conflict, match="lifetime"):
        renew_on(term, date(2026, 1, 1))

    # Upgrading to lifetime at renewal: starts after the current end, never ends.
    other = make_member()
    yearly_term = make_term(other, yearly, starts_on=date(2025, 7, 1))
    life = renew_on(yearly_term, date(2026, 6, 1), plan=lifetime)
    assert (life.starts_on, life.ends_on) == (date(2026, 7, 1), None)
    assert other.expires_on is None


def test_renewing_a_pending_term_is_refused(make_member, make_term, yearly):
    member = make_member()
    term = make_term(member, yearly, starts_on=date(2026, 6, 1), paid=False)
    assert term.status == "pending" and member.status == "pending"
    db.session.commit()
    with pytest.raises(Conflict, match="waiting for payment"):
        renew_on(term, date(2026, 6, 15))
    db.session.rollback()
    assert count(Membership, Membership.member_id == member.id) == 1
    assert count(Payment) == 0


def test_only_the_latest_term_can_be_renewed(make_member, make_term, yearly):
    member = make_member()
    old = make_term(member, yearly, starts_on=date(2023, 7, 1))
    # After a lapse staff started a fresh term (a join, not a renewal of `old`).
    join(db.session, member, yearly, today=date(2026, 1, 10), now=at(date(2026, 1, 10)), actor=None,
         payment=pay(yearly, date(2026, 1, 10)))
    db.session.commit()
    with pytest.raises(Conflict, match="Only the latest term"):
        renew_on(old, date(2026, 6, 1))
    db.session.rollback()
    assert count(Membership, Membership.member_id == member.id) == 2


def test_renewal_window(make_member, make_term, make_plan):
    plan = make_plan(fee_minor=1000, renewal_opens_days=30)
    member = make_member()
    term = make_term(member, plan, starts_on=date(2025, 7, 1))
    db.session.commit()

    with pytest.raises(ValidationError) as e:
        renew_on(term, date(2026, 5, 30), enforce_window=True)
    assert str(e.value) == "Renewal opens on 31 May 2026, 30 days before your membership ends."
    db.session.rollback()
    assert count(Membership, Membership.member_id == member.id) == 1

    assert renew_on(term, date(2026, 5, 31), enforce_window=True).starts_on == date(2026, 7, 1)
    db.session.rollback()
    # Staff are not bound by the window.
    assert renew_on(term, date(2026, 5, 1)).starts_on == date(2026, 7, 1)


def test_a_renewal_is_recorded_in_the_activity_and_the_audit_trail(make_member, make_term, yearly, staff_user):
    member = make_member()
    term = make_term(member, yearly, starts_on=date(2025, 7, 1))
    new = renew(db.session, term, today=date(2026, 6, 1), now=at(date(2026, 6, 1)), actor=staff_user,
                payment=pay(yearly, date(2026, 6, 1)))
    audit = db.session.scalars(select(AuditLog).where(AuditLog.action == "membership.renew")).one()
    assert (audit.actor_id, audit.entity_id, audit.member_id) == (staff_user.id, new.id, member.id)
    assert "2026-07-01 to 2027-06-30" in audit.summary
    assert new.created_by_id == staff_user.id
    assert new.payments[0].recorded_by_id == staff_user.id


def test_a_free_plan_renewal_is_paid_at_once_and_a_paid_one_without_payment_waits(make_member, make_term,
                                                                                  make_plan, yearly):
    free = make_plan(fee_minor=0)
    a = make_member()
    t = make_term(a, free, starts_on=date(2025, 7, 1))
    new = renew_on(t, date(2026, 6, 1))
    assert not new.awaiting_payment and new.paid_on == date(2026, 6, 1)

    b = make_member()
    t = make_term(b, yearly, starts_on=date(2025, 7, 1))
    waiting = renew(db.session, t, today=date(2026, 6, 1), now=at(date(2026, 6, 1)), actor=None)
    assert waiting.awaiting_payment and waiting.status == "pending"
    # Still a member on the old term; the unpaid renewal does not extend the expiry.
    assert (b.status, b.expires_on) == ("active", date(2026, 6, 30))
