"""The scheduler: leases, run records, once per local day across DST, triggers, the CLI (items 6, 9)."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from membership import scheduler as sched
from membership.extensions import db
from membership.notifications.models import JobLease, JobRun, ReminderRule
from membership.scheduler import (
    Daily, Every, Job, acquire_lease, build_scheduler, describe_jobs, parse_as_of, register_job, release_lease,
    run_job)
from tests.conftest import NOW

UTC = timezone.utc


# ---------------------------------------------------------------- jobs used only here

CALLS: list[tuple[str, datetime, date]] = []


def record_call(ctx):
    CALLS.append((ctx.job.name, ctx.now, ctx.today))
    return {"seen": 1}


def fail_after_writing(ctx):
    db.session.add(ReminderRule(name="written by a failing job", offset_days=1, template_key="x",
                                effective_from=date(2026, 1, 1), created_at=NOW))
    db.session.flush()
    raise RuntimeError("the SMTP relay is on fire")


def idle(ctx):
    return {"sent": 0, "failed": 0}


for _job in (Job("test-daily", "tests.scheduler.test_scheduler:record_call", Daily(time(0, 5))),
             Job("test-failing", "tests.scheduler.test_scheduler:fail_after_writing", Daily(time(6, 0))),
             Job("test-idle", "tests.scheduler.test_scheduler:idle", Every(60))):
    register_job(_job)


@pytest.fixture(autouse=True)
def _clear_calls():
    CALLS.clear()
    yield
    CALLS.clear()


def runs(name: str) -> list[JobRun]:
    db.session.expire_all()
    return list(db.session.scalars(select(JobRun).where(JobRun.job_name == name).order_by(JobRun.id)))


# ---------------------------------------------------------------- registry


def test_the_job_list_has_stable_names_and_later_jobs_can_join():
    names = [j.name for j in sched.jobs()]
    assert names[:5] == ["status-transitions", "renewal-reminders", "deliver-email", "staff-digest", "prune-job-runs"]
    job = Job("test-late-joiner", "tests.scheduler.test_scheduler:record_call", Every(900))
    assert register_job(job) is job
    assert register_job(Job("test-late-joiner", "tests.scheduler.test_scheduler:record_call", Every(900))) == job
    with pytest.raises(ValueError, match="already registered"):
        register_job(Job("test-late-joiner", "tests.scheduler.test_scheduler:idle", Every(900)))
    with pytest.raises(KeyError, match="no job named"):
        sched.get_job("nope")


# ---------------------------------------------------------------- leases


def test_the_lease_stops_a_second_holder_until_released_or_expired(app, monkeypatch):
    clock = [datetime(2026, 6, 1, 2, 0, tzinfo=UTC)]
    monkeypatch.setattr(sched, "wallclock", lambda: clock[0])
    assert acquire_lease(db.session, "test-daily", "host-a:1:aa", seconds=600)[0]
    taken, found = acquire_lease(db.session, "test-daily", "host-b:2:bb", seconds=600)
    assert not taken and found.holder == "host-a:1:aa"
    assert acquire_lease(db.session, "test-daily", "host-a:1:aa", seconds=600)[0]  # its own again: fine

    outcome = run_job("test-daily", now=clock[0], holder="host-b:2:bb")
    assert outcome.status == "busy" and "host-a:1:aa" in outcome.note and CALLS == []

    release_lease(db.session, "test-daily", "host-a:1:aa")
    assert acquire_lease(db.session, "test-daily", "host-b:2:bb", seconds=600)[0]
    # b stalls; after the lease expires, a takes over
    clock[0] += timedelta(seconds=599)
    assert not acquire_lease(db.session, "test-daily", "host-a:1:aa", seconds=600)[0]
    clock[0] += timedelta(seconds=2)
    assert acquire_lease(db.session, "test-daily", "host-a:1:aa", seconds=600)[0]


def test_a_taken_over_lease_marks_the_dead_holders_run_abandoned(app, monkeypatch):
    clock = [datetime(2026, 6, 1, 2, 0, tzinfo=UTC)]
    monkeypatch.setattr(sched, "wallclock", lambda: clock[0])
    assert acquire_lease(db.session, "test-daily", "host-a:1:aa", seconds=60)[0]
    db.session.add(JobRun(job_name="test-daily", holder="host-a:1:aa", as_of=clock[0], started_at=clock[0],
                          status="running"))
    db.session.commit()
    clock[0] += timedelta(minutes=5)
    outcome = run_job("test-daily", now=clock[0], holder="host-b:2:bb")
    assert outcome.status == "ok"
    first, second = runs("test-daily")
    assert first.status == "error" and "abandoned" in first.error
    assert second.status == "ok"


def test_a_dead_process_on_this_host_does_not_block_its_successor(app):
    """A scheduler restarted after a crash takes the lease at once (its predecessor's pid is gone);
    a live process, or one on another host (which cannot be checked), keeps it until it expires."""
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True)
    dead_pid, here = int(finished.stdout), sched.socket.gethostname()[:60]
    for holder, reclaimable in ((f"elsewhere:{dead_pid}:x", False), (f"{here}:{os.getppid()}:x", False),
                                (f"{here}:{dead_pid}:x", True)):
        release = db.session.get(JobLease, "test-daily")
        if release is not None:
            db.session.delete(release)
            db.session.commit()
        assert acquire_lease(db.session, "test-daily", holder, seconds=3600)[0]
        assert acquire_lease(db.session, "test-daily", sched.make_holder(), seconds=60)[0] is reclaimable, holder


# ---------------------------------------------------------------- runs


def test_a_run_is_recorded_with_its_counts_and_releases_the_lease(app):
    moment = datetime(2026, 6, 1, 2, 30, tzinfo=UTC)
    outcome = run_job("test-daily", now=moment, holder="h:1:x")
    assert (outcome.status, outcome.counts, outcome.run_for) == ("ok", {"seen": 1}, date(2026, 6, 1))
    [run] = runs("test-daily")
    assert (run.status, run.counts, run.as_of, run.holder, run.run_for) == \
        ("ok", {"seen": 1}, moment, "h:1:x", date(2026, 6, 1))
    assert run.finished_at >= run.started_at
    lease = db.session.get(JobLease, "test-daily")
    assert lease.holder is None and lease.done_for == date(2026, 6, 1)


def test_a_failing_job_keeps_nothing_and_records_the_error(app):
    outcome = run_job("test-failing", now=datetime(2026, 6, 1, 2, 30, tzinfo=UTC))
    assert outcome.status == "error" and "SMTP relay is on fire" in outcome.error
    [run] = runs("test-failing")
    assert run.status == "error" and "RuntimeError: the SMTP relay is on fire" in run.error
    assert db.session.scalar(select(func.count()).select_from(ReminderRule)) == 0  # rolled back
    lease = db.session.get(JobLease, "test-failing")
    assert lease.holder is None and lease.done_for is None  # tried again at the next firing
    again = run_job("test-failing", now=datetime(2026, 6, 1, 3, 30, tzinfo=UTC))
    assert again.status == "error" and len(runs("test-failing")) == 2


def test_idle_runs_of_an_interval_job_fold_into_one_row(app):
    for minute in range(5):
        assert run_job("test-idle", now=datetime(2026, 6, 1, 2, minute, tzinfo=UTC)).status == "ok"
    [run] = runs("test-idle")
    assert run.counts == {"idle_runs": 5} and run.as_of == datetime(2026, 6, 1, 2, 4, tzinfo=UTC)


def test_prune_deletes_old_runs(app):
    old = datetime.now(UTC) - timedelta(days=90)
    db.session.add(JobRun(job_name="test-daily", holder="h", as_of=old, started_at=old, status="ok"))
    db.session.commit()
    outcome = run_job("prune-job-runs", now=datetime.now(UTC))
    assert outcome.counts == {"deleted": 1}
    assert runs("test-daily") == []


# ---------------------------------------------------------------- once per local day, across DST

DST_CASES = [
    # zone, days around spring-forward, days around fall-back
    # (London: 29 March and 25 October 2026; New York: 8 March and 1 November 2026)
    ("Europe/London", date(2026, 3, 28), date(2026, 3, 30), date(2026, 10, 24), date(2026, 10, 26)),
    ("America/New_York", date(2026, 3, 7), date(2026, 3, 9), date(2026, 10, 31), date(2026, 11, 2)),
    ("Asia/Dhaka", date(2026, 3, 28), date(2026, 3, 30), date(2026, 10, 24), date(2026, 10, 26)),
]


def firings(trigger, start: datetime, end: datetime) -> list[datetime]:
    """Every moment the trigger fires in [start, end), as APScheduler computes it (the scheduler
    moves its clock in absolute time: local wall-clock arithmetic would go back at a fall-back)."""
    out, previous, now = [], None, start.astimezone(UTC)
    while True:
        nxt = trigger.get_next_fire_time(previous, now)
        if nxt is None or nxt >= end:
            return out
        out.append(nxt)
        previous, now = nxt, nxt.astimezone(UTC) + timedelta(microseconds=1)


@pytest.mark.parametrize("zone,spring_from,spring_to,fall_from,fall_to", DST_CASES, ids=[c[0] for c in DST_CASES])
def test_a_daily_job_runs_once_per_local_day_across_dst(app, zone, spring_from, spring_to, fall_from, fall_to):
    app.config["TIMEZONE"] = zone
    tz = ZoneInfo(zone)
    job = sched.get_job("test-daily")
    trigger = job.schedule.trigger(tz)
    for first, last, extra in ((spring_from, spring_to, -1), (fall_from, fall_to, +1)):
        CALLS.clear()
        start = datetime.combine(first, time.min, tzinfo=tz)
        end = datetime.combine(last + timedelta(days=1), time.min, tzinfo=tz)
        moments = firings(trigger, start, end)
        # hourly retries 00:05..22:05: 23 firings a day; the spring-forward day has no 01:05 (London)
        # or 02:05 (New York), the fall-back day has its 01:05 twice; Dhaka has no DST
        days = (last - first).days + 1
        assert len(moments) == 23 * days + (0 if zone == "Asia/Dhaka" else extra)
        # a second scheduler fires at the same moments (one second later)
        for moment in moments:
            run_job("test-daily", now=moment, holder="a:1:a")
            run_job("test-daily", now=moment.astimezone(UTC) + timedelta(seconds=1), holder="b:2:b")
        assert [today for _, _, today in CALLS] == [first + timedelta(days=i) for i in range(days)]
        # each ran at its day's first firing, 00:05 local, whatever the UTC offset that day
        assert {now.astimezone(tz).time() for _, now, _ in CALLS} == {time(0, 5)}
        offsets = {now.astimezone(tz).utcoffset() for _, now, _ in CALLS}
        assert len(offsets) == (1 if zone == "Asia/Dhaka" else 2)


def test_local_midnight_decides_the_day(app):
    app.config["TIMEZONE"] = "America/New_York"
    # 04:59 UTC on 8 March is 23:59 on 7 March in New York; 05:01 UTC is 00:01 on the 8th (EST)
    assert run_job("test-daily", now=datetime(2026, 3, 8, 4, 59, tzinfo=UTC)).run_for == date(2026, 3, 7)
    assert run_job("test-daily", now=datetime(2026, 3, 8, 5, 1, tzinfo=UTC)).run_for == date(2026, 3, 8)
    assert run_job("test-daily", now=datetime(2026, 3, 8, 5, 2, tzinfo=UTC)).status == "skipped"
    assert run_job("test-daily", now=datetime(2026, 3, 8, 5, 3, tzinfo=UTC), force=True).status == "ok"
    assert len(CALLS) == 3


def test_a_rehearsal_of_a_later_day_does_not_block_the_days_before_it(app):
    assert run_job("test-daily", now=datetime(2026, 12, 20, 2, 0, tzinfo=UTC)).status == "ok"  # rehearsal
    assert run_job("test-daily", now=datetime(2026, 12, 1, 2, 0, tzinfo=UTC)).status == "ok"  # the real day
    assert run_job("test-daily", now=datetime(2026, 12, 1, 3, 0, tzinfo=UTC)).status == "skipped"
    assert [today for _, _, today in CALLS] == [date(2026, 12, 20), date(2026, 12, 1)]


def test_as_of_parsing_uses_the_associations_zone_for_naive_times():
    assert parse_as_of("2026-12-01T08:00", "Asia/Dhaka") == datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    assert parse_as_of("2026-12-01T08:00:00+06:00", "Europe/London") == datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    assert parse_as_of("2026-07-01 08:00", "Europe/London") == datetime(2026, 7, 1, 7, 0, tzinfo=UTC)
    with pytest.raises(ValueError):
        parse_as_of("tomorrow", "Asia/Dhaka")


# ---------------------------------------------------------------- the APScheduler set-up


def test_the_scheduler_has_every_job_with_deliberate_misfire_and_coalesce(app):
    scheduler = build_scheduler(app)
    try:
        by_id = {j.id: j for j in scheduler.get_jobs()}
        for job in sched.jobs():
            aps = by_id[job.name]
            assert aps.coalesce is True and aps.max_instances == 1
            assert aps.misfire_grace_time == (3600 if job.daily else job.schedule.seconds // 2)
        assert by_id["deliver-email"].misfire_grace_time == 30
        assert str(by_id["renewal-reminders"].trigger.timezone) == "Asia/Dhaka"
        assert "hour='8-20/1'" in str(by_id["renewal-reminders"].trigger)
    finally:
        if scheduler.running:
            scheduler.shutdown()


def test_a_scheduler_started_late_in_the_day_catches_up_daily_jobs(app, monkeypatch):
    # 10:00 in Dhaka: today's 00:05 and 08:00 firings have passed and nothing ran today
    monkeypatch.setattr(sched, "utcnow", lambda: datetime(2026, 6, 1, 4, 0, tzinfo=UTC))
    db.session.add(JobLease(job_name="status-transitions", done_for=date(2026, 6, 1)))
    db.session.commit()
    scheduler = build_scheduler(app)
    ids = {j.id for j in scheduler.get_jobs()}
    assert "renewal-reminders:catch-up" in ids and "prune-job-runs:catch-up" in ids
    assert "status-transitions:catch-up" not in ids  # already done today
    assert "deliver-email:catch-up" not in ids


def test_describe_jobs_gives_the_next_run_that_does_work(app):
    moment = datetime(2026, 6, 1, 4, 30, tzinfo=UTC)  # 10:30 in Dhaka
    db.session.add(JobLease(job_name="status-transitions", done_for=date(2026, 6, 1)))
    db.session.commit()
    rows = {r["name"]: r for r in describe_jobs(app, moment)}
    dhaka = ZoneInfo("Asia/Dhaka")
    assert rows["status-transitions"]["next_run"] == datetime(2026, 6, 2, 0, 5, tzinfo=dhaka)
    assert rows["renewal-reminders"]["next_run"] == datetime(2026, 6, 1, 11, 0, tzinfo=dhaka)  # hourly retry
    assert rows["renewal-reminders"]["trigger"].startswith("daily at 08:00")
    assert rows["deliver-email"]["trigger"] == "every minute"


# ---------------------------------------------------------------- CLI


def test_cli_lists_jobs(runner):
    result = runner.invoke(args=["scheduler", "jobs"])
    assert result.exit_code == 0, result.output
    for name in ("status-transitions", "renewal-reminders", "deliver-email"):
        assert name in result.output
    assert "daily at 08:00" in result.output and "every minute" in result.output and "next run:" in result.output


def test_cli_runs_one_job_as_of_a_moment(app, runner):
    result = runner.invoke(args=["scheduler", "run-job", "test-daily", "--now", "2026-12-01T08:00"])
    assert result.exit_code == 0, result.output
    assert "test-daily as of 2026-12-01 08:00 +06 for 2026-12-01: done" in result.output
    assert "seen  1" in result.output
    assert CALLS[0][1] == datetime(2026, 12, 1, 2, 0, tzinfo=UTC)

    again = runner.invoke(args=["scheduler", "run-job", "test-daily", "--now", "2026-12-01T09:00:00+06:00"])
    assert again.exit_code == 0 and "already ran for 2026-12-01" in again.output and len(CALLS) == 1
    forced = runner.invoke(args=["scheduler", "run-job", "test-daily", "--now", "2026-12-01T09:00", "--force"])
    assert forced.exit_code == 0 and len(CALLS) == 2


def test_cli_errors_have_exit_codes(app, runner):
    unknown = runner.invoke(args=["scheduler", "run-job", "no-such-job"])
    assert unknown.exit_code == 2 and "no job named 'no-such-job'" in unknown.output
    bad = runner.invoke(args=["scheduler", "run-job", "test-daily", "--now", "next tuesday"])
    assert bad.exit_code == 2 and "not an ISO date" in bad.output
    failing = runner.invoke(args=["scheduler", "run-job", "test-failing", "--now", "2026-12-01T08:00"])
    assert failing.exit_code == 1 and "FAILED: RuntimeError: the SMTP relay is on fire" in failing.output
    assert acquire_lease(db.session, "test-daily", "elsewhere:1:x", seconds=600)[0]
    busy = runner.invoke(args=["scheduler", "run-job", "test-daily"])
    assert busy.exit_code == 3 and "lease held by elsewhere:1:x" in busy.output
