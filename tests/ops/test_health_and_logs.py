"""/healthz (database and scheduler heartbeat), request ids, JSON log lines."""
from __future__ import annotations

import io
import json
import logging
from datetime import timedelta

import pytest
from flask import current_app
from sqlalchemy import select

from membership.core.time import utcnow
from membership.extensions import db
from membership.ops import heartbeat
from membership.ops.logs import JsonFormatter, RequestIdFilter, configure_logging, request_id_from
from membership.ops.models import SchedulerHeartbeat


def test_healthz_is_503_until_a_scheduler_beats_then_200(client):
    response = client.get("/healthz")
    assert response.status_code == 503 and response.is_json
    body = response.get_json()
    assert body["status"] == "unhealthy" and body["database"]["ok"] is True
    assert body["scheduler"] == {"ok": False, "checked": True, "processes": 0, "last_beat": None,
                                 "age_seconds": None, "max_age_seconds": 300, "error": "no scheduler has ever run"}

    heartbeat.beat(db.session, "host:1:abc", now=utcnow() - timedelta(seconds=20))
    body = client.get("/healthz").get_json()
    assert client.get("/healthz").status_code == 200
    assert body["status"] == "ok" and body["scheduler"]["processes"] == 1
    assert 19 <= body["scheduler"]["age_seconds"] < 60


def test_a_stale_heartbeat_is_503(client, app):
    heartbeat.beat(db.session, "host:1:abc", now=utcnow() - timedelta(seconds=301))
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["scheduler"]["error"] == "heartbeat stale"
    app.config["HEALTH_SCHEDULER_MAX_AGE"] = 600
    assert client.get("/healthz").status_code == 200
    app.config["HEALTH_SCHEDULER_MAX_AGE"] = 0  # scheduler left out of the check
    assert client.get("/healthz").get_json()["scheduler"] == {"ok": True, "checked": False}


def test_heartbeat_rows_update_and_go_away_on_a_clean_stop(app):
    now = utcnow()
    heartbeat.beat(db.session, "a:1:x", now=now - timedelta(seconds=60))
    heartbeat.beat(db.session, "a:1:x", now=now)
    heartbeat.beat(db.session, "b:2:y", now=now - timedelta(seconds=30))
    rows = {r.holder: r for r in db.session.scalars(select(SchedulerHeartbeat))}
    assert set(rows) == {"a:1:x", "b:2:y"} and rows["a:1:x"].beat_at == now
    assert rows["a:1:x"].started_at == now - timedelta(seconds=60)
    assert heartbeat.latest_beat(db.session) == (now, 2)
    heartbeat.stop(db.session, "a:1:x")
    assert heartbeat.latest_beat(db.session) == (now - timedelta(seconds=30), 1)
    # a scheduler that died a week ago is forgotten by the next beat of another
    heartbeat.beat(db.session, "c:3:z", now=now + timedelta(days=8))
    assert {r.holder for r in db.session.scalars(select(SchedulerHeartbeat))} == {"c:3:z"}


def test_healthz_says_503_when_the_database_is_down(client, app):
    heartbeat.beat(db.session, "host:1:abc", now=utcnow())
    db.session.remove()
    db.engine.dispose()
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {}
    # point the engine at a database that cannot be opened
    from sqlalchemy import create_engine
    bad = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 2})
    engines = db.engines  # per-app registry of Flask-SQLAlchemy
    good = engines[None]
    engines[None] = bad
    try:
        response = client.get("/healthz")
    finally:
        engines[None] = good
        bad.dispose()
    assert response.status_code == 503
    body = response.get_json()
    assert body["database"]["ok"] is False and body["database"]["error"] == "OperationalError"
    assert body["scheduler"]["ok"] is False


def test_healthz_needs_no_login_sets_no_cookie_and_is_not_rate_limited(db_url, tmp_path):
    from membership import create_app
    # every other route limited to 3 a minute
    app = create_app({"SQLALCHEMY_DATABASE_URI": db_url, "SECRET_KEY": "x", "INSTANCE_PATH": str(tmp_path),
                      "RATELIMIT_ENABLED": True, "RATELIMIT_DEFAULT": "3 per minute",
                      "HEALTH_SCHEDULER_MAX_AGE": 0})
    from membership.extensions import limiter
    try:
        client = app.test_client()
        for _ in range(10):
            response = client.get("/healthz")
            assert response.status_code == 200 and response.get_json()["status"] == "ok"
            assert "Set-Cookie" not in response.headers
        assert response.headers["Cache-Control"] == "no-store"
        assert [client.get("/login").status_code for _ in range(5)][-1] == 429  # the limit is real
    finally:
        # the limiter is one object for every app of the process: take the default limit away again
        limiter.limit_manager.set_default_limits([])
        with app.app_context():
            db.engine.dispose()


def test_request_id_is_echoed_or_made(client):
    given = client.get("/login", headers={"X-Request-ID": "abc-123.x:y"})
    assert given.headers["X-Request-ID"] == "abc-123.x:y"
    made = client.get("/login", headers={"X-Request-ID": "bad id <script>"})
    assert made.headers["X-Request-ID"] != "bad id" and len(made.headers["X-Request-ID"]) == 32
    other = client.get("/login")
    assert other.headers["X-Request-ID"] not in (made.headers["X-Request-ID"], "-")
    assert client.get("/no-such-page").headers["X-Request-ID"]  # error pages too
    assert request_id_from("x" * 129) != "x" * 129 and request_id_from("ok") == "ok"


def test_every_log_line_of_a_request_carries_its_id_in_json(client, app):
    stream = io.StringIO()
    handler = configure_logging("json", "INFO", stream)
    try:
        @app.get("/_log_twice")
        def _log_twice():
            logging.getLogger("samiti.test").info("first %s", "line")
            current_app.logger.warning("second line")
            try:
                raise ValueError("boom")
            except ValueError:
                logging.getLogger("samiti.test").exception("third")
            return "ok"

        client.get("/_log_twice", headers={"X-Request-ID": "req-42"})
        logging.getLogger("samiti.test").info("outside")
    finally:
        logging.getLogger().removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    mine = [entry for entry in lines if entry["request_id"] == "req-42"]
    assert [entry["message"] for entry in mine] == ["first line", "second line", "third"]
    assert mine[1]["level"] == "WARNING" and "ValueError: boom" in mine[2]["exception"]
    assert lines[-1]["message"] == "outside" and lines[-1]["request_id"] == "-"
    assert {"time", "level", "logger", "message", "request_id", "process"} <= set(mine[0])


@pytest.mark.parametrize("value", ["json", "text"])
def test_log_format_setting(value, tmp_path, db_url):
    from membership import create_app
    app = create_app({"SQLALCHEMY_DATABASE_URI": db_url, "SECRET_KEY": "x", "INSTANCE_PATH": str(tmp_path),
                      "LOG_FORMAT": value, "SAMITI_CONFIGURE_LOGGING": True})
    try:
        ours = [h for h in logging.getLogger().handlers if getattr(h, "_samiti", False)]
        assert len(ours) == 1
        assert isinstance(ours[0].formatter, JsonFormatter) == (value == "json")
        assert any(isinstance(f, RequestIdFilter) for f in ours[0].filters)
    finally:
        for h in list(logging.getLogger().handlers):
            if getattr(h, "_samiti", False):
                logging.getLogger().removeHandler(h)
    from membership.config import ConfigError
    with pytest.raises(ConfigError, match="LOG_FORMAT"):
        create_app({"SQLALCHEMY_DATABASE_URI": db_url, "SECRET_KEY": "x", "INSTANCE_PATH": str(tmp_path),
                    "LOG_FORMAT": "xml"})
