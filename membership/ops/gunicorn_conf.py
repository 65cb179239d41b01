"""gunicorn settings for Samiti (the repository's gunicorn.conf.py is this module; an installed
package uses `gunicorn -c python:membership.ops.gunicorn_conf membership.wsgi:app`).

Environment: BIND (default 127.0.0.1:8000), WEB_CONCURRENCY (workers; default 2 x CPUs + 1, at most
8), GUNICORN_THREADS (1), GUNICORN_TIMEOUT (120 s: a large web import), LOG_FORMAT (text | json).
Each worker imports the app itself (preload off: a fresh database pool per process, and a deploy
restarts cleanly); no worker ever starts the scheduler (`flask scheduler run` is its own process).
The access log carries the request id (the X-Request-ID response header)."""
from __future__ import annotations

import json
import multiprocessing
import os

bind = os.environ.get("BIND", "127.0.0.1:8000").split(",")
workers = int(os.environ.get("WEB_CONCURRENCY") or min(2 * multiprocessing.cpu_count() + 1, 8))
threads = int(os.environ.get("GUNICORN_THREADS") or 1)
timeout = int(os.environ.get("GUNICORN_TIMEOUT") or 120)
graceful_timeout = 30
keepalive = 5
preload_app = False
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms rid=%({x-request-id}o)s "%(a)s"'

# Marks this process tree: the scheduler refuses to start in it (membership.scheduler).
os.environ["SAMITI_WEB_SERVER"] = "gunicorn"

if os.environ.get("LOG_FORMAT", "").strip().lower() == "json":
    from gunicorn.glogging import Logger

    class JsonLogger(Logger):
        """gunicorn's access and error lines as JSON objects, like the app's (LOG_FORMAT=json)."""

        def access(self, resp, req, environ, request_time):
            if not (self.cfg.accesslog or self.cfg.logconfig or self.cfg.logconfig_dict or self.cfg.syslog):
                return
            atoms = self.atoms(resp, req, environ, request_time)
            from datetime import datetime, timezone

            entry = {"time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "level": "INFO", "logger": "gunicorn.access",
                     "request_id": atoms.get("{x-request-id}o") or "-", "remote": atoms["h"],
                     "method": atoms["m"], "path": atoms["U"], "query": atoms["q"], "status": int(atoms["s"]) if str(atoms["s"]).isdigit() else atoms["s"],
                     "bytes": atoms["B"], "duration_ms": request_time.seconds * 1000 + request_time.microseconds // 1000,
                     "user_agent": atoms["a"], "process": os.getpid()}
            try:
                self.access_log.info(json.dumps(entry, ensure_ascii=False))
            except Exception:
                self.exception("could not write the access log line")

        def setup(self, cfg):
            super().setup(cfg)
            import logging

            class _Json(logging.Formatter):
                def format(self, record):
                    if record.name == "gunicorn.access":
                        return record.getMessage()
                    return json.dumps({"time": self.formatTime(record), "level": record.levelname,
                                       "logger": record.name, "message": record.getMessage(),
                                       "request_id": "-", "process": record.process}, ensure_ascii=False)

            for log in (self.error_log, self.access_log):
                for handler in log.handlers:
                    handler.setFormatter(_Json())

    logger_class = JsonLogger


def when_ready(server):
    """Once listening: without BASE_URL, the workers (forked after this) make links on the address
    gunicorn listens on; with BASE_URL, warn when it points elsewhere."""
    from membership.ops.urls import serving_url, warn_text

    address = server.LISTENERS[0].sock.getsockname() if server.LISTENERS else None
    if not address or not isinstance(address, tuple):
        return  # a unix socket: only BASE_URL can say where people reach us
    host, port = address[0], address[1]
    base = os.environ.get("BASE_URL", "").strip()
    proxied = os.environ.get("PROXY_FIX", "").strip().lower() in {"1", "true", "yes"}
    if not base:
        os.environ["SAMITI_SERVER_URL"] = serving_url(host, port)
        server.log.warning("BASE_URL is not set: links in emails from these workers lead to %s; set BASE_URL to "
                           "the public address (the scheduler process needs it too)", os.environ["SAMITI_SERVER_URL"])
        return
    warning = warn_text(base, host, port, proxied=proxied)
    if warning:
        server.log.warning(warning)
