"""With no provider settings, online payment is simply not offered: no buttons, no providers, the
endpoints refuse."""
from __future__ import annotations

from datetime import timedelta

import pytest

from membership.core.settings import Settings
from membership.core.time import local_today, utcnow
from membership.extensions import db
from membership.payments.checkout import online_providers
from membership.plans.services import join
from tests.conftest import login


@pytest.fixture
def app_config():
    return {}


def test_no_settings_no_pay_online(client, make_member, make_user, make_plan):
    assert online_providers(Settings()) == {}
    plan = make_plan(fee_minor=150000)
    member = make_member(email="tanvir@example.org")
    user = make_user("member", email="tanvir@example.org", member_id=member.id)
    term = join(db.session, member, plan, today=local_today() - timedelta(days=345), now=utcnow(), actor=None,
                source="join")
    db.session.commit()
    login(client, user)
    home = client.get("/my/").get_data(as_text=True)
    assert "How to pay" in home and "Pay online" not in home
    assert client.post(f"/payments/pay/term/{term.id}", data={"provider": "stripe"},
                       follow_redirects=True).get_data(as_text=True).count("not offered") == 1
    assert client.post("/payments/stripe/webhook", data=b"{}").status_code == 400
    assert client.post("/payments/sslcommerz/ipn", data={"tran_id": "x"}).status_code == 400


def test_only_configured_providers_are_offered():
    assert list(online_providers(Settings(stripe_secret_key="sk", stripe_webhook_secret="wh"))) == ["stripe"]
    assert list(online_providers(Settings(sslcommerz_store_id="s", sslcommerz_store_password="p"))) == ["sslcommerz"]
    assert list(online_providers(Settings(stripe_secret_key="sk"))) == []  # no webhook secret: not offered
