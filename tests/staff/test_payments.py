"""The payment list (filters, total, pagination) and the printable receipt."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from membership.extensions import db
from membership.members.services import save_organization
from membership.plans.models import Payment
from membership.plans.services import PaymentInput, join, record_payment
from tests.conftest import NOW, TODAY
from tests.staff.test_member_page import frozen, plan, text_of  # noqa: F401  (fixtures)


def pay(member=None, *, amount=10000, method="cash", reference=None, received_at=NOW, organization=None,
        membership=None, actor=None):
    return record_payment(db.session, PaymentInput(amount_minor=amount, method=method, received_at=received_at,
                                                   reference=reference),
                          actor=actor, now=max(NOW, received_at), member=member, organization=organization,
                          membership=membership, currency="BDT")


def receipts_in(response) -> list[str]:
    return re.findall(r">(R-\d{4}-\d{5})</a>", response.get_data(as_text=True))


@pytest.fixture
def three(frozen, make_member):
    a = make_member(first_name="Karim", last_name="Uddin")
    b = make_member(first_name="Nasrin", last_name="Akter")
    p1 = pay(a, amount=50000, method="cash", received_at=NOW - timedelta(days=10))
    p2 = pay(b, amount=20000, method="bank_transfer", reference="TRX-77%_x", received_at=NOW - timedelta(days=5))
    p3 = pay(a, amount=7500, method="card", reference="SLIP-1", received_at=NOW - timedelta(hours=1))
    db.session.commit()
    return a, b, (p1, p2, p3)


def test_list_newest_first_with_total(staff_client, three):
    a, b, (p1, p2, p3) = three
    response = staff_client.get("/staff/payments")
    assert response.status_code == 200
    assert receipts_in(response) == [p3.receipt_number, p2.receipt_number, p1.receipt_number]
    text = text_of(response)
    assert "3 payments" in text
    assert "Total: BDT775.00" in text
    assert "Karim Uddin" in text and "Bank transfer" in text and "TRX-77%_x" in text


def test_filters(staff_client, three):
    a, b, (p1, p2, p3) = three
    by_method = staff_client.get("/staff/payments?method=card")
    assert receipts_in(by_method) == [p3.receipt_number]
    assert "Total: BDT75.00" in text_of(by_method)

    # Received between two days in the association's zone (both ends included).
    day = (NOW - timedelta(days=5)).date().isoformat()
    between = staff_client.get(f"/staff/payments?received_from={day}&received_to={day}")
    assert receipts_in(between) == [p2.receipt_number]
    since = staff_client.get(f"/staff/payments?received_from={day}")
    assert receipts_in(since) == [p3.receipt_number, p2.receipt_number]

    by_receipt = staff_client.get(f"/staff/payments?q={p1.receipt_number.lower()}")
    assert receipts_in(by_receipt) == [p1.receipt_number]
    by_reference = staff_client.get("/staff/payments?q=slip")
    assert receipts_in(by_reference) == [p3.receipt_number]
    # % and _ are searched as themselves, not as wildcards.
    assert receipts_in(staff_client.get("/staff/payments?q=77%25_")) == [p2.receipt_number]
    assert receipts_in(staff_client.get("/staff/payments?q=%25")) == [p2.receipt_number]

    of_member = staff_client.get(f"/staff/payments?member_id={a.id}")
    assert receipts_in(of_member) == [p3.receipt_number, p1.receipt_number]
    assert "Total: BDT575.00" in text_of(of_member)
    assert "2 payments" in text_of(of_member)

    nothing = staff_client.get("/staff/payments?q=nothing-like-this")
    assert "No payments match." in text_of(nothing) and "Total: BDT0.00" in text_of(nothing)


def test_date_boundaries_follow_the_association_time_zone(frozen, staff_client, make_member):
    m = make_member()
    # 23:30 on 14 Jun in Dhaka (UTC+6) is 17:30 UTC; 00:30 on 15 Jun is 18:30 UTC on 14 Jun.
    late = pay(m, received_at=datetime(2026, 6, 14, 17, 30, tzinfo=timezone.utc))
    early = pay(m, received_at=datetime(2026, 6, 14, 18, 30, tzinfo=timezone.utc))
    db.session.commit()
    assert receipts_in(staff_client.get("/staff/payments?received_to=2026-06-14")) == [late.receipt_number]
    assert receipts_in(staff_client.get("/staff/payments?received_from=2026-06-15")) == [early.receipt_number]


@pytest.mark.parametrize("query, message", [
    ("received_from=yesterday", "Received from: use a date like 2026-01-31."),
    ("received_to=2026-02-30", "Received to: use a date like 2026-01-31."),
    ("received_to=9999-12-31", "Received to: use a date like 2026-01-31."),
    ("method=bitcoin", "Not a payment method."),
    ("member_id=abc", "Not a member."),
    ("q=a%00b", "The search contained characters that are not allowed; they were ignored."),
    ("page=-3", None),
    ("page=99999", None),
])
def test_bad_filters_are_reported_not_a_500(staff_client, three, query, message):
    response = staff_client.get(f"/staff/payments?{query}")
    assert response.status_code == 200
    if message:
        assert message in text_of(response)


def test_swapped_dates_are_put_right(staff_client, three):
    a, b, (p1, p2, p3) = three
    start = (NOW - timedelta(days=6)).date().isoformat()
    end = (NOW - timedelta(days=4)).date().isoformat()
    response = staff_client.get(f"/staff/payments?received_from={end}&received_to={start}")
    assert receipts_in(response) == [p2.receipt_number]
    assert "the dates were swapped" in text_of(response)


def test_pagination_keeps_the_filter(frozen, staff_client, make_member):
    m = make_member()
    for i in range(55):
        pay(m, amount=100, method="cheque", received_at=NOW - timedelta(minutes=i))
    pay(m, amount=100, method="cash")
    db.session.commit()
    first = staff_client.get("/staff/payments?method=cheque")
    assert len(receipts_in(first)) == 50
    assert "55 payments" in text_of(first) and "Total: BDT55.00" in text_of(first)
    assert "/staff/payments?method=cheque&amp;page=2" in first.get_data(as_text=True)
    second = staff_client.get("/staff/payments?method=cheque&page=2")
    assert len(receipts_in(second)) == 5
    assert not set(receipts_in(first)) & set(receipts_in(second))


def test_receipt_page(frozen, staff_client, make_member, plan, staff_user, app):
    app.config["ASSOCIATION_ADDRESS"] = "12 Lake Road\nDhanmondi, Dhaka 1209"
    m = make_member(first_name="Nasrin", last_name="Akter")
    term = join(db.session, m, plan, today=TODAY, now=NOW, actor=staff_user,
                payment=PaymentInput(amount_minor=50000, method="bank_transfer", received_at=NOW,
                                     reference="TRX-123"))
    db.session.commit()
    payment = db.session.scalar(select(Payment).where(Payment.membership_id == term.id))
    response = staff_client.get(f"/staff/payments/{payment.id}/receipt")
    assert response.status_code == 200
    text = text_of(response)
    assert payment.receipt_number in text
    assert "Test Association" in text
    assert "12 Lake Road" in text and "Dhanmondi, Dhaka 1209" in text
    assert f"Nasrin Akter, member number {m.member_number}" in text
    assert "Amount BDT500.00" in text
    assert "Bank transfer" in text and "TRX-123" in text
    assert "Membership: Standard, 15 Jun 2026 to 14 Jun 2027" in text
    assert "Received on 15 Jun 2026" in text
    assert "Sam Staff" in text
    body = response.get_data(as_text=True)
    assert 'data-print' in body and 'src="/static/print.js"' in body
    assert 'class="receipt ' in body  # print CSS: the navigation and buttons are hidden when printed


def test_receipt_date_is_the_local_day(frozen, staff_client, make_member):
    m = make_member()
    # 20:00 UTC on 31 Dec 2026 is 02:00 on 1 Jan 2027 in Dhaka: the receipt says 2027, in number and date.
    payment = pay(m, received_at=datetime(2026, 12, 31, 20, 0, tzinfo=timezone.utc))
    db.session.commit()
    assert payment.receipt_number.startswith("R-2027-")
    text = text_of(staff_client.get(f"/staff/payments/{payment.id}/receipt"))
    assert "Received on 01 Jan 2027" in text


def test_receipt_for_an_organisation(frozen, staff_client):
    org = save_organization(db.session, {"name": "Jute Exporters"}, actor=None, now=NOW)
    payment = pay(organization=org, amount=250000)
    db.session.commit()
    text = text_of(staff_client.get(f"/staff/payments/{payment.id}/receipt"))
    assert "Received from Jute Exporters" in text and "BDT2,500.00" in text
    listing = staff_client.get("/staff/payments")
    assert f'href="/staff/organizations/{org.id}"' in listing.get_data(as_text=True)


def test_unknown_payment_is_404(staff_client):
    assert staff_client.get("/staff/payments/424242/receipt").status_code == 404


def test_print_script_is_served(client):
    with client.get("/static/print.js") as response:
        assert response.status_code == 200 and b"window.print()" in response.data
