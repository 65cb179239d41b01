"""Helpers shared by the commands."""
from __future__ import annotations

from flask_babel import gettext as _
import click
from sqlalchemy import inspect

from membership.extensions import db


def require_schema(table: str = "member") -> None:
    """Stop with a clear message (not a traceback) when the database has not been migrated."""
    if not inspect(db.session.connection()).has_table(table):
        db.session.rollback()
        raise click.ClickException(_("The database has no tables yet: run `flask --app wsgi db upgrade` first "
                                     "(`flask --app wsgi serve` does it by itself)."))
    db.session.rollback()
