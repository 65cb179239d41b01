"""Renewal reminders: what is due, what is sent once, what is skipped (issue 3, items 5 and 7).

Every test drives the real job (`run_job("renewal-reminders", now=...)`, the code behind
`flask --app wsgi scheduler run-job renewal-reminders --now ...`) and then looks at the outbox.
"""
from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from membership.extensions import db
from membership.notifications import outbox
from membership.notifications.models import JobRun, OutboxMessage, ReminderRule
from membership.notifications.reminders import (
    DEFAULT_RULES, dedupe_key, ensure_default_rules, known_template_keys, queue_due, set_rule_active)
from membership.plans.services import renew
from membership.scheduler import run_job
from tests.conftest import NOW
from tests.scheduler.conftest import at, outbox_rows


def remind(day: date, *, hour: int = 8, force: bool = False):
    outcome = run_job("renewal-reminders", now=at(day, hour), force=force)
    assert outcome.status in ("ok", "skipped"), outcome
    return outcome


def remind_daily(first: date, last: date):
    day = first
    while day <= last:
        remind(day)
        day += timedelta(days=1)


def sent(term) -> list[tuple[str, date]]:
    """(template, local day queued) of every reminder queued for `term`, oldest first."""
    from membership.core.time import local_date
    return [(m.template_key, local_date(m.created_at, "Asia/Dhaka"))
            for m in outbox_rows(source_type="membership", source_id=term.id)]


def test_default_rules_are_created_once_and_use_shipped_templates(app):
    created = ensure_default_rules(db.session, date(2026, 6, 1))
    db.session.commit()
    assert [(r.offset_days, r.template_key) for r in created] == [(o, k) for o, k, _ in DEFAULT_RULES]
    assert [r.offset_days for r in created] == [-30, -7, 0, 14]
    assert {r.effective_from for r in created} == {date(2026, 6, 1)}
    assert ensure_default_rules(db.session, date(2026, 6, 2)) == []
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(ReminderRule)) == 4
    assert {k for _, k, _ in DEFAULT_RULES} <= set(known_template_keys())


def test_a_due_reminder_is_queued_once_however_often_the_job_runs(app, default_rules, term_ending):
    term = term_ending(date(2026, 7, 1))
    db.session.commit()
    assert remind(date(2026, 5, 31)).counts["queued"] == 0  # 31 days before: not yet

    first = remind(date(2026, 6, 1))
    assert first.counts["queued"] == 1
    [message] = outbox_rows()
    assert message.dedupe_key == f"reminder:{default_rules[-30].id}:{term.id}:2026-07-01"
    assert message.template_key == "renewal_reminder_30"
    assert (message.member_id, message.to_address) == (term.member_id, term.member.email)
    assert "1 July 2026" in message.subject
    assert "You received this email because your" in message.body_text
    assert "membership of Test Association ends on 1 July 2026" in message.body_text

    # The same local day again: the daily job has already run.
    assert remind(date(2026, 6, 1), hour=20).status == "skipped"
    # Forced to sweep again, and on the next days: the key is taken, nothing new.
    again = remind(date(2026, 6, 1), hour=21, force=True)
    assert again.status == "ok" and again.counts["queued"] == 0 and again.counts["already_sent"] == 1
    remind_daily(date(2026, 6, 2), date(2026, 6, 5))
    assert len(outbox_rows()) == 1


def test_each_rule_fires_once_on_its_day_over_a_term(app, default_rules, term_ending):
    term = term_ending(date(2026, 7, 1))
    db.session.commit()
    remind_daily(date(2026, 5, 20), date(2026, 8, 31))
    assert sent(term) == [("renewal_reminder_30", date(2026, 6, 1)), ("renewal_reminder_7", date(2026, 6, 24)),
                          ("renewal_due_today", date(2026, 7, 1)), ("grace_notice", date(2026, 7, 15))]
    runs = db.session.scalars(select(JobRun).where(JobRun.job_name == "renewal-reminders")).all()
    assert len(runs) == (date(2026, 8, 31) - date(2026, 5, 20)).days + 1
    assert {r.status for r in runs} == {"ok"}


def test_after_three_days_down_only_the_latest_due_reminder_is_sent(app, make_rule, term_ending):
    rules = {o: make_rule(o) for o in (-7, -3, -1, 0)}
    a = term_ending(date(2026, 6, 10))  # -3 on 7 June (down), -1 on 9 June
    c = term_ending(date(2026, 6, 9))   # -3 on 6 June and -1 on 8 June (down), 0 on 9 June
    b = term_ending(date(2026, 6, 20))  # nothing due while down
    db.session.commit()
    remind_daily(date(2026, 6, 1), date(2026, 6, 5))
    assert sent(a) == [("renewal_reminder_7", date(2026, 6, 3))]
    assert sent(c) == [("renewal_reminder_7", date(2026, 6, 2))]
    # down on 6, 7 and 8 June; back on the 9th
    back = remind(date(2026, 6, 9))
    assert back.counts["queued"] == 2 and back.counts["overtaken"] == 3  # a: -3; c: -3 and -1
    remind_daily(date(2026, 6, 10), date(2026, 6, 25))
    assert sent(a) == [("renewal_reminder_7", date(2026, 6, 3)), ("renewal_reminder", date(2026, 6, 9)),
                       ("renewal_due_today", date(2026, 6, 10))]
    assert [m.dedupe_key.split(":")[1] for m in outbox_rows(source_id=a.id)] == \
        [str(rules[-7].id), str(rules[-1].id), str(rules[0].id)]  # never the -3 it overtook
    assert sent(c) == [("renewal_reminder_7", date(2026, 6, 2)), ("renewal_due_today", date(2026, 6, 9))]
    assert [t for t, _ in sent(b)] == ["renewal_reminder_7", "renewal_reminder", "renewal_reminder",
                                       "renewal_due_today"]


def test_a_reminder_sent_late_says_what_is_true_on_the_day_it_is_sent(app, default_rules, term_ending):
    on_time, late, week_late = term_ending(date(2026, 6, 9)), term_ending(date(2026, 6, 8)), term_ending(date(2026, 6, 12))
    db.session.commit()
    remind(date(2026, 6, 9))  # the scheduler was down on the 8th; back on the 9th
    subjects = {m.source_id: m for m in outbox_rows()}
    assert subjects[on_time.id].subject == "Your Test Association membership ends today"
    assert "Today, 9 June 2026, is the last day" in subjects[on_time.id].body_text
    assert subjects[late.id].subject == "Your Test Association membership ended on 8 June 2026"
    assert "ended on 8 June 2026." in subjects[late.id].body_text and "Today," not in subjects[late.id].body_text
    # the 7-day reminder of a term ending on the 12th was due on the 5th: sent with 3 days left
    assert subjects[week_late.id].subject == "3 days left: renew your Test Association membership"
    assert "ends in 3 days, on 12 June 2026" in subjects[week_late.id].body_text


def test_a_member_who_renewed_gets_no_more_reminders_and_the_rules_rearm(app, default_rules, term_ending):
    term = term_ending(date(2026, 7, 1))
    db.session.commit()
    remind(date(2026, 6, 1))
    assert sent(term) == [("renewal_reminder_30", date(2026, 6, 1))]

    new = renew(db.session, term, today=date(2026, 6, 10), now=at(date(2026, 6, 10)), actor=None)
    db.session.commit()
    assert (new.starts_on, new.ends_on) == (date(2026, 7, 2), date(2027, 7, 1))
    remind_daily(date(2026, 6, 11), date(2026, 7, 31))
    assert sent(term) == [("renewal_reminder_30", date(2026, 6, 1))]
    assert sent(new) == []
    skipped = db.session.scalars(select(JobRun).where(JobRun.job_name == "renewal-reminders")
                                 .order_by(JobRun.id.desc())).first()
    assert skipped.counts["renewed"] == 0  # by 31 July no rule reaches the old term any more

    remind(date(2027, 6, 1))
    [message] = outbox_rows(source_id=new.id)
    assert message.dedupe_key == dedupe_key(default_rules[-30].id, new.id, date(2027, 7, 1))
    assert "1 July 2027" in message.subject


def test_the_renewed_count_shows_while_old_rules_would_be_due(app, default_rules, term_ending):
    term = term_ending(date(2026, 7, 1))
    db.session.commit()
    renew(db.session, term, today=date(2026, 6, 10), now=at(date(2026, 6, 10)), actor=None)
    db.session.commit()
    outcome = remind(date(2026, 6, 24))  # the old term's -7 day
    assert outcome.counts["renewed"] == 1 and outcome.counts["queued"] == 0


def test_a_changed_end_date_rearms_the_rules(app, default_rules, term_ending):
    term = term_ending(date(2026, 7, 1))
    db.session.commit()
    remind(date(2026, 6, 24))
    assert [t for t, _ in sent(term)] == ["renewal_reminder_7"]
    term.ends_on = date(2026, 7, 31)  # staff extended the term
    db.session.commit()
    remind(date(2026, 6, 25))  # nothing due for the new end yet (its -30 day is 1 July)
    assert len(sent(term)) == 1
    remind(date(2026, 7, 24))
    assert [t for t, _ in sent(term)] == ["renewal_reminder_7", "renewal_reminder_7"]
    assert sorted(keys.rsplit(":", 1)[1] for keys in (m.dedupe_key for m in outbox_rows())) == \
        ["2026-07-01", "2026-07-31"]


def test_a_rule_added_today_does_not_back_fill(app, default_rules, make_rule, term_ending):
    passed = term_ending(date(2026, 6, 10))   # its -10 day was 31 May, before the rule existed
    reached = term_ending(date(2026, 6, 11))  # its -10 day is today
    db.session.commit()
    remind(date(2026, 5, 31))
    before = {t.id: sent(t) for t in (passed, reached)}
    make_rule(-10, "renewal_reminder", effective_from=date(2026, 6, 1))
    db.session.commit()
    remind(date(2026, 6, 1))
    assert sent(passed) == before[passed.id]  # nothing new for the term whose day passed
    assert sent(reached)[-1] == ("renewal_reminder", date(2026, 6, 1))


def test_the_catch_up_horizon_stops_mail_about_long_past_days(app, default_rules, term_ending):
    stale = term_ending(date(2026, 6, 1))   # its last rule day (0) was 9 days before the first run
    recent = term_ending(date(2026, 6, 5))  # its 0 day was 5 days before
    db.session.commit()
    remind(date(2026, 6, 10))
    assert sent(stale) == []
    assert sent(recent) == [("renewal_due_today", date(2026, 6, 10))]


def test_a_later_rule_already_sent_blocks_earlier_ones(app, default_rules, term_ending):
    term = term_ending(date(2026, 7, 1))
    db.session.commit()
    outbox.enqueue(db.session, template_key="grace_notice", now=NOW, member=term.member,
                   dedupe_key=dedupe_key(default_rules[14].id, term.id, term.ends_on), context={"term": term})
    db.session.commit()
    outcome = remind(date(2026, 6, 24))
    assert outcome.counts == {**outcome.counts, "queued": 0, "already_sent": 1}
    assert [m.template_key for m in outbox_rows()] == ["grace_notice"]


def test_no_grace_notice_for_a_plan_whose_grace_is_over(app, default_rules, term_ending, make_plan):
    short = make_plan(fee_minor=0, grace_days=7)
    none = make_plan(fee_minor=0, grace_days=0)
    ends = date(2026, 7, 1)
    long_grace = term_ending(ends)                 # 30 days' grace: still in grace 14 days after
    short_grace = term_ending(ends, plan=short)    # lapsed on 9 July
    no_grace = term_ending(ends, plan=none)        # lapsed on 2 July
    db.session.commit()
    outcome = remind(date(2026, 7, 15))
    assert [(m.source_id, m.template_key) for m in outbox_rows()] == [(long_grace.id, "grace_notice")]
    assert outcome.counts["queued"] == 1
    assert {short_grace.id, no_grace.id}.isdisjoint(m.source_id for m in outbox_rows())


def test_who_gets_no_reminder(app, default_rules, term_ending, make_plan, make_member, make_term):
    ends = date(2026, 7, 1)
    good = term_ending(ends)
    cancelled = term_ending(ends)
    cancelled.cancelled_on = date(2026, 5, 1)
    bouncing = term_ending(ends)
    bouncing.member.email_bouncing = True
    no_email = term_ending(ends, email=None)
    erased = term_ending(ends)
    erased.member.erased_at = NOW
    paid_plan = make_plan(fee_minor=5000)
    pending = make_term(make_member(), paid_plan, starts_on=date(2025, 7, 2), today=date(2025, 7, 2), paid=False)
    assert pending.ends_on == ends and pending.awaiting_payment
    db.session.commit()
    outcome = remind(date(2026, 6, 1))
    assert [m.source_id for m in outbox_rows()] == [good.id]
    assert outcome.counts["queued"] == 1
    assert outcome.counts["bouncing"] == 1
    assert outcome.counts["no_email"] == 2


def test_an_organisation_term_goes_to_its_primary_contact(app, default_rules, make_member, make_plan, make_term):
    from membership.members.services import add_contact, save_organization
    from membership.plans.services import join

    org_plan = make_plan(fee_minor=0, is_organizational=True)
    org = save_organization(db.session, {"name": "Dhaka Traders Ltd", "email": "office@traders.example"},
                            actor=None, now=NOW)
    other = make_member(first_name="Rahim")
    primary = make_member(first_name="Karim", email="karim@traders.example")
    add_contact(db.session, org, other, primary=False, actor=None, now=NOW, today=date(2025, 7, 1))
    add_contact(db.session, org, primary, primary=True, actor=None, now=NOW, today=date(2025, 7, 1))
    term = join(db.session, org, org_plan, today=date(2025, 7, 2), now=NOW, actor=None)
    db.session.commit()
    assert term.ends_on == date(2026, 7, 1)
    remind(date(2026, 6, 1))
    [message] = outbox_rows()
    assert (message.to_address, message.member_id) == ("karim@traders.example", primary.id)
    assert "contact for Dhaka Traders Ltd" in message.body_text

    # without a usable primary contact, the organisation's own address
    primary.email_bouncing = True
    db.session.commit()
    remind(date(2026, 6, 24))
    assert outbox_rows()[-1].to_address == "office@traders.example"


def test_a_plans_own_rule_wins_and_does_not_reach_other_plans(app, make_rule, make_plan, term_ending):
    gold = make_plan(fee_minor=0, name="Gold")
    everyone = make_rule(-7, "renewal_reminder_7")
    gold_rule = make_rule(-7, "renewal_reminder", plan=gold)
    gold_term = term_ending(date(2026, 7, 1), plan=gold)
    plain_term = term_ending(date(2026, 7, 1))
    db.session.commit()
    remind(date(2026, 6, 24))
    assert {m.source_id: m.dedupe_key.split(":")[1] for m in outbox_rows()} == {
        gold_term.id: str(gold_rule.id), plain_term.id: str(everyone.id)}
    remind(date(2026, 6, 25))
    assert len(outbox_rows()) == 2  # the all-plans rule at the same offset does not follow for gold


def test_an_inactive_rule_sends_nothing_and_reactivation_does_not_back_fill(app, make_rule, term_ending):
    rule = make_rule(-7)
    first = term_ending(date(2026, 6, 10))
    second = term_ending(date(2026, 6, 20))
    set_rule_active(db.session, rule, False, actor=None, now=NOW, today=date(2026, 6, 1))
    db.session.commit()
    remind_daily(date(2026, 6, 1), date(2026, 6, 5))
    assert outbox_rows() == []
    set_rule_active(db.session, rule, True, actor=None, now=NOW, today=date(2026, 6, 6))
    db.session.commit()
    assert rule.effective_from == date(2026, 6, 6)
    remind_daily(date(2026, 6, 6), date(2026, 6, 14))
    assert sent(first) == []  # its day (3 June) passed while the rule was off
    assert sent(second) == [("renewal_reminder_7", date(2026, 6, 13))]


def test_the_sweep_works_in_batches(app, default_rules, term_ending):
    terms = [term_ending(date(2026, 7, 1)) for _ in range(5)]
    db.session.commit()
    batches = []
    counts = queue_due(db.session, now=at(date(2026, 6, 1)), batch_size=2, on_batch=lambda: batches.append(1))
    db.session.commit()
    assert counts["queued"] == 5 and len(batches) == 3
    assert sorted(m.source_id for m in outbox_rows()) == sorted(t.id for t in terms)


@pytest.mark.parametrize("count", [0, 1])
def test_no_active_rules_means_no_mail(app, make_rule, term_ending, count):
    for _ in range(count):
        make_rule(-30, active=False)
    term_ending(date(2026, 7, 1))
    db.session.commit()
    assert remind(date(2026, 6, 1)).counts["queued"] == 0
    assert db.session.scalar(select(func.count()).select_from(OutboxMessage)
                             .where(OutboxMessage.dedupe_key.startswith("reminder:"))) == 0
