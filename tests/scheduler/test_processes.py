"""Exactly once with real processes (issue 3, item 7): `flask --app wsgi scheduler ...` started as
subprocesses against the test database, run at the same time, killed mid-batch, stopped with
SIGTERM. The database is the suite's (TEST_DATABASE_URL, or the SQLite file); the data is
committed first so the processes see it, and the app fixture empties the tables afterwards.
"""
from __future__ import annotations

import re
import signal
import subprocess
import time as _time
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from membership.extensions import db
from membership.members.models import Member
from membership.notifications.models import JobLease, JobRun, OutboxMessage
from tests.conftest import zone_in_working_hours
from tests.scheduler.conftest import end_transaction, plain, postgres_or_skip, run, start

AS_OF = "2026-06-01T08:00"  # Asia/Dhaka: the -30 rule reaches terms ending on 1 July 2026


@pytest.fixture
def due_terms(app, make_rule, term_ending):
    """N members whose term ends on 1 July 2026, and the -30 rule."""
    def make(n: int, ends_on: date = date(2026, 7, 1)):
        rule = make_rule(-30)
        terms = [term_ending(ends_on) for _ in range(n)]
        db.session.flush()
        ids = [t.id for t in terms]
        end_transaction()
        return rule, ids
    return make


def reminders_by_term() -> dict[int, int]:
    rows = db.session.execute(select(OutboxMessage.source_id, func.count())
                              .where(OutboxMessage.dedupe_key.startswith("reminder:"))
                              .group_by(OutboxMessage.source_id)).all()
    end_transaction()
    return dict(rows)


def queued_in(output: str) -> int:
    match = re.search(r"^\s+queued\s+(\d+)$", output, re.M)
    return int(match.group(1)) if match else 0


def job_runs(name: str) -> list:
    rows = [plain(r) for r in db.session.scalars(select(JobRun).where(JobRun.job_name == name).order_by(JobRun.id))]
    end_transaction()
    return rows


def leases() -> dict:
    rows = {r.job_name: plain(r) for r in db.session.scalars(select(JobLease))}
    end_transaction()
    return rows


def wait(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"process did not finish in {timeout} s:\n{out}\n{err}")
    return proc.returncode, out, err


def test_two_schedulers_started_at_once_queue_every_reminder_once(app, db_url, due_terms):
    postgres_or_skip(db_url)
    _, term_ids = due_terms(120)
    procs = [start(app, "scheduler", "run-job", "renewal-reminders", "--now", AS_OF, SAMITI_REMINDER_BATCH=25)
             for _ in range(2)]
    results = [wait(p) for p in procs]
    codes = sorted(code for code, _, _ in results)
    # one ran it; the other found the lease taken (3) or, if it came after, the day done (0)
    assert codes in ([0, 0], [0, 3]), results
    assert reminders_by_term() == {t: 1 for t in term_ids}
    assert [r.status for r in job_runs("renewal-reminders")] == ["ok"]
    assert sum(queued_in(out) for _, out, _ in results) == len(term_ids)


def test_two_sweeps_at_the_same_moment_without_a_lease_still_queue_once(app, db_url, tmp_path, due_terms):
    """The last line of defence: even when both run (a lease lost to a stalled process), the unique
    dedupe key lets each reminder in once. A barrier makes the two sweeps overlap for certain."""
    postgres_or_skip(db_url)
    _, term_ids = due_terms(200)
    barrier = tmp_path / "barrier"
    procs = [start(app, "scheduler", "run-job", "renewal-reminders", "--now", AS_OF, "--force",
                   SAMITI_FAULT_SKIP_LEASE=1, SAMITI_FAULT_BARRIER=f"{barrier}:2", SAMITI_REMINDER_BATCH=10)
             for _ in range(2)]
    results = [wait(p) for p in procs]
    assert [code for code, _, _ in results] == [0, 0], results
    assert reminders_by_term() == {t: 1 for t in term_ids}
    queued = [queued_in(out) for _, out, _ in results]
    assert sum(queued) == len(term_ids), results
    runs = job_runs("renewal-reminders")
    assert [r.status for r in runs] == ["ok", "ok"]
    assert max(r.started_at for r in runs) < min(r.finished_at for r in runs)  # they did overlap


def test_a_scheduler_killed_mid_batch_sends_the_rest_when_restarted(app, db_url, due_terms):
    _, term_ids = due_terms(50)
    killed = run(app, "scheduler", "run-job", "renewal-reminders", "--now", AS_OF,
                 SAMITI_REMINDER_BATCH=20, SAMITI_FAULT_KILL_AFTER=30)
    assert killed.returncode == -signal.SIGKILL, (killed.stdout, killed.stderr)
    # the first batch of 20 was committed; the 10 queued of the second batch died with the process
    assert len(reminders_by_term()) == 20
    [dead_run] = job_runs("renewal-reminders")
    assert dead_run.status == "running"
    lease = leases()["renewal-reminders"]
    assert lease.holder == dead_run.holder and lease.done_for is None

    # restarted at once: the dead holder's lease is taken over (same host, pid gone)
    again = run(app, "scheduler", "run-job", "renewal-reminders", "--now", AS_OF, SAMITI_REMINDER_BATCH=20)
    assert again.returncode == 0, (again.stdout, again.stderr)
    assert queued_in(again.stdout) == 30
    assert reminders_by_term() == {t: 1 for t in term_ids}
    first, second = job_runs("renewal-reminders")
    assert first.status == "error" and "abandoned" in first.error
    assert second.status == "ok" and second.counts["already_sent"] == 20

    third = run(app, "scheduler", "run-job", "renewal-reminders", "--now", AS_OF, "--force")
    assert third.returncode == 0 and queued_in(third.stdout) == 0
    assert len(reminders_by_term()) == 50


def test_scheduler_run_catches_up_moves_statuses_and_stops_cleanly_on_sigterm(app, tmp_path, make_member,
                                                                             make_plan, make_term, make_rule,
                                                                             term_ending):
    zone = zone_in_working_hours()
    today = datetime.now(ZoneInfo(zone)).date()
    make_rule(-30)
    term_ids = [term_ending(today + timedelta(days=30)).id for _ in range(40)]
    # a member whose term ended yesterday (local): still "active" in the cache until the job runs
    plan = make_plan(fee_minor=0, grace_days=30)
    late = make_member(first_name="Late")
    make_term(late, plan, starts_on=today - timedelta(days=365), today=today - timedelta(days=365))
    db.session.flush()
    assert late.status == "active"
    late_id = late.id
    end_transaction()

    marker = tmp_path / "paused"
    proc = start(app, "scheduler", "run", TIMEZONE=zone, SAMITI_REMINDER_BATCH=10,
                 SAMITI_FAULT_PAUSE_AFTER=15, SAMITI_FAULT_MARKER=marker)
    try:
        deadline = _time.monotonic() + 60
        while not marker.exists() and proc.poll() is None and _time.monotonic() < deadline:
            _time.sleep(0.05)
        assert marker.exists(), proc.communicate(timeout=5) if proc.poll() is not None else "no pause"
        # The reminder job is paused in its second batch (no database reads here: on SQLite the
        # paused batch holds the write lock). Both catch-up runs started together, so SIGTERM now
        # must let both finish.
        proc.send_signal(signal.SIGTERM)
        _time.sleep(0.2)
        (tmp_path / "paused.go").touch()  # let the paused job carry on: it must finish before exit
        code, out, err = wait(proc, 60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, (out, err)
    assert "received SIGTERM" in out and "scheduler stopped; leases released" in out
    # the running job finished: every reminder queued once, its run recorded as ok
    assert reminders_by_term() == {t: 1 for t in term_ids}
    [reminder_run] = job_runs("renewal-reminders")
    assert reminder_run.status == "ok" and reminder_run.counts["queued"] == 40
    assert reminder_run.run_for == today
    # nobody touched the member: the scheduler moved them into grace on the right local day
    assert db.session.get(Member, late_id).status == "grace"
    found = leases()
    assert found and all(lease.holder is None for lease in found.values())
    assert found["renewal-reminders"].done_for == today
