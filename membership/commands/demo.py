"""`flask demo` (realistic demo data) and `flask serve` (the one-command start on the embedded default)."""
from __future__ import annotations

import logging
import signal
from datetime import date, datetime, timedelta
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select

from membership.commands.common import require_schema
from membership.core.time import local_midnight_utc, local_today, utcnow
from membership.extensions import db


def _load_demo(count: int, seed: int, today: date | None) -> None:
    """Load the demo into the (empty) database and commit; report what was made."""
    from membership import demo as demo_data

    now = utcnow()
    zone = current_app.config["TIMEZONE"]
    real_today = local_today(now)
    if today is None or today == real_today:
        today, end_at = real_today, now
    else:
        end_at = local_midnight_utc(today, zone) + timedelta(hours=18)
    with click.progressbar(length=demo_data.demo_days(today),
                           label=f"Creating {count} demo members with three years of history") as bar:
        result = demo_data.load_demo(
            db.session, members=count, seed=seed, today=today, end_at=end_at, zone=zone,
            region=current_app.config["PHONE_REGION"], currency=current_app.config["CURRENCY"],
            progress=bar.update)
    # The reminder rules a demo association would have had all along (a fresh install's rules
    # start today): the first reminder run sends what is due in the catch-up window.
    from membership.notifications.reminders import ensure_default_rules
    ensure_default_rules(db.session, today - timedelta(days=demo_data.demo_days(today)))
    db.session.commit()
    statuses = ", ".join(f"{status} {n}" for status, n in result.statuses.items())
    click.echo(f"Demo data: {result.members} members ({statuses}), {result.organizations} organisations, "
               f"{result.terms} terms, {result.payments} payments, {result.interactions} interactions, "
               f"{result.events} events with {result.registrations} registrations.")


def _member_count() -> int:
    from sqlalchemy import func

    from membership.members.models import Member
    return db.session.scalar(select(func.count()).select_from(Member))


@click.command("demo")
@click.option("--members", "count", default=300, show_default=True, type=click.IntRange(20, 20000),
              help="How many members to create.")
@click.option("--seed", default=1, show_default=True, type=int, help="Same seed and day, same data.")
@click.option("--today", "today", type=click.DateTime(formats=["%Y-%m-%d"]),
              help="Build the history up to this day instead of today (YYYY-MM-DD).")
@with_appcontext
def demo(count: int, seed: int, today: datetime | None) -> None:
    """Load realistic demo data into an empty database: members over three years across plans and
    every status, organisations, payments with receipts, interactions, English and Bengali names."""
    from membership import demo as demo_data

    day = today.date() if today else None
    if day is not None and day > local_today():
        raise click.BadParameter("the demo history cannot end in the future.", param_hint="--today")
    require_schema()
    if not demo_data.database_is_empty(db.session):
        n = _member_count()
        raise click.ClickException(
            f"The database already has {n} members or its own plans; demo data goes into an empty database "
            "only (nothing was changed). Use a new DATABASE_URL or instance folder for a demo.")
    _load_demo(count, seed, day)
    click.echo("Start Samiti with `flask --app wsgi serve` to see it and get the demo logins.")


def _print_logins(logins, path: Path) -> None:
    if not logins:
        click.echo("Sign in with your own account.")
        return
    click.echo("Sign in with:")
    width = max(len(login.email) for login in logins)
    for login in logins:
        password = login.password or "(not shown)"
        note = f"   ({login.note})" if login.note else ""
        click.echo(f"  {login.role:<7} {login.email:<{width}}  {password}{note}")
    click.echo(f"(These logins are kept in {path}.)")


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--no-demo", is_flag=True, help="Do not load demo data into an empty database.")
@click.option("--demo-members", default=300, show_default=True, type=click.IntRange(20, 20000),
              help="Size of the demo loaded into an empty database.")
@click.option("--reset-logins", is_flag=True, help="Give the demo logins new passwords.")
@with_appcontext
def serve(host: str, port: int, no_demo: bool, demo_members: int, reset_logins: bool) -> None:
    """Start Samiti on this machine: upgrade the database, load demo data into an empty one, print
    the URL and the demo logins, run the scheduler's jobs in-process (statuses, reminders, email
    delivery to the mail backend), serve until Ctrl-C.

    For development and trials; in production run gunicorn and a separate scheduler process."""
    from flask_migrate import upgrade
    from werkzeug.serving import make_server

    from membership import demo as demo_data
    from membership.accounts.models import User
    from membership.notifications.backends import get_backend
    from membership.scheduler import jobs, run_job, start_in_process

    app = current_app._get_current_object()
    # Take the port first: a port in use fails at once (Werkzeug says so and exits), before any work.
    try:
        server = make_server(host, port, app, threaded=True)
    except OSError as e:
        raise click.ClickException(f"Cannot listen on {host}:{port}: {e.strerror or e}. "
                                   "Use --port to choose another port.")
    from membership.ops.urls import serving_url, warn_text

    here = serving_url(host, server.port)
    if app.config.get("BASE_URL_SOURCE") == "BASE_URL":
        warning = warn_text(app.config["BASE_URL"], host, server.port, proxied=bool(app.config.get("PROXY_FIX")))
        if warning:
            click.echo(warning, err=True)
    else:  # links in emails (the in-process scheduler's too) lead back to this server
        app.config["BASE_URL"], app.config["BASE_URL_SOURCE"] = here, "server"
    try:
        upgrade()
        # Alembic's logging set-up leaves the root logger at WARNING: keep the request log visible.
        logging.getLogger("werkzeug").setLevel(logging.INFO)

        if not no_demo and demo_data.database_is_empty(db.session):
            _load_demo(demo_members, 1, None)

        path = Path(app.instance_path) / demo_data.LOGINS_FILE
        if demo_data.has_demo_data(db.session):
            roles = ("admin", "staff", "member")
        elif "admin" in demo_data.read_logins(path) or db.session.scalar(
                select(User.id).where(User.role == "admin", User.is_active_flag.is_(True)).limit(1)) is None:
            roles = ("admin",)  # a database of one's own, with no way in yet: make the first admin
        else:
            roles = ()
        now = utcnow()
        logins = demo_data.ensure_demo_logins(db.session, path, now=now, reset=reset_logins, roles=roles) \
            if roles else []
        db.session.commit()
        if logins:
            demo_data.write_logins(path, logins, now)
        db.session.remove()

        # Today's statuses now, so the first page shows them; then the scheduler in a thread
        # (its daily jobs already due today catch up a few seconds after start).
        status_run = run_job("status-transitions")
        db.session.remove()
        scheduler = start_in_process(app)
    except BaseException:
        server.server_close()
        raise

    def _stop(signum, frame):
        raise KeyboardInterrupt

    # SIGTERM stops as cleanly as Ctrl-C; SIGINT explicitly too, since a shell starting us in the
    # background may have set it to "ignore". Installed before the URL is printed: whoever acts
    # on that line may stop us at once.
    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        click.echo("")
        click.echo(f"Samiti is running at {here}/")
        _print_logins(logins, path)
        if status_run.status == "ok":
            click.echo(f"Status job: {status_run.counts.get('terms_changed', 0)} term(s) changed today.")
        click.echo(f"Scheduler running in this process ({app.config['TIMEZONE']}): "
                   + ", ".join(job.name for job in jobs()) + ".")
        click.echo(f"Emails go to {get_backend(app).describe()}; their links lead to {app.config['BASE_URL']}/.")
        click.echo("Press Ctrl-C to stop.")
        server.serve_forever()  # returns on Ctrl-C
    except KeyboardInterrupt:
        pass  # stopped before the server loop began
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.server_close()
        scheduler.samiti_stop()
        click.echo("Samiti stopped.")
