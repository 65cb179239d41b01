"""Paying for a renewal online in headless Chromium with CSRF on: the member renews, presses "Renew
and pay online with Stripe", pays on the fake Stripe's hosted page, which sends the signed webhook to
the live server and the browser back to the success page, which says the payment was received."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from membership.core.time import local_today
from membership.extensions import db
from membership.plans.models import Membership
from membership.plans.services import PaymentInput, join
from tests.conftest import NOW, PASSWORD
from tests.payments.fakes import FakeStripe

pytestmark = pytest.mark.browser


@pytest.fixture
def fake_stripe():
    server = FakeStripe().start()
    yield server
    server.stop()


@pytest.fixture
def app_config(fake_stripe):
    return {"WTF_CSRF_ENABLED": True, "STRIPE_SECRET_KEY": fake_stripe.secret_key,
            "STRIPE_WEBHOOK_SECRET": fake_stripe.webhook_secret, "STRIPE_API_BASE": fake_stripe.base}


def test_a_member_pays_a_renewal_on_the_fake_stripe_page(app, make_member, make_plan, make_user, fake_stripe,
                                                         live_server, page):
    app.config["BASE_URL"] = live_server
    fake_stripe.webhook_url = f"{live_server}/payments/stripe/webhook"
    plan = make_plan(code="STD", name="Standard", fee_minor=150000)
    member = make_member(first_name="Tanvir", email="tanvir@example.org")
    make_user("member", email="tanvir@example.org", member_id=member.id)
    today = local_today()
    term = join(db.session, member, plan, today=today - timedelta(days=345), now=NOW, actor=None,
                starts_on=today - timedelta(days=345),
                payment=PaymentInput(amount_minor=150000, method="cash", received_at=NOW))
    db.session.commit()
    term_id = term.id
    db.session.rollback()

    page.goto("/login")
    page.get_by_label("Email").fill("tanvir@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/my/$"))
    page.goto("/my/renew")
    page.get_by_label("Renew automatically with this card").check()
    page.get_by_role("button", name="Renew and pay online with Stripe").click()
    page.wait_for_url(re.compile(re.escape(fake_stripe.base) + r"/pay/cs_test_"))
    assert "Renewal: Standard" in page.locator("#what").inner_text()
    assert page.locator("#amount").inner_text() == "150000 bdt"
    page.get_by_role("button", name="Pay").click()
    page.wait_for_url(re.compile(r"/payments/return/chk_[^?]+\?result=success$"))
    assert "Payment received" in page.locator("#payment-result").inner_text()
    assert fake_stripe.delivered == [200]

    db.session.rollback()
    new = db.session.scalar(select(Membership).where(Membership.renews_id == term_id))
    assert new is not None and not new.awaiting_payment and new.paid_on is not None
    db.session.rollback()
    page.get_by_role("link", name="Back to my membership").click()
    page.wait_for_url(re.compile(r"/my/$"))
    assert "Pay online" not in page.content()
