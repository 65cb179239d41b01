"""Organisations in the staff portal: list, create, edit, contacts, and the organisation's
membership, which covers its contacts."""
from __future__ import annotations

import html
import re
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from membership.core.models import AuditLog
from membership.extensions import db
from membership.members.models import Member, Organization
from membership.members.queries import MemberFilter, member_query
from membership.members.services import save_organization
from membership.plans.models import Membership, Payment
from membership.plans.services import apply_status_transitions, join
from membership.plans.services import PaymentInput
from tests.conftest import NOW, TODAY


@pytest.fixture(autouse=True)
def frozen(app, monkeypatch):
    """The pages ask utcnow()/local_today(); pin them to the suite's NOW (15 Jun 2026)."""
    from membership.staff import views_organizations as views
    monkeypatch.setattr(views, "utcnow", lambda: NOW)
    monkeypatch.setattr(views, "local_today", lambda: TODAY)

    from tests.admin.conftest import forget_per_request_state
    app.teardown_request(forget_per_request_state)  # see tests/admin/conftest.py


@pytest.fixture
def org_plan(make_plan):
    plan = make_plan(code="CORP", name="Corporate", fee_minor=1500000, is_organizational=True, max_contacts=3,
                     grace_days=30)
    db.session.commit()
    return plan


@pytest.fixture
def make_org(app):
    def make(name="Dhaka Traders Ltd", **kw):
        org = save_organization(db.session, {"name": name, **kw}, actor=None, now=NOW)
        db.session.commit()
        return org
    return make


def text_of(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def error_beside(page: str, field: str) -> str:
    match = re.search(rf'id="{field}-err">([^<]*)</div>', page)
    assert match, f"no error beside {field}"
    return match.group(1)


def count(model, *where):
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def reload(obj):
    db.session.expire_all()
    return db.session.get(type(obj), obj.id)


def active_members():
    return db.session.scalars(member_query(MemberFilter.from_args(MultiDict({"status": "active"})))).all()


# ---------------------------------------------------------------- create and edit


def test_create_an_organisation(staff_client, staff_user):
    assert staff_client.get("/staff/organizations/new").status_code == 200
    response = staff_client.post("/staff/organizations/new", data={
        "name": "  Chittagong Exporters  ", "email": "Info@Exporters.example", "phone": "01712345678",
        "website": "https://exporters.example", "address": "12 Port Road\nChittagong"})
    assert response.status_code == 302
    org = db.session.scalar(select(Organization))
    assert response.headers["Location"].endswith(f"/staff/organizations/{org.id}")
    assert (org.name, org.phone, org.status) == ("Chittagong Exporters", "+8801712345678", "none")
    audit = db.session.scalar(select(AuditLog).where(AuditLog.action == "organization.create"))
    assert audit.actor_id == staff_user.id
    page = staff_client.get(response.headers["Location"])
    assert "Organisation Chittagong Exporters created." in text_of(page)
    assert "12 Port Road" in page.text


@pytest.mark.parametrize("data,field,message", [
    ({"name": ""}, "name", "Name is required."),
    ({"name": "x" * 201}, "name", "Name must be at most 200 characters."),
    ({"name": "Bad\x00Org"}, "name", "Name contains characters that are not allowed."),
    ({"name": "Org", "email": "nobody@"}, "email", "Email:"),
    ({"name": "Org", "phone": "12"}, "phone", "Phone:"),
])
def test_bad_organisation_input(staff_client, data, field, message):
    response = staff_client.post("/staff/organizations/new", data=data)
    assert response.status_code == 422
    assert message in error_beside(text_of(response), field)
    assert count(Organization) == 0 and count(AuditLog) == 0


def test_duplicate_name_is_refused_whatever_the_case(staff_client, make_org):
    make_org("Dhaka Traders Ltd")
    response = staff_client.post("/staff/organizations/new", data={"name": "DHAKA traders ltd"})
    assert response.status_code == 409
    assert "An organisation named Dhaka Traders Ltd already exists." in error_beside(text_of(response), "name")
    assert count(Organization) == 1


def test_edit_an_organisation(staff_client, make_org):
    org = make_org("Dhaka Traders Ltd", email="old@example.org")
    page = staff_client.get(f"/staff/organizations/{org.id}/edit")
    assert page.status_code == 200 and 'value="old@example.org"' in page.text
    response = staff_client.post(f"/staff/organizations/{org.id}/edit",
                                 data={"name": "Dhaka Traders Limited", "email": "new@example.org"})
    assert response.status_code == 302
    org = reload(org)
    assert (org.name, org.email) == ("Dhaka Traders Limited", "new@example.org")
    audit = db.session.scalar(select(AuditLog).where(AuditLog.action == "organization.update"))
    assert audit.changes["email"] == ["old@example.org", "new@example.org"]
    bad = staff_client.post(f"/staff/organizations/{org.id}/edit", data={"name": "", "email": "x@example.org"})
    assert bad.status_code == 422 and reload(org).email == "new@example.org"
    assert staff_client.get("/staff/organizations/999/edit").status_code == 404


# ---------------------------------------------------------------- list


def test_list_search_status_contacts_and_expiry(staff_client, make_org, make_member, org_plan):
    a = make_org("Dhaka Traders Ltd")
    b = make_org("ঢাকা বস্ত্র সমিতি")
    make_org("Sylhet Tea Co")
    join(db.session, a, org_plan, today=TODAY, now=NOW, actor=None,
         payment=PaymentInput(amount_minor=org_plan.fee_minor, method="cash", received_at=NOW))
    for _ in range(2):
        contact = make_member()
        contact.organization_id = a.id
    primary = make_member(first_name="Rahim", last_name="Uddin")
    primary.organization_id, primary.is_primary_contact = a.id, True
    db.session.commit()

    page = staff_client.get("/staff/organizations")
    assert page.status_code == 200 and "3 organisations" in page.text
    row = page.text.split(">Dhaka Traders Ltd</a>", 1)[1].split("</tr>", 1)[0]
    assert "Active" in row and "14 Jun 2027" in row and ">3</td>" in row and "Rahim Uddin" in row

    found = staff_client.get("/staff/organizations?q=traders").text
    assert "Dhaka Traders Ltd" in found and "Sylhet" not in found
    assert "ঢাকা বস্ত্র সমিতি" in staff_client.get("/staff/organizations?q=বস্ত্র").text
    active = staff_client.get("/staff/organizations?status=active").text
    assert "Dhaka Traders Ltd" in active and "Sylhet" not in active and "1 organisation match" in active
    by_expiry = staff_client.get("/staff/organizations?sort=-expires")
    assert by_expiry.status_code == 200
    # Nonsense in the query string is ignored, not a 500.
    assert staff_client.get("/staff/organizations?status=bogus&sort=drop&page=x").status_code == 200


def test_list_paginates(staff_client, make_org):
    for n in range(53):
        make_org(f"Org {n:02d}")
    first = staff_client.get("/staff/organizations")
    assert "53 organisations" in first.text and "Org 00" in first.text and "Org 52" not in first.text
    assert "Org 52" in staff_client.get("/staff/organizations?page=2").text


# ---------------------------------------------------------------- the organisation page and contacts


def add_contact(client, org, **data):
    return client.post(f"/staff/organizations/{org.id}/contacts",
                       data={f"contact-{k}": v for k, v in data.items()})


def test_page_shows_details_status_contacts_terms_and_payments(staff_client, make_org, make_member, org_plan):
    org = make_org("Dhaka Traders Ltd", email="info@traders.example", address="1 Motijheel")
    assert add_contact(staff_client, org, lookup=make_member(first_name="Karim", last_name="Ahmed").email
                       ).status_code == 302
    assert staff_client.post(f"/staff/organizations/{org.id}/membership", data={
        "membership-plan": str(org_plan.id), "membership-amount": "", "membership-method": "bank_transfer",
        "membership-reference": "TRX-1", "membership-received_on": "2026-06-15",
        "membership-idempotency_key": "key-page-0001", "membership-term_id": ""}).status_code == 302
    page = staff_client.get(f"/staff/organizations/{org.id}")
    assert page.status_code == 200
    text = text_of(page)
    for expected in ("Dhaka Traders Ltd", "info@traders.example", "1 Motijheel", "Karim Ahmed", "Primary",
                     "Corporate", "15 Jun 2026", "14 Jun 2027", "R-2026-00001", "TRX-1", "Active"):
        assert expected in text, expected
    assert 'name="csrf_token"' in page.text and 'name="membership-idempotency_key"' in page.text
    assert staff_client.get("/staff/organizations/999").status_code == 404


def test_add_contacts_by_email_by_number_and_as_new_member(staff_client, make_org, make_member, staff_user):
    org = make_org()
    by_email = make_member(email="karim@example.org")
    by_number = make_member()
    db.session.commit()

    assert add_contact(staff_client, org, lookup="KARIM@example.org").status_code == 302
    assert add_contact(staff_client, org, lookup=by_number.member_number.lower()).status_code == 302
    response = add_contact(staff_client, org, first_name="Shirin", last_name="Akter", email="shirin@example.org",
                           primary="y")
    assert response.status_code == 302
    db.session.expire_all()
    contacts = {m.email: m for m in reload(org).contacts}
    assert set(contacts) == {"karim@example.org", by_number.email, "shirin@example.org"}
    # The first contact became primary; the new one asked to be primary and took over.
    assert [m.email for m in contacts.values() if m.is_primary_contact] == ["shirin@example.org"]
    shirin = contacts["shirin@example.org"]
    assert shirin.first_name == "Shirin" and shirin.member_number
    assert count(AuditLog, AuditLog.action == "organization.add_contact") == 3
    assert count(AuditLog, AuditLog.action == "member.create", AuditLog.actor_id == staff_user.id) == 1
    page = text_of(staff_client.get(f"/staff/organizations/{org.id}"))
    assert "Shirin Akter" in page and "shirin@example.org" in page


@pytest.mark.parametrize("data,field,message", [
    ({}, "contact-lookup", "Enter an existing member's email or member number, or a new member's first name."),
    ({"lookup": "nobody@example.org"}, "contact-lookup", "No member has this email or member number."),
    ({"lookup": "M999999"}, "contact-lookup", "No member has this email or member number."),
    ({"first_name": "", "last_name": "Akter"}, "contact-first_name", "First name is required."),
    ({"first_name": "Shirin", "email": "shirin@"}, "contact-email", "Email:"),
])
def test_bad_contact_input(staff_client, make_org, data, field, message):
    org = make_org()
    before = (count(Member), count(AuditLog))
    response = add_contact(staff_client, org, **data)
    assert response.status_code == 422
    assert message in error_beside(text_of(response), field)
    assert (count(Member), count(AuditLog)) == before


def test_a_new_contact_with_a_taken_email_points_to_the_member(staff_client, make_org, make_member):
    org = make_org()
    make_member(first_name="Karim", last_name="Ahmed", email="karim@example.org")
    db.session.commit()
    before = count(Member)
    response = add_contact(staff_client, org, first_name="Karim", last_name="A.", email="karim@example.org")
    assert response.status_code == 422
    message = error_beside(text_of(response), "contact-email")
    assert "Karim Ahmed" in message and "already has this email" in message and "Existing member" in message
    assert count(Member) == before and reload(org).contacts == []


def test_a_contact_of_another_organisation_is_refused(staff_client, make_org, make_member):
    first, second = make_org("First Ltd"), make_org("Second Ltd")
    member = make_member()
    member.organization_id = first.id
    db.session.commit()
    response = add_contact(staff_client, second, lookup=member.email)
    assert response.status_code == 409
    assert "is a contact of another organisation" in text_of(response)
    assert reload(member).organization_id == first.id


def test_max_contacts_is_enforced(staff_client, make_org, make_member, org_plan):
    org = make_org()
    join(db.session, org, org_plan, today=TODAY, now=NOW, actor=None,
         payment=PaymentInput(amount_minor=org_plan.fee_minor, method="cash", received_at=NOW))
    members = [make_member() for _ in range(4)]
    db.session.commit()
    for m in members[:3]:
        assert add_contact(staff_client, org, lookup=m.email).status_code == 302
    before = (count(Member), count(AuditLog))
    refused = add_contact(staff_client, org, lookup=members[3].email)
    assert refused.status_code == 409
    assert "The plan Corporate covers at most 3 contacts." in text_of(refused)
    new_one = add_contact(staff_client, org, first_name="Extra", last_name="Person", email="extra@example.org")
    assert new_one.status_code == 409
    assert (count(Member), count(AuditLog)) == before  # the new member was not left behind either
    assert len(reload(org).contacts) == 3 and reload(members[3]).organization_id is None
    # An existing contact can still be re-added (made primary) without counting twice.
    assert add_contact(staff_client, org, lookup=members[1].email, primary="y").status_code == 302
    assert reload(members[1]).is_primary_contact


def test_remove_and_set_primary_contact(staff_client, make_org, make_member):
    org = make_org()
    a, b = make_member(first_name="Anika"), make_member(first_name="Bashir")
    db.session.commit()
    add_contact(staff_client, org, lookup=a.email)
    add_contact(staff_client, org, lookup=b.email)
    assert reload(a).is_primary_contact and not reload(b).is_primary_contact

    assert staff_client.post(f"/staff/organizations/{org.id}/contacts/{b.id}/primary").status_code == 302
    assert reload(b).is_primary_contact and not reload(a).is_primary_contact
    assert count(AuditLog, AuditLog.action == "organization.primary_contact") == 1

    # Removing the primary contact passes the role to the one who is left.
    assert staff_client.post(f"/staff/organizations/{org.id}/contacts/{b.id}/remove").status_code == 302
    assert reload(b).organization_id is None and not reload(b).is_primary_contact
    assert reload(a).is_primary_contact
    # Someone who is not a contact: 404, nothing changes.
    assert staff_client.post(f"/staff/organizations/{org.id}/contacts/{b.id}/remove").status_code == 404
    assert staff_client.post(f"/staff/organizations/{org.id}/contacts/{b.id}/primary").status_code == 404
    assert staff_client.get(f"/staff/organizations/{org.id}/contacts/{a.id}/remove").status_code == 405


def test_removing_a_contact_ends_the_cover_of_the_organisation(staff_client, make_org, make_member, org_plan):
    org = make_org()
    contact = make_member()
    join(db.session, org, org_plan, today=TODAY, now=NOW, actor=None,
         payment=PaymentInput(amount_minor=org_plan.fee_minor, method="cash", received_at=NOW))
    db.session.commit()
    add_contact(staff_client, org, lookup=contact.email)
    assert reload(contact).status == "active" and contact in active_members()
    response = staff_client.post(f"/staff/organizations/{org.id}/contacts/{contact.id}/remove")
    assert "their own status is now none" in text_of(staff_client.get(response.headers["Location"]))
    contact = reload(contact)
    assert (contact.status, contact.plan_id, contact.expires_on) == ("none", None, None)
    assert contact not in active_members()
    assert count(AuditLog, AuditLog.action == "organization.remove_contact") == 1


# ---------------------------------------------------------------- the organisation's membership


def membership_form(plan_, term_id="", key="k-000000001", amount="", **kw):
    data = {"plan": str(plan_.id), "amount": amount, "method": "cash", "reference": "",
            "received_on": "2026-06-15", "idempotency_key": key, "term_id": str(term_id), **kw}
    return {f"membership-{k}": v for k, v in data.items()}


def test_join_covers_the_contacts_and_they_lapse_with_the_organisation(staff_client, make_org, make_member,
                                                                       org_plan):
    org = make_org()
    contact = make_member(first_name="Karim")
    outsider = make_member(first_name="Outsider")
    db.session.commit()
    add_contact(staff_client, org, lookup=contact.email)
    assert reload(contact).status == "none"

    response = staff_client.post(f"/staff/organizations/{org.id}/membership", data=membership_form(org_plan))
    assert response.status_code == 302
    flash = text_of(staff_client.get(response.headers["Location"]))
    assert "Joined: Dhaka Traders Ltd on Corporate, 15 Jun 2026 to 14 Jun 2027, receipt R-2026-00001" in flash

    org, contact = reload(org), reload(contact)
    assert (org.status, org.expires_on, org.plan_id) == ("active", date(2027, 6, 14), org_plan.id)
    term = db.session.scalar(select(Membership).where(Membership.organization_id == org.id))
    payment = db.session.scalar(select(Payment).where(Payment.organization_id == org.id))
    assert payment.amount_minor == 1500000 and payment.membership_id == term.id
    assert not term.awaiting_payment
    # The contact is a current member through the organisation, and the member list says so.
    assert (contact.status, contact.expires_on, contact.plan_id) == ("active", date(2027, 6, 14), org_plan.id)
    assert contact in active_members() and outsider not in active_members()

    # After the end and the grace period the organisation lapses, and so does its contact.
    in_grace = date(2027, 6, 20)
    apply_status_transitions(db.session, today=in_grace, now=NOW, batch_size=1)
    assert (reload(org).status, reload(contact).status) == ("grace", "grace")
    lapsed_day = date(2027, 6, 14) + timedelta(days=31)
    apply_status_transitions(db.session, today=lapsed_day, now=NOW)
    db.session.commit()
    assert (reload(org).status, reload(contact).status) == ("lapsed", "lapsed")
    assert contact not in active_members()


def test_renewal_before_the_end_continues_and_covers_contacts(staff_client, make_org, make_member, org_plan):
    org = make_org()
    contact = make_member()
    term = join(db.session, org, org_plan, today=date(2025, 7, 1), now=NOW, actor=None, starts_on=date(2025, 7, 1),
                payment=PaymentInput(amount_minor=org_plan.fee_minor, method="cash", received_at=NOW))
    db.session.commit()
    add_contact(staff_client, org, lookup=contact.email)
    assert reload(contact).expires_on == date(2026, 6, 30)

    page = staff_client.get(f"/staff/organizations/{org.id}")
    assert "Renew the membership" in page.text and f'value="{term.id}"' in page.text
    data = membership_form(org_plan, term_id=term.id, key="renew-key-0001", amount="15,000.00",
                           reference="CHQ 778")
    response = staff_client.post(f"/staff/organizations/{org.id}/membership", data=data)
    assert response.status_code == 302
    assert "Renewed: Dhaka Traders Ltd on Corporate, 01 Jul 2026 to 30 Jun 2027" in text_of(
        staff_client.get(response.headers["Location"]))
    # A double submit of the same form: one renewal, one payment.
    again = staff_client.post(f"/staff/organizations/{org.id}/membership", data=data)
    assert again.status_code == 409 and "already" in text_of(again)
    terms = db.session.scalars(select(Membership).where(Membership.organization_id == org.id)
                               .order_by(Membership.starts_on)).all()
    assert [(t.starts_on, t.ends_on) for t in terms] == [(date(2025, 7, 1), date(2026, 6, 30)),
                                                         (date(2026, 7, 1), date(2027, 6, 30))]
    assert count(Payment, Payment.organization_id == org.id) == 2
    assert reload(contact).expires_on == date(2027, 6, 30) and reload(contact).status == "active"
    # Same form, fresh key, but naming the term that is already renewed: still one renewal.
    third = staff_client.post(f"/staff/organizations/{org.id}/membership",
                              data=membership_form(org_plan, term_id=term.id, key="renew-key-0002"))
    assert third.status_code == 409 and "already renewed" in text_of(third)
    assert count(Payment, Payment.organization_id == org.id) == 2


def test_renewal_after_a_lapse_starts_today_and_shows_the_gap(staff_client, make_org, make_member, org_plan):
    org = make_org()
    contact = make_member()
    term = join(db.session, org, org_plan, today=date(2024, 3, 1), now=NOW, actor=None, starts_on=date(2024, 3, 1),
                payment=PaymentInput(amount_minor=org_plan.fee_minor, method="cash", received_at=NOW))
    db.session.commit()
    page = text_of(staff_client.get(f"/staff/organizations/{org.id}"))
    assert "The saved status is out of date" in page  # cached "active" from 2024, live "lapsed"
    apply_status_transitions(db.session, today=TODAY, now=NOW)
    db.session.commit()
    add_contact(staff_client, org, lookup=contact.email)
    assert (reload(org).status, reload(contact).status) == ("lapsed", "lapsed")
    response = staff_client.post(f"/staff/organizations/{org.id}/membership",
                                 data=membership_form(org_plan, term_id=term.id))
    assert response.status_code == 302
    assert (reload(org).status, reload(contact).status) == ("active", "active")
    assert reload(org).expires_on == date(2027, 6, 14)
    page = text_of(staff_client.get(f"/staff/organizations/{org.id}"))
    assert "No membership from 01 Mar 2025 to 14 Jun 2026 (471 days)" in " ".join(page.split())


def test_double_submitted_join_records_one_term_and_one_payment(staff_client, make_org, org_plan):
    org = make_org()
    data = membership_form(org_plan, key="join-key-0001")
    assert staff_client.post(f"/staff/organizations/{org.id}/membership", data=data).status_code == 302
    again = staff_client.post(f"/staff/organizations/{org.id}/membership", data=data)
    assert again.status_code == 409
    assert count(Membership, Membership.organization_id == org.id) == 1
    assert count(Payment, Payment.organization_id == org.id) == 1


@pytest.mark.parametrize("changes,field,message", [
    ({"amount": "-5"}, "membership-amount", "Amount cannot be negative."),
    ({"amount": "1.234"}, "membership-amount", "Amount: use at most 2 decimal places."),
    ({"amount": "lots"}, "membership-amount", "Amount: enter an amount like 1500.00."),
    ({"method": "bitcoin"}, "membership-method", "Choose a payment method."),
    ({"received_on": "2026-07-01"}, "membership-received_on", "The payment date cannot be in the future."),
    ({"received_on": "yesterday"}, "membership-received_on", "Not a valid date value."),
    ({"reference": "x" * 101}, "membership-reference", "Reference must be at most 100 characters."),
    ({"plan": "999"}, "membership-plan", "Choose a plan."),
])
def test_bad_membership_input_writes_nothing(staff_client, make_org, org_plan, changes, field, message):
    org = make_org()
    response = staff_client.post(f"/staff/organizations/{org.id}/membership",
                                 data=membership_form(org_plan, **changes))
    assert response.status_code == 422
    assert message in error_beside(text_of(response), field)
    assert count(Membership) == 0 and count(Payment) == 0 and reload(org).status == "none"


def test_an_individual_or_retired_plan_is_refused(staff_client, make_org, make_plan, org_plan):
    org = make_org()
    individual = make_plan(code="IND", name="Individual")
    retired = make_plan(code="OLDCORP", name="Old corporate", is_organizational=True, is_active=False)
    db.session.commit()
    r1 = staff_client.post(f"/staff/organizations/{org.id}/membership", data=membership_form(individual))
    assert r1.status_code == 422
    assert "Individual is not a plan for organisations." in error_beside(text_of(r1), "membership-plan")
    r2 = staff_client.post(f"/staff/organizations/{org.id}/membership", data=membership_form(retired))
    assert r2.status_code == 422 and "retired" in error_beside(text_of(r2), "membership-plan")
    assert count(Membership) == 0 and count(Payment) == 0
    # Only organisational plans on offer are in the form.
    page = staff_client.get(f"/staff/organizations/{org.id}").text
    assert "Corporate (" in page and "Individual (" not in page and "Old corporate" not in page


def test_a_term_of_another_organisation_cannot_be_renewed_here(staff_client, make_org, org_plan):
    a, b = make_org("A Ltd"), make_org("B Ltd")
    term = join(db.session, a, org_plan, today=TODAY, now=NOW, actor=None,
                payment=PaymentInput(amount_minor=org_plan.fee_minor, method="cash", received_at=NOW))
    db.session.commit()
    response = staff_client.post(f"/staff/organizations/{b.id}/membership",
                                 data=membership_form(org_plan, term_id=term.id, key="cross-key-001"))
    assert response.status_code == 409
    assert count(Membership) == 1 and count(Payment) == 1


def test_an_unpaid_term_can_be_paid_from_the_page(staff_client, make_org, make_member, org_plan):
    org = make_org()
    contact = make_member()
    term = join(db.session, org, org_plan, today=TODAY, now=NOW, actor=None)  # no payment yet
    db.session.commit()
    add_contact(staff_client, org, lookup=contact.email)
    assert (reload(org).status, reload(contact).status) == ("pending", "pending")
    page = text_of(staff_client.get(f"/staff/organizations/{org.id}"))
    assert "Record the payment" in page and "waits for payment of BDT" in page.replace("\xa0", " ")
    bad = staff_client.post(f"/staff/organizations/{org.id}/terms/{term.id}/pay",
                            data=membership_form(org_plan, amount="0"))
    assert bad.status_code == 422 and count(Payment) == 0
    response = staff_client.post(f"/staff/organizations/{org.id}/terms/{term.id}/pay",
                                 data=membership_form(org_plan, key="pay-key-0001"))
    assert response.status_code == 302
    assert (reload(org).status, reload(contact).status) == ("active", "active")
    assert db.session.scalar(select(Payment.amount_minor)) == 1500000
    again = staff_client.post(f"/staff/organizations/{org.id}/terms/{term.id}/pay",
                              data=membership_form(org_plan, key="pay-key-0002"))
    assert again.status_code == 409 and count(Payment) == 1


def test_approval_of_an_application(staff_client, make_org, make_plan):
    plan = make_plan(code="ASSOC", name="Associate", fee_minor=0, is_organizational=True, needs_approval=True)
    org = make_org()
    term = join(db.session, org, plan, today=TODAY, now=NOW, actor=None, approved=False)
    db.session.commit()
    assert reload(org).status == "pending"
    assert "Application waiting for approval" in staff_client.get(f"/staff/organizations/{org.id}").text
    assert staff_client.post(f"/staff/organizations/{org.id}/terms/{term.id}/approve").status_code == 302
    assert reload(org).status == "active"
    assert staff_client.post(f"/staff/organizations/{org.id}/terms/{term.id}/approve").status_code == 409


def test_lifetime_membership_has_nothing_to_renew(staff_client, make_org, make_plan):
    plan = make_plan(code="LIFE", name="Life", fee_minor=0, is_organizational=True, period_kind="lifetime")
    org = make_org()
    join(db.session, org, plan, today=TODAY, now=NOW, actor=None)
    db.session.commit()
    page = staff_client.get(f"/staff/organizations/{org.id}").text
    assert "there is nothing to renew" in page and "never (lifetime)" in page


def test_visitors_and_members_cannot_see_organisations(client, make_user, make_org):
    org = make_org()
    for path in ("/staff/organizations", f"/staff/organizations/{org.id}"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"]
    from tests.conftest import login
    make_user("member", email="m@example.org")
    login(client, "m@example.org")
    assert client.get(f"/staff/organizations/{org.id}").status_code == 403
    assert client.post(f"/staff/organizations/{org.id}/contacts", data={"contact-lookup": "x"}).status_code == 403


# ---------------------------------------------------------------- gaps found in plans.services


@pytest.mark.parametrize("reference", ["x" * 101, "CHQ\x00778"])
def test_record_payment_validates_the_reference(make_org, org_plan, reference):
    from membership.core.errors import ValidationError
    org = make_org()
    with pytest.raises(ValidationError):
        join(db.session, org, org_plan, today=TODAY, now=NOW, actor=None,
             payment=PaymentInput(amount_minor=org_plan.fee_minor, method="cash", received_at=NOW,
                                  reference=reference))
        db.session.flush()
