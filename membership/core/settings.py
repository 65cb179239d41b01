"""The association's settings as one value that the edges pass into the domain.

Domain functions do not read `current_app.config`: a view, a job or a CLI command calls
`current_settings()` once and passes the `Settings` (or the one value a function needs, such as
`settings.timezone`) down, so the domain can be called, and tested, with any settings and without
an application context.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Settings:
    """What the domain needs to know about the association and this installation."""

    association_name: str = "Samiti Demo Association"
    association_address: str = ""
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Dhaka"))
    currency: str = "BDT"
    locale: str = "en_GB"
    default_language: str = "en"
    bengali_digits: bool = True
    phone_region: str = "BD"
    country: str = ""
    base_url: str = "http://127.0.0.1:5000"
    mail_from: str = ""
    secret_key: str = ""
    payment_instructions: str = ""
    event_payment_instructions: str = ""
    # Online payments (membership.payments): a provider is offered only when its settings are set.
    stripe_secret_key: str = field(default="", repr=False)
    stripe_webhook_secret: str = field(default="", repr=False)
    stripe_api_base: str = "https://api.stripe.com"
    sslcommerz_store_id: str = ""
    sslcommerz_store_password: str = field(default="", repr=False)
    sslcommerz_api_base: str = "https://sandbox.sslcommerz.com"
    auto_renew_notice_days: int = 7   # auto-renewal: the notice goes this many days before the card is charged
    # Everything else, for the rarely needed setting (`settings.get("REMINDER_BATCH_SIZE", 500)`).
    config: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Settings":
        """The settings of an application's config (Flask's `app.config` or any mapping)."""
        return cls(
            association_name=config.get("ASSOCIATION_NAME") or cls.association_name,
            association_address=config.get("ASSOCIATION_ADDRESS") or "",
            timezone=ZoneInfo(config.get("TIMEZONE") or "Asia/Dhaka"),
            currency=config.get("CURRENCY") or "BDT",
            locale=config.get("LOCALE") or "en_GB",
            default_language=config.get("DEFAULT_LANGUAGE") or "en",
            bengali_digits=bool(config.get("BENGALI_DIGITS", True)),
            phone_region=config.get("PHONE_REGION") or "BD",
            country=config.get("COUNTRY") or "",
            base_url=(config.get("BASE_URL") or cls.base_url).rstrip("/"),
            mail_from=config.get("MAIL_FROM") or "",
            secret_key=config.get("SECRET_KEY") or "",
            payment_instructions=config.get("PAYMENT_INSTRUCTIONS") or "",
            event_payment_instructions=config.get("EVENT_PAYMENT_INSTRUCTIONS") or "",
            stripe_secret_key=config.get("STRIPE_SECRET_KEY") or "",
            stripe_webhook_secret=config.get("STRIPE_WEBHOOK_SECRET") or "",
            stripe_api_base=(config.get("STRIPE_API_BASE") or cls.stripe_api_base).rstrip("/"),
            sslcommerz_store_id=config.get("SSLCOMMERZ_STORE_ID") or "",
            sslcommerz_store_password=config.get("SSLCOMMERZ_STORE_PASSWORD") or "",
            sslcommerz_api_base=(config.get("SSLCOMMERZ_API_BASE") or cls.sslcommerz_api_base).rstrip("/"),
            auto_renew_notice_days=int(config.get("AUTO_RENEW_NOTICE_DAYS", 7)),
            config=config,
        )

    def get(self, key: str, default: Any = None) -> Any:
        """A setting without a field of its own, by its config name."""
        return self.config.get(key, default)


def current_settings() -> Settings:
    """The running application's settings. For edges only (views, jobs, CLI commands, templates).

    Built afresh on each call (it is cheap), so a test that changes `app.config` sees the change."""
    from flask import current_app

    return Settings.from_config(current_app.config)
