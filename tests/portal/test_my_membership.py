"""My membership: the status in plain words, dates and days left, what to do next, the whole history,
payments and receipts (the member's own only)."""
from __future__ import annotations

from datetime import timedelta

import pytest

from membership.core.time import local_today, utcnow
from membership.extensions import db
from membership.plans.services import PaymentInput, cancel, join, record_payment, renew
from tests.conftest import NOW, login

INSTRUCTIONS = "Bank: Pubali Bank, account 42."


@pytest.fixture
def app_config():
    return {"PAYMENT_INSTRUCTIONS": INSTRUCTIONS, "ASSOCIATION_ADDRESS": "12 Lake Road\nDhaka 1205"}


@pytest.fixture
def today():
    return local_today()


@pytest.fixture
def plan(make_plan):
    return make_plan(name="Standard", fee_minor=150000, period_months=12, grace_days=30)


@pytest.fixture
def me(make_member, make_user):
    member = make_member(first_name="Shirin", last_name="Akter", email="shirin@example.org")
    user = make_user("member", email="shirin@example.org", member_id=member.id)
    db.session.commit()
    return member, user


def paid_join(member, plan, start):
    term = join(db.session, member, plan, today=start, now=NOW, actor=None, starts_on=start,
                payment=PaymentInput(amount_minor=plan.fee_minor, method="bank_transfer", received_at=NOW,
                                     reference="TRX-77"))
    db.session.commit()
    return term


def page(client) -> str:
    response = client.get("/my/")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_an_active_member_sees_plan_dates_days_left_and_their_receipt(client, me, plan, today):
    member, user = me
    term = paid_join(member, plan, today - timedelta(days=100))
    login(client, user)
    text = page(client)
    left = (term.ends_on - today).days
    assert "Your membership is active." in text
    assert "Standard" in text and f"{term.ends_on:%d %b %Y}" in text and f"{left} days left" in text
    assert member.member_number in text
    receipt = term.payments[0].receipt_number
    assert f"Receipt {receipt}" in text
    assert "You can renew now." in text  # the plan lets members renew at any time


def test_renewal_is_offered_when_the_end_is_near_and_urgent_in_grace(client, me, plan, today):
    member, user = me
    paid_join(member, plan, today - timedelta(days=370))  # ended 5 days ago: grace
    login(client, user)
    text = page(client)
    assert "Your membership ended on" in text and "to keep it without a break" in text
    assert "Renew my membership" in text and 'href="/my/renew"' in text
    assert "border-warning" in text


def test_a_lapsed_member_is_told_in_plain_words(client, me, plan, today):
    member, user = me
    paid_join(member, plan, today - timedelta(days=500))
    login(client, user)
    text = page(client)
    assert "Your membership ended on" in text and "Renew to become a member again." in text


def test_a_window_not_open_yet_says_from_when(client, me, make_plan, today):
    member, user = me
    plan = make_plan(name="Windowed", fee_minor=0, renewal_opens_days=30)
    paid_join(member, plan, today - timedelta(days=100))
    login(client, user)
    text = page(client)
    assert "Renewal opens on" in text and "Renew my membership</a>" not in text


def test_the_history_shows_every_term_and_the_gaps(client, me, plan, today):
    member, user = me
    first = paid_join(member, plan, today - timedelta(days=900))  # ended, then a gap
    # Renewed after the lapse: the new term starts "today" of that renewal.
    second = renew(db.session, first, today=today - timedelta(days=200), now=NOW, actor=None,
                   payment=PaymentInput(amount_minor=plan.fee_minor, method="cash", received_at=NOW))
    db.session.commit()
    login(client, user)
    text = page(client)
    assert text.count("Standard") >= 2
    assert "No membership" in text  # the gap
    assert f"{first.starts_on:%d %b %Y}" in text and f"{second.starts_on:%d %b %Y}" in text
    assert "Ended" in text and "Active" in text


def test_a_pending_payment_shows_the_amount_and_how_to_pay(client, me, plan, today):
    member, user = me
    join(db.session, member, plan, today=today, now=NOW, actor=None)
    db.session.commit()
    login(client, user)
    text = page(client)
    assert "Your membership is waiting for your payment." in text
    assert "1,500.00" in text and INSTRUCTIONS in text and "quote your member number" in text


def test_an_application_waiting_for_approval_says_so(client, me, make_plan, today):
    member, user = me
    plan = make_plan(name="Fellow", fee_minor=0, needs_approval=True)
    join(db.session, member, plan, today=today, now=NOW, actor=None, approved=False)
    db.session.commit()
    login(client, user)
    text = page(client)
    assert "Your application is waiting for approval." in text and "email you" in text


def test_a_cancelled_membership_says_from_when(client, me, plan, today):
    member, user = me
    term = paid_join(member, plan, today - timedelta(days=10))
    cancel(db.session, term, on=today, reason="Moved abroad", today=today, now=NOW, actor=None)
    db.session.commit()
    login(client, user)
    text = page(client)
    assert f"Your membership was cancelled from {today:%d %b %Y}" in text and "Moved abroad" in text
    assert "Contact us if you would like to join again." in text and "Renew my membership" not in text
    renew_page = client.get("/my/renew").get_data(as_text=True)
    assert "was cancelled" in renew_page and "Renew my membership</button>" not in renew_page
    assert client.post("/my/renew", data={"term_id": str(term.id), "plan": str(plan.id)}).status_code == 409


def test_a_lifetime_member_needs_nothing(client, me, make_plan, today):
    member, user = me
    plan = make_plan(name="Life", fee_minor=0, period_kind="lifetime")
    join(db.session, member, plan, today=today, now=NOW, actor=None)
    db.session.commit()
    login(client, user)
    text = page(client)
    assert "You are a life member." in text and "For life" in text
    assert "Nothing to do" in text and "Renew my membership" not in text


def test_a_member_covered_by_their_organisation(client, me, make_plan, today):
    from membership.members.services import add_contact, save_organization
    member, user = me
    org_plan = make_plan(name="Corporate", fee_minor=0, is_organizational=True)
    org = save_organization(db.session, {"name": "Dhaka Traders"}, actor=None, now=NOW)
    join(db.session, org, org_plan, today=today, now=NOW, actor=None)
    add_contact(db.session, org, member, primary=False, actor=None, now=NOW, today=today)
    db.session.commit()
    login(client, user)
    text = page(client)
    assert "Your membership is active." in text and "through Dhaka Traders" in text
    assert "its main contact renews it" in text


def test_a_member_with_no_membership_yet(client, me):
    member, user = me
    login(client, user)
    text = page(client)
    assert "You have no membership yet." in text and "No membership terms yet." in text


def test_a_login_without_a_member_record(client, make_user):
    user = make_user("member", email="lonely@example.org")
    login(client, user)
    assert "not linked to a membership record" in page(client)
    assert client.get("/my/renew").status_code == 302
    assert client.get("/my/profile").status_code == 302


# ---------------------------------------------------------------- receipts and payments


def test_the_receipt_prints_and_downloads_with_the_associations_details(client, me, plan, today):
    member, user = me
    term = paid_join(member, plan, today - timedelta(days=10))
    payment = term.payments[0]
    login(client, user)
    response = client.get(f"/my/payments/{payment.id}/receipt")
    text = response.get_data(as_text=True)
    assert response.status_code == 200
    assert payment.receipt_number in text and "1,500.00" in text and "Bank transfer" in text and "TRX-77" in text
    assert "12 Lake Road" in text and "Shirin Akter" in text and member.member_number in text
    assert "Member navigation" in text and "staff" not in text.lower().replace("staff@", "")
    assert "Recorded by" not in text  # the staff-only lines stay on the staff receipt
    download = client.get(f"/my/payments/{payment.id}/receipt?download=1")
    assert download.status_code == 200
    assert download.headers["Content-Disposition"] == f'attachment; filename="receipt-{payment.receipt_number}.html"'
    body = download.get_data(as_text=True)
    assert payment.receipt_number in body and "<script" not in body and "/static/" not in body


def test_payments_page_lists_all_payments_a_page_at_a_time(client, me, plan, today, monkeypatch):
    import membership.portal.views as views
    member, user = me
    term = paid_join(member, plan, today - timedelta(days=10))
    for n in range(6):
        record_payment(db.session, PaymentInput(amount_minor=100 + n, method="cash", received_at=utcnow()),
                       actor=None, now=utcnow(), member=member, currency="BDT")
    db.session.commit()
    monkeypatch.setattr(views, "PAYMENTS_PER_PAGE", 4)
    login(client, user)
    home = page(client)
    assert home.count("Receipt R-") >= 5 and 'href="/my/payments"' in home
    first = client.get("/my/payments").get_data(as_text=True)
    second = client.get("/my/payments?page=2").get_data(as_text=True)
    assert first.count("Receipt R-") == 4 and second.count("Receipt R-") == 3
    assert term.payments[0].receipt_number in second  # oldest last
    assert client.get("/my/payments?page=abc").status_code == 200
