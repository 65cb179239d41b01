"""Flask commands: thin wrappers around the domain functions."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from membership import commands  # noqa: F401  (defines the command groups below)

    for command in commands.COMMANDS:
        app.cli.add_command(command)


def main() -> None:  # `samiti ...` as a shortcut for `flask --app wsgi ...`
    from flask.cli import FlaskGroup

    from membership import create_app

    FlaskGroup(create_app=lambda: create_app())(prog_name="samiti")
