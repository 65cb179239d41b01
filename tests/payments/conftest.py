"""Fixtures of the online payment tests: the fake Stripe and SSLCommerz servers (tests/payments/fakes.py)
and an app configured to use them."""
from __future__ import annotations

import pytest

from membership.payments import sslcommerz, stripe
from tests.payments.fakes import FakeSSLCommerz, FakeStripe


@pytest.fixture
def fake_stripe():
    server = FakeStripe().start()
    yield server
    server.stop()


@pytest.fixture
def fake_ssl():
    server = FakeSSLCommerz().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _short_timeouts(monkeypatch):
    monkeypatch.setattr(stripe, "TIMEOUT", (1, 1))
    monkeypatch.setattr(sslcommerz, "TIMEOUT", (1, 1))


def provider_config(fake_stripe, fake_ssl) -> dict:
    return {"STRIPE_SECRET_KEY": fake_stripe.secret_key, "STRIPE_WEBHOOK_SECRET": fake_stripe.webhook_secret,
            "STRIPE_API_BASE": fake_stripe.base, "SSLCOMMERZ_STORE_ID": fake_ssl.store_id,
            "SSLCOMMERZ_STORE_PASSWORD": fake_ssl.store_password, "SSLCOMMERZ_API_BASE": fake_ssl.base,
            "BASE_URL": "http://samiti.test"}


@pytest.fixture
def app_config(fake_stripe, fake_ssl):
    return provider_config(fake_stripe, fake_ssl)
