"""Operations: the serving address and BASE_URL, the health check, request ids and JSON logs,
the scheduler's heartbeat, backups. `init_app` wires the web parts into the app."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from membership.ops import health, logs

    logs.init_app(app)
    health.init_app(app)
