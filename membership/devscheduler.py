"""The development command's in-process scheduler: one job, the daily status sweep.

Only `flask serve` (the embedded, single-process default) starts this. It is deliberately
minimal: the real scheduler (its own process, job leases, an outbox) comes with a later issue
and replaces it. Never start it inside gunicorn workers: each worker would run the job.
"""
from __future__ import annotations

import logging

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from flask import Flask

log = logging.getLogger(__name__)

JOB_ID = "dev-status-transitions"


def run_status_transitions(app: Flask) -> dict[str, int]:
    """Apply today's status transitions (expired overrides, terms that start, end or lapse) in
    one transaction: commits on success, rolls back and re-raises on failure."""
    from membership.core.time import local_today, utcnow
    from membership.extensions import db
    from membership.plans.services import apply_status_transitions

    with app.app_context():
        now = utcnow()
        try:
            counts = apply_status_transitions(db.session, today=local_today(now), now=now)
            db.session.commit()
        except Exception:
            db.session.rollback()
            log.exception("status transitions failed")
            raise
        finally:
            db.session.remove()
    log.info("status transitions: %s", counts)
    return counts


def start_dev_scheduler(app: Flask) -> BackgroundScheduler:
    """Start a background thread that runs the status sweep daily at 00:05 in the association's
    time zone. A start missed by up to 12 hours (a sleeping laptop) still runs once."""
    scheduler = BackgroundScheduler(timezone=app.config["TIMEZONE"], daemon=True)
    scheduler.add_job(run_status_transitions, CronTrigger(hour=0, minute=5, timezone=app.config["TIMEZONE"]),
                      args=[app], id=JOB_ID, name="Daily membership status transitions",
                      coalesce=True, misfire_grace_time=12 * 3600, max_instances=1)
    scheduler.start()
    return scheduler
