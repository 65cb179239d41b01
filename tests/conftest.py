"""Fixtures: an app per test on a schema made once per run; factories for the domain.

The suite runs on SQLite by default and on PostgreSQL when TEST_DATABASE_URL is set
(e.g. postgresql+psycopg://postgres@127.0.0.1/samiti_test).
"""
from __future__ import annotations

import itertools
import os
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from membership import create_app
from membership.accounts import services as accounts
from membership.extensions import db

SEQ = itertools.count(1)
PASSWORD = "correct-horse-battery-42"
NOW = datetime(2026, 6, 15, 9, 0, tzinfo=timezone.utc)
TODAY = date(2026, 6, 15)


def database_url(tmp_path_factory) -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"


@pytest.fixture(scope="session")
def db_url(tmp_path_factory):
    """Create the schema once per run (from the models; tests/test_migrations.py proves the
    migrations build the same schema)."""
    url = database_url(tmp_path_factory)
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "test",
                      "INSTANCE_PATH": str(tmp_path_factory.mktemp("instance"))})
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            with db.engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
        else:
            db.drop_all()
        db.create_all()
        db.engine.dispose()
    return url


@pytest.fixture(scope="session", autouse=True)
def _compile_once():
    """Each test gets a fresh app (create_app), which compiles every URL rule's builder (~300
    rules) and every template it renders again: a fifth of the suite's time. The compiled results
    depend only on their source, so the run keeps them: a rule's builder by the rule's parts (it
    calls the rule's own converters through `self`, so one function serves every app), templates
    through Jinja's bytecode cache (keyed by name and a checksum of the source)."""
    from jinja2 import BytecodeCache
    from werkzeug.routing.rules import Rule

    original = getattr(Rule, "_compile_builder", None)
    builders: dict = {}

    def compile_builder(self, append_unknown=True):
        if not (hasattr(self, "_trace") and hasattr(self, "_converters")):
            return original(self, append_unknown)
        key = (self.rule, tuple(self._trace), repr(sorted((self.defaults or {}).items())),
               tuple(sorted((name, type(c).__name__) for name, c in self._converters.items())), append_unknown)
        if key not in builders:
            builders[key] = original(self, append_unknown)
        return builders[key]

    class MemoryBytecodeCache(BytecodeCache):
        def __init__(self):
            self.store: dict[str, bytes] = {}

        def load_bytecode(self, bucket):
            if bucket.key in self.store:
                bucket.bytecode_from_string(self.store[bucket.key])

        def dump_bytecode(self, bucket):
            self.store[bucket.key] = bucket.bytecode_to_string()

    # a private Werkzeug method: should a later Werkzeug drop it, the suite just runs slower
    patched = callable(original)
    if patched:
        Rule._compile_builder = compile_builder
    TEMPLATE_CACHE.append(MemoryBytecodeCache())
    yield
    if patched:
        Rule._compile_builder = original
    TEMPLATE_CACHE.clear()


TEMPLATE_CACHE: list = []


def _empty_all_tables() -> None:
    tables = list(reversed(db.metadata.sorted_tables))
    if db.engine.dialect.name == "postgresql":
        # DELETE is much faster than TRUNCATE on tables this small; then restart the id sequences.
        # All in one round trip (a statement each took ~70 round trips per test).
        statements = [f'DELETE FROM "{t.name}"' for t in tables]
        for t in tables:
            for column in t.primary_key.columns:
                if column.autoincrement is True or (column.autoincrement == "auto" and column.type.python_type is int):
                    statements.append(f"SELECT setval(pg_get_serial_sequence('\"{t.name}\"', '{column.name}'), 1, false)")
        db.session.connection().exec_driver_sql("; ".join(statements))
    else:
        db.session.execute(text("PRAGMA foreign_keys=OFF"))
        for t in tables:
            db.session.execute(t.delete())
    db.session.commit()


@pytest.fixture
def app_config(tmp_path):
    """Override in a test module to change settings."""
    return {}


@pytest.fixture
def app(db_url, tmp_path, app_config, monkeypatch):
    # A fast hash in tests; production uses scrypt (tests/test_security.py checks that).
    monkeypatch.setattr(accounts, "PASSWORD_METHOD", "pbkdf2:sha256:1000")
    config = {
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": db_url,
        "SECRET_KEY": "test-secret",
        "WTF_CSRF_ENABLED": False,
        "RATELIMIT_ENABLED": False,
        "TIMEZONE": "Asia/Dhaka",
        "CURRENCY": "BDT",
        "PHONE_REGION": "BD",
        "ASSOCIATION_NAME": "Test Association",
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "MAIL_URL": "memory://",
        **app_config,
    }
    app = create_app(config)
    if TEMPLATE_CACHE:
        app.jinja_env.bytecode_cache = TEMPLATE_CACHE[0]

    @app.teardown_request
    def _forget_request_cache(exc=None):
        # The test keeps one app context open, so `g` outlives requests: drop what Flask-Login and
        # Flask-WTF cache there, as a real server's fresh context per request would.
        from flask import g
        for name in ("_login_user", "csrf_token", "csrf_valid", "_flask_babel"):
            g.pop(name, None)

    with app.app_context():
        yield app
        db.session.rollback()
        _empty_all_tables()
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def make_user(app):
    def make(role="staff", email=None, password=PASSWORD, name=None, **kw):
        user = accounts.create_user(db.session, email=email or f"user{next(SEQ)}@example.org",
                                    name=name or f"{role.title()} User", role=role, password=password,
                                    actor=None, now=NOW, **kw)
        db.session.commit()
        return user
    return make


@pytest.fixture
def staff_user(make_user):
    return make_user("staff", email="staff@example.org", name="Sam Staff")


@pytest.fixture
def admin_user(make_user):
    return make_user("admin", email="admin@example.org", name="Ada Admin")


def login(client, user_or_email, password=PASSWORD):
    email = getattr(user_or_email, "email", user_or_email)
    return client.post("/login", data={"email": email, "password": password})


@pytest.fixture
def staff_client(client, staff_user):
    response = login(client, staff_user)
    assert response.status_code == 302, response.data
    return client


@pytest.fixture
def admin_client(client, admin_user):
    response = login(client, admin_user)
    assert response.status_code == 302, response.data
    return client


@pytest.fixture
def make_plan(app):
    from membership.plans.models import Plan

    def make(**kw):
        n = next(SEQ)
        values = {"code": f"P{n}", "name": f"Plan {n}", "fee_minor": 5000, "currency": "BDT",
                  "period_kind": "rolling", "period_months": 12, "grace_days": 30, "created_at": NOW}
        values.update(kw)
        plan = Plan(**values)
        db.session.add(plan)
        db.session.flush()
        return plan
    return make


@pytest.fixture
def make_member(app):
    from membership.members.services import create_member, validate_member

    def make(**kw):
        n = next(SEQ)
        data = {"first_name": "Ada", "last_name": f"Lovelace{n}", "email": f"member{n}@example.org",
                "joined_on": date(2024, 1, 1)}
        data.update(kw)
        from membership.core.time import local_today
        today = max(TODAY, local_today())
        member = create_member(db.session, validate_member(data, region="BD", today=today), actor=None, now=NOW)
        db.session.flush()
        return member
    return make


@pytest.fixture
def make_term(app):
    """A paid term for a member: make_term(member, plan, starts_on=..., today=...)."""
    from membership.plans.services import join

    def make(member, plan, *, starts_on=date(2025, 7, 1), today=None, paid=True, **kw):
        from membership.plans.services import PaymentInput
        payment = PaymentInput(amount_minor=plan.fee_minor, method="cash",
                               received_at=NOW) if paid and plan.fee_minor else None
        term = join(db.session, member, plan, today=today or starts_on, now=NOW, actor=None,
                    starts_on=starts_on, payment=payment, **kw)
        db.session.flush()
        return term
    return make


def zone_in_working_hours() -> str:
    """A zone where it is now between 08:10 and 19:50, so the scheduler's start-up catch-up runs
    the reminder job (its first firing, 08:00, has passed) and nothing else fires meanwhile,
    whatever time of day the suite runs."""
    for zone in ("Asia/Dhaka", "Europe/London", "America/New_York", "America/Los_Angeles", "Pacific/Honolulu",
                 "Asia/Tokyo", "Pacific/Auckland", "Europe/Moscow", "America/Sao_Paulo", "Asia/Kolkata"):
        local = datetime.now(ZoneInfo(zone))
        if (8, 10) <= (local.hour, local.minute) <= (19, 50):
            return zone
    raise AssertionError("no zone in working hours")  # pragma: no cover - the list covers every hour


def postgres_or_skip(url: str, why: str) -> None:
    """Skip (loudly) unless `url` is a PostgreSQL database: `why` says what needs it. On an
    unreachable server, skip, or fail under SAMITI_REQUIRE_POSTGRES=1 (.ci/run), so CI cannot pass
    without the PostgreSQL-only tests having run."""
    from sqlalchemy import create_engine

    if not url.startswith("postgresql"):
        # the SQLite pass; .ci/run's PostgreSQL pass runs it (and fails it if the server is gone)
        pytest.skip(f"NEEDS POSTGRESQL: {why}; set TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1/<db> "
                    "to run it")
    try:
        engine = create_engine(url)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # pragma: no cover - depends on the machine
        if os.environ.get("SAMITI_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL at {url} is unreachable and SAMITI_REQUIRE_POSTGRES=1: {exc}")
        pytest.skip(f"NEEDS POSTGRESQL: {url} is unreachable: {exc}")


def require_postgres(why: str):
    """The app's engine when the suite runs on PostgreSQL (TEST_DATABASE_URL), else skip (see
    postgres_or_skip)."""
    postgres_or_skip(os.environ.get("TEST_DATABASE_URL", ""), why)
    return db.engine
