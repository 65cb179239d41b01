"""The one interface every payment provider adapter implements, and the values that cross it.

The domain (checkout, webhooks, refunds, auto-renewal) talks to a provider only through this
interface; each adapter (stripe.py, sslcommerz.py) turns it into the provider's documented HTTP API.
Amounts are integers in the currency's minor unit (paisa, cents), as everywhere in Samiti.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Mapping, Protocol


class ProviderError(Exception):
    """The provider could not be reached, timed out, or refused the request (message for staff/logs)."""


class InvalidNotification(ProviderError):
    """A webhook/IPN whose signature or validation failed: it is not from the provider. Answer 400."""


@dataclass(frozen=True)
class CheckoutRequest:
    """What Samiti asks the provider to collect."""

    reference: str            # Samiti's own id of the checkout (unique, e.g. "chk_123"), echoed back by the provider
    amount_minor: int
    currency: str
    description: str          # shown on the provider's page, e.g. "Renewal: Annual membership 2027"
    customer_email: str
    customer_name: str
    success_url: str
    cancel_url: str
    notify_url: str           # webhook / IPN address (SSLCommerz takes it per request; Stripe's is configured)
    save_card: bool = False   # auto-renewal opt-in: keep the card for later off-session charges


@dataclass(frozen=True)
class CheckoutSession:
    provider: str             # "stripe" | "sslcommerz"
    session_ref: str          # the provider's id of the hosted session
    redirect_url: str         # where to send the payer's browser


@dataclass(frozen=True)
class PaymentNotification:
    """A verified notification that money was (or was not) received."""

    provider: str
    event_ref: str            # the provider's unique id of this notification (dedupe key)
    reference: str            # Samiti's CheckoutRequest.reference
    status: Literal["paid", "failed", "cancelled"]
    amount_minor: int
    currency: str
    payment_ref: str          # the provider's id of the money movement (charge / PaymentIntent / bank_tran_id)
    received_at: datetime
    customer_ref: str | None = None          # saved customer (auto-renewal), if any
    payment_method_ref: str | None = None    # saved card (auto-renewal), if any
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class ChargeResult:
    """The outcome of charging a saved card without the payer present (auto-renewal)."""

    status: Literal["paid", "failed"]
    payment_ref: str | None
    failure_message: str | None = None


@dataclass(frozen=True)
class RefundResult:
    refund_ref: str
    status: Literal["succeeded", "pending", "failed"]


class PaymentProvider(Protocol):
    name: str
    supports_saved_cards: bool

    def start_checkout(self, request: CheckoutRequest) -> CheckoutSession:
        """Create a hosted payment session. Raises ProviderError."""

    def verify_notification(self, headers: Mapping[str, str], body: bytes,
                            form: Mapping[str, str] | None = None) -> PaymentNotification:
        """Check a webhook/IPN (signature or validation call) and read it. Raises InvalidNotification."""

    def charge_saved(self, *, customer_ref: str, payment_method_ref: str, amount_minor: int, currency: str,
                     description: str, idempotency_key: str) -> ChargeResult:
        """Charge a saved card off-session. Raises ProviderError when the provider cannot be reached."""

    def refund(self, *, payment_ref: str, amount_minor: int, currency: str, idempotency_key: str,
               reason: str = "") -> RefundResult:
        """Refund (part of) a payment. Raises ProviderError."""
