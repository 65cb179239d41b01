"""`flask --app wsgi scheduler ...`: run the scheduler process, list its jobs, run one job once."""
from __future__ import annotations

from flask_babel import gettext as _
import sys
from zoneinfo import ZoneInfo

import click
from flask import current_app
from flask.cli import AppGroup

from membership.commands.common import require_schema

scheduler_group = AppGroup("scheduler", help="The job scheduler (reminders, status changes, email).")


@scheduler_group.command("run")
def run():
    """Run the scheduler in this process until SIGTERM or SIGINT (production: one such process;
    a second one is harmless). Running jobs finish before it exits."""
    from membership.scheduler import run_forever

    require_schema("job_lease")
    if current_app.config.get("BASE_URL_SOURCE") == "default":
        click.echo(f"Warning: BASE_URL is not set: links in the emails this scheduler sends lead to "
                   f"{current_app.config['BASE_URL']}; set BASE_URL to the address people reach Samiti at.", err=True)
    # The app context pushed for this command is not needed by the jobs (each run has its own).
    sys.exit(run_forever(current_app._get_current_object(), echo=click.echo))


@scheduler_group.command("jobs")
def list_jobs():
    """List the jobs with their triggers and next run time."""
    from membership.scheduler import describe_jobs

    require_schema("job_lease")
    zone = ZoneInfo(current_app.config["TIMEZONE"])
    rows = describe_jobs(current_app)
    width = max(len(r["name"]) for r in rows)
    for row in rows:
        nxt = row["next_run"].astimezone(zone).strftime("%Y-%m-%d %H:%M %Z") if row["next_run"] else "-"
        click.echo(f"{row['name']:<{width}}  {row['trigger']} ({row['zone']})")
        extra = f"; last completed for {row['done_for']:%Y-%m-%d}" if row["done_for"] else ""
        if row["lease_holder"]:
            extra += f"; running now in {row['lease_holder']}"
        click.echo(f"{'':<{width}}  next run: {nxt}{extra}")


@scheduler_group.command("run-job")
@click.argument("name")
@click.option("--now", "as_of", metavar="ISO-DATETIME",
              help="Act as if it were this moment, e.g. 2026-12-01T08:00:00+06:00 "
                   "(without an offset: the association's time zone).")
@click.option("--force", is_flag=True, help="Run a daily job even if it already ran for that local day.")
def run_job_command(name, as_of, force):
    """Run one job once and print what it did. Exit status: 0 done or already done for the day,
    1 the job failed, 2 unknown job or bad --now, 3 another scheduler holds the job's lease."""
    from membership.scheduler import get_job, parse_as_of, run_job

    try:
        get_job(name)
    except KeyError as exc:
        raise click.UsageError(str(exc.args[0])) from None
    now = None
    if as_of:
        try:
            now = parse_as_of(as_of, current_app.config["TIMEZONE"])
        except ValueError:
            raise click.BadParameter(f"{as_of!r} is not an ISO date and time, e.g. 2026-12-01T08:00",
                                     param_hint="--now") from None
    require_schema("job_lease")
    outcome = run_job(name, now=now, force=force)
    zone = ZoneInfo(current_app.config["TIMEZONE"])
    when = outcome.as_of.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")
    day = _(" for %(day)s", day=outcome.run_for.isoformat()) if outcome.run_for else ""
    if outcome.status == "busy":
        click.echo(_("%(job)s: not run, %(note)s", job=name, note=outcome.note), err=True)
        sys.exit(3)
    if outcome.status == "skipped":
        click.echo(_("%(job)s as of %(when)s: nothing to do, %(note)s (use --force to run anyway)", job=name, when=when,
                     note=outcome.note))
        return
    if outcome.status == "error":
        click.echo(_("%(job)s as of %(when)s%(day)s: FAILED: %(error)s", job=name, when=when, day=day,
                     error=outcome.error), err=True)
        sys.exit(1)
    click.echo(_("%(job)s as of %(when)s%(day)s: done (run %(run)s)", job=name, when=when, day=day, run=outcome.run_id))
    if outcome.counts:
        width = max(len(str(k)) for k in outcome.counts)
        for key, value in outcome.counts.items():
            click.echo(f"  {str(key).replace('_', ' '):<{width}}  {value}")
