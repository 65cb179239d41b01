"""The adapters' off-session charge and refund calls against the fakes (what the refunds and
auto-renewal helpers build on), and their failures."""
from __future__ import annotations

import pytest

from membership.payments.base import ProviderError
from membership.payments.sslcommerz import SSLCommerzProvider
from membership.payments.stripe import StripeProvider


def test_stripe_charge_saved_and_refund(fake_stripe):
    stripe = StripeProvider(fake_stripe.secret_key, fake_stripe.webhook_secret, fake_stripe.base)
    result = stripe.charge_saved(customer_ref="cus_1", payment_method_ref="pm_1", amount_minor=150000,
                                 currency="BDT", description="Renewal", idempotency_key="renew-7")
    assert result.status == "paid" and result.payment_ref.startswith("pi_")
    [sent] = fake_stripe.calls("/v1/payment_intents")
    assert (sent["confirm"], sent["off_session"], sent["customer"], sent["payment_method"], sent["amount"]) == (
        "true", "true", "cus_1", "pm_1", "150000")
    refund = stripe.refund(payment_ref="pi_9", amount_minor=5000, currency="BDT", idempotency_key="refund-1")
    assert refund.status == "succeeded" and refund.refund_ref.startswith("re_")
    assert fake_stripe.calls("/v1/refunds") == [{"payment_intent": "pi_9", "amount": "5000"}]
    fake_stripe.mode = "timeout"
    with pytest.raises(ProviderError, match="did not answer in time"):
        stripe.refund(payment_ref="pi_9", amount_minor=5000, currency="BDT", idempotency_key="refund-2")


def test_stripe_wrong_key_is_a_provider_error(fake_stripe):
    stripe = StripeProvider("sk_wrong", fake_stripe.webhook_secret, fake_stripe.base)
    with pytest.raises(ProviderError, match="Invalid API Key"):
        stripe.refund(payment_ref="pi_9", amount_minor=5000, currency="BDT", idempotency_key="k")


def test_sslcommerz_refund_and_no_saved_cards(fake_ssl):
    ssl = SSLCommerzProvider(fake_ssl.store_id, fake_ssl.store_password, fake_ssl.base)
    assert not ssl.supports_saved_cards
    refund = ssl.refund(payment_ref="BT0000000001", amount_minor=150000, currency="BDT", idempotency_key="r-1",
                        reason="Paid twice")
    assert refund.status == "succeeded" and refund.refund_ref.startswith("RF")
    [sent] = fake_ssl.calls("/validator/api/merchantTransIDvalidationAPI.php")
    assert sent["bank_tran_id"] == "BT0000000001" and sent["refund_amount"] == "1500.00"
    with pytest.raises(ProviderError):
        ssl.charge_saved(customer_ref="c", payment_method_ref="p", amount_minor=1, currency="BDT",
                         description="x", idempotency_key="k")
    fake_ssl.mode = "error"
    with pytest.raises(ProviderError, match="500"):
        ssl.refund(payment_ref="BT1", amount_minor=100, currency="BDT", idempotency_key="r-2")
