"""The JSON API under /api/v1: token authentication, the same domain functions as the staff portal,
and an OpenAPI 3.1 document generated from the schemas that validate requests."""
from __future__ import annotations

from flask import Blueprint, Flask

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def init_app(app: Flask) -> None:
    """Register the API, its admin pages and its error shape (one call in create_app)."""
    from membership.api import admin_views, errors, views  # noqa: F401  (routes)
    from membership.extensions import csrf

    # Token-authenticated, never cookie-authenticated: no CSRF token to check.
    csrf.exempt(bp)
    app.register_blueprint(bp)
    app.register_blueprint(admin_views.bp)
    errors.install(app)
