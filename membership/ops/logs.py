"""Request ids and log lines.

Every request gets an id: the client's (or proxy's) X-Request-ID when it is sane (1-128 letters,
digits and ._:-), else a new random one. It is echoed in the response's X-Request-ID header (so
gunicorn's access log and the proxy's can show it) and put on every log record emitted while the
request runs (`%(request_id)s`; "-" outside requests). LOG_FORMAT=json writes one JSON object per
line on stderr (time, level, logger, message, request id, exception), for log collectors."""
from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from datetime import datetime, timezone

from flask import Flask, has_request_context, request

HEADER = "X-Request-ID"
_SANE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def request_id_from(value: str | None) -> str:
    """The incoming id when sane, else a fresh one (a client cannot inject lines or odd bytes)."""
    if value and _SANE.fullmatch(value):
        return value
    return uuid.uuid4().hex


def current_request_id() -> str:
    """The id of the request being served (made on first use), "-" outside requests."""
    if not has_request_context():
        return "-"
    # kept in the WSGI environ: one per request, whatever app context the request runs in
    rid = request.environ.get("samiti.request_id")
    if rid is None:
        rid = request.environ["samiti.request_id"] = request_id_from(request.headers.get(HEADER))
    return rid


class RequestIdFilter(logging.Filter):
    """Puts the current request's id on each record (on a handler: every record it writes)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or current_request_id(),
            "process": record.process,
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(fmt: str, level: str = "INFO", stream=None) -> logging.Handler:
    """Send the root logger's records to `stream` (stderr) as text or JSON lines, with request ids.
    Replaces a handler installed here before (create_app runs more than once per process)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_samiti", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler._samiti = True
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(level)
    return handler


def init_app(app: Flask) -> None:
    @app.after_request
    def _echo_request_id(response):
        response.headers[HEADER] = current_request_id()
        return response

    if app.config.get("LOG_FORMAT") == "json" or app.config.get("SAMITI_CONFIGURE_LOGGING"):
        configure_logging(app.config["LOG_FORMAT"], app.config.get("LOG_LEVEL", "INFO"))
        # Flask's own handler would print the same records again, as text
        from flask.logging import default_handler
        app.logger.removeHandler(default_handler)
