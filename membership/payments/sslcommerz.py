"""SSLCommerz (the common payment gateway in Bangladesh) over its documented API (v4).

- checkout: POST {base}/gwprocess/v4/api.php with the store's id and password, the amount (in
  major units, "1500.00"), tran_id (Samiti's checkout reference) and the success/fail/cancel/IPN
  addresses; the answer has status SUCCESS, sessionkey and GatewayPageURL (where the payer goes).
- IPN: SSLCommerz POSTs a form (tran_id, val_id, amount, currency, status VALID/FAILED/CANCELLED...,
  bank_tran_id) to ipn_url. The form itself is not trusted: a VALID one is checked with the
  validation API GET {base}/validator/api/validationserverAPI.php?val_id=..&store_id=..&store_passwd=..
  &format=json, whose answer must say VALID or VALIDATED for the same tran_id, amount and currency.
- refund: GET {base}/validator/api/merchantTransIDvalidationAPI.php?bank_tran_id=..&refund_amount=..
  &refund_remarks=..&store_id=..&store_passwd=..&format=json (APIConnect DONE, status success /
  processing / failed, refund_ref_id).
No saved cards. Settings: SSLCOMMERZ_STORE_ID, SSLCOMMERZ_STORE_PASSWORD, SSLCOMMERZ_API_BASE
(https://sandbox.sslcommerz.com; https://securepay.sslcommerz.com for live payments).
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

import requests

from membership.core.settings import Settings
from membership.payments.base import (ChargeResult, CheckoutRequest, CheckoutSession, InvalidNotification,
                                      PaymentNotification, ProviderError, RefundResult)
from membership.payments.errors import IgnoredNotification
from membership.payments.registry import register_adapter

DEFAULT_API_BASE = "https://sandbox.sslcommerz.com"
TIMEOUT = (5, 20)  # connect, read (seconds); the tests shorten it


def to_major(amount_minor: int) -> str:
    """1500 paisa -> "15.00" (SSLCommerz takes amounts in taka with two decimals)."""
    return f"{Decimal(amount_minor) / 100:.2f}"


def to_minor(amount: str | None) -> int | None:
    try:
        return int((Decimal(str(amount)) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    except (InvalidOperation, TypeError, ValueError):
        return None


class SSLCommerzProvider:
    name = "sslcommerz"
    supports_saved_cards = False

    def __init__(self, store_id: str, store_password: str, api_base: str = DEFAULT_API_BASE):
        self.store_id = store_id
        self.store_password = store_password
        self.api_base = (api_base or DEFAULT_API_BASE).rstrip("/")

    def _call(self, method: str, path: str, **kw) -> dict:
        try:
            response = requests.request(method, self.api_base + path, timeout=TIMEOUT, **kw)
        except requests.Timeout:
            raise ProviderError("SSLCommerz did not answer in time.") from None
        except requests.RequestException as e:
            raise ProviderError(f"SSLCommerz could not be reached ({type(e).__name__}).") from None
        if response.status_code >= 400:
            raise ProviderError(f"SSLCommerz answered with an error ({response.status_code}).")
        try:
            body = response.json()
        except ValueError:
            raise ProviderError("SSLCommerz's answer could not be read.") from None
        if not isinstance(body, dict):
            raise ProviderError("SSLCommerz's answer could not be read.")
        return body

    def _credentials(self) -> dict:
        return {"store_id": self.store_id, "store_passwd": self.store_password}

    def start_checkout(self, request: CheckoutRequest) -> CheckoutSession:
        data = {
            **self._credentials(),
            "total_amount": to_major(request.amount_minor), "currency": request.currency,
            "tran_id": request.reference,
            "success_url": request.success_url, "fail_url": request.cancel_url, "cancel_url": request.cancel_url,
            "ipn_url": request.notify_url,
            "cus_name": request.customer_name or request.customer_email, "cus_email": request.customer_email,
            "cus_add1": "N/A", "cus_city": "N/A", "cus_country": "Bangladesh", "cus_phone": "N/A",
            "shipping_method": "NO", "num_of_item": "1",
            "product_name": request.description[:255], "product_category": "Membership",
            "product_profile": "non-physical-goods",
            "value_a": request.reference,
        }
        body = self._call("POST", "/gwprocess/v4/api.php", data=data)
        if str(body.get("status")).upper() != "SUCCESS" or not body.get("GatewayPageURL"):
            raise ProviderError("SSLCommerz refused the payment session: "
                                f"{body.get('failedreason') or body.get('status') or 'no reason given'}.")
        return CheckoutSession(provider=self.name, session_ref=str(body.get("sessionkey") or ""),
                               redirect_url=body["GatewayPageURL"])

    def validate(self, val_id: str) -> dict:
        """The validation API's answer for `val_id` (the order's record at SSLCommerz)."""
        return self._call("GET", "/validator/api/validationserverAPI.php",
                          params={"val_id": val_id, **self._credentials(), "v": "1", "format": "json"})

    def verify_notification(self, headers: Mapping[str, str], body: bytes,
                            form: Mapping[str, str] | None = None) -> PaymentNotification:
        form = form or {}
        tran_id, val_id = form.get("tran_id") or "", form.get("val_id") or ""
        status = (form.get("status") or "").upper()
        if not tran_id:
            raise InvalidNotification("An IPN without tran_id.")
        if status != "VALID":
            # FAILED / CANCELLED / UNATTEMPTED / EXPIRED: nothing was paid, and the form is unsigned;
            # the checkout stays open (the payer may try again) and nothing is recorded.
            raise IgnoredNotification(f"SSLCommerz IPN with status {status or 'none'}: nothing paid.")
        if not val_id:
            raise InvalidNotification("A VALID IPN without val_id.")
        try:
            record = self.validate(val_id)
        except ProviderError as e:
            # Not proven either way: the IPN is refused (400) and SSLCommerz sends it again later.
            raise InvalidNotification(f"The validation API could not be asked: {e}") from None
        if str(record.get("status")).upper() not in ("VALID", "VALIDATED"):
            raise InvalidNotification(f"The validation API says {record.get('status')!r} for val_id {val_id}.")
        if record.get("tran_id") != tran_id:
            raise InvalidNotification("The validation API names another transaction.")
        amount = to_minor(record.get("amount"))
        if amount is None:
            raise InvalidNotification("The validation API gave no amount.")
        currency = str(record.get("currency_type") or record.get("currency") or "").upper()
        if form.get("amount") and to_minor(form.get("amount")) != amount:
            raise InvalidNotification("The IPN's amount differs from the validated one.")
        if form.get("currency") and currency and form["currency"].upper() != currency:
            raise InvalidNotification("The IPN's currency differs from the validated one.")
        if record.get("currency_amount") and currency:
            amount = to_minor(record.get("currency_amount")) or amount
        return PaymentNotification(
            provider=self.name, event_ref=str(record.get("val_id") or val_id), reference=tran_id, status="paid",
            amount_minor=amount, currency=currency,
            payment_ref=str(record.get("bank_tran_id") or form.get("bank_tran_id") or val_id),
            received_at=datetime.now(timezone.utc), raw=record)

    def charge_saved(self, *, customer_ref: str, payment_method_ref: str, amount_minor: int, currency: str,
                     description: str, idempotency_key: str) -> ChargeResult:
        raise ProviderError("SSLCommerz does not keep cards for later payments.")

    def refund(self, *, payment_ref: str, amount_minor: int, currency: str, idempotency_key: str,
               reason: str = "") -> RefundResult:
        body = self._call("GET", "/validator/api/merchantTransIDvalidationAPI.php",
                          params={"bank_tran_id": payment_ref, "refund_amount": to_major(amount_minor),
                                  "refund_remarks": (reason or "Refund")[:255], "refe_id": idempotency_key[:50],
                                  **self._credentials(), "v": "1", "format": "json"})
        if str(body.get("APIConnect")).upper() != "DONE":
            raise ProviderError(f"SSLCommerz refused the refund: {body.get('errorReason') or body.get('APIConnect')}.")
        status = str(body.get("status") or "").lower()
        return RefundResult(refund_ref=str(body.get("refund_ref_id") or ""),
                            status="succeeded" if status == "success" else
                            "pending" if status == "processing" else "failed")


def factory(settings: Settings) -> SSLCommerzProvider | None:
    if not settings.sslcommerz_store_id or not settings.sslcommerz_store_password:
        return None
    return SSLCommerzProvider(settings.sslcommerz_store_id, settings.sslcommerz_store_password,
                              settings.sslcommerz_api_base or DEFAULT_API_BASE)


register_adapter("sslcommerz", factory)
