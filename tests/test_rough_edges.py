"""The rough edges a new user met (issue 13, item 6), one test (or a few) each."""
from __future__ import annotations

import csv
import io
import re

from sqlalchemy import func, select

from membership.extensions import db
from membership.members import csvio
from membership.members.models import Member
from tests.conftest import NOW, TODAY, login


# ---------------------------------------------------------------- (a) the import report


BAD_ROW = ("first_name,last_name,email,phone,language,date_of_birth\n"
           "Ada,Lovelace,ada@example.org,01712345678,en,1990-01-01\n"
           "Bad,Row,not-an-email,12,fr,1800-01-01\n")


def test_import_report_lists_every_fault_of_a_row(app):
    report = csvio.import_members(db.session, BAD_ROW.encode(), options=csvio.ImportOptions(dry_run=True),
                                  today=TODAY, now=NOW, actor=None, region="BD", currency="BDT")
    faults = {(i.row, i.column) for i in report.issues if i.level == "error"}
    assert faults == {(3, "email"), (3, "phone"), (3, "language"), (3, "date_of_birth")}
    assert report.error_rows == 1 and report.new == 1


def test_member_and_term_faults_are_reported_together(app, make_plan):
    make_plan(code="STD", fee_minor=0)
    db.session.commit()
    data = ("first_name,last_name,email,phone,plan_code,term_starts_on,term_ends_on,term_status\n"
            "Bad,Row,not-an-email,12,STD,2026-01-01,2025-01-01,active\n"
            "Worse,Row,also-bad,,STD,yesterday,,weird\n").encode()
    report = csvio.import_members(db.session, data, options=csvio.ImportOptions(dry_run=True),
                                  today=TODAY, now=NOW, actor=None, region="BD", currency="BDT")
    faults = {(i.row, i.column) for i in report.issues if i.level == "error"}
    assert faults == {(2, "email"), (2, "phone"), (2, "term_ends_on"),
                      (3, "email"), (3, "term_starts_on"), (3, "term_status")}


def test_duplicate_email_row_still_gets_its_other_faults(app):
    data = ("first_name,last_name,email,phone\nAda,L,ada@example.org,\nAda,Again,ADA@example.org,12\n").encode()
    report = csvio.import_members(db.session, data, options=csvio.ImportOptions(dry_run=True),
                                  today=TODAY, now=NOW, actor=None, region="BD", currency="BDT")
    assert {(i.row, i.column) for i in report.issues} == {(3, "email"), (3, "phone")}


def test_the_form_still_shows_the_first_fault(app):
    from membership.members.services import MemberInvalid, validate_member
    try:
        validate_member({"first_name": "", "email": "bad", "phone": "12"}, region="BD", today=TODAY)
    except MemberInvalid as e:
        assert (e.field, list(e.errors)) == ("first_name", ["first_name", "email", "phone"])
    else:  # pragma: no cover
        raise AssertionError("no error")


def test_the_report_stays_after_the_import_is_confirmed(staff_client, make_user, client):
    response = staff_client.post("/staff/import", data={"file": (io.BytesIO(BAD_ROW.encode()), "people.csv"),
                                                         "on_match": "skip"}, content_type="multipart/form-data")
    token = response.headers["Location"].rsplit("/", 1)[1]
    response = staff_client.post(f"/staff/import/{token}/confirm")
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/import/{token}/report")
    assert db.session.scalar(select(func.count()).select_from(Member)) == 1
    page = staff_client.get(f"/staff/import/{token}/report")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "Import report: people.csv" in text
    assert "<code>phone</code>" in text and "<code>language</code>" in text and "Discard" not in text
    download = staff_client.get(f"/staff/import/{token}/report.csv")
    rows = list(csv.reader(io.StringIO(download.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0] == ["row", "column", "level", "message"]
    assert {r[1] for r in rows[1:]} == {"email", "phone", "language", "date_of_birth"}
    # Listed on the import page later, and not shown to another staff member.
    assert f"/staff/import/{token}/report" in staff_client.get("/staff/import").get_data(as_text=True)
    staff_client.post("/logout")
    other = make_user(email="other@example.org")
    login(staff_client, other)
    assert staff_client.get(f"/staff/import/{token}/report").status_code == 404
    assert staff_client.get("/staff/import/not-a-token/report").status_code == 404


# ---------------------------------------------------------------- (e) template samples


def test_no_template_sample_says_membership_membership(app):
    from membership.notifications import templating
    for key, info in templating.TEMPLATES.items():
        ctx = templating.sample_context(key, now=NOW)
        rendered, _ = templating.render_email(db.session, key, ctx, category=info.category,
                                              unsubscribe_link=ctx["unsubscribe_link"])
        for text in (rendered.subject, rendered.body_text, rendered.body_html):
            assert "membership membership" not in text.lower(), key


# ---------------------------------------------------------------- (f) the sender


def test_sender_defaults_to_the_association(monkeypatch, tmp_path):
    from membership import create_app
    from membership.config import default_mail_from
    assert default_mail_from("Dhaka Traders", "https://members.dhakatraders.org") == \
        "Dhaka Traders <no-reply@members.dhakatraders.org>"
    assert default_mail_from("Dhaka Traders", "http://127.0.0.1:5000") == "Dhaka Traders <no-reply@samiti.localhost>"
    assert default_mail_from("Smith, Jones & Co.", "http://localhost:8000") == \
        '"Smith, Jones & Co." <no-reply@samiti.localhost>'
    monkeypatch.delenv("MAIL_FROM", raising=False)
    monkeypatch.setenv("ASSOCIATION_NAME", "ঢাকা বণিক সমিতি")
    monkeypatch.setenv("BASE_URL", "https://samiti.example.org")
    app = create_app({"TESTING": True, "SECRET_KEY": "x", "INSTANCE_PATH": str(tmp_path),
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'x.db'}"})
    assert app.config["MAIL_FROM"] == "ঢাকা বণিক সমিতি <no-reply@samiti.example.org>"
    from membership.notifications.backends import parse_from
    assert parse_from(app.config["MAIL_FROM"]) == ("ঢাকা বণিক সমিতি", "no-reply@samiti.example.org")
    monkeypatch.setenv("MAIL_FROM", "Office <office@example.org>")
    app = create_app({"TESTING": True, "SECRET_KEY": "x", "INSTANCE_PATH": str(tmp_path),
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'x.db'}"})
    assert app.config["MAIL_FROM"] == "Office <office@example.org>"


# ---------------------------------------------------------------- (g) countries


def test_country_list_starts_with_the_associations_country(app):
    from membership.portal.forms import country_choices, home_country
    assert home_country(app.config) == "BD"
    choices = country_choices(home_country(app.config))
    assert choices[0][0] == "" and choices[1] == ("BD", "Bangladesh")
    assert [c for c, _ in choices].count("BD") == 1 and len(choices) == len(country_choices(None))
    assert country_choices("GB")[1] == ("GB", "United Kingdom")
    assert home_country({"COUNTRY": "in", "PHONE_REGION": "BD"}) == "IN"


def test_join_page_offers_the_home_country_first(client, make_plan):
    plan = make_plan(code="IND", fee_minor=0)
    db.session.commit()
    page = client.get(f"/join/{plan.id}").get_data(as_text=True)
    options = page[page.index('name="country"'):]
    first_values = re.findall(r'<option[^>]*value="([A-Z]*)"', options)[:2]
    assert first_values == ["", "BD"]


# ---------------------------------------------------------------- (b) the renewal window


def test_portal_home_and_renew_page_agree_on_the_renewal_window(client, make_member, make_user, make_plan):
    from datetime import timedelta

    from membership.core.time import local_today
    from membership.plans.models import Membership
    from membership.plans.services import join
    today = local_today()
    windowed = make_plan(code="IND", name="Individual", fee_minor=0, renewal_opens_days=60)
    other = make_plan(code="CAL", name="Calendar", fee_minor=0)  # no window of its own
    member = make_member(first_name="Tanvir", email="tanvir@example.org")
    user = make_user("member", email="tanvir@example.org", member_id=member.id)
    term = join(db.session, member, windowed, today=today - timedelta(days=60), now=NOW, actor=None,
                starts_on=today - timedelta(days=60))
    db.session.commit()
    opens = term.ends_on - timedelta(days=60)
    login(client, user)
    home = client.get("/my/").get_data(as_text=True)
    renew = client.get("/my/renew").get_data(as_text=True)
    assert "You can renew now" not in home
    assert f"Renewal opens on {opens:%d %b %Y}" in home
    assert f"Renewal opens on {opens:%d %b %Y}" in renew and "Renew my membership</button>" not in renew
    # Choosing the plan without a window does not get round it.
    response = client.post("/my/renew", data={"term_id": str(term.id), "plan": str(other.id)})
    assert response.status_code in (409, 422)
    assert db.session.scalar(select(func.count()).select_from(Membership)) == 1

    # Inside the window both pages say the member can renew, on either plan.
    from membership.portal.views import renewal_for
    later = opens + timedelta(days=1)
    renewal = renewal_for(member, later)
    assert set(renewal.open_options) == {windowed.id, other.id} and renewal.problem is None
