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
    # Bengali pages and emails write numbers, dates and amounts with Bengali digits (১২৩) or Latin ones.
    "BENGALI_DIGITS": ("BENGALI_DIGITS", True, lambda v: v.lower() in {"1", "true", "yes"}),
    "PHONE_REGION": ("PHONE_REGION", "BD", str),
    # The association's own country (two letters), first in country lists; empty: PHONE_REGION.
    "COUNTRY": ("COUNTRY", "", str),
    "MAIL_URL": ("MAIL_URL", "file://", str),
    # Empty: "<ASSOCIATION_NAME> <no-reply@<BASE_URL's host, or samiti.localhost>>".
    "MAIL_FROM": ("MAIL_FROM", "", str),
    # The site's public address, for links in emails. Unset: the address this process serves on
    # (`serve --port`, gunicorn's bind; see membership.ops.urls), else http://127.0.0.1:5000.
    "BASE_URL": ("BASE_URL", None, str),
    "RATELIMIT_STORAGE_URI": ("RATELIMIT_STORAGE_URI", "memory://", str),
    # Prefix of the limiter's keys in that store (several Samitis sharing one Redis).
    "RATELIMIT_KEY_PREFIX": ("RATELIMIT_KEY_PREFIX", "samiti", str),
    "SESSION_COOKIE_SECURE": ("SESSION_COOKIE_SECURE", False, lambda v: v.lower() in {"1", "true", "yes"}),
    # Shown in the member portal (and in emails) to members whose membership waits for payment.
    "PAYMENT_INSTRUCTIONS": ("PAYMENT_INSTRUCTIONS",
                             "Pay by bank transfer or in cash at our office, and quote your member number. "
                             "Your membership becomes active as soon as we record your payment.", str),
    # Shown with a paid event's registration while the fee is due.
    "EVENT_PAYMENT_INSTRUCTIONS": ("EVENT_PAYMENT_INSTRUCTIONS",
                                   "Pay by bank transfer or in cash at our office before the event, quoting the "
                                   "event and your name, or pay at the door.", str),
    # Online payments (membership.payments; README "Online payments"). A provider is offered only
    # when its keys are set; with none, online payment is simply not offered.
    "STRIPE_SECRET_KEY": ("STRIPE_SECRET_KEY", "", str),
    "STRIPE_WEBHOOK_SECRET": ("STRIPE_WEBHOOK_SECRET", "", str),
    "STRIPE_API_BASE": ("STRIPE_API_BASE", "https://api.stripe.com", str),
    "SSLCOMMERZ_STORE_ID": ("SSLCOMMERZ_STORE_ID", "", str),
    "SSLCOMMERZ_STORE_PASSWORD": ("SSLCOMMERZ_STORE_PASSWORD", "", str),
    # https://securepay.sslcommerz.com for live payments
    "SSLCOMMERZ_API_BASE": ("SSLCOMMERZ_API_BASE", "https://sandbox.sslcommerz.com", str),
    # How far back a missed reminder is still sent (a scheduler down for a week catches up).
    "REMINDER_CATCH_UP_DAYS": ("REMINDER_CATCH_UP_DAYS", 7, int),
    "SCHEDULER_KEEP_RUNS_DAYS": ("SCHEDULER_KEEP_RUNS_DAYS", 60, int),
    # Auto-renewal by card: the notice ("we will charge your card on ...") goes this many days before the charge.
    "AUTO_RENEW_NOTICE_DAYS": ("AUTO_RENEW_NOTICE_DAYS", 7, int),
    # Churn for associations without terms: a member has churned after this many days without activity (0: churn means not renewing a term).
    "CHURN_INACTIVE_DAYS": ("CHURN_INACTIVE_DAYS", 0, int),
    # Rate limits (Flask-Limiter syntax) on the public join form and on emailed-link requests.
    "LOGIN_LIMIT_PER_ADDRESS": ("LOGIN_LIMIT_PER_ADDRESS", "20 per 10 minutes", str),
    "LOGIN_LIMIT_PER_ACCOUNT": ("LOGIN_LIMIT_PER_ACCOUNT", "5 per 10 minutes", str),
    "JOIN_LIMIT_PER_ADDRESS": ("JOIN_LIMIT_PER_ADDRESS", "10 per hour", str),
    "EMAIL_LINK_LIMIT": ("EMAIL_LINK_LIMIT", "5 per hour", str),
    "IMPORT_MAX_BYTES": ("IMPORT_MAX_BYTES", 20 * 1024 * 1024, int),
    # Campaign emails handed to the mail server per minute (the outbox spreads a campaign out).
    "CAMPAIGN_RATE_PER_MINUTE": ("CAMPAIGN_RATE_PER_MINUTE", 300, int),
    "API_RATE_LIMIT": ("API_RATE_LIMIT", "300 per minute", str),  # per API token (Flask-Limiter syntax)
    # Behind a reverse proxy that sets X-Forwarded-For/-Proto (one hop).
    "PROXY_FIX": ("PROXY_FIX", False, lambda v: v.lower() in {"1", "true", "yes"}),
    # Operations (membership.ops): "text" or "json" log lines (with the request id either way).
    "LOG_FORMAT": ("LOG_FORMAT", "text", lambda v: v.strip().lower()),
    "LOG_LEVEL": ("LOG_LEVEL", "INFO", lambda v: v.strip().upper()),
    # /healthz answers 503 when no scheduler process has recorded a heartbeat for this long
    # (seconds); 0 leaves the scheduler out of the health check.
    "HEALTH_SCHEDULER_MAX_AGE": ("HEALTH_SCHEDULER_MAX_AGE", 300, int),
    # Where `flask backup` writes when given no file (default: <instance>/backups).
    "BACKUP_DIR": ("BACKUP_DIR", None, str),
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
    explicit_base = bool(os.environ.get("BASE_URL")) or bool((overrides or {}).get("BASE_URL"))
    cfg.update(overrides or {})
    _settle_base_url(cfg, explicit_base)
    if cfg["LOG_FORMAT"] not in ("text", "json"):
        raise ConfigError(f"LOG_FORMAT={cfg['LOG_FORMAT']!r} is not a log format; use text or json.")

    if not cfg.get("SQLALCHEMY_DATABASE_URI"):
        cfg["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{instance / 'samiti.db'}"
    cfg["SQLALCHEMY_DATABASE_URI"] = _normalise_db_url(cfg["SQLALCHEMY_DATABASE_URI"])
    if not cfg.get("SECRET_KEY"):
        cfg["SECRET_KEY"] = _instance_secret(instance / "secret_key")
    if not cfg.get("MAIL_FROM"):
        cfg["MAIL_FROM"] = default_mail_from(cfg["ASSOCIATION_NAME"], cfg.get("BASE_URL") or "")
    _check_timezone(cfg["TIMEZONE"])  # fail at start-up, not on the first page, for a bad zone name
    cfg["CURRENCY"] = _check_currency(cfg["CURRENCY"])
    # The remember-me cookie gets the same protection as the session cookie.
    cfg.setdefault("REMEMBER_COOKIE_SECURE", cfg["SESSION_COOKIE_SECURE"])
    cfg.setdefault("REMEMBER_COOKIE_SAMESITE", cfg["SESSION_COOKIE_SAMESITE"])


DEFAULT_BASE_URL = "http://127.0.0.1:5000"


def _settle_base_url(cfg, explicit: bool) -> None:
    """BASE_URL as set; else the serving address a server put in SAMITI_SERVER_URL (gunicorn.conf.py
    does, for its workers); else the default. BASE_URL_SOURCE says which ("BASE_URL", "server",
    "default"), so `serve` and gunicorn know whether they may replace it with their own address."""
    if explicit:
        cfg["BASE_URL"], cfg["BASE_URL_SOURCE"] = str(cfg["BASE_URL"]).rstrip("/"), "BASE_URL"
    elif os.environ.get("SAMITI_SERVER_URL"):
        cfg["BASE_URL"], cfg["BASE_URL_SOURCE"] = os.environ["SAMITI_SERVER_URL"].rstrip("/"), "server"
    else:
        cfg["BASE_URL"], cfg["BASE_URL_SOURCE"] = DEFAULT_BASE_URL, "default"


def default_mail_from(association: str, base_url: str) -> str:
    """The sender when MAIL_FROM is not set: the association's name, at no-reply on the site's
    host ("Dhaka Traders <no-reply@members.example.org>"); samiti.localhost for an IP address
    or localhost, which no mail server accepts as a domain."""
    from urllib.parse import urlsplit

    host = (urlsplit(base_url).hostname or "").lower()
    if not host or host == "localhost" or "." not in host or host.replace(".", "").isdigit() or ":" in host:
        host = "samiti.localhost"
    name = " ".join((association or "Samiti").split())
    if any(c in '()<>@,;:\\".[]' for c in name):
        name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{name} <no-reply@{host}>"


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
