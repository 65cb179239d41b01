"""The daily scoring job: history and current scores for every member, in batches, once per day."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from membership.core.models import Activity
from membership.engagement.jobs import score_all
from membership.engagement.models import ChurnModel, CurrentScore, MemberScore
from membership.extensions import db
from membership.notifications.models import JobRun
from membership.plans.models import Membership
from membership.scheduler import get_job, run_job

ZONE = ZoneInfo("Asia/Dhaka")
DAY = date(2026, 3, 1)
NOW = datetime(2026, 2, 28, 21, 0, tzinfo=timezone.utc)  # 03:00 on 1 March in Dhaka


def at(day: date, hour: int = 12) -> datetime:
    return datetime.combine(day, time(hour), ZONE).astimezone(timezone.utc)


def population(make_member, make_plan, n=5):
    plan = make_plan()
    members = []
    for i in range(n):
        m = make_member(joined_on=date(2024, 1, 1))
        db.session.add(Membership(member_id=m.id, plan_id=plan.id, starts_on=date(2025, 6, 1),
                                  ends_on=date(2026, 5, 31), grace_days=30, fee_minor=0, currency="BDT",
                                  paid_on=date(2025, 6, 1), status="active", created_at=NOW))
        for d in range(i * 3):
            db.session.add(Activity(member_id=m.id, kind="event_attended", occurred_at=at(DAY - timedelta(days=5 + d))))
        members.append(m)
    gone = make_member()
    gone.erased_at = NOW
    db.session.commit()
    return members, gone


def count(model):
    return db.session.scalar(select(func.count()).select_from(model))


def test_the_job_scores_everyone_in_batches_and_keeps_history(app, make_member, make_plan):
    members, gone = population(make_member, make_plan)
    commits = []
    counts = score_all(db.session, today=DAY, now=NOW, zone=ZONE, batch_size=2,
                       on_batch=lambda: (commits.append(1), db.session.commit()))
    db.session.commit()
    assert counts["scored"] == 5 and counts["batches"] == 3
    assert len(commits) == 4  # once after choosing the model, once per batch
    assert count(MemberScore) == 5 and count(CurrentScore) == 5
    assert db.session.get(CurrentScore, gone.id) is None
    rows = {s.member_id: s for s in db.session.scalars(select(MemberScore))}
    busiest, idle = rows[members[-1].id], rows[members[0].id]
    assert busiest.engagement > idle.engagement == 0
    assert busiest.breakdown["event_attended"] == busiest.engagement
    assert idle.engagement_band == "dormant" and idle.features["days_since_last_activity"] is None
    assert busiest.churn_risk < idle.churn_risk and idle.risk_band == "high"
    assert idle.reasons[0]["text"] == "no activity on record"
    default = db.session.scalars(select(ChurnModel)).one()
    assert default.kind == "default" and busiest.model_id == default.id
    current = db.session.get(CurrentScore, members[-1].id)
    assert current.last_activity_at == at(DAY - timedelta(days=5))
    assert current.engagement == busiest.engagement and current.scored_on == DAY

    # the same day again: the same rows, replaced, not doubled
    score_all(db.session, today=DAY, now=NOW, zone=ZONE, batch_size=2)
    db.session.commit()
    assert count(MemberScore) == 5 and count(CurrentScore) == 5 and count(ChurnModel) == 1

    # the next day: history grows, the current score moves on
    score_all(db.session, today=DAY + timedelta(days=1), now=NOW + timedelta(days=1), zone=ZONE, batch_size=2)
    db.session.commit()
    assert count(MemberScore) == 10 and count(CurrentScore) == 5
    assert db.session.get(CurrentScore, members[-1].id).scored_on == DAY + timedelta(days=1)


def test_the_scheduler_runs_it_once_per_local_day(app, make_member, make_plan):
    population(make_member, make_plan, n=3)
    job = get_job("engagement-scoring")
    assert job.schedule.at == time(2, 30)
    run_job("engagement-scoring", now=NOW)
    run_job("engagement-scoring", now=NOW + timedelta(hours=2))
    db.session.commit()
    assert count(MemberScore) == 3
    runs = db.session.scalars(select(JobRun).where(JobRun.job_name == "engagement-scoring")
                              .order_by(JobRun.id)).all()
    assert runs[0].status == "ok" and runs[0].counts["scored"] == 3 and runs[0].run_for == DAY
    assert all(r.status != "ok" for r in runs[1:])  # the second firing that day does nothing
    assert db.session.scalar(select(func.max(MemberScore.scored_on))) == DAY


def test_the_model_is_refitted_monthly_by_its_own_job_not_by_the_scoring(app, make_member, make_plan,
                                                                         monkeypatch):
    """The fit reads the whole history (10-15 s at 100,000 members): it has its own daily job,
    which fits once every 30 days, so the scoring job's time stays the same every day."""
    from membership.engagement import jobs, model

    population(make_member, make_plan)
    fits: list[date] = []

    def counting_fit(session, *, today, **kw):
        fits.append(today)
        return model.choose_model(session, today=today, **kw)

    monkeypatch.setattr(jobs, "choose_model", counting_fit)
    assert get_job("churn-model-fit").schedule.at == time(2, 0)
    assert get_job("churn-model-fit").schedule.at < get_job("engagement-scoring").schedule.at

    run_job("engagement-scoring", now=NOW)
    assert fits == []
    for days, fitted in ((0, True), (1, False), (29, False), (30, True), (31, False)):
        run_job("churn-model-fit", now=NOW + timedelta(days=days))
        run = db.session.scalars(select(JobRun).where(JobRun.job_name == "churn-model-fit")
                                 .order_by(JobRun.id.desc())).first()
        assert run.status == "ok" and run.counts["fitted"] is fitted, days
    assert fits == [DAY, DAY + timedelta(days=30)]
    run_job("engagement-scoring", now=NOW + timedelta(days=30))
    assert len(fits) == 2
