"""The member page (the 360-degree view): details, the status in words, the term history with its
gaps, payments, interactions, audit trail and activities.

The clock is frozen at NOW (15 Jun 2026 in Dhaka) through membership.core.time.utcnow, which the
views and local_today() read, so days-left figures are exact.
"""
from __future__ import annotations

import html
import re
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from membership.core.services import record_audit
from membership.extensions import db
from membership.members.services import add_interaction, save_organization
from membership.plans.models import Membership, Payment
from membership.plans.services import PaymentInput, cancel, join, renew, set_override
from tests.conftest import NOW, TODAY


@pytest.fixture
def frozen(app, monkeypatch):
    """Today is TODAY (15 Jun 2026) for the views and the filters."""
    monkeypatch.setattr("membership.core.time.utcnow", lambda: NOW)
    return NOW


@pytest.fixture
def plan(make_plan):
    return make_plan(name="Standard", code="STD", fee_minor=50000, grace_days=30)


def text_of(response) -> str:
    """The page as a user reads it: tags dropped, entities decoded, spaces collapsed."""
    body = response.get_data(as_text=True)
    body = re.sub(r"<script.*?</script>", " ", body, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body)))


def section(response, section_id: str) -> str:
    """The text of one <section id=...> of the page."""
    body = response.get_data(as_text=True)
    start = body.index(f'id="{section_id}"')
    return text_of_html(body[start:body.index("</section>", start)])


def text_of_html(body: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body)))


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def page(client, member):
    response = client.get(f"/staff/members/{member.id}")
    assert response.status_code == 200, response.data[:500]
    return response


def test_details_contact_organisation_and_preferences(frozen, staff_client, make_member):
    org = save_organization(db.session, {"name": "Dhaka Traders Ltd"}, actor=None, now=NOW)
    m = make_member(first_name="রবীন্দ্রনাথ", last_name="ঠাকুর", phone="01712345678", email="rabi@example.org",
                    city="Dhaka", language="bn", marketing_opt_in=True, organization_id=org.id)
    db.session.commit()
    response = page(staff_client, m)
    body = response.get_data(as_text=True)
    text = text_of(response)
    assert "রবীন্দ্রনাথ ঠাকুর" in text
    assert m.member_number in text
    assert "+880 1712-345678" in text  # formatted, not the stored E.164
    assert "rabi@example.org" in text
    assert f'href="/staff/organizations/{org.id}"' in body
    assert "Dhaka Traders Ltd" in text
    assert "Marketing emails Yes" in text
    assert "Listed in the directory No" in text
    assert "বাংলা" in text
    assert f'href="/staff/members/{m.id}/edit"' in body
    assert "No membership yet." in text


def test_unknown_member_is_404(staff_client):
    assert staff_client.get("/staff/members/999999").status_code == 404
    assert staff_client.get("/staff/members/999999/audit").status_code == 404
    assert staff_client.get("/staff/members/999999/renew").status_code == 404


def test_active_status_line_with_days_left(frozen, staff_client, make_member, make_term, plan):
    m = make_member()
    make_term(m, plan, starts_on=date(2026, 1, 1), today=TODAY)  # ends 31 Dec 2026
    db.session.commit()
    text = text_of(page(staff_client, m))
    assert "Active until 31 Dec 2026 — 199 days left" in text
    assert (date(2026, 12, 31) - TODAY).days == 199


def test_active_until_includes_an_early_renewal(frozen, staff_client, make_member, make_term, plan):
    m = make_member()
    term = make_term(m, plan, starts_on=date(2025, 7, 1), today=TODAY)  # ends 30 Jun 2026
    renew(db.session, term, today=TODAY, now=NOW, actor=None,
          payment=PaymentInput(amount_minor=50000, method="cash", received_at=NOW))
    db.session.commit()
    text = text_of(page(staff_client, m))
    assert "Active until 30 Jun 2027 — 380 days left" in text
    assert "Renewed: the next term (Standard) runs 01 Jul 2026 to 30 Jun 2027." in text


def test_grace_status_line(frozen, staff_client, make_member, make_term, plan):
    m = make_member()
    make_term(m, plan, starts_on=date(2025, 6, 1), today=date(2025, 6, 1))  # ends 31 May 2026, grace 30 days
    db.session.commit()
    text = text_of(page(staff_client, m))
    assert "In grace period: ended 31 May 2026, grace ends 30 Jun 2026 — 15 days left to renew" in text


def test_lapsed_status_line_and_ongoing_gap(frozen, staff_client, make_member, make_term, plan):
    m = make_member()
    make_term(m, plan, starts_on=date(2025, 1, 1), today=date(2025, 1, 1))  # ends 31 Dec 2025, grace to 30 Jan
    db.session.commit()
    text = text_of(page(staff_client, m))
    assert "Lapsed since 31 Jan 2026 (the term ended 31 Dec 2025)" in text
    # 1 Jan 2026 .. 15 Jun 2026 inclusive
    assert "No membership since 01 Jan 2026: 166 days so far" in text


def test_pending_payment_status_line(frozen, staff_client, make_member, plan):
    m = make_member()
    join(db.session, m, plan, today=TODAY, now=NOW, actor=None)  # no payment: waits for it
    db.session.commit()
    response = page(staff_client, m)
    text = text_of(response)
    assert "Pending payment: BDT500.00 due (Standard, 15 Jun 2026 to 14 Jun 2027)" in text
    body = response.get_data(as_text=True)
    term = db.session.scalar(select(Membership).where(Membership.member_id == m.id))
    assert f'href="/staff/members/{m.id}/terms/{term.id}/pay"' in body


def test_cancelled_and_override_status_lines(frozen, staff_client, make_member, make_term, plan):
    m = make_member()
    term = make_term(m, plan, starts_on=date(2026, 1, 1), today=TODAY)
    cancel(db.session, term, on=date(2026, 6, 1), reason="Moved abroad", today=TODAY, now=NOW, actor=None)
    db.session.commit()
    assert "Cancelled from 01 Jun 2026: Moved abroad" in text_of(page(staff_client, m))

    other = make_member()
    term2 = make_term(other, plan, starts_on=date(2024, 1, 1), today=date(2024, 1, 1))  # lapsed
    set_override(db.session, term2, status="active", until=date(2026, 7, 31), reason="Board decision",
                 today=TODAY, now=NOW, actor=None)
    db.session.commit()
    text = text_of(page(staff_client, other))
    assert "Active: set by staff until 31 Jul 2026 (Board decision)" in text
    assert "Clear override" in text


def test_history_newest_first_with_a_visible_gap(frozen, staff_client, make_member, make_term, plan, make_plan):
    m = make_member()
    first = make_term(m, plan, starts_on=date(2024, 1, 1), today=date(2024, 1, 1))  # to 31 Dec 2024
    # Renewed after the lapse, on 1 Mar 2025: the new term starts that day and the gap shows.
    second = renew(db.session, first, today=date(2025, 3, 1), now=NOW, actor=None,
                   payment=PaymentInput(amount_minor=50000, method="card", received_at=NOW))
    assert second.starts_on == date(2025, 3, 1)
    # Lapsed again (ended 28 Feb 2026, grace to 30 Mar): renewed today, payment to follow.
    third = renew(db.session, second, today=TODAY, now=NOW, actor=None)
    assert third.starts_on == TODAY
    db.session.commit()
    response = page(staff_client, m)
    text = section(response, "history")
    gap1 = "No membership for 59 days (from 01 Jan 2025 to 28 Feb 2025)"
    gap2 = "No membership for 106 days (from 01 Mar 2026 to 14 Jun 2026)"
    assert gap1 in text and gap2 in text
    order = [text.index(s) for s in ("15 Jun 2026", gap2, "01 Mar 2025", gap1, "01 Jan 2024")]
    assert order == sorted(order), text
    assert "Renewal" in text and "500.00 due" in text
    assert "waits for payment" in text_of(response)


def test_a_term_renewed_on_time_shows_as_renewed_not_lapsed(frozen, staff_client, make_member, make_term, plan):
    m = make_member()
    first = make_term(m, plan, starts_on=date(2025, 1, 1), today=date(2025, 1, 1))  # to 31 Dec 2025
    renew(db.session, first, today=date(2025, 12, 20), now=NOW, actor=None,
          payment=PaymentInput(amount_minor=50000, method="card", received_at=NOW))
    lapsed = make_member(first_name="Lena")
    make_term(lapsed, plan, starts_on=date(2025, 1, 1), today=date(2025, 1, 1))
    db.session.commit()
    body = page(staff_client, m).get_data(as_text=True)
    rows = re.findall(r'<tr class="term-row".*?</tr>', body[body.index('id="history"'):], re.S)
    assert len(rows) == 2
    assert "Active" in rows[0] and "01 Jan 2026" in rows[0]
    assert "Renewed" in rows[1] and "Lapsed" not in rows[1]
    # a term that ended without a renewal still says so
    assert "Lapsed" in section(page(staff_client, lapsed), "history")


def test_history_row_shows_cancellation_and_term_receipts(frozen, staff_client, make_member, make_term, plan):
    m = make_member()
    term = make_term(m, plan, starts_on=date(2026, 1, 1), today=TODAY)
    cancel(db.session, term, on=date(2026, 7, 1), reason="Asked to stop", today=TODAY, now=NOW, actor=None)
    db.session.commit()
    response = page(staff_client, m)
    payment = db.session.scalar(select(Payment).where(Payment.membership_id == term.id))
    body = response.get_data(as_text=True)
    assert f'href="/staff/payments/{payment.id}/receipt"' in body
    assert "Cancelled from 01 Jul 2026: Asked to stop" in text_of(response)


def test_payments_with_receipt_links(frozen, staff_client, make_member, make_term, plan, staff_user):
    m = make_member()
    make_term(m, plan, starts_on=date(2026, 1, 1), today=TODAY)
    db.session.commit()
    payment = db.session.scalar(select(Payment).where(Payment.member_id == m.id))
    response = page(staff_client, m)
    body = response.get_data(as_text=True)
    text = text_of(response)
    assert payment.receipt_number in text
    assert f'href="/staff/payments/{payment.id}/receipt"' in body
    assert "500.00" in text and "Cash" in text
    assert f'href="/staff/payments?member_id={m.id}"' in body


def test_interactions_newest_first_with_form(frozen, staff_client, make_member, staff_user):
    m = make_member()
    add_interaction(db.session, m, channel="call", summary="Asked about the AGM", outcome="Will attend",
                    follow_up_on=None, occurred_at=NOW - timedelta(days=3), actor=staff_user, now=NOW)
    add_interaction(db.session, m, channel="meeting", summary="Discussed sponsorship", outcome=None,
                    follow_up_on=date(2026, 7, 1), occurred_at=NOW - timedelta(days=1), actor=staff_user, now=NOW)
    db.session.commit()
    response = page(staff_client, m)
    text = text_of(response)
    assert text.index("Discussed sponsorship") < text.index("Asked about the AGM")
    assert "Outcome: Will attend" in text
    assert "follow up 01 Jul 2026" in text
    assert "by Sam Staff" in text
    body = response.get_data(as_text=True)
    assert f'action="/staff/members/{m.id}/interactions"' in body
    assert 'name="summary"' in body and 'name="channel"' in body and 'name="follow_up_on"' in body


def test_audit_trail_and_activities(frozen, staff_client, make_member, make_term, plan, staff_user):
    m = make_member()
    make_term(m, plan, starts_on=date(2026, 1, 1), today=TODAY)
    record_audit(db.session, actor=staff_user, action="member.update", entity=m, now=NOW + timedelta(minutes=1),
                 member_id=m.id, summary="Updated phone")
    db.session.commit()
    text = text_of(page(staff_client, m))
    audit = text[text.index("Audit trail"):]
    assert audit.index("Updated phone") < audit.index("Joined Standard")
    assert "Sam Staff" in audit
    activity = text[text.index("Recent activity"):text.index("Audit trail")]
    assert "Joined (STD)" in activity
    assert "Payment R-" in activity


def test_audit_trail_shows_the_last_50_and_pages_the_rest(frozen, staff_client, make_member, staff_user):
    m = make_member()
    for i in range(60):
        record_audit(db.session, actor=staff_user, action="member.update", entity=m,
                     now=NOW - timedelta(minutes=60 - i), member_id=m.id, summary=f"Change number {i:02d}")
    db.session.commit()
    text = text_of(page(staff_client, m))
    # 61 rows: "Created member" (at NOW, the newest) and the 60 changes; the page shows 50.
    assert "Change number 59" in text and "Change number 11" in text
    assert "Change number 10" not in text
    assert "see them all" in text

    first = staff_client.get(f"/staff/members/{m.id}/audit")
    assert first.status_code == 200
    assert "61 changes" in text_of(first)
    assert "Change number 59" in text_of(first) and "Change number 10" not in text_of(first)
    second = staff_client.get(f"/staff/members/{m.id}/audit?page=2")
    assert "Change number 10" in text_of(second) and "Change number 00" in text_of(second)
    assert staff_client.get(f"/staff/members/{m.id}/audit?page=abc").status_code == 200


def test_organisation_contact_status_comes_through_the_organisation(frozen, staff_client, make_member, make_plan):
    org_plan = make_plan(name="Corporate", is_organizational=True, fee_minor=0)
    org = save_organization(db.session, {"name": "Jute Exporters"}, actor=None, now=NOW)
    m = make_member(organization_id=org.id)
    join(db.session, org, org_plan, today=date(2026, 1, 1), now=NOW, actor=None)
    db.session.commit()
    text = text_of(page(staff_client, m))
    assert "Active through Jute Exporters until 31 Dec 2026 — 199 days left" in text


def test_member_pages_use_no_inline_script_or_style(frozen, staff_client, make_member, make_term, plan):
    m = make_member()
    term = make_term(m, plan, starts_on=date(2026, 1, 1), today=TODAY)
    db.session.commit()
    payment = db.session.scalar(select(Payment).where(Payment.member_id == m.id))
    for url in (f"/staff/members/{m.id}", f"/staff/members/{m.id}/renew", f"/staff/members/{m.id}/audit",
                f"/staff/members/{m.id}/terms/{term.id}/cancel", f"/staff/members/{m.id}/terms/{term.id}/override",
                f"/staff/payments/{payment.id}/receipt", "/staff/payments"):
        body = staff_client.get(url).get_data(as_text=True)
        assert " style=" not in body and "<style" not in body, url
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", body), url


def test_csrf_token_in_every_form(app, frozen, make_member, make_term, plan, make_user, client):
    from tests.conftest import login

    app.config["WTF_CSRF_ENABLED"] = True
    user = make_user("staff")
    m = make_member()
    term = make_term(m, plan, starts_on=date(2026, 1, 1), today=TODAY)
    db.session.commit()
    # Sign in with a token taken from the login page.
    login_page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', login_page).group(1)
    from tests.conftest import PASSWORD
    assert client.post("/login", data={"email": user.email, "password": PASSWORD,
                                       "csrf_token": token}).status_code == 302
    for url in (f"/staff/members/{m.id}", f"/staff/members/{m.id}/renew",
                f"/staff/members/{m.id}/terms/{term.id}/cancel", f"/staff/members/{m.id}/terms/{term.id}/override"):
        body = client.get(url).get_data(as_text=True)
        forms = re.findall(r'<form[^>]*method="post".*?</form>', body, flags=re.S)
        assert forms, url
        for form in forms:
            assert 'name="csrf_token"' in form, (url, form[:200])
    # A post without the token is refused and writes nothing.
    before = db.session.scalar(select(func.count()).select_from(Membership))
    response = client.post(f"/staff/members/{m.id}/renew", data={"term_id": term.id, "plan": plan.id,
                                                                   "payment_mode": "later", "token": "x1"})
    assert response.status_code == 400
    assert db.session.scalar(select(func.count()).select_from(Membership)) == before
