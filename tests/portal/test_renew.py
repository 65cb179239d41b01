"""Renewing from the portal: the same domain function and rules as staff (plans.services.renew with the
renewal window enforced), a choice of plans, renew once on a double click, the reminder email's link."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from membership.core.models import Activity, AuditLog
from membership.core.time import local_today, period_end
from membership.extensions import db
from membership.notifications import outbox
from membership.plans.models import Membership
from membership.plans.services import PaymentInput, join
from tests.conftest import NOW, PASSWORD, login
from tests.portal.helpers import emails, link_path


@pytest.fixture
def today():
    return local_today()


@pytest.fixture
def plan(make_plan):
    return make_plan(code="STD", name="Standard", fee_minor=150000, period_months=12, grace_days=30)


@pytest.fixture
def me(make_member, make_user):
    member = make_member(first_name="Tanvir", email="tanvir@example.org")
    user = make_user("member", email="tanvir@example.org", member_id=member.id)
    db.session.commit()
    return member, user


def start_term(member, plan, start):
    payment = PaymentInput(amount_minor=plan.fee_minor, method="cash", received_at=NOW) if plan.fee_minor else None
    term = join(db.session, member, plan, today=start, now=NOW, actor=None, starts_on=start, payment=payment)
    db.session.commit()
    return term


def terms(member) -> list[Membership]:
    db.session.expire_all()
    return list(db.session.scalars(select(Membership).where(Membership.member_id == member.id)
                                   .order_by(Membership.starts_on, Membership.id)))


def renew_form(client, term, plan) -> dict:
    page = client.get("/my/renew").get_data(as_text=True)
    assert f'name="term_id" type="hidden" value="{term.id}"' in page or f'value="{term.id}"' in page
    return {"term_id": str(term.id), "plan": str(plan.id)}


def test_renew_before_the_end_starts_the_day_after_and_waits_for_payment(client, me, plan, today):
    member, user = me
    term = start_term(member, plan, today - timedelta(days=300))
    login(client, user)
    page = client.get("/my/renew").get_data(as_text=True)
    new_start = term.ends_on + timedelta(days=1)
    new_end = period_end(new_start, 12)
    assert "Choose your plan" in page and f"{new_start:%d %b %Y} to {new_end:%d %b %Y}" in page
    assert "1,500.00" in page and "Renew my membership</button>" in page

    response = client.post("/my/renew", data=renew_form(client, term, plan))
    assert response.status_code == 302 and response.headers["Location"] == "/my/"
    old, new = terms(member)
    assert (new.starts_on, new.ends_on) == (new_start, new_end)
    assert new.renews_id == old.id and new.source == "renewal" and new.awaiting_payment
    assert member.status == "active"  # the current term goes on
    audit = db.session.scalar(select(AuditLog).where(AuditLog.action == "membership.renew"))
    assert audit.actor_id == user.id
    assert db.session.scalar(select(func.count()).select_from(Activity).where(Activity.kind == "renewed")) == 1

    home = client.get("/my/").get_data(as_text=True)
    assert "Thank you. Your membership is renewed" in home
    assert "Pay" in home and "for your renewal" in home and "1,500.00" in home


def test_a_double_click_renews_once(client, me, plan, today):
    member, user = me
    term = start_term(member, plan, today - timedelta(days=300))
    login(client, user)
    form = renew_form(client, term, plan)
    first = client.post("/my/renew", data=form)
    second = client.post("/my/renew", data=form)
    assert first.status_code == second.status_code == 302
    assert len(terms(member)) == 2
    assert "already renewed" in client.get("/my/").get_data(as_text=True)


def test_a_free_plan_renewal_is_done_at_once(client, me, make_plan, today):
    member, user = me
    free = make_plan(name="Friend", fee_minor=0)
    term = start_term(member, free, today - timedelta(days=300))
    login(client, user)
    client.post("/my/renew", data=renew_form(client, term, free))
    old, new = terms(member)
    assert not new.awaiting_payment and new.status == "upcoming"
    assert "You have renewed: your next term runs" in client.get("/my/").get_data(as_text=True)
    again = client.get("/my/renew").get_data(as_text=True)
    assert "You have already renewed" in again and "Renew my membership</button>" not in again


def test_after_a_lapse_the_new_term_starts_today(client, me, plan, today):
    member, user = me
    term = start_term(member, plan, today - timedelta(days=500))
    login(client, user)
    client.post("/my/renew", data=renew_form(client, term, plan))
    assert terms(member)[-1].starts_on == today


def test_renewal_is_refused_before_the_window_opens(client, me, make_plan, today):
    member, user = me
    windowed = make_plan(name="Windowed", fee_minor=0, renewal_opens_days=30)
    term = start_term(member, windowed, today - timedelta(days=100))
    login(client, user)
    page = client.get("/my/renew").get_data(as_text=True)
    opens = term.ends_on - timedelta(days=30)
    assert f"Renewal opens on {opens:%d %b %Y}" in page and "Renew my membership</button>" not in page
    response = client.post("/my/renew", data={"term_id": str(term.id), "plan": str(windowed.id)})
    assert response.status_code == 422
    assert f"Renewal opens on {opens:%d %b %Y}" in response.get_data(as_text=True)
    assert len(terms(member)) == 1


def test_the_window_is_open_in_the_last_days(client, me, make_plan, today):
    member, user = me
    windowed = make_plan(name="Windowed", fee_minor=0, renewal_opens_days=30, period_months=1)
    term = start_term(member, windowed, today - timedelta(days=10))
    login(client, user)
    client.post("/my/renew", data={"term_id": str(term.id), "plan": str(windowed.id)})
    assert len(terms(member)) == 2


def test_members_choose_among_plans_open_online(client, me, plan, make_plan, today):
    member, user = me
    student = make_plan(name="Student", fee_minor=50000)
    make_plan(name="Staff only", joinable_online=False)
    make_plan(name="Corporate", is_organizational=True)
    make_plan(name="Retired", is_active=False)
    fellow = make_plan(name="Fellow", needs_approval=True)
    term = start_term(member, plan, today - timedelta(days=300))
    login(client, user)
    page = client.get("/my/renew").get_data(as_text=True)
    assert "Standard" in page and "Student" in page
    for hidden in ("Staff only", "Corporate", "Retired", "Fellow"):
        assert hidden not in page
    # A plan that needs approval cannot be reached by renewing onto it.
    refused = client.post("/my/renew", data={"term_id": str(term.id), "plan": str(fellow.id)})
    assert refused.status_code == 422 and "Choose one of the plans shown." in refused.get_data(as_text=True)
    assert len(terms(member)) == 1
    client.post("/my/renew", data={"term_id": str(term.id), "plan": str(student.id)})
    assert terms(member)[-1].plan_id == student.id


def test_a_renewal_still_waiting_for_payment_blocks_another(client, me, plan, today):
    member, user = me
    term = start_term(member, plan, today - timedelta(days=300))
    login(client, user)
    client.post("/my/renew", data=renew_form(client, term, plan))
    page = client.get("/my/renew").get_data(as_text=True)
    assert "waiting for payment" in page and "Renew my membership</button>" not in page
    new = terms(member)[-1]
    response = client.post("/my/renew", data={"term_id": str(new.id), "plan": str(plan.id)})
    assert response.status_code == 409 and len(terms(member)) == 2


def test_fields_outside_the_form_change_nothing(client, me, plan, today):
    member, user = me
    term = start_term(member, plan, today - timedelta(days=300))
    login(client, user)
    client.post("/my/renew", data={**renew_form(client, term, plan), "ends_on": "2099-12-31", "status": "active",
                                   "fee_minor": "0", "awaiting_payment": "", "source": "staff",
                                   "member_id": "1", "starts_on": "2020-01-01"})
    new = terms(member)[-1]
    assert new.ends_on == period_end(term.ends_on + timedelta(days=1), 12)
    assert new.fee_minor == 150000 and new.awaiting_payment and new.source == "renewal"


def test_dates_that_changed_since_the_page_was_shown_are_shown_again(client, me, plan, today):
    member, user = me
    term = start_term(member, plan, today - timedelta(days=300))
    login(client, user)
    response = client.post("/my/renew", data={**renew_form(client, term, plan),
                                              f"shown_{plan.id}": "2020-01-01/2020-12-31"})
    assert response.status_code == 409 and "Check and confirm again" in response.get_data(as_text=True)
    assert len(terms(member)) == 1


def test_the_reminder_emails_link_leads_to_the_renewal_page_after_sign_in(client, me, plan, today):
    member, user = me
    term = start_term(member, plan, today - timedelta(days=340))
    outbox.enqueue(db.session, template_key="renewal_reminder_30", dedupe_key="test-reminder", now=NOW,
                   member=member, context={"term": term})
    db.session.commit()
    path = link_path(emails("renewal_reminder_30")[0], "/my/")
    assert path == "/my/renew"
    to_login = client.get(path)
    assert to_login.status_code == 302
    login_page = client.get(to_login.headers["Location"]).get_data(as_text=True)
    assert 'value="/my/renew"' in login_page
    signed = client.post("/login", data={"email": user.email, "password": PASSWORD, "next": "/my/renew"})
    assert signed.headers["Location"] == "/my/renew"
    assert "Choose your plan" in client.get("/my/renew").get_data(as_text=True)
