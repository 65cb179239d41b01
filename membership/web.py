"""What every web surface shares: login loading, security headers, errors, filters, helpers."""
from __future__ import annotations

import secrets
from datetime import date, datetime
from functools import wraps
from urllib.parse import urlsplit

from flask import Flask, abort, current_app, g, jsonify, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from membership.core.i18n import N_
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from markupsafe import Markup
from werkzeug.routing import IntegerConverter

from membership.accounts.models import User
from membership.core import formats
from membership.core.db import install_sqlite_pragmas
from membership.core.time import as_utc, to_local
from membership.extensions import db, login_manager
from membership.plans.status import STATUS_LABELS


MAX_DB_INT = 2**31 - 1  # PostgreSQL's integer; ids and page numbers never come near it
MAX_PAGE = 1_000_000


class DatabaseIntConverter(IntegerConverter):
    """<int:...> in URLs, limited to what a database integer holds: a larger id is a 404, not an
    overflow error (a 500) in the database driver."""

    def __init__(self, map, *args, **kwargs):
        kwargs.setdefault("max", MAX_DB_INT)
        super().__init__(map, *args, **kwargs)


def init_app(app: Flask) -> None:
    install_sqlite_pragmas()
    # before any blueprint adds its rules
    app.url_map.converters["int"] = DatabaseIntConverter
    login_manager.login_view = "auth.login"
    login_manager.login_message = N_("Please sign in to see that page.")
    login_manager.localize_callback = _  # translated when flashed, in the visitor's language
    login_manager.login_message_category = "info"
    login_manager.session_protection = "basic"
    login_manager.user_loader(load_user)

    if app.config.get("PROXY_FIX"):
        from werkzeug.middleware.proxy_fix import ProxyFix
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)

    @app.before_request
    def _refuse_absurd_page_numbers():
        # ?page=99999999999999999999 would overflow the OFFSET in the database driver
        page = request.args.get("page", "")
        if page.isdigit() and int(page) > MAX_PAGE:
            abort(404)

    @app.before_request
    def _remember_client_address():
        db.session.info["ip"] = request.remote_addr

    @app.before_request
    def _load_the_user_afresh():
        # Flask-Login caches the user in `g`, which lives on the app context. A request that runs
        # inside an outer app context (the test client under the `app` fixture, a CLI or job that
        # dispatches requests) would otherwise keep the user of an earlier request, and another
        # browser's cookie, a logout or a revoked session would not be seen.
        g.pop("_login_user", None)

    app.after_request(security_headers)
    app.context_processor(lambda: {"association_name": current_app.config["ASSOCIATION_NAME"],
                                   "status_labels": STATUS_LABELS, "today_local": _today})
    app.jinja_env.filters.update(money=money, day=format_day, when=format_when, status_label=status_label,
                                status_badge=status_badge, number=formats.number, digits=formats.digits)
    app.jinja_env.globals["form_token"] = lambda: secrets.token_urlsafe(16)

    for code in (400, 403, 404, 405, 409, 413, 422, 429, 500):
        app.register_error_handler(code, handle_error)
    app.register_error_handler(CSRFError, handle_csrf_error)


def _today():
    from membership.core.time import local_today
    return local_today()


def load_user(user_id: str) -> User | None:
    """Flask-Login loader: the id carries the user's session token, so rotating the token (logout,
    password change, deactivation) ends every copy of the session."""
    try:
        raw_id, token = user_id.split(":", 1)
        uid = int(raw_id)
    except (ValueError, AttributeError):
        return None
    user = db.session.get(User, uid)
    if user is None or not user.is_active or not secrets.compare_digest(user.session_token, token):
        return None
    return user


def security_headers(response):
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    if current_app.config.get("SESSION_COOKIE_SECURE"):
        # Served over HTTPS (secure cookies): browsers must not fall back to plain HTTP.
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    if request.endpoint != "static" and current_user.is_authenticated:
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def wants_json() -> bool:
    return request.path.startswith("/api/") or (
        request.accept_mimetypes.best_match(["application/json", "text/html"]) == "application/json")


_MESSAGES = {
    400: _l("The request could not be understood."),
    403: _l("You do not have access to this page."),
    404: _l("This page does not exist."),
    405: _l("This action is not allowed here."),
    409: _l("This conflicts with the current state of the record."),
    413: _l("The upload is too large."),
    422: _l("Some of the data was not valid."),
    429: _l("Too many attempts. Please wait a few minutes and try again."),
    500: _l("Something went wrong on our side. Nothing was saved; please try again."),
}


def handle_error(error):
    code = getattr(error, "code", 500) or 500
    if code == 500:
        db.session.rollback()
    message = str(_MESSAGES.get(code) or _("Error"))
    if wants_json():
        return jsonify(error=message, status=code), code
    return render_template("errors/error.html", code=code, message=message), code


def handle_csrf_error(error):
    message = _("Your form expired or was sent from another site. Please go back, reload the page and try again.")
    if wants_json():
        return jsonify(error=message, status=400), 400
    return render_template("errors/error.html", code=400, message=message), 400


def is_safe_next(target: str | None) -> bool:
    """True for a path on this site (no scheme, no host, no backslash tricks).

    Browsers drop tabs and newlines from URLs ("/\t/evil.com" becomes "//evil.com") and read a
    backslash as a slash, so any whitespace, control character or backslash is refused.
    """
    if not target or not isinstance(target, str) or len(target) > 2000:
        return False
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in target) or "\\" in target:
        return False
    if not target.startswith("/") or target.startswith("//"):
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc


def role_required(*roles: str):
    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.is_authenticated:
                return current_app.login_manager.unauthorized()
            if current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)
        return wrapped
    return decorator


def require_roles(*roles: str):
    """A before_request hook for a whole blueprint: sign-in page for visitors, 403 for other roles."""
    def check():
        if not current_user.is_authenticated:
            return current_app.login_manager.unauthorized()
        if current_user.role not in roles:
            abort(403)
    return check


# ---------------------------------------------------------------- formatting


def money(minor: int | None, currency: str | None = None) -> str:
    """An amount in minor units in the page's language: BDT1,500.00 (en_GB), ১,৫০০.০০৳ (Bengali)."""
    if minor is None:
        return ""
    currency = currency or current_app.config["CURRENCY"]
    return formats.money(minor, currency)


def page_or_last(stmt, *, per_page: int):
    """db.paginate of `stmt` at the request's ?page= (1 for anything that is not a page number);
    a page past the end (the list shrank, or a hand-edited URL) gives the last one."""
    raw = (request.args.get("page") or "").strip()
    page_no = int(raw) if raw.isascii() and raw.isdigit() and 0 < int(raw) <= MAX_PAGE else 1
    page = db.paginate(stmt, page=page_no, per_page=per_page, error_out=False)
    if not page.items and page.total and page_no > page.pages:
        page = db.paginate(stmt, page=page.pages, per_page=per_page, error_out=False)
    return page


def format_day(value: date | None, fmt: str = "%d %b %Y") -> str:
    """A date (a datetime: its local day) in the page's language; `fmt` is a strftime pattern."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = to_local(value)
    return formats.strftime(value, fmt)


def format_when(value: datetime | None, fmt: str = "%d %b %Y %H:%M") -> str:
    if value is None:
        return ""
    return formats.strftime(to_local(as_utc(value)), fmt)


def status_label(status: str | None) -> str:
    """A status word (Active, Grace period, Lapsed...) in the current language: templates and staff
    pages use this (or STATUS_LABELS, whose values are lazy translations)."""
    return str(STATUS_LABELS.get(status or "none", status or ""))


def status_badge(status: str | None) -> Markup:
    colours = {"active": "success", "grace": "warning", "pending": "info", "upcoming": "info",
               "lapsed": "secondary", "cancelled": "dark", "renewed": "light", "none": "light"}
    return Markup('<span class="badge text-bg-{}">{}</span>').format(
        colours.get(status or "none", "light"), status_label(status))


def get_or_404(model, ident):
    obj = db.session.get(model, ident)
    if obj is None:
        abort(404)
    return obj

