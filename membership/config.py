"""Configuration: embedded defaults, overridden from the environment inside create_app."""
from __future__ import annotations

import os
import secrets
import time
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# name of setting -> (environment variable, default, converter)
_ENV = {
    "SQLALCHEMY_DATABASE_URI": ("DATABASE_URL", None, str),
    "SECRET_KEY": ("SECRET_KEY", None, str),
    "TIMEZONE": ("TIMEZONE", "Asia/Dhaka", str),
    "ASSOCIATION_NAME": ("ASSOCIATION_NAME", "Samiti Demo Association", str),
    "ASSOCIATION_ADDRESS": ("ASSOCIATION_ADDRESS", "", str),
    "CURRENCY": ("CURRENCY", "BDT", str),
    "LOCALE": ("LOCALE", "en_GB", str),
    # The language of pages for visitors whose browser asks for none we have, and of emails to
    # people with no language of their own: "en" or "bn".
    "DEFAULT_LANGUAGE": ("DEFAULT_LANGUAGE", "en", str),
    "PHONE_REGION": ("PHONE_REGION", "BD", str),
    "MAIL_URL": ("MAIL_URL", "file://", str),
    "MAIL_FROM": ("MAIL_FROM", "Samiti <no-reply@samiti.localhost>", str),
    "BASE_URL": ("BASE_URL", "http://127.0.0.1:5000", str),
    "RATELIMIT_STORAGE_URI": ("RATELIMIT_STORAGE_URI", "memory://", str),
    "SESSION_COOKIE_SECURE": ("SESSION_COOKIE_SECURE", False, lambda v: v.lower() in {"1", "true", "yes"}),
    # Shown in the member portal (and in emails) to members whose membership waits for payment.
    "PAYMENT_INSTRUCTIONS": ("PAYMENT_INSTRUCTIONS",
                             "Pay by bank transfer or in cash at our office, and quote your member number. "
                             "Your membership becomes active as soon as we record your payment.", str),
    # Shown with a paid event's registration while the fee is due.
    "EVENT_PAYMENT_INSTRUCTIONS": ("EVENT_PAYMENT_INSTRUCTIONS",
                                   "Pay by bank transfer or in cash at our office before the event, quoting the "
                                   "event and your name, or pay at the door.", str),
    # How far back a missed reminder is still sent (a scheduler down for a week catches up).
    "REMINDER_CATCH_UP_DAYS": ("REMINDER_CATCH_UP_DAYS", 7, int),
    "SCHEDULER_KEEP_RUNS_DAYS": ("SCHEDULER_KEEP_RUNS_DAYS", 60, int),
    # Rate limits (Flask-Limiter syntax) on the public join form and on emailed-link requests.
    "LOGIN_LIMIT_PER_ADDRESS": ("LOGIN_LIMIT_PER_ADDRESS", "20 per 10 minutes", str),
    "LOGIN_LIMIT_PER_ACCOUNT": ("LOGIN_LIMIT_PER_ACCOUNT", "5 per 10 minutes", str),
    "JOIN_LIMIT_PER_ADDRESS": ("JOIN_LIMIT_PER_ADDRESS", "10 per hour", str),
    "EMAIL_LINK_LIMIT": ("EMAIL_LINK_LIMIT", "5 per hour", str),
    "IMPORT_MAX_BYTES": ("IMPORT_MAX_BYTES", 20 * 1024 * 1024, int),
    "API_RATE_LIMIT": ("API_RATE_LIMIT", "300 per minute", str),  # per API token (Flask-Limiter syntax)
    # Behind a reverse proxy that sets X-Forwarded-For/-Proto (one hop).
    "PROXY_FIX": ("PROXY_FIX", False, lambda v: v.lower() in {"1", "true", "yes"}),
}


class ConfigError(RuntimeError):
    """A setting that Samiti cannot start with; the message says which and what to do."""


def _normalise_db_url(url: str) -> str:
    # Heroku-style and bare URLs: use the psycopg 3 driver for PostgreSQL.
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def load_config(app, overrides: dict | None = None) -> None:
    """Fill app.config from defaults, the environment and `overrides` (tests), in that order."""
    instance = Path(app.instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    cfg = app.config
    cfg.update(
        SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": True},
        WTF_CSRF_TIME_LIMIT=None,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_HTTPONLY=True,
        PERMANENT_SESSION_LIFETIME=60 * 60 * 12,
        MEMBERS_PER_PAGE=50,
        RATELIMIT_ENABLED=True,
        RATELIMIT_HEADERS_ENABLED=False,
        SCHEDULER_IN_PROCESS=False,
    )
    for key, (env, default, conv) in _ENV.items():
        value = os.environ.get(env)
        cfg[key] = conv(value) if value not in (None, "") else default
    cfg.update(overrides or {})

    if not cfg.get("SQLALCHEMY_DATABASE_URI"):
        cfg["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{instance / 'samiti.db'}"
    cfg["SQLALCHEMY_DATABASE_URI"] = _normalise_db_url(cfg["SQLALCHEMY_DATABASE_URI"])
    if not cfg.get("SECRET_KEY"):
        cfg["SECRET_KEY"] = _instance_secret(instance / "secret_key")
    _check_timezone(cfg["TIMEZONE"])  # fail at start-up, not on the first page, for a bad zone name
    cfg["CURRENCY"] = _check_currency(cfg["CURRENCY"])
    # The remember-me cookie gets the same protection as the session cookie.
    cfg.setdefault("REMEMBER_COOKIE_SECURE", cfg["SESSION_COOKIE_SECURE"])
    cfg.setdefault("REMEMBER_COOKIE_SAMESITE", cfg["SESSION_COOKIE_SAMESITE"])


def _check_timezone(name) -> None:
    try:
        ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ConfigError(f"TIMEZONE={name!r} is not a time zone Samiti knows; use an IANA name such as "
                          f"Asia/Dhaka, Europe/London or America/New_York.") from None


def _check_currency(code) -> str:
    from babel.numbers import is_currency

    code = str(code or "").strip().upper()
    if not is_currency(code):
        raise ConfigError(f"CURRENCY={code!r} is not an ISO 4217 currency code (e.g. BDT, GBP, EUR).")
    return code


def _instance_secret(path: Path) -> str:
    """A random key generated once and kept in the instance folder (never hard-coded)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass  # made earlier, or by another process starting at the same moment
    else:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    for _ in range(50):
        key = path.read_text().strip()
        if key:
            return key
        time.sleep(0.01)
    raise RuntimeError(f"{path} is empty: delete it to generate a new secret key")
