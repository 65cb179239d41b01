"""`flask backup` / `flask restore`: data written, backed up, changed, restored, back as it was;
on SQLite (online backup API) and on PostgreSQL (pg_dump / pg_restore)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from membership import create_app
from membership.extensions import db
from membership.members.models import Member
from membership.ops import backup as ops


def _app(url: str, tmp_path: Path):
    return create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "x", "INSTANCE_PATH": str(tmp_path / "inst"),
                       "MAIL_URL": "memory://"})


def _members(app) -> dict[str, str]:
    with app.app_context():
        rows = dict(db.session.execute(select(Member.email, Member.last_name)).all())
        db.session.remove()
        return rows


def round_trip(url: str, tmp_path: Path) -> None:
    app = _app(url, tmp_path)
    runner = app.test_cli_runner()
    assert runner.invoke(args=["db", "upgrade"]).exit_code == 0
    from membership.members.services import create_member, validate_member
    from membership.core.time import utcnow
    from datetime import date

    with app.app_context():
        for i in range(3):
            create_member(db.session, validate_member({"first_name": "Rina", "last_name": f"Before{i}",
                                                       "email": f"r{i}@example.org", "joined_on": date(2025, 1, 1)},
                                                      region="BD", today=date(2026, 6, 1)), actor=None, now=utcnow())
        db.session.commit()
        db.session.remove()
    before = _members(app)
    assert len(before) == 3

    file = tmp_path / "out" / "copy.bak"
    done = runner.invoke(args=["backup", str(file)])
    assert done.exit_code == 0, done.output
    assert "Backup written to" in done.output and file.stat().st_size > 0
    assert not list(file.parent.glob("*.partial"))

    with app.app_context():  # the data changes after the backup
        db.session.execute(text("UPDATE member SET last_name = 'After'"))
        create_member(db.session, validate_member({"first_name": "New", "last_name": "One", "email": "new@example.org",
                                                   "joined_on": date(2025, 1, 1)}, region="BD",
                                                  today=date(2026, 6, 1)), actor=None, now=utcnow())
        db.session.commit()
        db.session.remove()
    assert set(_members(app).values()) == {"After", "One"}

    refused = runner.invoke(args=["restore", str(file)], input="n\n")
    assert refused.exit_code != 0 and set(_members(app).values()) == {"After", "One"}

    done = runner.invoke(args=["restore", str(file), "--yes"])
    assert done.exit_code == 0, done.output
    assert _members(app) == before
    with app.app_context():  # the app keeps working on the restored database
        assert db.session.scalar(select(func.count()).select_from(Member)) == 3
        db.session.remove()
        db.engine.dispose()

    # a default name in the instance folder (or BACKUP_DIR)
    done = runner.invoke(args=["backup"])
    assert done.exit_code == 0, done.output
    [made] = list((tmp_path / "inst" / "backups").iterdir())
    assert made.name.startswith("samiti-") and ops.kind_of(made) == make_url(url).get_backend_name()
    with app.app_context():
        db.engine.dispose()


def test_sqlite_backup_and_restore(tmp_path):
    round_trip(f"sqlite:///{tmp_path / 'live.db'}", tmp_path)


def test_restore_refuses_a_file_that_is_not_a_backup(tmp_path):
    url = f"sqlite:///{tmp_path / 'live.db'}"
    app = _app(url, tmp_path)
    runner = app.test_cli_runner()
    assert runner.invoke(args=["db", "upgrade"]).exit_code == 0
    junk = tmp_path / "junk.bak"
    junk.write_text("hello")
    done = runner.invoke(args=["restore", str(junk), "--yes"])
    assert done.exit_code == 1 and "is not a Samiti backup" in done.output
    other = tmp_path / "other.db"
    import sqlite3
    sqlite3.connect(other).execute("CREATE TABLE x (a)").connection.commit()
    done = runner.invoke(args=["restore", str(other), "--yes"])
    assert done.exit_code == 1 and "not a Samiti database" in done.output
    pg_like = tmp_path / "pg.dump"
    pg_like.write_bytes(b"PGDMP" + b"\0" * 20)
    done = runner.invoke(args=["restore", str(pg_like), "--yes"])
    assert done.exit_code == 1 and "is a postgresql backup but DATABASE_URL is a sqlite database" in done.output


def test_missing_postgres_tools_give_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ops.BackupError, match="pg_dump was not found on PATH: install the PostgreSQL client"):
        ops.backup("postgresql+psycopg://u:secret@127.0.0.1/x", tmp_path / "x.dump")
    assert not list(tmp_path.iterdir())


def test_the_password_stays_off_the_command_line():
    conninfo, env = ops._libpq("postgresql+psycopg://samiti:s3cret@db.internal:5433/samiti")
    assert conninfo == "postgresql://samiti@db.internal:5433/samiti" and env["PGPASSWORD"] == "s3cret"


@pytest.fixture
def scratch_postgres_url():
    from tests.conftest import postgres_or_skip

    url = os.environ.get("TEST_DATABASE_URL", "")
    # skipped on the SQLite pass; run (or failed when the server is gone) on .ci/run's PostgreSQL pass
    postgres_or_skip(url, "the PostgreSQL backup and restore test uses pg_dump and pg_restore")
    base = make_url(url)
    target = base.set(database=f"{base.database}_backup")
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    finally:
        admin.dispose()
    yield target.render_as_string(hide_password=False)
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.mark.postgres
def test_postgres_backup_and_restore(scratch_postgres_url, tmp_path):
    round_trip(scratch_postgres_url, tmp_path)
