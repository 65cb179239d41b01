"""Backups of the database and their restore.

SQLite: the sqlite3 online backup API (a consistent copy while the app and the scheduler keep
running; the restore copies pages back the same way). PostgreSQL: `pg_dump -Fc` (a consistent
snapshot, custom format) and `pg_restore --clean --if-exists --single-transaction` (all or nothing).
The PostgreSQL client tools must be installed (same major version as the server or newer)."""
from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import make_url

SQLITE_MAGIC = b"SQLite format 3\x00"
PG_MAGIC = b"PGDMP"


class BackupError(RuntimeError):
    """A backup or restore that cannot be done; the message says why and what to do."""


def default_file(directory: Path, url: str, now: datetime) -> Path:
    suffix = "sqlite3" if make_url(url).get_backend_name() == "sqlite" else "dump"
    return directory / f"samiti-{now:%Y%m%d-%H%M%S}.{suffix}"


def _sqlite_path(url: str) -> str:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up")
    return database


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """The URL for the PostgreSQL tools (no SQLAlchemy driver name; the password in PGPASSWORD,
    not on the command line where `ps` shows it)."""
    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = parsed.password
    from sqlalchemy.engine import URL
    plain = URL.create("postgresql", username=parsed.username, host=parsed.host, port=parsed.port,
                       database=parsed.database, query=parsed.query)
    return plain.render_as_string(hide_password=False), env


def _tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        raise BackupError(f"{name} was not found on PATH: install the PostgreSQL client tools "
                          f"(Debian/Ubuntu: apt-get install postgresql-client, the server's major version or newer)")
    return path


def backup(url: str, target: Path) -> Path:
    """Write a backup of the database at `url` to `target` (made atomically: a .partial file
    renamed when complete). Returns the file."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    backend = make_url(url).get_backend_name()
    try:
        if backend == "sqlite":
            source = sqlite3.connect(f"file:{_sqlite_path(url)}?mode=ro", uri=True)
            try:
                dest = sqlite3.connect(partial)
                try:
                    source.backup(dest)
                finally:
                    dest.close()
            finally:
                source.close()
        elif backend == "postgresql":
            conninfo, env = _libpq(url)
            done = subprocess.run([_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges",
                                   f"--file={partial}", f"--dbname={conninfo}"], env=env, capture_output=True,
                                  text=True)
            if done.returncode != 0:
                raise BackupError(f"pg_dump failed: {done.stderr.strip()}")
        else:
            raise BackupError(f"backups of {backend} databases are not supported (SQLite and PostgreSQL are)")
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return target


def kind_of(path: Path) -> str:
    """"sqlite" or "postgresql" from the file's first bytes."""
    with open(path, "rb") as fh:
        head = fh.read(16)
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    if head.startswith(PG_MAGIC):
        return "postgresql"
    raise BackupError(f"{path} is not a Samiti backup (neither an SQLite file nor a pg_dump custom-format file)")


def restore(url: str, source: Path) -> None:
    """Replace the database at `url` with the backup `source`. Stop the web server and the scheduler
    first: they would write into the database while it is replaced."""
    source = Path(source)
    if not source.is_file():
        raise BackupError(f"{source} does not exist")
    backend = make_url(url).get_backend_name()
    kind = kind_of(source)
    if kind != backend:
        raise BackupError(f"{source} is a {kind} backup but DATABASE_URL is a {backend} database")
    if backend == "sqlite":
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        try:
            tables = {r[0] for r in src.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if "alembic_version" not in tables:
                raise BackupError(f"{source} is an SQLite file but not a Samiti database (no alembic_version)")
            dest = sqlite3.connect(_sqlite_path(url), timeout=30)
            try:
                src.backup(dest)
            finally:
                dest.close()
        finally:
            src.close()
        return
    conninfo, env = _libpq(url)
    done = subprocess.run([_tool("pg_restore"), "--clean", "--if-exists", "--single-transaction", "--no-owner",
                           "--no-privileges", "--exit-on-error", f"--dbname={conninfo}", str(source)],
                          env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise BackupError(f"pg_restore failed (nothing was changed): {done.stderr.strip()}")
