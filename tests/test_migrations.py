"""The migrations are the schema: they build an empty database up to head, agree with the models
(no pending autogenerate change), and go down to base and up again.

SQLite always; PostgreSQL when TEST_DATABASE_URL points at one (the test uses a sibling database,
"<name>_mig", which it creates, empties and drops, so the suite's own schema is left alone).
"""
from __future__ import annotations

import os
import pprint

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect, make_url, text

from membership import ROOT, create_app
from membership.extensions import db

# migrations/env.py (Flask-Migrate's template) calls db.get_engine() first, which Flask-SQLAlchemy 3.1
# deprecates; harmless, and the lead owns env.py (the fix: use `...extensions['migrate'].db.engine`).
pytestmark = pytest.mark.filterwarnings("ignore:'get_engine' is deprecated:DeprecationWarning")


def migration_app(url: str, tmp_path):
    return create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "test",
                       "INSTANCE_PATH": str(tmp_path / "instance")})


def head_revisions(app) -> set[str]:
    config = app.extensions["migrate"].migrate.get_config(str(ROOT / "migrations"))
    return set(ScriptDirectory.from_config(config).get_heads())


def pending_changes(app) -> list:
    """What `flask db migrate` would write: the autogenerate comparison with env.py's options."""
    options = dict(app.extensions["migrate"].configure_args)
    options.pop("process_revision_directives", None)
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={**options, "target_metadata": db.metadata})
        return compare_metadata(context, db.metadata)


def current_revisions() -> set[str]:
    with db.engine.connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads())


def app_tables() -> set[str]:
    db.engine.dispose()
    from membership.members.search_index import SQLITE_OBJECTS
    return set(inspect(db.engine).get_table_names()) - {"alembic_version"} - SQLITE_OBJECTS


def check_round_trip(app) -> None:
    with app.app_context():
        try:
            _round_trip(app)
        finally:  # no connection left open, whatever failed
            db.session.remove()
            db.engine.dispose()


def _round_trip(app) -> None:
    model_tables = set(db.metadata.tables)
    heads = head_revisions(app)
    assert len(heads) == 1, f"the migrations have several heads, merge them: {heads}"
    assert app_tables() == set(), "the database is not empty"

    result = app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert current_revisions() == heads
    missing = model_tables - app_tables()
    assert not missing, f"tables in the models but not in the migrations: {sorted(missing)}"
    assert app_tables() == model_tables
    changes = pending_changes(app)
    assert changes == [], ("models and migrations differ; run `flask --app wsgi db migrate`:\n"
                           + pprint.pformat(changes))

    downgrade(directory=str(ROOT / "migrations"), revision="base")
    assert current_revisions() == set()
    assert app_tables() == set(), "downgrade to base left tables behind"

    upgrade(directory=str(ROOT / "migrations"))
    assert current_revisions() == heads
    assert pending_changes(app) == []
    # The rebuilt schema works: a row goes in and comes out.
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO counter (name, value) VALUES ('smoke', 1)"))
        assert conn.execute(text("SELECT value FROM counter WHERE name = 'smoke'")).scalar() == 1


def test_sqlite_upgrade_agrees_with_the_models_and_round_trips(tmp_path):
    app = migration_app(f"sqlite:///{tmp_path / 'migrated.db'}", tmp_path)
    check_round_trip(app)


@pytest.fixture
def empty_postgres_url():
    url = os.environ.get("TEST_DATABASE_URL", "")
    if not url.startswith("postgresql"):
        pytest.skip("POSTGRES MIGRATION TEST SKIPPED: set TEST_DATABASE_URL=postgresql+psycopg://... to upgrade "
                    "an empty PostgreSQL database")
    base = make_url(url)
    target = base.set(database=f"{base.database}_mig")
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                                  {"n": target.database}).scalar()
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    finally:
        admin.dispose()
    engine = create_engine(target)
    try:
        with engine.begin() as conn:  # empty, whatever an earlier run left
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()
    yield target.render_as_string(hide_password=False)
    # dropped afterwards, so no database is left behind (CI makes a new one per run)
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
    finally:
        admin.dispose()


def test_postgres_upgrade_agrees_with_the_models_and_round_trips(empty_postgres_url, tmp_path):
    app = migration_app(empty_postgres_url, tmp_path)
    check_round_trip(app)


def test_every_migration_can_be_undone():
    """A downgrade that only says `pass` would let "downgrade to base" pass while leaving tables."""
    for path in (ROOT / "migrations" / "versions").glob("*.py"):
        source = path.read_text("utf-8")
        body = source.split("def downgrade():", 1)[1]
        assert "op." in body, f"{path.name} has an empty downgrade()"
