"""GET /healthz: is this process able to serve, and is a scheduler alive?

JSON, no sign-in, no rate limit, no session cookie. 200 when the database answers `SELECT 1` and
a scheduler process has beaten within HEALTH_SCHEDULER_MAX_AGE seconds (0: not checked); 503
otherwise, with what failed. For load balancers and uptime monitors."""
from __future__ import annotations

import logging
from datetime import timedelta

from flask import Blueprint, Flask, current_app, jsonify
from sqlalchemy import text

from membership.core.time import utcnow
from membership.extensions import db, limiter

log = logging.getLogger("samiti.health")
bp = Blueprint("ops", __name__)


def check(session, *, now, max_age: int) -> tuple[bool, dict]:
    """The health report: (healthy, details). Never raises."""
    from membership.ops.heartbeat import latest_beat

    report: dict = {"database": {"ok": False}, "scheduler": {"ok": True, "checked": max_age > 0}}
    try:
        session.execute(text("SELECT 1"))
        report["database"] = {"ok": True}
    except Exception as exc:  # the database is down or unreachable: report it, do not 500
        session.rollback()
        report["database"] = {"ok": False, "error": type(exc).__name__}
        log.warning("health check: database unreachable: %s", exc)
    if max_age > 0:
        if not report["database"]["ok"]:
            report["scheduler"] = {"ok": False, "checked": True, "error": "database unreachable"}
        else:
            try:
                latest, count = latest_beat(session)
            except Exception as exc:  # e.g. the table is missing: the schema is not upgraded
                session.rollback()
                report["scheduler"] = {"ok": False, "checked": True, "error": type(exc).__name__}
            else:
                age = (now - latest).total_seconds() if latest else None
                fresh = latest is not None and now - latest <= timedelta(seconds=max_age)
                report["scheduler"] = {"ok": fresh, "checked": True, "processes": count,
                                       "last_beat": latest.isoformat() if latest else None,
                                       "age_seconds": round(age, 1) if age is not None else None,
                                       "max_age_seconds": max_age}
                if not fresh:
                    report["scheduler"]["error"] = ("no scheduler has ever run" if latest is None
                                                    else "heartbeat stale")
    healthy = report["database"]["ok"] and report["scheduler"]["ok"]
    return healthy, {"status": "ok" if healthy else "unhealthy", **report}


@bp.get("/healthz")
@limiter.exempt
def healthz():
    healthy, report = check(db.session, now=utcnow(), max_age=int(current_app.config["HEALTH_SCHEDULER_MAX_AGE"]))
    response = jsonify(report)
    response.status_code = 200 if healthy else 503
    response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
