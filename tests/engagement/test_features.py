"""Features as of a day come from what was known that day only (no leakage), in batch queries."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import event

from membership.core.models import Activity
from membership.engagement.features import compute_features
from membership.engagement.jobs import score_member
from membership.engagement.settings import EngagementSettings
from membership.extensions import db
from membership.notifications.models import OutboxMessage
from membership.plans.models import Membership

ZONE = ZoneInfo("Asia/Dhaka")
DAY = date(2026, 3, 1)
NOW = datetime(2026, 6, 15, tzinfo=timezone.utc)


def at(day: date, hour: int = 12) -> datetime:
    return datetime.combine(day, time(hour), ZONE).astimezone(timezone.utc)


def add_term(member, plan, starts, ends, paid_on=None, grace=30):
    t = Membership(member_id=member.id, plan_id=plan.id, starts_on=starts, ends_on=ends, grace_days=grace,
                   fee_minor=0, currency="BDT", source="import", paid_on=paid_on or starts, status="active",
                   awaiting_payment=False, awaiting_approval=False, created_at=NOW)
    db.session.add(t)
    db.session.flush()
    return t


def act(member, kind, when):
    db.session.add(Activity(member_id=member.id, kind=kind, occurred_at=when))
    db.session.flush()


def features_of(member, day=DAY):
    out = compute_features(db.session, [(member.id, member.joined_on)], day=day, zone=ZONE, half_life_days=90)
    return out[member.id]


def test_features_by_hand(app, make_member, make_plan):
    plan = make_plan(code="STD")
    m = make_member(joined_on=date(2023, 3, 1))
    add_term(m, plan, date(2023, 3, 1), date(2024, 2, 29))
    add_term(m, plan, date(2024, 3, 1), date(2025, 2, 28), paid_on=date(2024, 3, 20))  # renewed late
    add_term(m, plan, date(2025, 8, 1), date(2026, 7, 31))                              # after a lapse
    act(m, "event_attended", at(DAY - timedelta(days=200)))
    act(m, "logged_in", at(DAY - timedelta(days=10)))
    act(m, "logged_in", at(DAY - timedelta(days=100)))
    act(m, "email_clicked", at(DAY - timedelta(days=20)))
    act(m, "status_changed", at(DAY - timedelta(days=1)))  # the system talking: not the member's activity
    mf = features_of(m)
    f = mf.features
    assert f["days_since_last_activity"] == 10
    assert (f["activities_90d"], f["activities_prev_90d"], f["activities_365d"]) == (2, 1, 4)
    assert f["events_attended_365d"] == 1 and f["days_since_last_event"] == 200
    assert f["clicks_365d"] == 1
    assert f["previous_lapses"] == 1 and f["late_renewals"] == 1
    assert f["tenure_years"] == round(1096 / 365.25, 2)
    assert f["days_to_end"] == (date(2026, 7, 31) - DAY).days and f["plan"] == "STD"
    assert f["emails_sent"] == 0 and f["emails_opened_ratio"] is None
    assert mf.last_activity_at == at(DAY - timedelta(days=10))  # the member's own, not the status change
    assert mf.term is not None and not mf.renewed


def test_email_open_ratio_reads_the_last_six_emails(app, make_member, make_plan):
    m = make_member(joined_on=date(2024, 1, 1))
    for i in range(8):
        db.session.add(OutboxMessage(dedupe_key=f"k{i}", template_key="x", member_id=m.id, to_address="a@b.c",
                                     subject="s", body_text="b", status="sent", next_attempt_at=NOW,
                                     sent_at=at(DAY - timedelta(days=80 - 10 * i)), created_at=NOW))
    act(m, "email_opened", at(DAY - timedelta(days=75)))  # before the 6th-last email: not counted
    act(m, "email_opened", at(DAY - timedelta(days=35)))
    act(m, "email_opened", at(DAY - timedelta(days=5)))
    f = features_of(m).features
    assert (f["emails_sent"], f["emails_opened"], f["emails_opened_ratio"]) == (6, 2, 0.333)


def test_no_leakage_from_after_the_scoring_day(app, make_member, make_plan):
    plan = make_plan()
    m = make_member(joined_on=date(2024, 3, 1))
    add_term(m, plan, date(2024, 3, 1), date(2025, 2, 28))
    term = add_term(m, plan, date(2025, 3, 1), date(2026, 2, 28))
    act(m, "event_attended", at(DAY - timedelta(days=50)))
    act(m, "logged_in", at(DAY, 23))  # late on the day itself: known
    db.session.commit()
    settings = EngagementSettings()
    before = features_of(m)
    score_before = score_member(before, settings=settings, model=__import__(
        "membership.engagement.scoring", fromlist=["x"]).DEFAULT_MODEL)

    # what happened after the day: activities, emails, a renewal paid later, a payment on the old term
    act(m, "event_attended", at(DAY + timedelta(days=1), 0))
    for d in range(1, 30):
        act(m, "interaction", at(DAY + timedelta(days=d)))
    act(m, "logged_in", datetime.combine(DAY + timedelta(days=1), time(0, 0), ZONE).astimezone(timezone.utc))
    db.session.add(OutboxMessage(dedupe_key="later", template_key="x", member_id=m.id, to_address="a@b.c",
                                 subject="s", body_text="b", status="sent", next_attempt_at=NOW,
                                 sent_at=at(DAY + timedelta(days=2)), created_at=NOW))
    add_term(m, plan, date(2026, 3, 1), date(2027, 2, 28), paid_on=date(2026, 3, 10))  # renewed (late) after DAY
    add_term(m, plan, date(2027, 3, 1), date(2028, 2, 29), paid_on=date(2026, 5, 1))
    term.cancelled_on = DAY + timedelta(days=3)
    db.session.commit()

    after = features_of(m)
    assert after.features == before.features
    assert after.decayed == before.decayed
    assert after.last_activity_at == before.last_activity_at
    assert after.renewed is False and after.term.id == before.term.id
    assert score_member(after, settings=settings, model=__import__(
        "membership.engagement.scoring", fromlist=["x"]).DEFAULT_MODEL) == score_before
    # ...while the same member scored later does see them
    later = features_of(m, DAY + timedelta(days=30))
    assert later.features["activities_90d"] > before.features["activities_90d"]


def test_one_query_per_feature_family_for_a_batch(app, make_member, make_plan):
    plan = make_plan()
    members = [make_member() for _ in range(30)]
    for i, m in enumerate(members):
        add_term(m, plan, date(2025, 6, 1), date(2026, 5, 31))
        act(m, "logged_in", at(DAY - timedelta(days=i)))
    db.session.commit()
    pairs = [(m.id, m.joined_on) for m in members]
    statements = []

    def count(conn, cursor, statement, *a):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        out = compute_features(db.session, pairs, day=DAY, zone=ZONE, half_life_days=90)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert len(out) == 30
    assert len([s for s in statements if s.lstrip().upper().startswith(("SELECT", "WITH"))]) == 3
