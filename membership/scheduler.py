"""The scheduler: a declarative job list, leases, run records, and the APScheduler process.

Each job is a sweep over what is due as of `now` (never "what fires at 08:00"), so a missed run
is caught up by the next one, and a second run finds nothing left to do. Every run:

1. takes the job's lease: a compare-and-swap UPDATE (or the first INSERT) on `JobLease`, which
   succeeds only when the lease is free, expired, already ours, or held by a dead process on
   this host; a second scheduler finds it taken and does nothing;
2. for a daily job, checks the local date (association's zone) it last completed for, so a
   restart or a second scheduler the same day does nothing, across DST changes;
3. records a `JobRun` (started, as of, holder), calls the job in an app context with an
   explicit `now`, commits, records the counts (or rolls back and records the error);
4. releases the lease.

Leases are timed with the wall clock (they are about processes being alive); the job's `now`
may be any moment (`run-job --now` rehearses a date). Email dedupe keys remain the last line of
defence: even two runs at once cannot queue one reminder twice.

The web app never starts a scheduler. Production runs `flask --app wsgi scheduler run` (one
process; a second one is harmless); the development `serve` command calls `start_in_process`.
Later features add jobs with `register_job` (event reminders, churn scoring, alerts).
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import traceback
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from importlib import import_module
from typing import Any, Callable
from zoneinfo import ZoneInfo

from flask import Flask, current_app
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from membership.core.time import local_date, utcnow
from membership.extensions import db
from membership.notifications.models import JobLease, JobRun

log = logging.getLogger("samiti.scheduler")

# Keep staff's run history readable and the table small: runs older than this are pruned daily.
DEFAULT_KEEP_RUNS_DAYS = 60


# ---------------------------------------------------------------- the job list


@dataclass(frozen=True)
class Daily:
    """Once per local day at `at` (the association's zone). If that run fails or the scheduler
    was down, the trigger fires again every `retry_every` hours until `last_hour`; the
    once-per-local-day record makes those later firings no-ops once a run has succeeded."""
    at: time
    last_hour: int = 22
    retry_every: int = 1

    def trigger(self, zone: ZoneInfo):
        from apscheduler.triggers.cron import CronTrigger
        hours = f"{self.at.hour}-{max(self.at.hour, self.last_hour)}/{self.retry_every}"
        return CronTrigger(hour=hours, minute=self.at.minute, timezone=zone)

    def describe(self) -> str:
        text = f"daily at {self.at:%H:%M}"
        if self.last_hour > self.at.hour:
            text += f" (again hourly to {self.last_hour:02d}:{self.at.minute:02d} if missed or failed)"
        return text


@dataclass(frozen=True)
class Every:
    """Every `seconds` seconds."""
    seconds: int

    def trigger(self, zone: ZoneInfo):
        from apscheduler.triggers.interval import IntervalTrigger
        return IntervalTrigger(seconds=self.seconds, timezone=zone)

    def describe(self) -> str:
        if self.seconds % 60 == 0:
            minutes = self.seconds // 60
            return "every minute" if minutes == 1 else f"every {minutes} minutes"
        return f"every {self.seconds} seconds"


@dataclass(frozen=True)
class Job:
    """A scheduled job. `target` is "module:function"; the function takes a JobContext and
    returns a dict of counts. It adds and flushes; the runner commits (a job that commits per
    batch calls `ctx.checkpoint()`)."""
    name: str
    target: str
    schedule: Daily | Every
    description: str = ""
    lease_seconds: int = 15 * 60
    # How late a firing may start and still run (APScheduler 3's default of 1 s silently skips
    # a job whose thread pool was busy or whose host was suspended for a moment).
    misfire_grace_time: int | None = None

    @property
    def daily(self) -> bool:
        return isinstance(self.schedule, Daily)

    @property
    def grace_seconds(self) -> int:
        if self.misfire_grace_time is not None:
            return self.misfire_grace_time
        # a daily firing is still worth running an hour late (the next retry comes anyway); an
        # interval firing is superseded by the next one, so only wait half an interval
        return 3600 if self.daily else max(1, self.schedule.seconds // 2)

    def function(self) -> Callable[[JobContext], dict[str, Any]]:
        module, _, attr = self.target.partition(":")
        return getattr(import_module(module), attr)


_REGISTRY: dict[str, Job] = {}


def register_job(job: Job) -> Job:
    """Add a job to the scheduler (later features call this from their package, e.g.
    `register_job(Job("event-reminders", "membership.events.jobs:queue_reminders", Every(900)))`,
    at import of a module that create_app imports - its models or views - so that every process
    that builds the app, the scheduler included, knows the job).
    Registering the same definition twice is a no-op; a different job under a taken name is an
    error (stable names are what leases and run history hang on)."""
    existing = _REGISTRY.get(job.name)
    if existing is not None and existing != job:
        raise ValueError(f"a different job is already registered as {job.name!r}")
    _REGISTRY[job.name] = job
    return job


# Feature packages whose jobs module registers its jobs when imported. Imported on first use of
# the job list (not at import of this module: they import the domain, which imports this module's
# neighbours), so every process that asks for the jobs - scheduler, CLI, staff pages - sees them.
FEATURE_JOB_MODULES = ("membership.events.jobs", "membership.engagement.dashboard_jobs",
                       "membership.engagement.jobs", "membership.signup.jobs", "membership.campaigns.jobs",
                       "membership.surveys.jobs", "membership.payments.autorenew_jobs")


def _load_feature_jobs() -> None:
    for module in FEATURE_JOB_MODULES:
        import_module(module)


def jobs() -> list[Job]:
    """Every registered job, in registration order."""
    _load_feature_jobs()
    return list(_REGISTRY.values())


def get_job(name: str) -> Job:
    _load_feature_jobs()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"no job named {name!r}; known jobs: {', '.join(_REGISTRY)}") from None


# ---------------------------------------------------------------- job functions


@dataclass
class JobContext:
    """What a job function gets: the session, the moment it runs as of, and the local day."""
    session: Session
    now: datetime
    today: date
    zone: ZoneInfo
    holder: str
    job: Job
    checkpoint: Callable[[], None] = field(repr=False, default=lambda: None)


def status_transitions(ctx: JobContext) -> dict[str, Any]:
    """Move every term to its status of the local day (active -> grace -> lapsed...), expire
    overrides, refresh the members' cached status and write status-change activities. One
    commit for the whole run: a failed run changes nothing."""
    from membership.plans.services import apply_status_transitions
    return apply_status_transitions(ctx.session, today=ctx.today, now=ctx.now)


def renewal_reminders(ctx: JobContext) -> dict[str, Any]:
    """Queue the renewal reminders due as of `now`; commits per batch (a crash keeps what was
    queued and the re-run sends the rest)."""
    from membership.notifications.reminders import queue_due

    batch_size = int(os.environ.get("SAMITI_REMINDER_BATCH") or current_app.config.get("REMINDER_BATCH_SIZE", 500))
    _fault_barrier()
    return queue_due(ctx.session, now=ctx.now, today=ctx.today, batch_size=batch_size,
                     on_batch=ctx.checkpoint, on_queued=_fault_hook())


def deliver_email(ctx: JobContext) -> dict[str, Any]:
    """Send due outbox messages (the dispatcher claims, sends and marks them itself)."""
    from membership.notifications import outbox
    return outbox.deliver_pending(ctx.session, now=ctx.now, worker_id=ctx.holder)


def prune_job_runs(ctx: JobContext) -> dict[str, Any]:
    """Delete run records older than SCHEDULER_KEEP_RUNS_DAYS (the run history stays readable
    and the table small)."""
    from sqlalchemy import delete

    keep = int(current_app.config.get("SCHEDULER_KEEP_RUNS_DAYS", DEFAULT_KEEP_RUNS_DAYS))
    old = ctx.session.execute(delete(JobRun).where(JobRun.started_at < wallclock() - timedelta(days=keep),
                                                   JobRun.status != "running")).rowcount
    return {"deleted": old}


# ---------------------------------------------------------------- fault injection (tests only)
#
# The exactly-once tests run real scheduler processes and break them at chosen moments. These
# hooks do nothing unless their environment variable is set:
#   SAMITI_FAULT_KILL_AFTER=N       SIGKILL this process after the N-th reminder queued in a run
#                                   (in the middle of a batch: no clean-up, no commit)
#   SAMITI_FAULT_PAUSE_AFTER=N      after the N-th reminder, create SAMITI_FAULT_MARKER and wait
#                                   (up to 60 s) until "<marker>.go" exists
#   SAMITI_FAULT_BARRIER=PATH:K     at the start of the reminder sweep, wait (up to 60 s) until K
#                                   processes have reached it, so their sweeps overlap
#   SAMITI_FAULT_SKIP_LEASE=1       run without taking the lease (a lease that expired under a
#                                   stalled process): only the dedupe keys stand between two runs


def _wait_for(predicate: Callable[[], bool], seconds: float = 60) -> None:
    import time as _time

    deadline = _time.monotonic() + seconds
    while not predicate() and _time.monotonic() < deadline:
        _time.sleep(0.02)


def _fault_hook() -> Callable[[int], None] | None:
    kill_after = os.environ.get("SAMITI_FAULT_KILL_AFTER")
    pause_after = os.environ.get("SAMITI_FAULT_PAUSE_AFTER")
    if not (kill_after or pause_after):
        return None

    def hook(n: int) -> None:
        if kill_after and n >= int(kill_after):
            os.kill(os.getpid(), signal.SIGKILL)
        if pause_after and n == int(pause_after):
            marker = os.environ["SAMITI_FAULT_MARKER"]
            with open(marker, "w") as fh:
                fh.write(str(os.getpid()))
            _wait_for(lambda: os.path.exists(marker + ".go"))
    return hook


def _fault_barrier() -> None:
    spec = os.environ.get("SAMITI_FAULT_BARRIER")
    if not spec:
        return
    path, _, count = spec.rpartition(":")
    with open(f"{path}.{os.getpid()}", "w"):
        pass
    directory, prefix = os.path.split(path)
    _wait_for(lambda: sum(1 for f in os.listdir(directory or ".") if f.startswith(prefix + ".")) >= int(count))


for _job in (
    Job("status-transitions", "membership.scheduler:status_transitions", Daily(time(0, 5)),
        "Terms move to grace, lapsed and active on the right local day; overrides expire; "
        "members' cached status follows.", lease_seconds=60 * 60),
    Job("renewal-reminders", "membership.scheduler:renewal_reminders", Daily(time(8, 0), last_hour=20),
        "Queue the renewal reminders that are due (rules under Admin > Reminders).", lease_seconds=15 * 60),
    Job("deliver-email", "membership.scheduler:deliver_email", Every(60),
        "Send queued emails from the outbox; retry failures with back-off.", lease_seconds=5 * 60),
    Job("staff-digest", "membership.notifications.digest:staff_digest", Daily(time(7, 30), last_hour=12),
        "Email staff a summary: yesterday's joins, lapses and payments; renewals due; what waits for them.",
        lease_seconds=15 * 60),
    Job("prune-job-runs", "membership.scheduler:prune_job_runs", Daily(time(3, 30)),
        "Delete old run records of the scheduler.", lease_seconds=15 * 60),
):
    register_job(_job)


# ---------------------------------------------------------------- leases


def make_holder() -> str:
    """host:pid:random - unique per process; host and pid let a restarted scheduler on the same
    host take over the lease of a dead predecessor at once instead of waiting for it to expire."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{os.urandom(3).hex()}"


def _holder_is_dead_here(holder: str) -> bool:
    parts = holder.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return False
    host, pid = parts[0], int(parts[1])
    if host != socket.gethostname()[:60] or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, someone else's
    return False


# The wall clock for leases (tests may replace it).
wallclock: Callable[[], datetime] = utcnow


class LeaseLost(RuntimeError):
    """Another holder took the lease (ours expired): stop, keep nothing of the current batch."""


@dataclass(frozen=True)
class LeaseState:
    holder: str | None
    expires_at: datetime | None


def acquire_lease(session: Session, name: str, holder: str, *, seconds: int) -> tuple[bool, LeaseState | None]:
    """Take the lease of job `name` for `seconds`. Returns (taken, the lease as found).

    A compare-and-swap: read the row, decide whether it is free (no holder, expired, ours, or a
    dead process on this host), then UPDATE ... WHERE holder and expiry are still what we read.
    Of two schedulers racing, one UPDATE matches and the other matches nothing (PostgreSQL
    re-checks the WHERE after the first commits; SQLite serialises the writers). The first
    INSERT is settled by the primary key. Commits."""
    now = wallclock()
    expires = now + timedelta(seconds=seconds)
    row = session.execute(select(JobLease.holder, JobLease.expires_at, JobLease.done_for)
                          .where(JobLease.job_name == name)).first()
    if row is None:
        try:
            with session.begin_nested():
                session.add(JobLease(job_name=name, holder=holder, expires_at=expires))
                session.flush()
        except IntegrityError:  # another scheduler inserted it first
            session.rollback()
            row = session.execute(select(JobLease.holder, JobLease.expires_at)
                                  .where(JobLease.job_name == name)).first()
            session.rollback()
            return False, LeaseState(row.holder, row.expires_at) if row else None
        session.commit()
        return True, None
    free = (row.holder is None or row.holder == holder or row.expires_at is None or row.expires_at < now
            or _holder_is_dead_here(row.holder))
    found = LeaseState(row.holder, row.expires_at)
    if not free:
        session.rollback()
        return False, found
    result = session.execute(
        update(JobLease)
        .where(JobLease.job_name == name, JobLease.holder.is_not_distinct_from(row.holder),
               JobLease.expires_at.is_not_distinct_from(row.expires_at))
        .values(holder=holder, expires_at=expires)
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        session.rollback()
        return False, found
    if row.holder and row.holder != holder:
        # The previous holder died or stalled: its unfinished runs will never finish.
        session.execute(update(JobRun).where(JobRun.job_name == name, JobRun.holder == row.holder,
                                             JobRun.status == "running")
                        .values(status="error", finished_at=now,
                                error=f"abandoned: {row.holder} stopped before finishing (lease taken over)")
                        .execution_options(synchronize_session=False))
    session.commit()
    return True, found


def renew_lease(session: Session, name: str, holder: str, *, seconds: int) -> None:
    """Extend our lease (in the caller's transaction); raises LeaseLost if it is no longer ours."""
    result = session.execute(update(JobLease).where(JobLease.job_name == name, JobLease.holder == holder)
                             .values(expires_at=wallclock() + timedelta(seconds=seconds))
                             .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        raise LeaseLost(f"the lease of {name} was taken by another scheduler")


def release_lease(session: Session, name: str, holder: str) -> None:
    session.execute(update(JobLease).where(JobLease.job_name == name, JobLease.holder == holder)
                    .values(holder=None, expires_at=None).execution_options(synchronize_session=False))
    session.commit()


def release_all(session: Session, holder: str) -> None:
    session.execute(update(JobLease).where(JobLease.holder == holder)
                    .values(holder=None, expires_at=None).execution_options(synchronize_session=False))
    session.commit()


# ---------------------------------------------------------------- one run


@dataclass
class RunOutcome:
    job: str
    status: str  # ok, error, skipped (already ran for the local day), busy (lease held elsewhere)
    as_of: datetime
    run_for: date | None = None
    counts: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    run_id: int | None = None
    note: str = ""


def parse_as_of(value: str, zone: ZoneInfo | str) -> datetime:
    """An ISO datetime; a naive one is in the association's zone. Returns aware UTC."""
    if isinstance(zone, str):
        zone = ZoneInfo(zone)
    moment = datetime.fromisoformat(value.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(timezone.utc)


def run_job(name: str, *, now: datetime | None = None, holder: str | None = None, force: bool = False) -> RunOutcome:
    """Run job `name` once as of `now` (default: the current moment), in the current app context.

    Takes the lease (busy: returns at once), skips a daily job that already completed for the
    local day of `now` (unless `force`), records the run, commits the job's work and its counts,
    or rolls back and records the error. Never raises for a job's failure (the outcome says)."""
    job = get_job(name)
    zone = ZoneInfo(current_app.config["TIMEZONE"])
    now = (now or utcnow()).astimezone(timezone.utc)
    today = local_date(now, zone)
    holder = holder or make_holder()
    session = db.session
    outcome = RunOutcome(job=name, status="busy", as_of=now, run_for=today if job.daily else None)

    if os.environ.get("SAMITI_FAULT_SKIP_LEASE") == "1":
        taken, lease = True, None
    else:
        taken, lease = acquire_lease(session, name, holder, seconds=job.lease_seconds)
    if not taken:
        outcome.note = (f"lease held by {lease.holder} until {lease.expires_at:%Y-%m-%d %H:%M:%S} UTC"
                        if lease and lease.expires_at else "lease held by another scheduler")
        log.info("%s: not run, %s", name, outcome.note)
        return outcome
    try:
        if job.daily and not force:
            done_for = session.scalar(select(JobLease.done_for).where(JobLease.job_name == name))
            # Equal, not "on or after": a rehearsal as of a later day (run-job --now) must not
            # stop the real runs of the days before it.
            if done_for == today:
                outcome.status = "skipped"
                outcome.note = f"already ran for {done_for.isoformat()}, the local day of the as-of moment"
                session.rollback()
                return outcome
        run = JobRun(job_name=name, holder=holder, as_of=now, started_at=wallclock(), status="running",
                     run_for=outcome.run_for)
        session.add(run)
        session.commit()
        outcome.run_id = run_id = run.id

        skip_lease = os.environ.get("SAMITI_FAULT_SKIP_LEASE") == "1"

        def checkpoint() -> None:
            if not skip_lease:
                renew_lease(session, name, holder, seconds=job.lease_seconds)
            session.commit()

        ctx = JobContext(session=session, now=now, today=today, zone=zone, holder=holder, job=job,
                         checkpoint=checkpoint)
        try:
            counts = job.function()(ctx) or {}
            if not skip_lease:
                renew_lease(session, name, holder, seconds=job.lease_seconds)
            if job.daily:
                session.execute(update(JobLease).where(JobLease.job_name == name)
                                .values(done_for=today).execution_options(synchronize_session=False))
            if not job.daily and not _did_work(counts):
                # An interval job with nothing to do (the dispatcher, every minute): fold the run
                # into the previous idle run, so the history shows work, not 1,440 empty rows a day.
                outcome.run_id = _fold_idle_run(session, name, run_id, now)
            else:
                session.execute(update(JobRun).where(JobRun.id == run_id)
                                .values(status="ok", finished_at=wallclock(), counts=_jsonable(counts))
                                .execution_options(synchronize_session=False))
            session.commit()
            outcome.status, outcome.counts = "ok", counts
            log.info("%s as of %s: %s", name, now.isoformat(), counts)
        except Exception as exc:  # a job's failure is recorded, never kills the scheduler
            session.rollback()
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            log.exception("%s as of %s failed", name, now.isoformat())
            session.execute(update(JobRun).where(JobRun.id == run_id)
                            .values(status="error", finished_at=wallclock(), error=detail[:4000])
                            .execution_options(synchronize_session=False))
            session.commit()
            outcome.status, outcome.error = "error", detail
        return outcome
    finally:
        try:
            session.rollback()
            release_lease(session, name, holder)
        except Exception:  # the database went away: the lease expires by itself
            log.exception("%s: could not release the lease", name)
            session.rollback()


def _did_work(counts: dict[str, Any]) -> bool:
    return any(isinstance(v, (int, float)) and not isinstance(v, bool) and v for v in counts.values())


def _fold_idle_run(session: Session, name: str, run_id: int, now: datetime) -> int:
    """Record an idle run of an interval job: extend the previous run when it was idle too
    (counts {"idle_runs": n}), else mark this one {"idle_runs": 1}. Returns the run's id."""
    from sqlalchemy import delete

    previous = session.scalar(select(JobRun).where(JobRun.job_name == name, JobRun.id < run_id)
                              .order_by(JobRun.id.desc()).limit(1))
    if previous is not None and previous.status == "ok" and set(previous.counts or {}) == {"idle_runs"}:
        previous.counts = {"idle_runs": int(previous.counts["idle_runs"]) + 1}
        previous.finished_at = wallclock()
        previous.as_of = now
        session.execute(delete(JobRun).where(JobRun.id == run_id).execution_options(synchronize_session=False))
        return previous.id
    session.execute(update(JobRun).where(JobRun.id == run_id)
                    .values(status="ok", finished_at=wallclock(), counts={"idle_runs": 1})
                    .execution_options(synchronize_session=False))
    return run_id


def _jsonable(counts: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in counts.items():
        out[str(key)] = value if isinstance(value, (int, float, str, bool, type(None))) else str(value)
    return out


# ---------------------------------------------------------------- the APScheduler process


def _fire(app: Flask, name: str, holder: str) -> None:
    """What APScheduler calls: a fresh app context (and so a fresh session) per run."""
    with app.app_context():
        try:
            run_job(name, holder=holder)
        finally:
            db.session.remove()


def _heartbeat(app: Flask, holder: str) -> None:
    from membership.ops.heartbeat import beat

    with app.app_context():
        try:
            beat(db.session, holder, now=wallclock())
        except Exception:  # the database is away: /healthz will say so; the next beat retries
            log.exception("could not record the scheduler's heartbeat")
            db.session.rollback()
        finally:
            db.session.remove()


def _stopped(app: Flask, holder: str) -> None:
    """A clean stop: release this process's leases and take its heartbeat away."""
    from membership.ops.heartbeat import stop

    with app.app_context():
        try:
            release_all(db.session, holder)
            stop(db.session, holder)
        finally:
            db.session.remove()


def _refuse_in_web_worker() -> None:
    # gunicorn.conf.py marks its processes: a scheduler never runs inside web workers (each
    # worker would run every job; leases make that safe, not sensible).
    if os.environ.get("SAMITI_WEB_SERVER") == "gunicorn":
        raise RuntimeError("the scheduler does not start inside gunicorn; run `flask scheduler run` "
                           "as its own process")


def todays_fire_time(job: Job, zone: ZoneInfo, now: datetime) -> datetime | None:
    """The first firing of a daily job on the local day of `now`."""
    if not job.daily:
        return None
    today = local_date(now, zone)
    midnight = datetime.combine(today, time.min, tzinfo=zone)
    first = job.schedule.trigger(zone).get_next_fire_time(None, midnight)
    if first is None or first.astimezone(zone).date() != today:
        return None
    return first


def build_scheduler(app: Flask, scheduler_cls=None, *, holder: str | None = None):
    """An APScheduler scheduler with every registered job, in the association's zone.

    coalesce: firings missed while a run was still going (or the host slept) collapse into one;
    max_instances=1: a job never overlaps itself in one process; misfire_grace_time per job (see
    Job.grace_seconds). At start, a daily job whose first firing today has passed but which has
    not completed for today runs at once (a scheduler started at 09:00 still sends today's
    reminders)."""
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.background import BackgroundScheduler

    scheduler_cls = scheduler_cls or BackgroundScheduler
    zone = ZoneInfo(app.config["TIMEZONE"])
    holder = holder or make_holder()
    scheduler = scheduler_cls(timezone=zone, executors={"default": ThreadPoolExecutor(max_workers=4)},
                              job_defaults={"coalesce": True, "max_instances": 1})
    scheduler.samiti_holder = holder
    now = utcnow()
    with app.app_context():
        done = dict(db.session.execute(select(JobLease.job_name, JobLease.done_for)).all())
        db.session.remove()
    today = local_date(now, zone)
    # The heartbeat /healthz reads: at start, then every HEARTBEAT_SECONDS (not a Job: no lease,
    # no run record; every scheduler process beats for itself).
    from membership.ops.heartbeat import HEARTBEAT_SECONDS
    scheduler.add_job(_heartbeat, trigger="interval", seconds=HEARTBEAT_SECONDS, next_run_time=now,
                      args=(app, holder), id="samiti:heartbeat", name="heartbeat",
                      misfire_grace_time=HEARTBEAT_SECONDS, coalesce=True, max_instances=1)
    for job in jobs():
        scheduler.add_job(_fire, trigger=job.schedule.trigger(zone), args=(app, job.name, holder), id=job.name,
                          name=job.name, misfire_grace_time=job.grace_seconds, coalesce=True, max_instances=1,
                          replace_existing=True)
        first = todays_fire_time(job, zone, now)
        if first is not None and first <= now and done.get(job.name) != today:
            scheduler.add_job(_fire, trigger="date", run_date=now + timedelta(seconds=2), args=(app, job.name, holder),
                              id=f"{job.name}:catch-up", name=f"{job.name} (catch-up)",
                              misfire_grace_time=job.grace_seconds)
    return scheduler


def _startup(app: Flask) -> None:
    from membership.notifications.reminders import ensure_default_rules

    with app.app_context():
        try:
            created = ensure_default_rules(db.session, local_date(utcnow(), ZoneInfo(app.config["TIMEZONE"])))
            db.session.commit()
            if created:
                log.info("created %d default reminder rules", len(created))
        finally:
            db.session.remove()


def start_in_process(app: Flask):
    """Start a BackgroundScheduler in this process (the development `serve` command) and return
    it; it stops with the process. Call once per process: with Werkzeug's reloader, only in the
    serving child (os.environ.get("WERKZEUG_RUN_MAIN") == "true") or with the reloader off.
    A second scheduler elsewhere is harmless (leases), just wasteful."""
    import atexit

    _refuse_in_web_worker()
    _startup(app)
    scheduler = build_scheduler(app)
    scheduler.start()

    def stop():
        if scheduler.running:
            scheduler.shutdown(wait=True)
        _stopped(app, scheduler.samiti_holder)

    atexit.register(stop)
    scheduler.samiti_stop = stop
    return scheduler


def run_forever(app: Flask, *, echo: Callable[[str], None] = print) -> int:
    """`flask --app wsgi scheduler run`: a BlockingScheduler until SIGTERM or SIGINT, which let
    the running jobs finish, then release this process's leases. Returns the exit code."""
    from apscheduler.schedulers.blocking import BlockingScheduler

    _refuse_in_web_worker()
    _startup(app)
    scheduler = build_scheduler(app, BlockingScheduler)
    holder = scheduler.samiti_holder
    stopper: list[threading.Thread] = []

    def on_signal(signum, frame):
        if stopper:
            return
        echo(f"received {signal.Signals(signum).name}: finishing running jobs, then stopping")
        # shutdown(wait=True) waits for the running jobs; done in a thread so the signal handler
        # returns at once, and joined below before the leases are released
        stopper.append(threading.Thread(target=scheduler.shutdown, kwargs={"wait": True}))
        stopper[0].start()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    echo(f"scheduler {holder} started in {app.config['TIMEZONE']}; jobs: " + ", ".join(j.name for j in jobs()))
    try:
        scheduler.start()  # blocks until shutdown
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if stopper:
            stopper[0].join()
        elif scheduler.running:
            scheduler.shutdown(wait=True)
        _stopped(app, holder)
    echo("scheduler stopped; leases released")
    return 0


def describe_jobs(app: Flask, now: datetime | None = None) -> list[dict[str, Any]]:
    """For `scheduler jobs` and the staff page: name, description, trigger, lease, and the next
    run that will do work (a daily job already done today next runs tomorrow). Reads JobLease,
    so call it in an app context."""
    zone = ZoneInfo(app.config["TIMEZONE"])
    now = now or utcnow()
    today = local_date(now, zone)
    leases = {row.job_name: row for row in db.session.scalars(select(JobLease))}
    rows = []
    for job in jobs():
        trigger = job.schedule.trigger(zone)
        lease = leases.get(job.name)
        done_for = lease.done_for if lease else None
        start = now.astimezone(zone)
        if job.daily and done_for == today:
            start = datetime.combine(today + timedelta(days=1), time.min, tzinfo=zone)
        held = lease is not None and lease.holder and lease.expires_at and lease.expires_at > now
        rows.append({"name": job.name, "description": job.description, "trigger": job.schedule.describe(),
                     "zone": zone.key, "daily": job.daily, "next_run": trigger.get_next_fire_time(None, start),
                     "done_for": done_for, "lease_holder": lease.holder if held else None,
                     "lease_expires_at": lease.expires_at if held else None,
                     "lease_seconds": job.lease_seconds, "misfire_grace_time": job.grace_seconds})
    return rows


__all__ = ["Job", "Daily", "Every", "JobContext", "RunOutcome", "register_job", "jobs", "get_job", "run_job",
           "parse_as_of", "build_scheduler", "start_in_process", "run_forever", "describe_jobs", "acquire_lease",
           "release_lease", "make_holder"]
