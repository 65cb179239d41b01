"""Stripe Checkout over Stripe's documented HTTP API (form-encoded POSTs with the secret key as a
bearer token), without the stripe SDK.

- checkout: POST /v1/checkout/sessions (mode=payment, one line item with price_data), the payer goes
  to the session's `url`; with save_card, payment_intent_data[setup_future_usage]=off_session and a
  customer is created (customer_creation=always) so that the card can be charged later.
- webhook: the `Stripe-Signature` header is "t=<unix time>,v1=<hex HMAC-SHA256 of '<t>.<raw body>'
  with the endpoint's signing secret>"; a signature older than 300 seconds is refused (replays).
  Events: checkout.session.completed (paid when payment_status is "paid"),
  checkout.session.async_payment_succeeded / async_payment_failed, checkout.session.expired.
- charge_saved: POST /v1/payment_intents (confirm=true, off_session=true) with an Idempotency-Key.
- refund: POST /v1/refunds (payment_intent, amount) with an Idempotency-Key.
Settings: STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET, STRIPE_API_BASE (https://api.stripe.com).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from datetime import datetime, timezone

import requests

from membership.core.settings import Settings
from membership.payments.base import (ChargeResult, CheckoutRequest, CheckoutSession, InvalidNotification,
                                      PaymentNotification, ProviderError, RefundResult)
from membership.payments.errors import IgnoredNotification
from membership.payments.registry import register_adapter

DEFAULT_API_BASE = "https://api.stripe.com"
TIMEOUT = (5, 20)          # connect, read (seconds); the tests shorten it
SIGNATURE_TOLERANCE = 300  # seconds, as Stripe's own libraries


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return ""


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    """The Stripe-Signature header Stripe sends for `payload` (used by the tests' fake Stripe)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


class StripeProvider:
    name = "stripe"
    supports_saved_cards = True

    def __init__(self, secret_key: str, webhook_secret: str, api_base: str = DEFAULT_API_BASE,
                 clock=time.time):
        self.secret_key = secret_key
        self.webhook_secret = webhook_secret
        self.api_base = (api_base or DEFAULT_API_BASE).rstrip("/")
        self.clock = clock

    # ------------------------------------------------------------ HTTP

    def _post(self, path: str, data: dict, *, idempotency_key: str | None = None) -> dict:
        headers = {"Authorization": f"Bearer {self.secret_key}"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        try:
            response = requests.post(self.api_base + path, data=data, headers=headers, timeout=TIMEOUT)
        except requests.Timeout:
            raise ProviderError("Stripe did not answer in time.") from None
        except requests.RequestException as e:
            raise ProviderError(f"Stripe could not be reached ({type(e).__name__}).") from None
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code >= 500:
            raise ProviderError(f"Stripe answered with an error ({response.status_code}).")
        if response.status_code >= 400:
            error = body.get("error") or {}
            raise StripeRequestError(error.get("message") or f"Stripe refused the request ({response.status_code}).",
                                     code=error.get("code"), body=body)
        return body

    # ------------------------------------------------------------ checkout

    def start_checkout(self, request: CheckoutRequest) -> CheckoutSession:
        data = {
            "mode": "payment",
            "line_items[0][quantity]": "1",
            "line_items[0][price_data][currency]": request.currency.lower(),
            "line_items[0][price_data][unit_amount]": str(request.amount_minor),
            "line_items[0][price_data][product_data][name]": request.description[:250],
            "client_reference_id": request.reference,
            "customer_email": request.customer_email,
            "success_url": request.success_url,
            "cancel_url": request.cancel_url,
            "metadata[reference]": request.reference,
            "payment_intent_data[metadata][reference]": request.reference,
        }
        if request.save_card:
            data["payment_intent_data[setup_future_usage]"] = "off_session"
            data["customer_creation"] = "always"
        body = self._post("/v1/checkout/sessions", data, idempotency_key=f"checkout-{request.reference}")
        if not body.get("id") or not body.get("url"):
            raise ProviderError("Stripe's answer had no checkout session.")
        return CheckoutSession(provider=self.name, session_ref=body["id"], redirect_url=body["url"])

    # ------------------------------------------------------------ webhook

    def _check_signature(self, header: str, body: bytes) -> None:
        if not header:
            raise InvalidNotification("No Stripe-Signature header.")
        timestamp, signatures = None, []
        for part in header.split(","):
            key, _sep, value = part.strip().partition("=")
            if key == "t":
                timestamp = value
            elif key == "v1":
                signatures.append(value)
        if not timestamp or not timestamp.isdigit() or not signatures:
            raise InvalidNotification("A Stripe-Signature header without a timestamp or v1 signature.")
        expected = hmac.new(self.webhook_secret.encode(), timestamp.encode() + b"." + body,
                            hashlib.sha256).hexdigest()
        if not any(hmac.compare_digest(expected, s) for s in signatures):
            raise InvalidNotification("The Stripe signature does not match.")
        if abs(self.clock() - int(timestamp)) > SIGNATURE_TOLERANCE:
            raise InvalidNotification("The Stripe signature is too old (outside the 300 s tolerance).")

    def verify_notification(self, headers: Mapping[str, str], body: bytes,
                            form: Mapping[str, str] | None = None) -> PaymentNotification:
        self._check_signature(_header(headers, "Stripe-Signature"), body)
        try:
            event = json.loads(body)
            obj = event["data"]["object"]
            kind = event["type"]
            event_id = event["id"]
        except (ValueError, KeyError, TypeError):
            raise InvalidNotification("The Stripe event could not be read.") from None
        if kind == "checkout.session.completed":
            status = "paid" if obj.get("payment_status") in ("paid", "no_payment_required") else None
        elif kind == "checkout.session.async_payment_succeeded":
            status = "paid"
        elif kind == "checkout.session.async_payment_failed":
            status = "failed"
        elif kind == "checkout.session.expired":
            status = "cancelled"
        else:
            raise IgnoredNotification(f"Stripe event {kind} is not one Samiti acts on.")
        if status is None:  # completed, but the money comes later (async_payment_succeeded follows)
            raise IgnoredNotification("The checkout is complete but not paid yet.")
        reference = obj.get("client_reference_id") or (obj.get("metadata") or {}).get("reference")
        if not reference:
            raise InvalidNotification("The Stripe event names no checkout.")
        payment_intent = obj.get("payment_intent")
        if isinstance(payment_intent, dict):
            method = payment_intent.get("payment_method")
            payment_intent = payment_intent.get("id")
        else:
            method = obj.get("payment_method")
        customer = obj.get("customer")
        created = event.get("created")
        return PaymentNotification(
            provider=self.name, event_ref=event_id, reference=str(reference), status=status,
            amount_minor=int(obj.get("amount_total") or 0), currency=str(obj.get("currency") or "").upper(),
            payment_ref=str(payment_intent or obj.get("id")),
            received_at=(datetime.fromtimestamp(created, timezone.utc) if isinstance(created, int)
                         else datetime.now(timezone.utc)),
            customer_ref=customer if isinstance(customer, str) else None,
            payment_method_ref=method if isinstance(method, str) else None,
            raw=event)

    # ------------------------------------------------------------ saved cards, refunds

    def charge_saved(self, *, customer_ref: str, payment_method_ref: str, amount_minor: int, currency: str,
                     description: str, idempotency_key: str) -> ChargeResult:
        data = {"amount": str(amount_minor), "currency": currency.lower(), "customer": customer_ref,
                "payment_method": payment_method_ref, "confirm": "true", "off_session": "true",
                "description": description[:500]}
        try:
            body = self._post("/v1/payment_intents", data, idempotency_key=idempotency_key)
        except StripeRequestError as e:  # card_declined, authentication_required...
            intent = (e.body.get("error") or {}).get("payment_intent") or {}
            return ChargeResult(status="failed", payment_ref=intent.get("id"), failure_message=e.message)
        if body.get("status") == "succeeded":
            return ChargeResult(status="paid", payment_ref=body.get("id"))
        return ChargeResult(status="failed", payment_ref=body.get("id"),
                            failure_message=f"The payment is {body.get('status') or 'not complete'}.")

    def refund(self, *, payment_ref: str, amount_minor: int, currency: str, idempotency_key: str,
               reason: str = "") -> RefundResult:
        data = {"payment_intent": payment_ref, "amount": str(amount_minor)}
        if reason:
            data["metadata[reason]"] = reason[:500]
        try:
            body = self._post("/v1/refunds", data, idempotency_key=idempotency_key)
        except StripeRequestError as e:
            raise ProviderError(e.message) from None
        status = body.get("status")
        return RefundResult(refund_ref=str(body.get("id")),
                            status="succeeded" if status == "succeeded" else
                            "failed" if status in ("failed", "canceled") else "pending")


class StripeRequestError(ProviderError):
    """Stripe refused the request (4xx): the message is Stripe's."""

    def __init__(self, message: str, *, code: str | None = None, body: dict | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.body = body or {}


def factory(settings: Settings) -> StripeProvider | None:
    if not settings.stripe_secret_key or not settings.stripe_webhook_secret:
        return None
    return StripeProvider(settings.stripe_secret_key, settings.stripe_webhook_secret,
                          settings.stripe_api_base or DEFAULT_API_BASE)


register_adapter("stripe", factory)
