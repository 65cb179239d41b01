"""Helpers for the scheduler and reminder tests: terms ending on a chosen day, rules, outbox rows,
and running `flask --app wsgi scheduler ...` as real processes."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from membership.core.time import add_months
from membership.extensions import db
from membership.notifications.models import OutboxMessage, ReminderRule
from tests.conftest import NOW
from tests.conftest import postgres_or_skip as check_postgres

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def make_rule(app):
    def make(offset, template_key=None, *, plan=None, effective_from=date(2020, 1, 1), active=True, name=None):
        rule = ReminderRule(name=name or f"rule {offset:+d}", offset_days=offset,
                            plan_id=plan.id if plan else None,
                            template_key=template_key or _template_for(offset), is_active=active,
                            effective_from=effective_from, created_at=NOW)
        db.session.add(rule)
        db.session.flush()
        return rule
    return make


def _template_for(offset: int) -> str:
    return {-30: "renewal_reminder_30", -7: "renewal_reminder_7", 0: "renewal_due_today",
            14: "grace_notice"}.get(offset, "renewal_reminder")


@pytest.fixture
def default_rules(app, make_rule):
    """The four default rules, effective long ago (tests choose their own effective dates)."""
    return {o: make_rule(o) for o in (-30, -7, 0, 14)}


@pytest.fixture
def term_ending(app, make_member, make_plan, make_term):
    """A paid 12-month term that ends on `ends_on` (grace 30 days), for a new member."""
    plans = {}

    def make(ends_on: date, *, member=None, plan=None, **member_kw):
        if plan is None:
            plan = plans.get("default") or plans.setdefault("default", make_plan(fee_minor=0, grace_days=30))
        member = member or make_member(**member_kw)
        starts = add_months(ends_on + timedelta(days=1), -12)
        term = make_term(member, plan, starts_on=starts, today=starts)
        assert term.ends_on == ends_on, (term.starts_on, term.ends_on, ends_on)
        return term
    return make


def at(day: date, hour: int = 8, minute: int = 0, zone: str = "Asia/Dhaka") -> datetime:
    """The UTC moment of `day` at hour:minute in `zone`."""
    return datetime.combine(day, time(hour, minute), tzinfo=ZoneInfo(zone)).astimezone(timezone.utc)


def outbox_rows(**filters) -> list[OutboxMessage]:
    """The renewal reminders in the outbox (joining also queues a welcome email; not counted)."""
    db.session.expire_all()
    query = select(OutboxMessage).where(OutboxMessage.dedupe_key.startswith("reminder:")).order_by(OutboxMessage.id)
    for key, value in filters.items():
        query = query.where(getattr(OutboxMessage, key) == value)
    return list(db.session.scalars(query))


def keys_for(term) -> list[str]:
    return [m.dedupe_key for m in outbox_rows(source_id=term.id)]


# ---------------------------------------------------------------- real processes


def postgres_or_skip(url: str) -> None:
    check_postgres(url, "this exactly-once test runs real scheduler processes against PostgreSQL")


def flask_env(app, **extra) -> dict[str, str]:
    env = dict(os.environ)
    for name in list(env):
        if name.startswith("SAMITI_FAULT_"):
            del env[name]
    env.update({
        "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "SAMITI_INSTANCE_PATH": app.config.get("INSTANCE_PATH") or app.instance_path,
        "SECRET_KEY": "test-secret",
        "TIMEZONE": app.config["TIMEZONE"],
        "ASSOCIATION_NAME": app.config["ASSOCIATION_NAME"],
        "CURRENCY": app.config["CURRENCY"],
        "MAIL_URL": "file://",
        "PYTHONUNBUFFERED": "1",
    })
    env.update({k: str(v) for k, v in extra.items()})
    return env


def flask_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "flask", "--app", "wsgi", *args]


def plain(row) -> SimpleNamespace:
    """A detached copy of a row's columns (reading it later opens no transaction)."""
    return SimpleNamespace(**{c.key: getattr(row, c.key) for c in row.__mapper__.column_attrs})


def end_transaction() -> None:
    """Commit and close the test's transaction. On SQLite every transaction begins IMMEDIATE (it
    takes the write lock), so a test that reads and keeps its transaction open would block the
    scheduler processes it starts."""
    db.session.commit()


def start(app, *args: str, **env) -> subprocess.Popen:
    end_transaction()
    return subprocess.Popen(flask_command(*args), cwd=ROOT, env=flask_env(app, **env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def run(app, *args: str, timeout: float = 120, **env) -> subprocess.CompletedProcess:
    end_transaction()
    return subprocess.run(flask_command(*args), cwd=ROOT, env=flask_env(app, **env), capture_output=True,
                          text=True, timeout=timeout)
