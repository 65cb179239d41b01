"""The status lifecycle (plans/status.py) and the daily transition job that caches it."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from membership.core.errors import ValidationError
from membership.core.models import Activity, AuditLog
from membership.core.time import local_today
from membership.extensions import db
from membership.plans.models import Membership
from membership.plans.services import (
    PaymentInput, apply_status_transitions, approve, cancel, clear_override, join, pay_term, refresh_status,
    renew, set_override, terms_of)
from membership.plans.status import governing_term, grace_ends_on, history_with_gaps, holder_status, status_on


@dataclass
class T:
    """A term without a database: the status functions are pure."""
    starts_on: date
    ends_on: date | None
    grace_days: int = 30
    awaiting_payment: bool = False
    awaiting_approval: bool = False
    cancelled_on: date | None = None
    override_status: str | None = None
    override_until: date | None = None
    id: int = 0


TERM = T(date(2025, 7, 1), date(2026, 6, 30), grace_days=30)


def at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 6, 0, tzinfo=timezone.utc)


def count(model, *where):
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def kinds(member):
    return [a.kind for a in db.session.scalars(select(Activity).where(Activity.member_id == member.id)
                                                .order_by(Activity.id))]


# ---------------------------------------------------------------- the pure function


@pytest.mark.parametrize("day, status", [
    (date(2025, 6, 30), "upcoming"),   # the day before the start
    (date(2025, 7, 1), "active"),      # first day
    (date(2026, 6, 30), "active"),     # last active day
    (date(2026, 7, 1), "grace"),       # first grace day
    (date(2026, 7, 30), "grace"),      # last grace day (30 days)
    (date(2026, 7, 31), "lapsed"),     # first lapsed day
    (date(2030, 1, 1), "lapsed"),
])
def test_status_at_each_boundary(day, status):
    assert status_on(TERM, day) == status
    assert grace_ends_on(TERM) == date(2026, 7, 30)


def test_no_grace_days_lapses_the_day_after_the_end():
    term = T(date(2025, 7, 1), date(2026, 6, 30), grace_days=0)
    assert status_on(term, date(2026, 6, 30)) == "active"
    assert status_on(term, date(2026, 7, 1)) == "lapsed"


def test_lifetime_never_lapses():
    term = T(date(2000, 1, 1), None)
    assert status_on(term, date(2199, 12, 31)) == "active"
    assert grace_ends_on(term) is None


@pytest.mark.parametrize("field", ["awaiting_payment", "awaiting_approval"])
def test_pending_while_waiting_for_payment_or_approval(field):
    term = T(date(2025, 7, 1), date(2026, 6, 30), **{field: True})
    for day in (date(2025, 6, 1), date(2025, 7, 1), date(2026, 7, 15), date(2027, 1, 1)):
        assert status_on(term, day) == "pending"


def test_cancellation_from_its_day():
    term = T(date(2025, 7, 1), date(2026, 6, 30), cancelled_on=date(2026, 1, 10))
    assert status_on(term, date(2026, 1, 9)) == "active"
    assert status_on(term, date(2026, 1, 10)) == "cancelled"
    assert status_on(term, date(2026, 8, 1)) == "cancelled"  # not lapsed: it was ended on purpose


def test_override_until_a_date_inclusive_and_for_good():
    term = T(date(2025, 7, 1), date(2026, 6, 30), override_status="active", override_until=date(2026, 8, 15))
    assert status_on(term, date(2026, 8, 15)) == "active"
    assert status_on(term, date(2026, 8, 16)) == "lapsed"
    forever = T(date(2025, 7, 1), date(2026, 6, 30), cancelled_on=date(2026, 1, 1), override_status="grace")
    assert status_on(forever, date(2040, 1, 1)) == "grace"  # an override beats even a cancellation


def test_holder_status_with_a_renewal_in_the_future():
    current = T(date(2025, 7, 1), date(2026, 6, 30), id=1)
    future = T(date(2026, 7, 1), date(2027, 6, 30), id=2)
    hs = holder_status([future, current], date(2026, 6, 20))
    assert (hs.status, hs.term, hs.expires_on, hs.is_current) == ("active", current, date(2027, 6, 30), True)
    # In the old term's grace days the renewal has started and governs.
    hs = holder_status([current, future], date(2026, 7, 1))
    assert (hs.status, hs.term) == ("active", future)


def test_holder_status_edge_cases():
    assert holder_status([], date(2026, 1, 1)).status == "none"
    first = T(date(2026, 7, 1), date(2027, 6, 30), id=1)
    hs = holder_status([first], date(2026, 6, 1))
    assert hs.status == "pending" and not hs.is_current  # joined for a later start: not a member yet
    unpaid_renewal = T(date(2026, 7, 1), date(2027, 6, 30), awaiting_payment=True, id=2)
    hs = holder_status([TERM, unpaid_renewal], date(2026, 8, 1))
    assert (hs.status, hs.term, hs.expires_on) == ("lapsed", TERM, date(2026, 6, 30))
    cancelled = T(date(2025, 7, 1), date(2026, 6, 30), cancelled_on=date(2026, 1, 1), id=3)
    assert holder_status([cancelled], date(2026, 2, 1)).status == "cancelled"
    assert governing_term([], date(2026, 1, 1)) is None


def test_history_marks_gaps_only_between_covered_days():
    a = T(date(2024, 1, 1), date(2024, 12, 31), id=1)
    b = T(date(2025, 1, 1), date(2025, 12, 31), id=2)
    c = T(date(2026, 3, 1), date(2027, 2, 28), id=3)
    rows = history_with_gaps([c, a, b])
    assert [(r.is_gap, r.starts_on, r.ends_on) for r in rows] == [
        (False, date(2024, 1, 1), date(2024, 12, 31)), (False, date(2025, 1, 1), date(2025, 12, 31)),
        (True, date(2026, 1, 1), date(2026, 2, 28)), (False, date(2026, 3, 1), date(2027, 2, 28))]
    # A cancelled term covers only up to its cancellation.
    cut = T(date(2024, 1, 1), date(2024, 12, 31), cancelled_on=date(2024, 7, 1), id=4)
    rows = history_with_gaps([cut, T(date(2024, 9, 1), date(2025, 8, 31), id=5)])
    assert [(r.is_gap, r.starts_on, r.ends_on) for r in rows][1] == (True, date(2024, 7, 1), date(2024, 8, 31))


def test_history_says_renewed_for_a_term_that_a_later_one_continued():
    old = T(date(2025, 7, 1), date(2026, 6, 30), id=1)
    new = T(date(2026, 7, 1), date(2027, 6, 30), id=2)
    rows = history_with_gaps([old, new])
    assert [r.status(date(2026, 7, 10)) for r in rows] == ["renewed", "active"]   # not "grace"
    assert [r.status(date(2027, 1, 10)) for r in rows] == ["renewed", "active"]   # not "lapsed"
    assert [r.status(date(2026, 6, 10)) for r in rows] == ["active", "upcoming"]
    # Renewed after a lapse: the old term did lapse; an unpaid renewal continues nothing.
    late = T(date(2026, 9, 1), date(2027, 8, 31), id=3)
    assert [r.status(date(2026, 10, 1)) for r in history_with_gaps([old, late])] == ["lapsed", "none", "active"]
    unpaid = T(date(2026, 7, 1), date(2027, 6, 30), awaiting_payment=True, id=4)
    assert [r.status(date(2026, 7, 10)) for r in history_with_gaps([old, unpaid])] == ["grace", "pending"]


# ---------------------------------------------------------------- the daily job


@pytest.fixture
def yearly(make_plan):
    return make_plan(code="YEAR", name="Yearly", fee_minor=1000, period_months=12, grace_days=30)


def test_transitions_move_terms_and_members_on_their_days(make_member, make_term, yearly):
    member = make_member()
    term = make_term(member, yearly, starts_on=date(2025, 7, 1))
    db.session.commit()
    seen = []
    for day in (date(2026, 6, 30), date(2026, 7, 1), date(2026, 7, 30), date(2026, 7, 31)):
        apply_status_transitions(db.session, today=day, now=at(day))
        db.session.commit()
        seen.append((term.status, member.status))
    assert seen == [("active", "active"), ("grace", "grace"), ("grace", "grace"), ("lapsed", "lapsed")]
    changes = db.session.scalars(select(Activity).where(Activity.member_id == member.id,
                                                        Activity.kind == "status_changed")
                                 .order_by(Activity.id)).all()
    assert [(a.detail["from"], a.detail["to"]) for a in changes][-2:] == [("active", "grace"), ("grace", "lapsed")]
    assert changes[-1].occurred_at == at(date(2026, 7, 31))
    assert kinds(member)[-1] == "lapsed"


def test_transitions_are_idempotent(make_member, make_term, yearly):
    members = [make_member() for _ in range(3)]
    for m, start in zip(members, (date(2025, 7, 1), date(2025, 6, 1), date(2025, 8, 15))):
        make_term(m, yearly, starts_on=start)
    db.session.commit()
    day = date(2026, 7, 5)
    first = apply_status_transitions(db.session, today=day, now=at(day), batch_size=2)
    db.session.commit()
    snapshot = [(m.status, m.expires_on) for m in members]
    activities, audits = count(Activity), count(AuditLog)

    second = apply_status_transitions(db.session, today=day, now=at(day), batch_size=2)
    db.session.commit()

    assert first["terms_changed"] == 2 and first["holders_changed"] == 2
    assert second["terms_changed"] == 0 and second["holders_changed"] == 0
    assert second["overrides_expired"] == 0
    assert [(m.status, m.expires_on) for m in members] == snapshot
    assert (count(Activity), count(AuditLog)) == (activities, audits)
    assert [m.status for m in members] == ["grace", "lapsed", "active"]


def test_the_job_uses_the_associations_day(app, monkeypatch, make_member, make_term, yearly):
    # 18:30 UTC on 30 June is already 1 July in Dhaka, still 30 June in New York.
    now = datetime(2026, 6, 30, 18, 30, tzinfo=timezone.utc)
    member = make_member()
    term = make_term(member, yearly, starts_on=date(2025, 7, 1))
    monkeypatch.setitem(app.config, "TIMEZONE", "America/New_York")
    apply_status_transitions(db.session, today=local_today(now), now=now)
    assert (term.status, member.status) == ("active", "active")
    monkeypatch.setitem(app.config, "TIMEZONE", "Asia/Dhaka")
    apply_status_transitions(db.session, today=local_today(now), now=now)
    assert (term.status, member.status) == ("grace", "grace")


def test_an_override_holds_until_its_date_and_the_job_clears_it(make_member, make_term, yearly, staff_user):
    member = make_member()
    term = make_term(member, yearly, starts_on=date(2025, 7, 1))
    apply_status_transitions(db.session, today=date(2026, 7, 20), now=at(date(2026, 7, 20)))
    assert member.status == "grace"
    set_override(db.session, term, status="active", until=date(2026, 8, 15), reason="paying at the AGM",
                 today=date(2026, 7, 20), now=at(date(2026, 7, 20)), actor=staff_user)
    db.session.commit()
    assert (term.status, member.status) == ("active", "active")

    apply_status_transitions(db.session, today=date(2026, 8, 15), now=at(date(2026, 8, 15)))
    assert (term.override_status, member.status) == ("active", "active")  # the last day still holds

    before = count(Activity, Activity.member_id == member.id, Activity.kind == "status_changed")
    counts = apply_status_transitions(db.session, today=date(2026, 8, 16), now=at(date(2026, 8, 16)))
    db.session.commit()

    assert counts["overrides_expired"] == 1
    assert (term.override_status, term.override_until, term.override_reason) == (None, None, None)
    assert (term.status, member.status) == ("lapsed", "lapsed")
    change = db.session.scalars(select(Activity).where(Activity.member_id == member.id,
                                                       Activity.kind == "status_changed")
                                .order_by(Activity.id.desc())).first()
    assert count(Activity, Activity.member_id == member.id, Activity.kind == "status_changed") == before + 1
    assert (change.detail, change.occurred_at) == ({"from": "active", "to": "lapsed"}, at(date(2026, 8, 16)))
    audit = db.session.scalars(select(AuditLog).where(AuditLog.action == "membership.override_expired")).one()
    assert (audit.entity_id, audit.member_id, audit.actor_id) == (term.id, member.id, None)
    assert "active" in audit.summary
    # And the next run has nothing left to do.
    again = apply_status_transitions(db.session, today=date(2026, 8, 16), now=at(date(2026, 8, 16)))
    assert again["overrides_expired"] == 0 and again["holders_changed"] == 0


def test_an_override_for_good_is_never_cleared(make_member, make_term, yearly, staff_user):
    member = make_member()
    term = make_term(member, yearly, starts_on=date(2025, 7, 1))
    set_override(db.session, term, status="active", until=None, reason="honorary", today=date(2026, 1, 1),
                 now=at(date(2026, 1, 1)), actor=staff_user)
    apply_status_transitions(db.session, today=date(2031, 1, 1), now=at(date(2031, 1, 1)))
    assert (term.override_status, member.status) == ("active", "active")
    clear_override(db.session, term, today=date(2031, 1, 1), now=at(date(2031, 1, 1)), actor=staff_user)
    assert (term.override_status, member.status) == (None, "lapsed")
    assert count(AuditLog, AuditLog.action == "membership.override_clear") == 1


def test_override_input_is_checked(make_member, make_term, yearly, staff_user):
    term = make_term(make_member(), yearly, starts_on=date(2025, 7, 1))
    today = date(2026, 1, 1)
    for kw, field in (({"status": "bogus", "until": None, "reason": "x"}, "status"),
                      ({"status": "active", "until": None, "reason": "  "}, "reason"),
                      ({"status": "active", "until": date(2025, 12, 31), "reason": "x"}, "until")):
        with pytest.raises(ValidationError) as e:
            set_override(db.session, term, today=today, now=at(today), actor=staff_user, **kw)
        assert e.value.field == field
    assert term.override_status is None


def test_cancellation_today_and_in_the_future(make_member, make_term, yearly, staff_user):
    now_member, later_member = make_member(), make_member()
    t1 = make_term(now_member, yearly, starts_on=date(2025, 7, 1))
    t2 = make_term(later_member, yearly, starts_on=date(2025, 7, 1))
    today = date(2026, 1, 10)
    cancel(db.session, t1, on=today, reason="moved abroad", today=today, now=at(today), actor=staff_user)
    cancel(db.session, t2, on=date(2026, 3, 1), reason="asked to stop at the end of February", today=today,
           now=at(today), actor=staff_user)
    assert (now_member.status, later_member.status) == ("cancelled", "active")
    apply_status_transitions(db.session, today=date(2026, 2, 28), now=at(date(2026, 2, 28)))
    assert later_member.status == "active"
    apply_status_transitions(db.session, today=date(2026, 3, 1), now=at(date(2026, 3, 1)))
    assert (t2.status, later_member.status) == ("cancelled", "cancelled")
    assert "cancelled" in kinds(later_member)
    assert t2.cancel_reason == "asked to stop at the end of February"


def test_pending_until_paid_or_approved(make_member, make_plan, yearly, staff_user):
    member = make_member()
    term = join(db.session, member, yearly, today=date(2026, 6, 1), now=at(date(2026, 6, 1)), actor=staff_user)
    assert (term.status, member.status) == ("pending", "pending")
    apply_status_transitions(db.session, today=date(2027, 9, 1), now=at(date(2027, 9, 1)))
    assert member.status == "pending"  # unpaid is not lapsed: it never started
    pay_term(db.session, term, PaymentInput(amount_minor=1000, method="cash", received_at=at(date(2026, 6, 3))),
             today=date(2026, 6, 3), now=at(date(2026, 6, 3)), actor=staff_user)
    assert (term.status, member.status, term.paid_on) == ("active", "active", date(2026, 6, 3))

    vetted = make_plan(fee_minor=0, needs_approval=True)
    applicant = make_member()
    application = join(db.session, applicant, vetted, today=date(2026, 6, 1), now=at(date(2026, 6, 1)),
                       actor=None, approved=False, source="join")
    assert applicant.status == "pending"
    approve(db.session, application, today=date(2026, 6, 2), now=at(date(2026, 6, 2)), actor=staff_user)
    assert (application.status, applicant.status) == ("active", "active")


def test_partial_payment_keeps_the_term_pending(make_member, yearly):
    member = make_member()
    term = join(db.session, member, yearly, today=date(2026, 6, 1), now=at(date(2026, 6, 1)), actor=None)
    pay_term(db.session, term, PaymentInput(amount_minor=400, method="cash", received_at=at(date(2026, 6, 1))),
             today=date(2026, 6, 1), now=at(date(2026, 6, 1)), actor=None)
    assert member.status == "pending"
    pay_term(db.session, term, PaymentInput(amount_minor=600, method="cash", received_at=at(date(2026, 6, 5))),
             today=date(2026, 6, 5), now=at(date(2026, 6, 5)), actor=None)
    assert (member.status, term.paid_on) == ("active", date(2026, 6, 5))


def test_organisation_contacts_follow_the_organisations_term(make_member, make_plan, staff_user):
    from membership.members.services import add_contact, remove_contact, save_organization
    org_plan = make_plan(code="ORG", fee_minor=0, is_organizational=True, grace_days=10)
    today = date(2025, 7, 1)
    org = save_organization(db.session, {"name": "Dhaka Traders Ltd"}, actor=staff_user, now=at(today))
    contact = make_member()
    add_contact(db.session, org, contact, primary=True, actor=staff_user, now=at(today), today=today)
    assert contact.status == "none"
    join(db.session, org, org_plan, today=today, now=at(today), actor=staff_user)
    assert (org.status, contact.status, contact.plan_id, contact.expires_on) == (
        "active", "active", org_plan.id, date(2026, 6, 30))

    for day, status in ((date(2026, 7, 1), "grace"), (date(2026, 7, 11), "lapsed")):
        apply_status_transitions(db.session, today=day, now=at(day))
        assert (org.status, contact.status) == (status, status)

    renew(db.session, terms_of(db.session, org)[-1], today=date(2026, 7, 20),
          now=at(date(2026, 7, 20)), actor=staff_user)
    assert (org.status, contact.status) == ("active", "active")
    remove_contact(db.session, org, contact, actor=staff_user, now=at(date(2026, 7, 21)), today=date(2026, 7, 21))
    assert contact.status == "none"


def test_a_contacts_own_term_and_the_organisations_term(make_member, make_plan, make_term, yearly, staff_user):
    from membership.members.services import add_contact, save_organization
    org_plan = make_plan(code="ORG2", fee_minor=0, is_organizational=True, grace_days=0)
    today = date(2026, 1, 1)
    org = save_organization(db.session, {"name": "Chittagong Exporters"}, actor=staff_user, now=at(today))
    join(db.session, org, org_plan, today=today, now=at(today), actor=staff_user)
    contact = make_member()
    make_term(contact, yearly, starts_on=date(2024, 1, 1))  # their own, long lapsed
    add_contact(db.session, org, contact, primary=False, actor=staff_user, now=at(today), today=today)
    assert contact.status == "active"  # covered by the organisation


def test_refresh_status_records_changes_only_when_the_status_changes(make_member, make_term, yearly):
    member = make_member()
    make_term(member, yearly, starts_on=date(2025, 7, 1))
    before = kinds(member)
    assert refresh_status(db.session, member, today=date(2026, 1, 1), now=at(date(2026, 1, 1))) is False
    assert kinds(member) == before
    assert refresh_status(db.session, member, today=date(2026, 7, 2), now=at(date(2026, 7, 2))) is True
    assert kinds(member) == before + ["status_changed"]


def test_cached_status_matches_the_pure_function_for_every_term(make_member, make_term, yearly):
    """Walk a year day by day: after each run of the job, every cached term status is status_on(today)."""
    members = [make_member() for _ in range(4)]
    starts = (date(2025, 1, 15), date(2025, 3, 1), date(2025, 6, 30), date(2025, 12, 31))
    for m, s in zip(members, starts):
        make_term(m, yearly, starts_on=s)
    renew(db.session, terms_of(db.session, members[1])[-1], today=date(2026, 2, 1), now=at(date(2026, 2, 1)),
          actor=None, payment=PaymentInput(amount_minor=1000, method="cash", received_at=at(date(2026, 2, 1))))
    day = date(2026, 1, 1)
    while day <= date(2026, 12, 31):
        apply_status_transitions(db.session, today=day, now=at(day))
        for term in db.session.scalars(select(Membership)):
            assert term.status == status_on(term, day), (term, day)
        for m in members:
            assert m.status == holder_status(terms_of(db.session, m), day).status, (m, day)
        day += timedelta(days=7)


def test_a_member_who_lapses_gets_the_lapsed_notice_once(make_member, make_term, yearly):
    from membership.notifications.models import OutboxMessage

    lapsing = make_member(first_name="Nadia", email="nadia@example.org")
    term = make_term(lapsing, yearly, starts_on=date(2025, 7, 1))  # ends 30 Jun 2026, grace to 30 Jul
    bouncing = make_member(email="gone@example.org")
    bouncing.email_bouncing = True
    make_term(bouncing, yearly, starts_on=date(2025, 7, 1))
    db.session.commit()

    def notices():
        return db.session.scalars(select(OutboxMessage).where(OutboxMessage.template_key == "lapsed_notice")).all()

    apply_status_transitions(db.session, today=date(2026, 7, 20), now=at(date(2026, 7, 20)))  # grace: no notice
    assert notices() == []
    counts = apply_status_transitions(db.session, today=date(2026, 7, 31), now=at(date(2026, 7, 31)))
    assert counts["lapsed_notices"] == 1
    [notice] = notices()
    assert (notice.member_id, notice.source_id, notice.to_address) == (lapsing.id, term.id, "nadia@example.org")
    assert "has lapsed" in notice.subject and "30 July 2026" in notice.body_text  # grace end date
    # the next days: nothing new
    apply_status_transitions(db.session, today=date(2026, 8, 1), now=at(date(2026, 8, 1)))
    assert len(notices()) == 1


def test_the_demo_and_imports_can_move_statuses_without_mail(make_member, make_term, yearly):
    from membership.notifications.models import OutboxMessage

    make_term(make_member(), yearly, starts_on=date(2025, 7, 1))
    counts = apply_status_transitions(db.session, today=date(2026, 8, 1), now=at(date(2026, 8, 1)), notify=False)
    assert counts["holders_changed"] == 1 and counts["lapsed_notices"] == 0
    assert count(OutboxMessage, OutboxMessage.template_key == "lapsed_notice") == 0
