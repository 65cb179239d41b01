"""The actions of the member page through the web: renew (with a change of plan, a double submit,
a concurrent one), join, record a payment, approve, cancel, override, add an interaction.

Every bad input gets a message beside its field, HTTP 422 (or 409), and writes nothing.
"""
from __future__ import annotations

import re
import threading
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from membership.core.models import Activity, AuditLog
from membership.extensions import db
from membership.notifications.models import OutboxMessage
from membership.members.models import Interaction
from membership.plans.models import Membership, Payment
from membership.plans.services import join
from tests.conftest import NOW, PASSWORD, TODAY, login
from tests.staff.test_member_page import count, frozen, plan, text_of  # noqa: F401  (fixtures)


def counts() -> tuple[int, int, int, int]:
    return count(Membership), count(Payment), count(AuditLog), count(Activity)


def field_error(response, name: str) -> str:
    """The message shown beside field `name` (Bootstrap's invalid-feedback after the input)."""
    body = response.get_data(as_text=True)
    match = re.search(rf'<div class="invalid-feedback[^"]*" id="{name}-err">([^<]*)</div>', body)
    assert match, f"no error beside {name}"
    return match.group(1).strip()


def flashes(client) -> str:
    with client.session_transaction() as session:
        return " ".join(message for _, message in session.get("_flashes", []))


@pytest.fixture
def member_with_term(make_member, make_term, plan):
    """A member whose paid Standard term runs 1 Jan to 31 Dec 2026 (active, 199 days left)."""
    member = make_member()
    term = make_term(member, plan, starts_on=date(2026, 1, 1), today=TODAY)
    db.session.commit()
    return member, term


def renewal(term, **kw):
    data = {"term_id": str(term.id), "plan": str(term.plan_id), "payment_mode": "now", "amount": "500.00",
            "method": "cash", "reference": "", "received_on": TODAY.isoformat(), "token": "tok-renew-1"}
    data.update(kw)
    return data


# ---------------------------------------------------------------- renew


def test_renew_form_shows_the_new_term_and_keys(frozen, staff_client, member_with_term):
    member, term = member_with_term
    response = staff_client.get(f"/staff/members/{member.id}/renew")
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "New term: 01 Jan 2027 to 31 Dec 2027" in text_of(response)
    assert re.search(rf'name="term_id"[^>]*value="{term.id}"', body) or \
        re.search(rf'value="{term.id}"[^>]*name="term_id"', body)
    token = re.search(r'name="token" value="([A-Za-z0-9_-]{16,})"', body)
    assert token, "an idempotency key is in the form"
    assert re.search(rf'<option[^>]*selected[^>]*value="{term.plan_id}"|<option[^>]*value="{term.plan_id}"[^>]*selected',
                     body)
    assert 'value="500.00"' in body  # the fee, proposed
    assert 'src="/static/member_actions.js"' in body
    # Two views of the form get two keys.
    again = staff_client.get(f"/staff/members/{member.id}/renew").get_data(as_text=True)
    assert re.search(r'name="token" value="([^"]+)"', again).group(1) != token.group(1)


def test_renew_with_payment(frozen, staff_client, member_with_term, staff_user):
    member, term = member_with_term
    before = counts()
    response = staff_client.post(f"/staff/members/{member.id}/renew", data=renewal(term, reference="CHQ 1234"))
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/staff/members/{member.id}")
    new = db.session.scalar(select(Membership).where(Membership.renews_id == term.id))
    assert (new.starts_on, new.ends_on) == (date(2027, 1, 1), date(2026 + 1, 12, 31))
    assert not new.awaiting_payment and new.source == "renewal"
    payment = db.session.scalar(select(Payment).where(Payment.membership_id == new.id))
    assert payment.amount_minor == 50000 and payment.reference == "CHQ 1234"
    assert payment.idempotency_key == "tok-renew-1" and payment.recorded_by_id == staff_user.id
    assert count(Membership) == before[0] + 1 and count(Payment) == before[1] + 1
    message = flashes(staff_client)
    assert f"Renewed: new term 01 Jan 2027 to 31 Dec 2027, receipt {payment.receipt_number}." == message
    page = text_of(staff_client.get(f"/staff/members/{member.id}"))
    assert "Active until 31 Dec 2027" in page
    assert payment.receipt_number in page


def test_double_submit_records_one_renewal_and_one_payment(frozen, staff_client, member_with_term):
    member, term = member_with_term
    data = renewal(term)
    first = staff_client.post(f"/staff/members/{member.id}/renew", data=data)
    assert first.status_code == 302
    flashes(staff_client)
    terms, payments = count(Membership), count(Payment)
    second = staff_client.post(f"/staff/members/{member.id}/renew", data=data, follow_redirects=True)
    assert second.status_code == 200  # the member page, not an error page
    assert "already recorded" in text_of(second) and "Nothing more was recorded" in text_of(second)
    assert (count(Membership), count(Payment)) == (terms, payments)
    assert db.session.scalar(select(func.count()).select_from(Membership)
                             .where(Membership.renews_id == term.id)) == 1


def test_double_submit_of_pay_later_renewal_records_one_term(frozen, staff_client, member_with_term):
    member, term = member_with_term
    data = renewal(term, payment_mode="later", amount="")
    assert staff_client.post(f"/staff/members/{member.id}/renew", data=data).status_code == 302
    second = staff_client.post(f"/staff/members/{member.id}/renew", data=data, follow_redirects=True)
    assert second.status_code == 200
    assert "already renewed" in text_of(second)
    assert count(Membership) == 2 and count(Payment) == 1  # the first term's payment only


def _post_concurrently(app, urls_and_data, users):
    """Post forms at the same moment from separate clients (each its own session and connection)."""
    emails = [u.email for u in users]  # read here: the threads have no app context of their own
    db.session.rollback()
    barrier = threading.Barrier(len(users))
    results = [0] * len(users)

    def run(i):
        client = app.test_client()
        login(client, emails[i])
        url, data = urls_and_data
        barrier.wait()
        results[i] = client.post(url, data=data).status_code

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(users))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_concurrent_double_submit_records_one_renewal(frozen, app, make_user, member_with_term):
    member, term = member_with_term
    users = [make_user("staff"), make_user("staff")]
    url, data = f"/staff/members/{member.id}/renew", renewal(term, token="tok-race")
    # End this session's transaction: on SQLite every transaction takes the write lock (BEGIN IMMEDIATE).
    db.session.rollback()
    results = _post_concurrently(app, (url, data), users)
    assert sorted(results) == [302, 302], results  # one renewal, one "already renewed" back to the page
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(Membership).where(Membership.renews_id == term.id)) == 1
    assert db.session.scalar(select(func.count()).select_from(Payment)
                             .where(Payment.idempotency_key == "tok-race")) == 1


def test_renew_pay_later_leaves_the_term_pending(frozen, staff_client, member_with_term):
    member, term = member_with_term
    response = staff_client.post(f"/staff/members/{member.id}/renew",
                                 data=renewal(term, payment_mode="later", amount="abc"))  # amount ignored
    assert response.status_code == 302
    new = db.session.scalar(select(Membership).where(Membership.renews_id == term.id))
    assert new.awaiting_payment
    assert count(Payment) == 1
    assert "Renewed: new term 01 Jan 2027 to 31 Dec 2027; BDT500.00 still to pay." == flashes(staff_client)


def test_change_plan_at_renewal(frozen, staff_client, member_with_term, make_plan):
    member, term = member_with_term
    half = make_plan(name="Half year", code="HALF", fee_minor=30000, period_months=6)
    db.session.commit()
    page = staff_client.get(f"/staff/members/{member.id}/renew").get_data(as_text=True)
    assert 'data-dates="2027-01-01/2027-06-30"' in page  # shown for the other plan before confirming
    response = staff_client.post(f"/staff/members/{member.id}/renew",
                                 data=renewal(term, plan=str(half.id), amount="300",
                                              shown_dates="2027-01-01/2027-06-30"))
    assert response.status_code == 302
    new = db.session.scalar(select(Membership).where(Membership.renews_id == term.id))
    assert new.plan_id == half.id and (new.starts_on, new.ends_on) == (date(2027, 1, 1), date(2027, 6, 30))
    assert new.fee_minor == 30000
    assert "on Half year (was Standard)" in flashes(staff_client)
    activity = db.session.scalar(select(Activity).where(Activity.kind == "renewed"))
    assert activity.detail["previous_plan"] == "STD"


def test_plan_changed_without_javascript_asks_to_confirm_the_dates(frozen, staff_client, member_with_term, make_plan):
    member, term = member_with_term
    half = make_plan(name="Half year", code="HALF", fee_minor=30000, period_months=6)
    db.session.commit()
    before = counts()
    # The form was shown with Standard's dates; staff picked Half year and submitted at once.
    data = renewal(term, plan=str(half.id), amount="300", shown_dates="2027-01-01/2027-12-31")
    response = staff_client.post(f"/staff/members/{member.id}/renew", data=data)
    assert response.status_code == 409
    assert "The new term on Half year runs 01 Jan 2027 to 30 Jun 2027" in text_of(response)
    assert counts() == before
    body = response.get_data(as_text=True)
    assert 'value="2027-01-01/2027-06-30"' in body  # confirming now records those dates
    data["shown_dates"] = "2027-01-01/2027-06-30"
    assert staff_client.post(f"/staff/members/{member.id}/renew", data=data).status_code == 302
    assert count(Membership) == before[0] + 1


def test_renewal_after_lapse_starts_today_and_shows_the_gap(frozen, staff_client, make_member, make_term, plan):
    member = make_member()
    term = make_term(member, plan, starts_on=date(2025, 1, 1), today=date(2025, 1, 1))  # ended 31 Dec 2025
    db.session.commit()
    response = staff_client.get(f"/staff/members/{member.id}/renew")
    assert "New term: 15 Jun 2026 to 14 Jun 2027" in text_of(response)
    assert staff_client.post(f"/staff/members/{member.id}/renew", data=renewal(term)).status_code == 302
    page = text_of(staff_client.get(f"/staff/members/{member.id}"))
    assert "No membership for 165 days (from 01 Jan 2026 to 14 Jun 2026)" in page
    assert "Active until 14 Jun 2027 — 364 days left" in page


@pytest.mark.parametrize("changes, field, message", [
    ({"amount": "-5"}, "amount", "Amount cannot be negative."),
    ({"amount": "abc"}, "amount", "Amount: enter an amount like 1500.00."),
    ({"amount": "12.345"}, "amount", "Amount: use at most 2 decimal places."),
    ({"amount": ""}, "amount", "Amount is required."),
    ({"amount": "0"}, "amount", "Enter the amount received (more than zero)."),
    ({"received_on": (TODAY + timedelta(days=1)).isoformat()}, "received_on", "The payment date cannot be in the future."),
    ({"received_on": "31/02/2026"}, "received_on", "Use a date like 2026-01-31."),
    ({"received_on": ""}, "received_on", "Enter the day the money was received."),
    ({"method": "bitcoin"}, "method", "Not a valid choice."),
    ({"plan": ""}, "plan", "Choose a plan."),
    ({"plan": "abc"}, "plan", "Choose a plan."),
    ({"reference": "x\x00y"}, "reference", "This contains characters that are not allowed."),
])
def test_renew_bad_input_shows_the_error_and_writes_nothing(frozen, staff_client, member_with_term,
                                                           changes, field, message):
    member, term = member_with_term
    before = counts()
    response = staff_client.post(f"/staff/members/{member.id}/renew", data=renewal(term, **changes))
    assert response.status_code == 422
    assert message in field_error(response, field)
    assert counts() == before
    body = response.get_data(as_text=True)
    assert 'name="token" value="tok-renew-1"' in body  # the same form: a second try keeps its key
    if field != "amount":
        assert 'value="500.00"' in body  # what was typed is kept


def test_renew_on_a_retired_plan_is_refused(frozen, staff_client, member_with_term, make_plan):
    member, term = member_with_term
    retired = make_plan(name="Old plan", is_active=False)
    db.session.commit()
    before = counts()
    response = staff_client.post(f"/staff/members/{member.id}/renew", data=renewal(term, plan=str(retired.id)))
    assert response.status_code == 422
    assert field_error(response, "plan") == "The plan Old plan is retired."
    assert counts() == before


def test_renew_on_an_organisation_plan_is_refused(frozen, staff_client, member_with_term, make_plan):
    member, term = member_with_term
    corporate = make_plan(name="Corporate", is_organizational=True)
    db.session.commit()
    before = counts()
    response = staff_client.post(f"/staff/members/{member.id}/renew", data=renewal(term, plan=str(corporate.id)))
    assert response.status_code == 422
    assert "plan for organisations" in field_error(response, "plan")
    assert counts() == before


def test_renew_without_key_or_with_a_foreign_term(frozen, staff_client, member_with_term, make_member, make_term, plan):
    member, term = member_with_term
    before = counts()
    response = staff_client.post(f"/staff/members/{member.id}/renew", data=renewal(term, token=""))
    assert response.status_code == 422
    assert "This form is out of date" in text_of(response)
    other = make_member()
    other_term = make_term(other, plan, starts_on=date(2026, 1, 1), today=TODAY)
    db.session.commit()
    before = counts()
    response = staff_client.post(f"/staff/members/{member.id}/renew", data=renewal(other_term))
    assert response.status_code == 422
    assert "out of date" in text_of(response)
    assert counts() == before
    assert db.session.scalar(select(Membership).where(Membership.renews_id == other_term.id)) is None


def test_renew_a_pending_term_is_refused(frozen, staff_client, make_member, plan):
    member = make_member()
    term = join(db.session, member, plan, today=TODAY, now=NOW, actor=None)  # waits for payment
    db.session.commit()
    response = staff_client.get(f"/staff/members/{member.id}/renew")
    assert response.status_code == 302
    assert "waiting for payment" in flashes(staff_client)
    before = counts()
    response = staff_client.post(f"/staff/members/{member.id}/renew", data=renewal(term))
    assert response.status_code == 409
    assert "waiting for payment or approval" in text_of(response)
    assert counts() == before


def test_partial_payment_at_renewal_leaves_the_term_waiting(frozen, staff_client, member_with_term):
    member, term = member_with_term
    response = staff_client.post(f"/staff/members/{member.id}/renew", data=renewal(term, amount="100"))
    assert response.status_code == 302
    new = db.session.scalar(select(Membership).where(Membership.renews_id == term.id))
    assert new.awaiting_payment  # BDT100 of BDT500 received


# ---------------------------------------------------------------- join


def joining(plan, /, **kw):
    data = {"plan": str(plan.id), "starts_on": TODAY.isoformat(), "payment_mode": "now", "amount": "500",
            "method": "bank_transfer", "reference": "TRX-9", "received_on": TODAY.isoformat(), "token": "tok-join-1"}
    data.update(kw)
    return data


def test_join_with_payment(frozen, staff_client, make_member, plan):
    member = make_member()
    db.session.commit()
    form = staff_client.get(f"/staff/members/{member.id}/join")
    assert form.status_code == 200
    assert "Term: 15 Jun 2026 to 14 Jun 2027" in text_of(form)
    response = staff_client.post(f"/staff/members/{member.id}/join", data=joining(plan))
    assert response.status_code == 302
    term = db.session.scalar(select(Membership).where(Membership.member_id == member.id))
    assert (term.starts_on, term.ends_on, term.awaiting_payment) == (TODAY, date(2027, 6, 14), False)
    payment = db.session.scalar(select(Payment).where(Payment.membership_id == term.id))
    assert payment.method == "bank_transfer" and payment.reference == "TRX-9"
    assert flashes(staff_client) == (f"Membership recorded: Standard, 15 Jun 2026 to 14 Jun 2027, "
                                     f"receipt {payment.receipt_number}.")
    # Posted again (double click): nothing more.
    again = staff_client.post(f"/staff/members/{member.id}/join", data=joining(plan), follow_redirects=True)
    assert again.status_code == 200 and "already recorded" in text_of(again)
    assert count(Membership) == 1 and count(Payment) == 1


def test_join_preview_shows_dates_and_writes_nothing(frozen, staff_client, make_member, plan):
    member = make_member()
    db.session.commit()
    before = counts()
    response = staff_client.post(f"/staff/members/{member.id}/join",
                                 data=joining(plan, starts_on="2026-01-31", preview="Show the dates"))
    assert response.status_code == 200
    assert "Term: 31 Jan 2026 to 31 Jan 2027" not in text_of(response)  # a year from 31 Jan ends 30 Jan
    assert "Term: 31 Jan 2026 to 30 Jan 2027" in text_of(response)
    assert counts() == before


@pytest.mark.parametrize("changes, field, message", [
    ({"plan": ""}, "plan", "Choose a plan."),
    ({"starts_on": ""}, "starts_on", "Enter the first day of the membership."),
    ({"starts_on": "2030-01-01"}, "starts_on", "A membership cannot start more than a year from now."),
    ({"amount": "1e3"}, "amount", "Amount: enter an amount like 1500.00."),
    ({"received_on": "2027-01-01"}, "received_on", "The payment date cannot be in the future."),
])
def test_join_bad_input(frozen, staff_client, make_member, plan, changes, field, message):
    member = make_member()
    db.session.commit()
    before = counts()
    response = staff_client.post(f"/staff/members/{member.id}/join", data=joining(plan, **changes))
    assert response.status_code == 422
    assert field_error(response, field) == message
    assert counts() == before


def test_join_pay_later_then_record_the_payment(frozen, staff_client, make_member, plan):
    member = make_member()
    db.session.commit()
    response = staff_client.post(f"/staff/members/{member.id}/join", data=joining(plan, payment_mode="later"))
    assert response.status_code == 302
    assert "waiting for payment of BDT500.00" in flashes(staff_client)
    term = db.session.scalar(select(Membership).where(Membership.member_id == member.id))
    assert term.awaiting_payment and count(Payment) == 0
    assert "Pending payment" in text_of(staff_client.get(f"/staff/members/{member.id}"))

    url = f"/staff/members/{member.id}/terms/{term.id}/pay"
    form = staff_client.get(url)
    assert form.status_code == 200 and 'value="500.00"' in form.get_data(as_text=True)
    data = {"amount": "500", "method": "cash", "received_on": TODAY.isoformat(), "token": "tok-pay-1"}
    assert staff_client.post(url, data=data).status_code == 302
    payment = db.session.scalar(select(Payment).where(Payment.membership_id == term.id))
    assert "Payment recorded: BDT500.00, receipt " + payment.receipt_number in flashes(staff_client)
    db.session.refresh(term)
    assert not term.awaiting_payment and term.paid_on == TODAY
    assert "Active until 14 Jun 2027" in text_of(staff_client.get(f"/staff/members/{member.id}"))
    # The same form again: one payment.
    again = staff_client.post(url, data=data, follow_redirects=True)
    assert "already recorded" in text_of(again)
    assert count(Payment) == 1


def test_join_refused_when_the_member_already_has_a_term(frozen, staff_client, member_with_term, plan):
    member, _ = member_with_term
    assert staff_client.get(f"/staff/members/{member.id}/join").status_code == 302
    before = counts()
    response = staff_client.post(f"/staff/members/{member.id}/join", data=joining(plan, token="tok-other"))
    assert response.status_code == 409
    assert "renew it instead" in text_of(response)
    assert counts() == before


def test_a_lapsed_member_may_rejoin_with_a_start_date(frozen, staff_client, make_member, make_term, plan):
    member = make_member()
    make_term(member, plan, starts_on=date(2024, 1, 1), today=date(2024, 1, 1))  # lapsed since 2025
    db.session.commit()
    page = staff_client.get(f"/staff/members/{member.id}").get_data(as_text=True)
    assert f'href="/staff/members/{member.id}/renew"' in page and f'href="/staff/members/{member.id}/join"' in page
    assert staff_client.get(f"/staff/members/{member.id}/join").status_code == 200
    response = staff_client.post(f"/staff/members/{member.id}/join", data=joining(plan, starts_on="2026-06-01"))
    assert response.status_code == 302
    new = db.session.scalar(select(Membership).where(Membership.member_id == member.id,
                                                     Membership.starts_on == date(2026, 6, 1)))
    assert new.ends_on == date(2027, 5, 31) and new.renews_id is None


# ---------------------------------------------------------------- pay, approve


@pytest.fixture
def pending_term(make_member, plan):
    member = make_member()
    term = join(db.session, member, plan, today=TODAY, now=NOW, actor=None)
    db.session.commit()
    return member, term


@pytest.mark.parametrize("changes, field, message", [
    ({"amount": "-1"}, "amount", "Amount cannot be negative."),
    ({"amount": "five hundred"}, "amount", "Amount: enter an amount like 1500.00."),
    ({"received_on": (TODAY + timedelta(days=3)).isoformat()}, "received_on", "The payment date cannot be in the future."),
    ({"received_on": "1999-12-31"}, "received_on", "This date is too far in the past."),
])
def test_pay_bad_input(frozen, staff_client, pending_term, changes, field, message):
    member, term = pending_term
    data = {"amount": "500", "method": "cash", "received_on": TODAY.isoformat(), "token": "tok-pay-2", **changes}
    before = counts()
    response = staff_client.post(f"/staff/members/{member.id}/terms/{term.id}/pay", data=data)
    assert response.status_code == 422
    assert field_error(response, field) == message
    assert counts() == before


def test_partial_payment_keeps_the_term_waiting(frozen, staff_client, pending_term):
    member, term = pending_term
    data = {"amount": "200", "method": "cash", "received_on": "2026-06-10", "token": "tok-part"}
    assert staff_client.post(f"/staff/members/{member.id}/terms/{term.id}/pay", data=data).status_code == 302
    assert "BDT300.00 still to pay" in flashes(staff_client)
    db.session.refresh(term)
    assert term.awaiting_payment
    payment = db.session.scalar(select(Payment).where(Payment.membership_id == term.id))
    # A past day is recorded at its start in the association's zone (Dhaka, UTC+6).
    assert payment.received_at.isoformat() == "2026-06-09T18:00:00+00:00"


def test_pay_a_term_of_another_member_is_404(frozen, staff_client, pending_term, make_member):
    _, term = pending_term
    other = make_member()
    db.session.commit()
    data = {"amount": "500", "method": "cash", "received_on": TODAY.isoformat(), "token": "tok-x"}
    assert staff_client.post(f"/staff/members/{other.id}/terms/{term.id}/pay", data=data).status_code == 404
    assert staff_client.get(f"/staff/members/{other.id}/terms/{term.id}/cancel").status_code == 404
    assert staff_client.get(f"/staff/members/{other.id}/terms/99999/cancel").status_code == 404
    assert count(Payment) == 0


def test_approve(frozen, staff_client, make_member, make_plan):
    plan = make_plan(name="Committee", fee_minor=0, needs_approval=True)
    member = make_member()
    term = join(db.session, member, plan, today=TODAY, now=NOW, actor=None, approved=False)
    db.session.commit()
    page = staff_client.get(f"/staff/members/{member.id}")
    assert "Pending approval" in text_of(page)
    url = f"/staff/members/{member.id}/terms/{term.id}/approve"
    assert f'action="{url}"' in page.get_data(as_text=True)
    assert staff_client.get(url).status_code == 405  # no state change through GET
    assert staff_client.post(url).status_code == 302
    assert flashes(staff_client).startswith("Approved: Committee")
    db.session.refresh(term)
    assert not term.awaiting_approval and term.status == "active"
    # the applicant hears of it, as from the applications queue
    told = db.session.scalars(select(OutboxMessage).where(OutboxMessage.member_id == member.id)).all()
    assert [m.template_key for m in told] == ["application_approved"]
    again = staff_client.post(url)
    assert again.status_code == 409
    assert "does not wait for approval" in text_of(again)


# ---------------------------------------------------------------- cancel


def test_cancel_with_reason(frozen, staff_client, member_with_term, staff_user):
    member, term = member_with_term
    url = f"/staff/members/{member.id}/terms/{term.id}/cancel"
    form = staff_client.get(url)
    assert form.status_code == 200 and 'value="2026-06-15"' in form.get_data(as_text=True)
    response = staff_client.post(url, data={"cancelled_on": "2026-06-15", "reason": "Moved abroad"})
    assert response.status_code == 302
    db.session.refresh(term)
    assert (term.cancelled_on, term.cancel_reason) == (TODAY, "Moved abroad")
    assert "Cancelled: the term 01 Jan 2026 to 31 Dec 2026 from 15 Jun 2026. Status now: Cancelled." == \
        flashes(staff_client)
    audit = db.session.scalar(select(AuditLog).where(AuditLog.action == "membership.cancel"))
    assert audit.actor_id == staff_user.id and audit.member_id == member.id
    again = staff_client.post(url, data={"cancelled_on": "2026-06-15", "reason": "Twice"})
    assert again.status_code == 409 and "already cancelled" in text_of(again)


@pytest.mark.parametrize("data, field, message", [
    ({"cancelled_on": "2026-06-15", "reason": ""}, "reason", "Give a reason for the cancellation."),
    ({"cancelled_on": "2026-06-15", "reason": "   "}, "reason", "Give a reason for the cancellation."),
    ({"cancelled_on": "2027-01-01", "reason": "Late"}, "cancelled_on", "The cancellation date is after the term ends."),
    ({"cancelled_on": "2025-12-01", "reason": "Early"}, "cancelled_on", "The cancellation date is before the term starts."),
    ({"cancelled_on": "", "reason": "No date"}, "cancelled_on", "Enter the day the cancellation takes effect."),
    ({"cancelled_on": "tomorrow", "reason": "Bad date"}, "cancelled_on", "Use a date like 2026-01-31."),
])
def test_cancel_bad_input(frozen, staff_client, member_with_term, data, field, message):
    member, term = member_with_term
    before = counts()
    response = staff_client.post(f"/staff/members/{member.id}/terms/{term.id}/cancel", data=data)
    assert response.status_code == 422
    assert field_error(response, field) == message
    if data["reason"].strip():
        assert data["reason"] in response.get_data(as_text=True)  # kept
    assert counts() == before
    db.session.refresh(term)
    assert term.cancelled_on is None


# ---------------------------------------------------------------- override


def test_override_until_a_date_then_clear(frozen, staff_client, make_member, make_term, plan):
    member = make_member()
    term = make_term(member, plan, starts_on=date(2025, 1, 1), today=date(2025, 1, 1))  # lapsed
    db.session.commit()
    url = f"/staff/members/{member.id}/terms/{term.id}/override"
    assert staff_client.get(url).status_code == 200
    response = staff_client.post(url, data={"status": "active", "duration": "until", "until": "2026-09-30",
                                            "reason": "Paid at the AGM, cheque clearing"})
    assert response.status_code == 302
    assert flashes(staff_client) == "Status set to Active until 30 Sep 2026."
    db.session.refresh(term)
    assert (term.override_status, term.override_until) == ("active", date(2026, 9, 30))
    assert "Active: set by staff until 30 Sep 2026" in text_of(staff_client.get(f"/staff/members/{member.id}"))

    response = staff_client.post(f"{url}/clear")
    assert response.status_code == 302
    db.session.refresh(term)
    assert term.override_status is None
    assert "Override removed: status now Lapsed." == flashes(staff_client)
    again = staff_client.post(f"{url}/clear")
    assert again.status_code == 409


def test_override_for_good(frozen, staff_client, member_with_term):
    member, term = member_with_term
    url = f"/staff/members/{member.id}/terms/{term.id}/override"
    response = staff_client.post(url, data={"status": "lapsed", "duration": "forever", "until": "2020-01-01",
                                            "reason": "Suspended by the board"})
    assert response.status_code == 302
    db.session.refresh(term)
    assert (term.override_status, term.override_until) == ("lapsed", None)
    assert "Lapsed: set by staff until further notice (Suspended by the board)" in \
        text_of(staff_client.get(f"/staff/members/{member.id}"))


@pytest.mark.parametrize("data, field, message", [
    ({"status": "active", "duration": "until", "until": "2026-09-30", "reason": ""}, "reason",
     "Give a reason for the override."),
    ({"status": "active", "duration": "until", "until": "2026-06-14", "reason": "Old"}, "until",
     "The override must last until today or later."),
    ({"status": "active", "duration": "until", "until": "", "reason": "No date"}, "until",
     "Enter the last day of the override, or choose until further notice."),
    ({"status": "upcoming", "duration": "forever", "reason": "Bad"}, "status", "Not a valid choice."),
])
def test_override_bad_input(frozen, staff_client, member_with_term, data, field, message):
    member, term = member_with_term
    before = counts()
    response = staff_client.post(f"/staff/members/{member.id}/terms/{term.id}/override", data=data)
    assert response.status_code == 422
    assert field_error(response, field) == message
    assert counts() == before
    db.session.refresh(term)
    assert term.override_status is None


# ---------------------------------------------------------------- interactions


def test_add_interaction(frozen, staff_client, make_member, staff_user):
    member = make_member()
    db.session.commit()
    response = staff_client.post(f"/staff/members/{member.id}/interactions", data={
        "channel": "call", "summary": "Called about renewal.\nWill pay next week.", "outcome": "Promised to pay",
        "follow_up_on": "2026-06-22", "occurred_at": "2026-06-15T14:30"})
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/staff/members/{member.id}#interactions")
    row = db.session.scalar(select(Interaction).where(Interaction.member_id == member.id))
    assert row.staff_id == staff_user.id and row.follow_up_on == date(2026, 6, 22)
    assert row.occurred_at.isoformat() == "2026-06-15T08:30:00+00:00"  # 14:30 in Dhaka
    assert flashes(staff_client) == "Interaction added: phone call on 15 Jun 2026; follow up on 22 Jun 2026."
    page = text_of(staff_client.get(f"/staff/members/{member.id}"))
    assert "Called about renewal." in page and "Outcome: Promised to pay" in page
    assert "15 Jun 2026 14:30" in page
    assert db.session.scalar(select(Activity).where(Activity.kind == "interaction")) is not None


@pytest.mark.parametrize("changes, field, message", [
    ({"summary": ""}, "summary", "Write what was said or done."),
    ({"summary": "bad\x00text"}, "summary", "Summary contains characters that are not allowed."),
    ({"occurred_at": "2026-06-16T10:00"}, "occurred_at", "The interaction cannot be in the future."),
    ({"occurred_at": "yesterday"}, "occurred_at", "Use a date and time like 2026-01-31 14:30."),
    ({"follow_up_on": "2026-06-01"}, "follow_up_on", "The follow-up date is in the past."),
    ({"channel": "pigeon"}, "channel", "Not a valid choice."),
])
def test_add_interaction_bad_input_keeps_what_was_typed(frozen, staff_client, make_member, changes, field, message):
    member = make_member()
    db.session.commit()
    data = {"channel": "meeting", "summary": "Met at the fair", "outcome": "Interested in volunteering",
            "follow_up_on": "", "occurred_at": "2026-06-15T10:00", **changes}
    before = counts() + (count(Interaction),)
    response = staff_client.post(f"/staff/members/{member.id}/interactions", data=data)
    assert response.status_code == 422
    assert field_error(response, field) == message
    assert counts() + (count(Interaction),) == before
    body = response.get_data(as_text=True)
    assert 'value="Interested in volunteering"' in body  # kept
    assert "Contact details" in body  # the whole member page, with the form filled in


def test_staff_only(client, member_with_term, make_user):
    member, term = member_with_term
    user = make_user("member")
    for url in (f"/staff/members/{member.id}", f"/staff/members/{member.id}/renew", "/staff/payments"):
        assert client.get(url).status_code == 302  # to the sign-in page
    login(client, user, PASSWORD)
    assert client.get(f"/staff/members/{member.id}").status_code == 403
    assert client.post(f"/staff/members/{member.id}/renew", data=renewal(term)).status_code == 403
    assert count(Membership) == 1

