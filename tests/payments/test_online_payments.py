"""Online payment end to end against the fake providers: the member presses "Pay online", the
provider's session is created as documented, the (signed / validated) notification activates the
term or pays the registration, once; bad, replayed, mismatched and late notifications."""
from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from membership.core.models import AuditLog
from membership.core.time import local_today, utcnow
from membership.extensions import db
from membership.payments.models import Checkout, ProcessedNotification, SavedCard
from membership.plans.models import Membership, Payment
from membership.plans.services import PaymentInput, join, pay_term
from membership.plans.status import status_on
from tests.conftest import NOW, login
from membership.events.dues import amount_due


@pytest.fixture
def plan(make_plan):
    return make_plan(code="STD", name="Standard", fee_minor=150000, period_months=12, grace_days=30)


@pytest.fixture
def me(make_member, make_user):
    member = make_member(first_name="Tanvir", email="tanvir@example.org")
    user = make_user("member", email="tanvir@example.org", member_id=member.id)
    db.session.commit()
    return member, user


def paid_term(member, plan, start):
    term = join(db.session, member, plan, today=start, now=NOW, actor=None, starts_on=start,
                payment=PaymentInput(amount_minor=plan.fee_minor, method="cash", received_at=NOW))
    db.session.commit()
    return term


def payments_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Payment).where(Payment.method == "online"))


def checkouts() -> list[Checkout]:
    db.session.expire_all()
    return list(db.session.scalars(select(Checkout).order_by(Checkout.id)))


def renew_and_pay(client, term, plan, provider="stripe", **extra):
    return client.post("/my/renew", data={"term_id": str(term.id), "plan": str(plan.id), "pay_with": provider,
                                          **extra})


@pytest.fixture
def renewing(client, me, plan):
    """A member whose term ends in 20 days, signed in, who pressed "Renew and pay online with Stripe"."""
    member, user = me
    today = local_today()
    term = paid_term(member, plan, today - timedelta(days=345))
    login(client, user)
    page = client.get("/my/renew").get_data(as_text=True)
    assert "Renew and pay online with Stripe" in page and "Renew and pay online with SSLCommerz" in page
    assert "Renew automatically with this card" in page
    return member, term


def test_renewal_paid_through_stripe_activates_the_term(client, renewing, plan, fake_stripe):
    member, term = renewing
    response = renew_and_pay(client, term, plan, "stripe")
    assert response.status_code == 303
    assert response.headers["Location"].startswith(fake_stripe.base + "/pay/cs_test_")
    [checkout] = checkouts()
    assert (checkout.status, checkout.purpose, checkout.amount_minor, checkout.currency) == ("open", "renewal", 150000, "BDT")
    # what Stripe was asked, as documented
    [sent] = fake_stripe.calls("/v1/checkout/sessions")
    assert sent["mode"] == "payment" and sent["client_reference_id"] == checkout.reference
    assert sent["line_items[0][price_data][unit_amount]"] == "150000"
    assert sent["line_items[0][price_data][currency]"] == "bdt"
    assert sent["metadata[reference]"] == checkout.reference and sent["customer_email"] == "tanvir@example.org"
    assert sent["success_url"] == f"http://samiti.test/payments/return/{checkout.reference}?result=success"
    assert "payment_intent_data[setup_future_usage]" not in sent
    new = db.session.scalar(select(Membership).where(Membership.renews_id == term.id))
    assert new.awaiting_payment

    # before the webhook, the return page waits (and refreshes)
    back = client.get(urlsplit(sent["success_url"]).path + "?result=success").get_data(as_text=True)
    assert "waiting for the confirmation" in back and 'http-equiv="refresh"' in back

    body, headers = fake_stripe.event(checkout.session_ref)
    response = client.post("/payments/stripe/webhook", data=body, headers=headers)
    assert response.status_code == 200, response.data
    db.session.expire_all()
    new = db.session.get(Membership, new.id)
    assert not new.awaiting_payment and new.paid_on is not None
    assert status_on(new, new.starts_on) == "active"
    [payment] = db.session.scalars(select(Payment).where(Payment.membership_id == new.id)).all()
    assert payment.method == "online" and payment.reference == f"stripe:pi_for_{checkout.session_ref}"
    assert payment.amount_minor == 150000
    assert checkouts()[0].status == "paid" and checkouts()[0].payment_id == payment.id
    back = client.get(f"/payments/return/{checkout.reference}?result=success").get_data(as_text=True)
    assert "Payment received" in back and 'http-equiv="refresh"' not in back
    home = client.get("/my/").get_data(as_text=True)
    assert "Pay online" not in home  # nothing due any more


def test_saved_card_kept_when_the_member_opts_in(client, renewing, plan, fake_stripe):
    member, term = renewing
    renew_and_pay(client, term, plan, "stripe", save_card="y")
    [sent] = fake_stripe.calls("/v1/checkout/sessions")
    assert sent["payment_intent_data[setup_future_usage]"] == "off_session"
    [checkout] = checkouts()
    assert checkout.save_card
    body, headers = fake_stripe.event(checkout.session_ref)
    assert client.post("/payments/stripe/webhook", data=body, headers=headers).status_code == 200
    [card] = db.session.scalars(select(SavedCard)).all()
    assert (card.member_id, card.provider, card.customer_ref, card.payment_method_ref) == (
        member.id, "stripe", f"cus_for_{checkout.session_ref}", f"pm_for_{checkout.session_ref}")


def test_bad_signature_is_refused_and_records_nothing(client, renewing, plan, fake_stripe):
    _member, term = renewing
    renew_and_pay(client, term, plan)
    [checkout] = checkouts()
    for body, headers in (fake_stripe.event(checkout.session_ref, secret="whsec_wrong"),
                          fake_stripe.event(checkout.session_ref, timestamp=int(utcnow().timestamp()) - 3600),
                          (fake_stripe.event(checkout.session_ref)[0], {})):
        response = client.post("/payments/stripe/webhook", data=body, headers=headers)
        assert response.status_code == 400
    # a body changed after signing
    body, headers = fake_stripe.event(checkout.session_ref)
    response = client.post("/payments/stripe/webhook", data=body.replace(b"150000", b"100"), headers=headers)
    assert response.status_code == 400
    assert payments_count() == 0 and checkouts()[0].status == "open"
    assert db.session.scalar(select(func.count()).select_from(ProcessedNotification)) == 0


def test_replayed_webhook_records_one_payment(client, renewing, plan, fake_stripe):
    _member, term = renewing
    renew_and_pay(client, term, plan)
    [checkout] = checkouts()
    body, headers = fake_stripe.event(checkout.session_ref, event_id="evt_same")
    for _ in range(3):
        assert client.post("/payments/stripe/webhook", data=body, headers=headers).status_code == 200
    # another event about the same session (async_payment_succeeded after completed) neither
    body, headers = fake_stripe.event(checkout.session_ref, "checkout.session.async_payment_succeeded")
    assert client.post("/payments/stripe/webhook", data=body, headers=headers).status_code == 200
    assert payments_count() == 1


def test_amount_mismatch_is_rejected(client, renewing, plan, fake_stripe):
    _member, term = renewing
    renew_and_pay(client, term, plan)
    [checkout] = checkouts()
    body, headers = fake_stripe.event(checkout.session_ref, amount=100)
    assert client.post("/payments/stripe/webhook", data=body, headers=headers).status_code == 200
    assert payments_count() == 0
    [checkout] = checkouts()
    assert checkout.status == "failed" and "nothing recorded" in checkout.note
    assert db.session.scalar(select(Membership).where(Membership.renews_id == term.id)).awaiting_payment


def test_expired_session_marks_the_checkout(client, renewing, plan, fake_stripe):
    _member, term = renewing
    renew_and_pay(client, term, plan)
    [checkout] = checkouts()
    body, headers = fake_stripe.event(checkout.session_ref, "checkout.session.expired")
    assert client.post("/payments/stripe/webhook", data=body, headers=headers).status_code == 200
    assert checkouts()[0].status == "expired" and payments_count() == 0


@pytest.mark.parametrize("mode", ["timeout", "error", "refuse"])
def test_provider_failure_gives_a_clear_message_and_no_checkout(client, renewing, plan, fake_stripe, mode):
    _member, term = renewing
    fake_stripe.mode = mode
    response = renew_and_pay(client, term, plan)
    assert response.status_code == 302 and response.headers["Location"].endswith("/my/")
    page = client.get("/my/").get_data(as_text=True)
    assert "We could not reach the payment service just now, so nothing was charged" in page
    assert checkouts() == []
    # the renewal itself is kept, waiting for payment, and can still be paid online from home
    new = db.session.scalar(select(Membership).where(Membership.renews_id == term.id))
    assert new.awaiting_payment
    assert f'action="/payments/pay/term/{new.id}"' in page
    fake_stripe.mode = "ok"
    response = client.post(f"/payments/pay/term/{new.id}", data={"provider": "stripe"})
    assert response.status_code == 303 and len(checkouts()) == 1


def test_paid_by_hand_meanwhile_is_reported_not_doubled(client, renewing, plan, fake_stripe, staff_user):
    _member, term = renewing
    renew_and_pay(client, term, plan)
    [checkout] = checkouts()
    new = db.session.scalar(select(Membership).where(Membership.renews_id == term.id))
    now = utcnow()
    pay_term(db.session, new, PaymentInput(amount_minor=150000, method="cash", received_at=now),
             today=local_today(now), now=now, actor=staff_user)
    db.session.commit()
    body, headers = fake_stripe.event(checkout.session_ref)
    assert client.post("/payments/stripe/webhook", data=body, headers=headers).status_code == 200
    assert payments_count() == 0
    assert db.session.scalar(select(func.count()).select_from(Payment).where(Payment.membership_id == new.id)) == 1
    [checkout] = checkouts()
    assert checkout.status == "paid_twice" and checkout.payment_ref == f"pi_for_{checkout.session_ref}"
    assert db.session.scalar(select(AuditLog).where(AuditLog.action == "payment.online_paid_twice")) is not None
    # staff see it first, with a flash saying to refund
    client.post("/logout")
    login(client, staff_user)
    assert 'href="/staff/payments/online"' in client.get("/staff/payments").get_data(as_text=True)
    page = client.get("/staff/payments/online").get_data(as_text=True)
    assert "1 online payment arrived for something already paid another way: refund it." in page
    assert "Paid twice: refund" in page and "Tanvir" in page


def test_join_paid_through_sslcommerz(client, me, plan, fake_ssl):
    member, user = me
    today = local_today()
    term = join(db.session, member, plan, today=today, now=utcnow(), actor=None, source="join")
    db.session.commit()
    assert term.awaiting_payment
    login(client, user)
    home = client.get("/my/").get_data(as_text=True)
    assert "Pay online with SSLCommerz" in home and "Pay online with Stripe" in home
    assert "Renew automatically with this card" not in home  # a join, not a renewal
    response = client.post(f"/payments/pay/term/{term.id}", data={"provider": "sslcommerz"})
    assert response.status_code == 303
    [checkout] = checkouts()
    assert response.headers["Location"] == f"{fake_ssl.base}/pay/{checkout.reference}"
    [sent] = fake_ssl.calls("/gwprocess/v4/api.php")
    assert sent["tran_id"] == checkout.reference and sent["total_amount"] == "1500.00" and sent["currency"] == "BDT"
    assert sent["ipn_url"] == "http://samiti.test/payments/sslcommerz/ipn"
    assert sent["store_id"] == fake_ssl.store_id and sent["cus_email"] == "tanvir@example.org"
    assert checkout.purpose == "join" and checkout.session_ref == fake_ssl.sessions[checkout.reference]["sessionkey"]

    form = fake_ssl.paid(checkout.reference)
    # a forged IPN (a val_id SSLCommerz does not know) is refused
    forged = {**form, "val_id": "NOPE"}
    assert client.post("/payments/sslcommerz/ipn", data=forged).status_code == 400
    assert payments_count() == 0
    assert client.post("/payments/sslcommerz/ipn", data=form).status_code == 200
    assert client.post("/payments/sslcommerz/ipn", data=form).status_code == 200  # replayed: VALIDATED now
    [validation, *_] = fake_ssl.calls("/validator/api/validationserverAPI.php")
    assert validation["val_id"] == "NOPE" and validation["format"] == "json"
    db.session.expire_all()
    term = db.session.get(Membership, term.id)
    assert not term.awaiting_payment and status_on(term, today) == "active"
    [payment] = db.session.scalars(select(Payment).where(Payment.membership_id == term.id)).all()
    assert payment.reference == f"sslcommerz:{form['bank_tran_id']}" and payment.amount_minor == 150000
    # the payer comes back with SSLCommerz's form POST
    response = client.post(f"/payments/return/{checkout.reference}?result=success", data=form)
    assert response.status_code == 303
    assert "Payment received" in client.get(response.headers["Location"]).get_data(as_text=True)


def test_sslcommerz_amount_mismatch_and_failed_ipn(client, me, plan, fake_ssl):
    member, user = me
    term = join(db.session, member, plan, today=local_today(), now=utcnow(), actor=None, source="join")
    db.session.commit()
    login(client, user)
    client.post(f"/payments/pay/term/{term.id}", data={"provider": "sslcommerz"})
    [checkout] = checkouts()
    failed = {"tran_id": checkout.reference, "status": "FAILED", "amount": "1500.00"}
    assert client.post("/payments/sslcommerz/ipn", data=failed).status_code == 200
    assert checkouts()[0].status == "open"
    form = fake_ssl.paid(checkout.reference, amount="15.00")
    assert client.post("/payments/sslcommerz/ipn", data=form).status_code == 200
    assert payments_count() == 0 and checkouts()[0].status == "failed"
    # an IPN whose amount was changed from the validated one is not believed
    form = fake_ssl.paid(checkout.reference)
    assert client.post("/payments/sslcommerz/ipn", data={**form, "amount": "1.00"}).status_code == 400


def test_sslcommerz_timeout_gives_a_clear_message(client, me, plan, fake_ssl):
    member, user = me
    term = join(db.session, member, plan, today=local_today(), now=utcnow(), actor=None, source="join")
    db.session.commit()
    login(client, user)
    fake_ssl.mode = "timeout"
    response = client.post(f"/payments/pay/term/{term.id}", data={"provider": "sslcommerz"}, follow_redirects=True)
    assert "We could not reach the payment service just now" in response.get_data(as_text=True)
    assert checkouts() == []


def test_event_registration_paid_online(client, me, fake_stripe):
    from datetime import datetime, timezone

    from membership.events import services as events
    from membership.events.models import Event
    member, user = me
    now = datetime.now(timezone.utc).replace(microsecond=0)
    event = Event(title="Gala", starts_at=now + timedelta(days=7), ends_at=now + timedelta(days=7, hours=2),
                  member_price_minor=30000, non_member_price_minor=50000, currency="BDT", status="published",
                  published_at=now, created_at=now, updated_at=now, seats_taken=0, venue="Hall")
    db.session.add(event)
    db.session.flush()
    registration = events.register_member(db.session, event, member, now=now, actor=None, email=False)
    db.session.commit()
    due = amount_due(db.session, registration)
    assert registration.status == "confirmed" and due > 0
    login(client, user)
    page = client.get("/my/events").get_data(as_text=True)
    assert f'action="/payments/pay/registration/{registration.id}"' in page
    response = client.post(f"/payments/pay/registration/{registration.id}", data={"provider": "stripe"})
    assert response.status_code == 303
    [checkout] = checkouts()
    assert (checkout.purpose, checkout.registration_id, checkout.amount_minor) == ("event", registration.id, due)
    body, headers = fake_stripe.event(checkout.session_ref)
    assert client.post("/payments/stripe/webhook", data=body, headers=headers).status_code == 200
    db.session.expire_all()
    assert amount_due(db.session, db.session.get(type(registration), registration.id)) == 0
    [payment] = db.session.scalars(select(Payment).where(Payment.registration_id == registration.id)).all()
    assert payment.method == "online" and payment.reference.startswith("stripe:pi_for_")
    assert f"/payments/pay/registration/{registration.id}" not in client.get("/my/events").get_data(as_text=True)
    # nothing due: no second checkout
    response = client.post(f"/payments/pay/registration/{registration.id}", data={"provider": "stripe"},
                           follow_redirects=True)
    assert "Nothing is due" in response.get_data(as_text=True) and len(checkouts()) == 1


def test_someone_elses_term_is_not_found(client, me, plan, make_member, make_user):
    other = make_member(email="other@example.org")
    term = join(db.session, other, plan, today=local_today(), now=utcnow(), actor=None, source="join")
    db.session.commit()
    login(client, me[1])
    assert client.post(f"/payments/pay/term/{term.id}", data={"provider": "stripe"}).status_code == 404
    assert checkouts() == []
