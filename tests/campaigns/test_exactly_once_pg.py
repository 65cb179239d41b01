"""Exactly once on PostgreSQL, with real concurrent transactions (threads, one connection each):
Send now clicked twice at the same moment, two schedulers queueing the same campaign at once, and a
scheduler that dies half-way and is restarted. PostgreSQL only (SQLite serialises its writers, so
nothing would race); skipped loudly on SQLite."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from membership.campaigns import services
from membership.campaigns.models import Campaign
from membership.core.errors import Conflict
from membership.core.models import AuditLog
from membership.extensions import db
from membership.notifications.models import OutboxMessage
from tests.conftest import NOW, require_postgres

pytestmark = pytest.mark.postgres


def run_together(app, n, work):
    """Run work(i, session) in n threads, each with its own connection, started at one barrier."""
    engine = db.engine
    barrier = threading.Barrier(n, timeout=20)
    results: list = [None] * n
    errors: list[BaseException] = []

    def worker(i):
        try:
            with app.app_context(), Session(engine) as session:
                barrier.wait()
                results[i] = work(i, session, barrier)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    return results, errors


def campaign_rows(campaign_id):
    db.session.expire_all()
    return list(db.session.scalars(select(OutboxMessage.member_id).where(
        OutboxMessage.source_type == "campaign", OutboxMessage.source_id == campaign_id)))


@pytest.fixture
def many(make_member):
    members = [make_member(marketing_opt_in=True) for _ in range(40)]
    db.session.commit()
    return members


def test_send_now_clicked_twice_at_once_schedules_once(app, many, make_campaign):
    require_postgres("two Send now clicks in concurrent transactions")
    campaign_id = make_campaign().id

    def click(i, session, barrier):
        campaign = session.get(Campaign, campaign_id)
        try:
            services.schedule(session, campaign, send_at=NOW, actor=None, now=NOW)
            session.commit()
            return "scheduled"
        except Conflict:
            session.rollback()
            return "conflict"

    results, errors = run_together(app, 2, click)
    assert not errors, errors
    assert sorted(results) == ["conflict", "scheduled"]
    assert db.session.scalar(select(func.count()).select_from(AuditLog)
                             .where(AuditLog.action == "campaign.schedule")) == 1


def test_two_schedulers_queueing_one_campaign_at_once_queue_each_member_once(app, many, make_campaign):
    require_postgres("two queueing runs in concurrent transactions")
    campaign = make_campaign()
    services.schedule(db.session, campaign, send_at=NOW, actor=None, now=NOW)
    db.session.commit()
    campaign_id = campaign.id

    def sweep(i, session, barrier):
        # both runs read the campaign as due and nothing queued yet, then insert the same keys
        return services.queue_due(session, now=NOW, batch_size=7)

    results, errors = run_together(app, 2, sweep)
    assert not errors, errors
    rows = campaign_rows(campaign_id)
    assert sorted(rows) == sorted(m.id for m in many)  # 40 rows, no member twice
    assert sum(r["queued"] for r in results) == 40
    assert db.session.get(Campaign, campaign_id).status == "sent"


def test_a_scheduler_killed_half_way_and_restarted_sends_each_member_once(app, many, make_campaign, monkeypatch):
    require_postgres("a restarted scheduler run against a concurrent one")
    from membership import scheduler

    campaign = make_campaign()
    services.schedule(db.session, campaign, send_at=NOW, actor=None, now=NOW)
    db.session.commit()
    campaign_id = campaign.id
    monkeypatch.setitem(app.config, "CAMPAIGN_BATCH_SIZE", 10)
    real = services.queue_campaign
    calls = {"n": 0}

    def dying(session, campaign, **kw):
        def on_batch():
            calls["n"] += 1
            kw["on_batch"]()
            if calls["n"] == 2:
                raise RuntimeError("scheduler killed")
        return real(session, campaign, **{**kw, "on_batch": on_batch})

    monkeypatch.setattr(services, "queue_campaign", dying)
    first = scheduler.run_job("send-campaigns", now=NOW)
    assert first.status == "error" and "scheduler killed" in first.error
    assert len(campaign_rows(campaign_id)) == 20  # two batches were committed
    monkeypatch.setattr(services, "queue_campaign", real)

    # the restart runs while a second scheduler (no lease: its lease expired under it) runs too
    monkeypatch.setenv("SAMITI_FAULT_SKIP_LEASE", "1")

    def restart(i, session, barrier):
        return services.queue_due(session, now=NOW + timedelta(minutes=1), batch_size=10)

    results, errors = run_together(app, 2, restart)
    assert not errors, errors
    assert sorted(campaign_rows(campaign_id)) == sorted(m.id for m in many)
    assert db.session.get(Campaign, campaign_id).status == "sent"
    monkeypatch.delenv("SAMITI_FAULT_SKIP_LEASE")
    again = scheduler.run_job("send-campaigns", now=NOW + timedelta(minutes=2))
    assert again.status == "ok" and not again.counts.get("queued")
    assert len(campaign_rows(campaign_id)) == 40
