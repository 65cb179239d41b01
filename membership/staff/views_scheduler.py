"""Staff: the scheduler's jobs, when they run next, and what their runs did."""
from __future__ import annotations

from datetime import timedelta

from flask import current_app, render_template, request
from flask_babel import gettext as _, ngettext
from sqlalchemy import func, select

from membership.core.time import utcnow
from membership.extensions import db
from membership.notifications.models import JobRun
from membership.scheduler import describe_jobs, jobs
from membership.staff import bp

RUNS_PER_PAGE = 50
RUN_STATUSES = ("running", "ok", "error", "skipped")


def _last_runs(names: list[str]) -> dict[str, JobRun]:
    """The latest run of each job (one grouped query, then the rows)."""
    latest = select(JobRun.job_name, func.max(JobRun.id).label("id")).where(JobRun.job_name.in_(names)) \
        .group_by(JobRun.job_name).subquery()
    rows = db.session.scalars(select(JobRun).join(latest, JobRun.id == latest.c.id)).all()
    return {r.job_name: r for r in rows}


def _last_ok_and_error(names: list[str]) -> tuple[dict[str, JobRun], dict[str, JobRun]]:
    found = []
    for status in ("ok", "error"):
        latest = select(JobRun.job_name, func.max(JobRun.id).label("id")) \
            .where(JobRun.job_name.in_(names), JobRun.status == status).group_by(JobRun.job_name).subquery()
        rows = db.session.scalars(select(JobRun).join(latest, JobRun.id == latest.c.id)).all()
        found.append({r.job_name: r for r in rows})
    return found[0], found[1]


@bp.get("/scheduler")
def scheduler():
    now = utcnow()
    described = describe_jobs(current_app, now)
    names = [j["name"] for j in described]
    last = _last_runs(names)
    last_ok, last_error = _last_ok_and_error(names)
    by_name = {j.name: j for j in jobs()}
    for row in described:
        job = by_name[row["name"]]
        # An interval job runs about every interval after the scheduler started; its next run is
        # best told from its last one (the scheduler is another process).
        if not job.daily and row["name"] in last:
            row["next_run"] = max(last[row["name"]].started_at + timedelta(seconds=job.schedule.seconds), now)
        ok = last_ok.get(row["name"])
        row["stale"] = bool(not job.daily and (ok is None or ok.started_at < now - timedelta(minutes=10)))

    job_filter = request.args.get("job", "")
    status_filter = request.args.get("status", "")
    query = select(JobRun)
    if job_filter in names:
        query = query.where(JobRun.job_name == job_filter)
    else:
        job_filter = ""
    if status_filter in RUN_STATUSES:
        query = query.where(JobRun.status == status_filter)
    else:
        status_filter = ""
    page = db.paginate(query.order_by(JobRun.id.desc()), per_page=RUNS_PER_PAGE, error_out=False)
    return render_template("staff/scheduler/index.html", jobs=described, last=last, last_ok=last_ok,
                           last_error=last_error, page=page, job_filter=job_filter,
                           status_filter=status_filter, statuses=RUN_STATUSES, now=now,
                           args={"job": job_filter, "status": status_filter})


@bp.app_template_filter("run_counts")
def run_counts(counts: dict | None) -> str:
    """'queued 12 · already sent 3', leaving out zeros; 'nothing to do' when all are zero."""
    if not counts:
        return ""
    if set(counts) == {"idle_runs"}:
        n = counts["idle_runs"]
        return _("nothing to do") + (" · " + ngettext("%(num)s run", "%(num)s runs", n) if n != 1 else "")
    parts = [f"{str(k).replace('_', ' ')} {v}" for k, v in counts.items() if v not in (0, None, "", False)]
    return " · ".join(parts) if parts else _("nothing to do")


@bp.app_template_filter("duration")
def duration(run: JobRun) -> str:
    if run.finished_at is None or run.started_at is None or (run.counts or {}).get("idle_runs", 1) != 1:
        return ""
    seconds = (run.finished_at - run.started_at).total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"
