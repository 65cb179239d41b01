"""Create and edit member: validation beside each field, nothing written on error, the
duplicate-email link, the optional first membership with its payment, the audit trail."""
from __future__ import annotations

import html
import re
from datetime import date, timedelta
from html.parser import HTMLParser

import pytest
from sqlalchemy import func, select

from membership.core.errors import Conflict
from membership.core.models import AuditLog
from membership.core.time import local_today
from membership.extensions import db
from membership.members.models import Member
from membership.members.services import save_organization
from membership.plans import services as plan_services
from membership.plans.models import Membership, Payment
from tests.conftest import NOW


def count(model) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model))


def flashes(client) -> list[str]:
    with client.session_transaction() as s:
        return [message for _, message in s.get("_flashes", [])]


def field_error(page: str, field: str) -> str:
    """The text of the error shown beside a field ('' when none)."""
    found = re.findall(rf'<div class="invalid-feedback" id="{field}-err">(.*?)</div>', page, re.S)
    return html.unescape(" ".join(re.sub(r"<[^>]+>", "", f).strip() for f in found))


def form_data(**overrides) -> dict:
    today = local_today()
    data = {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.org", "phone": "01712345678",
            "address_line1": "12 Road", "address_line2": "", "city": "Dhaka", "postcode": "1205",
            "country": "bd", "date_of_birth": "1990-12-10", "organization_id": "", "job_title": "Analyst",
            "joined_on": today.isoformat(), "language": "en", "notes": "", "plan_id": "",
            "starts_on": today.isoformat(), "amount": "", "method": "cash", "reference": "", "form_key": "k1"}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


@pytest.fixture
def plan(make_plan):
    return make_plan(name="Standard", fee_minor=120000)


# ---------------------------------------------------------------- the form


def test_new_form_shows_fields_and_plans(staff_client, make_plan):
    make_plan(name="Standard", fee_minor=120000)
    make_plan(name="Retired plan", is_active=False)
    make_plan(name="Corporate", is_organizational=True)
    db.session.commit()
    response = staff_client.get("/staff/members/new")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    for name in ("first_name", "last_name", "email", "phone", "address_line1", "city", "postcode", "country",
                 "date_of_birth", "organization_id", "job_title", "joined_on", "language", "marketing_opt_in",
                 "directory_opt_in", "notes", "plan_id", "starts_on", "payment_received", "amount", "method",
                 "reference"):
        assert f'name="{name}"' in page, name
        assert f'for="{name}"' in page, f"label for {name}"
    assert "Standard (" in page and "1,200.00" in page
    assert "Retired plan" not in page and "Corporate" not in page
    assert f'value="{local_today().isoformat()}"' in page  # joined on / starts on default to today
    assert 'name="form_key" type="hidden" value="' in page


def test_form_carries_a_csrf_token_and_refuses_a_post_without_it(app, staff_client):
    app.config["WTF_CSRF_ENABLED"] = True
    page = staff_client.get("/staff/members/new").get_data(as_text=True)
    assert 'name="csrf_token"' in page
    response = staff_client.post("/staff/members/new", data=form_data())
    assert response.status_code == 400
    assert count(Member) == 0


# ---------------------------------------------------------------- create


def test_create_member(staff_client, staff_user):
    response = staff_client.post("/staff/members/new", data=form_data(
        email="  Ada@Example.ORG ", language="bn", marketing_opt_in="y", notes="Met at the fair"))
    assert response.status_code == 302
    member = db.session.scalars(select(Member)).one()
    assert response.headers["Location"] == f"/staff/members/{member.id}"
    assert (member.first_name, member.last_name, member.email) == ("Ada", "Lovelace", "Ada@example.org")
    assert member.phone == "+8801712345678" and member.country == "BD"
    assert member.date_of_birth.isoformat() == "1990-12-10" and member.joined_on == local_today()
    assert member.language == "bn" and member.marketing_opt_in and not member.directory_opt_in
    assert member.notes == "Met at the fair" and member.status == "none"
    assert flashes(staff_client) == [f"Created member {member.member_number} Ada Lovelace."]
    audit = db.session.scalars(select(AuditLog).where(AuditLog.action == "member.create")).one()
    assert audit.actor_id == staff_user.id and audit.member_id == member.id
    assert count(Membership) == 0 and count(Payment) == 0


def test_create_with_a_paid_membership(staff_client, plan):
    db.session.commit()
    response = staff_client.post("/staff/members/new", data=form_data(
        plan_id=str(plan.id), payment_received="y", method="bank_transfer", reference="TRX-991"))
    assert response.status_code == 302
    member = db.session.scalars(select(Member)).one()
    term = db.session.scalars(select(Membership)).one()
    payment = db.session.scalars(select(Payment)).one()
    today = local_today()
    assert term.member_id == member.id and term.starts_on == today and not term.awaiting_payment
    assert payment.amount_minor == 120000 and payment.method == "bank_transfer" and payment.reference == "TRX-991"
    assert payment.membership_id == term.id and payment.member_id == member.id
    assert member.status == "active" and member.plan_id == plan.id
    message = flashes(staff_client)[0]
    assert message.startswith(f"Created member {member.member_number} Ada Lovelace; Standard from ")
    assert f"receipt {payment.receipt_number}" in message
    actions = set(db.session.scalars(select(AuditLog.action)))
    assert {"member.create", "membership.join", "payment.record"} <= actions


def test_create_with_an_amount_typed(staff_client, plan):
    db.session.commit()
    staff_client.post("/staff/members/new", data=form_data(plan_id=str(plan.id), payment_received="y",
                                                           amount="1,250.50"))
    assert db.session.scalars(select(Payment.amount_minor)).one() == 125050


def test_create_with_membership_waiting_for_payment(staff_client, plan):
    db.session.commit()
    response = staff_client.post("/staff/members/new", data=form_data(plan_id=str(plan.id)))
    assert response.status_code == 302
    member = db.session.scalars(select(Member)).one()
    assert member.status == "pending" and count(Payment) == 0
    assert db.session.scalars(select(Membership)).one().awaiting_payment
    assert flashes(staff_client)[0].endswith("(waiting for payment).")


def test_create_with_an_organisation(staff_client):
    org = save_organization(db.session, {"name": "Analytical Engines"}, actor=None, now=NOW)
    db.session.commit()
    response = staff_client.post("/staff/members/new", data=form_data(organization_id=str(org.id)))
    assert response.status_code == 302
    member = db.session.scalars(select(Member)).one()
    assert member.organization_id == org.id and member.is_primary_contact
    assert "organization.add_contact" in set(db.session.scalars(select(AuditLog.action)))


def test_double_submit_creates_one_member_and_one_payment(staff_client, plan):
    db.session.commit()
    data = form_data(email="", plan_id=str(plan.id), payment_received="y", form_key="same-form")
    first = staff_client.post("/staff/members/new", data=data)
    second = staff_client.post("/staff/members/new", data=data)
    assert first.status_code == second.status_code == 302
    assert first.headers["Location"] == second.headers["Location"]
    assert count(Member) == 1 and count(Payment) == 1
    assert "already saved" in flashes(staff_client)[-1]


def test_a_failed_join_writes_no_member(staff_client, plan, monkeypatch):
    real_join = plan_services.join

    def join_then_fail(*args, **kwargs):
        real_join(*args, **kwargs)  # the term and payment are written, then something refuses
        raise Conflict("The plan changed while you were typing.", field="plan")
    monkeypatch.setattr(plan_services, "join", join_then_fail)
    db.session.commit()
    audits = count(AuditLog)
    response = staff_client.post("/staff/members/new", data=form_data(plan_id=str(plan.id), payment_received="y"))
    assert response.status_code == 409
    assert "The plan changed while you were typing." in field_error(response.get_data(as_text=True), "plan_id")
    assert count(Member) == 0 and count(Membership) == 0 and count(Payment) == 0
    assert count(AuditLog) == audits


def test_a_lost_race_is_a_message_not_a_500(staff_client, make_member, monkeypatch):
    """Another request takes the email between the checks and the insert: the unique index says no."""
    from membership.members import services as member_services
    make_member(email="taken@example.org")
    db.session.commit()
    monkeypatch.setattr(member_services, "find_by_email", lambda session, email: None)
    response = staff_client.post("/staff/members/new", data=form_data(email="taken@example.org"))
    assert response.status_code == 409
    assert "Nothing was saved" in response.get_data(as_text=True)
    assert count(Member) == 1


# ---------------------------------------------------------------- validation


def _future() -> str:
    return (local_today() + timedelta(days=1)).isoformat()


@pytest.mark.parametrize("field, value, message", [
    ("first_name", "", "First name is required."),
    ("first_name", "   ", "First name is required."),
    ("first_name", "A" * 300, "First name must be at most 100 characters."),
    ("first_name", "Ada\x00", "First name contains characters that are not allowed."),
    ("last_name", "L" * 101, "Last name must be at most 100 characters."),
    ("last_name", "Love\nlace", "Last name contains characters that are not allowed."),
    ("email", "not-an-email", "Email:"),
    ("email", "ada@", "Email:"),
    ("phone", "12345", "Phone:"),
    ("phone", "+44 20", "Phone:"),
    ("phone", "call me", "Phone: this is not a phone number."),
    ("country", "B1", "Country: use the two-letter code"),
    ("country", "BGD", "Country must be at most 2 characters."),
    ("postcode", "1" * 21, "Postcode must be at most 20 characters."),
    ("date_of_birth", "2026-02-30", "Use a date like 2026-01-31."),
    ("date_of_birth", "10/12/1990", "Use a date like 2026-01-31."),
    ("date_of_birth", "1850-01-01", "Date of birth must be a past date after 1900."),
    ("date_of_birth", "FUTURE", "Date of birth must be a past date after 1900."),
    ("joined_on", "", "Enter the date the member joined."),
    ("joined_on", "2026-1-32", "Use a date like 2026-01-31."),
    ("joined_on", "FUTURE", "Joined on cannot be in the future."),
    ("joined_on", "0001-01-01", "Joined on is too far in the past."),
    ("organization_id", "abc", "Not a valid choice."),
    ("organization_id", "999", "Not a valid choice."),
    ("organization_id", "99999999999999999999", "Not a valid choice."),
    ("language", "fr", "Not a valid choice."),
    ("notes", "bad\x00note", "Notes contains characters that are not allowed."),
    ("job_title", "x" * 101, "Job title must be at most 100 characters."),
])
def test_bad_input_is_shown_beside_the_field_and_nothing_is_written(staff_client, field, value, message):
    value = _future() if value == "FUTURE" else value
    audits = count(AuditLog)
    response = staff_client.post("/staff/members/new", data=form_data(**{field: value}))
    assert response.status_code == 422
    assert message in field_error(response.get_data(as_text=True), field)
    assert count(Member) == 0 and count(AuditLog) == audits


@pytest.mark.parametrize("overrides, field, message", [
    ({"amount": "abc"}, "amount", "Enter an amount like 500 or 500.00."),
    ({"amount": "-5"}, "amount", "The amount cannot be negative."),
    ({"amount": "1.234"}, "amount", "Use at most two decimals."),
    ({"amount": "1e30"}, "amount", "Enter an amount like 500 or 500.00."),
    ({"amount": "99999999999"}, "amount", "This amount is too large."),
    ({"amount": "NaN"}, "amount", "Enter an amount like"),
    ({"reference": "TRX\x00"}, "reference", "Reference contains characters that are not allowed."),
    ({"reference": "R" * 101}, "reference", "Reference must be at most 100 characters."),
    ({"method": "bitcoin"}, "method", "Not a valid choice."),
    ({"starts_on": "2026-13-01"}, "starts_on", "Use a date like"),
    ({"starts_on": ""}, "starts_on", "Enter the date the membership starts."),
    ({"starts_on": "YESTERDAY"}, "starts_on", "cannot start before the member joined"),
    ({"starts_on": "IN2YEARS"}, "starts_on", "at most a year from today"),
    ({"plan_id": "", "payment_received": "y"}, "plan_id", "Choose the plan this payment is for."),
    ({"plan_id": "RETIRED"}, "plan_id", "Not a valid choice."),
])
def test_bad_membership_input_writes_nothing(staff_client, plan, make_plan, overrides, field, message):
    retired = make_plan(name="Old", is_active=False)
    db.session.commit()
    today = local_today()
    data = form_data(plan_id=str(plan.id), payment_received="y")
    data.update(overrides)
    named_days = {"YESTERDAY": today - timedelta(days=1), "IN2YEARS": today + timedelta(days=800)}
    if data["starts_on"] in named_days:
        data["starts_on"] = named_days[data["starts_on"]].isoformat()
    if data["plan_id"] == "RETIRED":
        data["plan_id"] = str(retired.id)
    data = {k: v for k, v in data.items() if v != ""} | {"plan_id": data["plan_id"]}
    response = staff_client.post("/staff/members/new", data=data)
    assert response.status_code == 422
    assert message in field_error(response.get_data(as_text=True), field)
    assert count(Member) == 0 and count(Membership) == 0 and count(Payment) == 0


def test_every_bad_field_is_reported_at_once_and_what_was_typed_is_kept(staff_client):
    response = staff_client.post("/staff/members/new", data=form_data(
        first_name="", phone="12345", email="bad@", city="Chittagong", date_of_birth="1990-02-31",
        notes="Typed <carefully>"))
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert field_error(page, "first_name") and field_error(page, "phone") and field_error(page, "email")
    assert field_error(page, "date_of_birth")
    assert 'value="Chittagong"' in page and 'value="12345"' in page and 'value="1990-02-31"' in page
    assert "Typed &lt;carefully&gt;</textarea>" in page
    assert "Please correct the fields marked below." in page


# ---------------------------------------------------------------- duplicate email


def test_duplicate_email_links_to_the_member_who_has_it(staff_client, make_member):
    other = make_member(first_name="<b>Eve</b>", last_name="O'Neil", email="eve@example.org")
    db.session.commit()
    response = staff_client.post("/staff/members/new", data=form_data(email="  EVE@example.ORG"))
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "&lt;b&gt;Eve&lt;/b&gt; O&#39;Neil" in page and "<b>Eve</b>" not in page
    assert re.search(rf'<a class="duplicate-link" href="/staff/members/{other.id}">Open their record</a>', page)
    assert f"({other.member_number}) already has this email." in field_error(page, "email")
    assert count(Member) == 1


def test_duplicate_email_found_by_the_service_also_links(staff_client, make_member, monkeypatch):
    """The view's early check can miss (a race); the service's DuplicateEmail still gives the link."""
    from membership.staff import views_members
    other = make_member(email="eve@example.org")
    db.session.commit()
    real = views_members.member_services.find_by_email
    calls = []

    def miss_first(session, email):
        calls.append(email)
        return None if len(calls) == 1 else real(session, email)
    monkeypatch.setattr(views_members.member_services, "find_by_email", miss_first)
    response = staff_client.post("/staff/members/new", data=form_data(email="eve@example.org"))
    assert response.status_code == 422
    assert f'href="/staff/members/{other.id}">Open their record' in response.get_data(as_text=True)
    assert count(Member) == 1


# ---------------------------------------------------------------- edit


@pytest.fixture
def ada(make_member):
    member = make_member(first_name="Ada", last_name="Lovelace", email="ada@example.org", phone="01712345678",
                         external_id="EXT-1")
    db.session.commit()
    return member


def edit_data(member, **overrides) -> dict:
    data = form_data(email=member.email, joined_on=member.joined_on.isoformat(), country="",
                     date_of_birth="", address_line1="", city="", postcode="", job_title="")
    for key in ("plan_id", "starts_on", "amount", "method", "reference", "form_key"):
        data.pop(key)
    data.update(overrides)
    return data


def test_edit_form_is_filled_in(staff_client, ada):
    page = staff_client.get(f"/staff/members/{ada.id}/edit").get_data(as_text=True)
    assert 'value="Ada"' in page and 'value="ada@example.org"' in page
    assert 'value="+880 1712-345678"' in page
    assert 'name="plan_id"' not in page  # the membership is changed from the member page


def test_edit_saves_changes_and_audits_them(staff_client, staff_user, ada):
    number = ada.member_number
    response = staff_client.post(f"/staff/members/{ada.id}/edit",
                                 data=edit_data(ada, email="ada.l@example.org", phone="+44 20 7946 0958"))
    assert response.status_code == 302 and response.headers["Location"] == f"/staff/members/{ada.id}"
    db.session.expire_all()
    member = db.session.get(Member, ada.id)
    assert member.email == "ada.l@example.org" and member.phone == "+442079460958"
    assert member.member_number == number and member.external_id == "EXT-1"  # not on the form: untouched
    audit = db.session.scalars(select(AuditLog).where(AuditLog.action == "member.update")).one()
    assert audit.actor_id == staff_user.id and audit.member_id == ada.id
    assert audit.changes["email"] == ["ada@example.org", "ada.l@example.org"]
    assert set(audit.changes) == {"email", "phone"}
    assert flashes(staff_client) == [f"Saved {number} Ada Lovelace: changed email, phone."]
    # Search finds the new email.
    assert "Ada Lovelace" in staff_client.get("/staff/members?q=ada.l@").get_data(as_text=True)


def test_edit_without_changes_writes_no_audit(staff_client, ada):
    audits = count(AuditLog)
    response = staff_client.post(f"/staff/members/{ada.id}/edit", data=edit_data(ada))
    assert response.status_code == 302
    assert count(AuditLog) == audits
    assert flashes(staff_client) == [f"No changes to {ada.member_number} Ada Lovelace."]


@pytest.mark.parametrize("field, value, message", [
    ("first_name", "", "First name is required."),
    ("first_name", "x" * 300, "at most 100 characters"),
    ("phone", "999", "Phone:"),
    ("date_of_birth", "2000-02-30", "Use a date like"),
    ("email", "ada\x00@example.org", "not allowed"),
])
def test_edit_bad_input_changes_nothing(staff_client, ada, field, value, message):
    audits = count(AuditLog)
    response = staff_client.post(f"/staff/members/{ada.id}/edit",
                                 data=edit_data(ada, last_name="Byron", **{field: value}))
    assert response.status_code == 422
    assert message in field_error(response.get_data(as_text=True), field)
    member = db.session.get(Member, ada.id)
    assert member.last_name == "Lovelace" and member.first_name == "Ada"
    assert count(AuditLog) == audits


def test_edit_duplicate_email_links_to_the_other_member(staff_client, ada, make_member):
    other = make_member(first_name="Eve", email="eve@example.org")
    db.session.commit()
    response = staff_client.post(f"/staff/members/{ada.id}/edit", data=edit_data(ada, email="Eve@Example.org"))
    assert response.status_code == 422
    assert f'href="/staff/members/{other.id}">Open their record' in response.get_data(as_text=True)
    assert db.session.get(Member, ada.id).email == "ada@example.org"


def test_edit_keeping_own_email_in_another_case_is_fine(staff_client, ada):
    response = staff_client.post(f"/staff/members/{ada.id}/edit", data=edit_data(ada, email="ADA@example.org"))
    assert response.status_code == 302


def test_edit_moves_between_organisations(staff_client, ada):
    first = save_organization(db.session, {"name": "First Ltd"}, actor=None, now=NOW)
    second = save_organization(db.session, {"name": "Second Ltd"}, actor=None, now=NOW)
    db.session.commit()
    assert staff_client.post(f"/staff/members/{ada.id}/edit",
                             data=edit_data(ada, organization_id=str(first.id))).status_code == 302
    assert db.session.get(Member, ada.id).organization_id == first.id
    assert staff_client.post(f"/staff/members/{ada.id}/edit",
                             data=edit_data(ada, organization_id=str(second.id))).status_code == 302
    db.session.expire_all()
    assert db.session.get(Member, ada.id).organization_id == second.id
    assert "changed organisation" in flashes(staff_client)[-1]
    assert staff_client.post(f"/staff/members/{ada.id}/edit", data=edit_data(ada)).status_code == 302
    db.session.expire_all()
    assert db.session.get(Member, ada.id).organization_id is None
    actions = list(db.session.scalars(select(AuditLog.action).order_by(AuditLog.id)))
    assert actions.count("organization.add_contact") == 2 and actions.count("organization.remove_contact") == 2


def test_edit_unknown_or_erased_member_is_404(staff_client, ada):
    assert staff_client.get("/staff/members/999999/edit").status_code == 404
    ada.erased_at = NOW
    db.session.commit()
    assert staff_client.get(f"/staff/members/{ada.id}/edit").status_code == 404
    assert staff_client.post(f"/staff/members/{ada.id}/edit", data=edit_data(ada)).status_code == 404


class _FormValues(HTMLParser):
    """What a browser would submit from the page's form (text inputs, checked boxes, selected
    options, textareas)."""

    def __init__(self):
        super().__init__()
        self.values: dict[str, str] = {}
        self._select = self._textarea = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input" and a.get("name"):
            if a.get("type") == "checkbox":
                if "checked" in a:
                    self.values[a["name"]] = a.get("value", "y")
            else:
                self.values[a["name"]] = a.get("value", "")
        elif tag == "select":
            self._select = a.get("name")
        elif tag == "option" and self._select and ("selected" in a or self._select not in self.values):
            self.values[self._select] = a.get("value", "")
        elif tag == "textarea":
            self._textarea = a.get("name")
            self.values[self._textarea] = ""

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data):
        if self._textarea:
            self.values[self._textarea] += data.lstrip("\n") if not self.values[self._textarea] else data


def test_saving_the_edit_form_as_shown_changes_nothing(staff_client, make_member):
    """Round trip: every value the form shows (formatted phone, organisation, dates, opt-ins,
    Bengali text, notes) comes back as the same stored value."""
    org = save_organization(db.session, {"name": "Analytical Engines"}, actor=None, now=NOW)
    member = make_member(first_name="রবীন্দ্রনাথ", last_name="ঠাকুর", phone="01712345678", country="BD",
                         date_of_birth=date(1961, 5, 7), language="bn", directory_opt_in=True,
                         notes="Line one\nLine two", address_line1="6 Dwarkanath Tagore Lane", city="Kolkata")
    from membership.members.services import add_contact
    add_contact(db.session, org, member, primary=True, actor=None, now=NOW, today=local_today())
    db.session.commit()
    audits = count(AuditLog)
    parser = _FormValues()
    parser.feed(staff_client.get(f"/staff/members/{member.id}/edit").get_data(as_text=True))
    shown = parser.values
    assert shown["organization_id"] == str(org.id) and shown["language"] == "bn"
    assert shown["directory_opt_in"] == "y" and "marketing_opt_in" not in shown
    shown["notes"] = shown["notes"].replace("\r\n", "\n").replace("\n", "\r\n")  # as a browser sends it
    response = staff_client.post(f"/staff/members/{member.id}/edit", data=shown)
    assert response.status_code == 302
    assert count(AuditLog) == audits
    assert db.session.get(Member, member.id).notes == "Line one\nLine two"
    assert flashes(staff_client) == [f"No changes to {member.member_number} রবীন্দ্রনাথ ঠাকুর."]
