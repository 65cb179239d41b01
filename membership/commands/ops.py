"""`flask backup` and `flask restore`: a copy of the database, and putting one back."""
from __future__ import annotations

from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from membership.extensions import db


def _url() -> str:
    return current_app.config["SQLALCHEMY_DATABASE_URI"]


@click.command("backup")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@with_appcontext
def backup(file: Path | None) -> None:
    """Back up the database to FILE (default: BACKUP_DIR or <instance>/backups, named by the time).
    SQLite: an online copy (the app may keep running); PostgreSQL: pg_dump -Fc."""
    from membership.core.time import utcnow
    from membership.ops import backup as ops

    if file is None:
        directory = Path(current_app.config.get("BACKUP_DIR") or Path(current_app.instance_path) / "backups")
        file = ops.default_file(directory, _url(), utcnow())
    try:
        written = ops.backup(_url(), file)
    except ops.BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Backup written to {written} ({written.stat().st_size:,} bytes).")


@click.command("restore")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_appcontext
def restore(file: Path, yes: bool) -> None:
    """Replace the database with the backup FILE (made by `flask backup`). Stop the web server and
    the scheduler first; run `flask db upgrade` after restoring a backup from an older version."""
    from membership.ops import backup as ops

    shown = db.engine.url.render_as_string(hide_password=True)
    if not yes:
        click.confirm(f"Replace everything in {shown} with {file}?", abort=True)
    db.session.remove()
    db.engine.dispose()  # no connection of ours holds the database while it is replaced
    try:
        ops.restore(_url(), file)
    except ops.BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Restored {shown} from {file}.")
