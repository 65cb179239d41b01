"""One JSON shape for every error under /api/: {"error": {"code", "message", "details"}}."""
from __future__ import annotations

from flask import jsonify, request
from werkzeug.exceptions import HTTPException

from membership.extensions import db

CODES = {
    400: ("bad_request", "The request could not be understood."),
    401: ("unauthorized", "Send a valid API token in the Authorization header: Bearer <token>."),
    403: ("forbidden", "This token's scopes do not allow this operation."),
    404: ("not_found", "There is nothing at this address."),
    405: ("method_not_allowed", "This action is not allowed here."),
    409: ("conflict", "This conflicts with the current state of the record."),
    413: ("payload_too_large", "The request body is too large."),
    415: ("unsupported_media_type", "Send the body as application/json."),
    422: ("validation_failed", "Some of the data was not valid."),
    429: ("rate_limited", "Too many requests for this token. Wait a little and try again."),
    500: ("server_error", "Something went wrong on our side. Nothing was saved."),
}
ERROR_STATUSES = tuple(c for c in CODES if c != 500)


class ApiError(Exception):
    """Raised by API views and checks; rendered by error_response."""

    def __init__(self, status: int, message: str | None = None, *, code: str | None = None, details=None,
                 headers: dict | None = None):
        super().__init__(message or CODES[status][1])
        self.status = status
        self.code = code or CODES[status][0]
        self.message = message or CODES[status][1]
        self.details = details
        self.headers = headers or {}


def error_response(status: int, message: str | None = None, *, code: str | None = None, details=None,
                   headers: dict | None = None):
    default_code, default_message = CODES.get(status, ("error", "Error"))
    body = {"error": {"code": code or default_code, "message": message or default_message, "details": details}}
    response = jsonify(body)
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    if status == 401:
        response.headers.setdefault("WWW-Authenticate", 'Bearer realm="samiti-api"')
    return response


def handle_api_error(error: ApiError):
    db.session.rollback()
    return error_response(error.status, error.message, code=error.code, details=error.details,
                          headers=error.headers)


def http_error(error: HTTPException):
    """An HTTP error raised by Flask, Werkzeug or Flask-Limiter on an /api/ address."""
    status = getattr(error, "code", 500) or 500
    db.session.rollback()
    headers = {}
    if status == 405 and getattr(error, "valid_methods", None):
        headers["Allow"] = ", ".join(error.valid_methods)
    message = None
    if status == 429:
        message = f"Too many requests for this token ({error.description}). Wait a little and try again."
    return error_response(status if status in CODES else 500, message, headers=headers)


def install(app) -> None:
    """Errors under /api/ as JSON in the API's shape: put in front of the site's own handlers
    (web.handle_error), which still serve every other address. Routing errors (an unknown
    address, a wrong method) are raised before any blueprint is known, so app-level handlers are
    the only place to catch them."""
    for status in CODES:
        existing = app.error_handler_spec.get(None, {}).get(status, {})
        fallback = next(iter(existing.values()), None)
        app.register_error_handler(status, _api_first(fallback))


def _api_first(fallback):
    def handler(error):
        if request.path.startswith("/api/"):
            return http_error(error)
        if fallback is not None:
            return fallback(error)
        return error
    return handler
