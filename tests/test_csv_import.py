"""Member CSV import: reading awkward files, per-row checks, matching, terms, and the web flow
(upload -> preview -> confirm, all valid rows in one transaction or nothing)."""
from __future__ import annotations

import io
import json
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select

from membership.core.models import AuditLog, Counter
from membership.extensions import db
from membership.members import csvio
from membership.members.models import Member, Organization
from membership.members.services import next_member_number
from membership.plans.models import Membership, Plan
from tests.conftest import NOW, TODAY, login

HEADER = "member_number,first_name,last_name,email,phone,date_of_birth,joined_on,plan_code,term_starts_on," \
         "term_ends_on,term_status"


def run_import(data: bytes | str, *, dry_run: bool = False, on_match: str = "skip", create_plans: bool = False,
               **kw) -> csvio.ImportReport:
    if isinstance(data, str):
        data = data.encode("utf-8")
    report = csvio.import_members(
        db.session, data, options=csvio.ImportOptions(on_match=on_match, create_plans=create_plans,
                                                      dry_run=dry_run),
        today=TODAY, now=NOW, actor=None, region="BD", currency="BDT", filename="members.csv", **kw)
    db.session.commit()
    return report


def members() -> list[Member]:
    return list(db.session.scalars(select(Member).order_by(Member.member_number)))


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def issues(report) -> list[tuple[int, str, str]]:
    return [(i.row, i.column, i.level) for i in report.issues]


@pytest.fixture
def plan(make_plan):
    p = make_plan(code="STD", name="Standard", fee_minor=100000, grace_days=30)
    db.session.commit()
    return p


# ---------------------------------------------------------------- reading the file


def test_new_members_get_numbers_from_the_counter_and_the_counter_stays_consistent(app):
    report = run_import("first_name,last_name,email\nAda,Lovelace,ada@example.org\n"
                        "Rabindranath,Tagore,rabi@example.org\nNo,Email,\n")
    assert (report.new, report.error_rows) == (3, 0)
    assert [m.member_number for m in members()] == ["M000001", "M000002", "M000003"]
    assert members()[2].email is None
    assert next_member_number(db.session) == "M000004"


def test_numbers_given_in_the_file_are_never_handed_to_other_rows(app):
    run_import("member_number,first_name,last_name,email\n,Ada,A,a@example.org\nM000002,Bo,B,b@example.org\n"
               ",Cy,C,c@example.org\nM000120,Di,D,d@example.org\n")
    numbers = {m.first_name: m.member_number for m in members()}
    assert numbers == {"Ada": "M000001", "Bo": "M000002", "Cy": "M000003", "Di": "M000120"}
    # The counter moved past the highest imported number: no long search for a free one later.
    assert db.session.get(Counter, "member").value == 120
    assert next_member_number(db.session) == "M000121"


def test_byte_order_mark_crlf_and_quoted_newlines(app):
    data = ("\ufefffirst_name,last_name,email,notes\r\n"
            'Ada,Lovelace,ada@example.org,"first line\r\nsecond line"\r\n'
            "Bad,Row,not-an-email,\r\n").encode("utf-8")
    report = run_import(data)
    assert report.new == 1
    ada = members()[0]
    assert ada.first_name == "Ada"  # the BOM did not end up in the first column's name
    assert ada.notes == "first line\r\nsecond line"
    # The quoted line break keeps one record on one spreadsheet row: the bad row is row 3.
    assert issues(report) == [(3, "email", "error")]


def test_latin1_file_is_read_with_a_warning(app):
    data = "first_name,last_name,email,city\nJosé,Núñez,jose@example.org,Córdoba\n".encode("latin-1")
    report = run_import(data)
    assert report.new == 1
    m = members()[0]
    assert (m.first_name, m.last_name, m.city) == ("José", "Núñez", "Córdoba")
    assert report.encoding.startswith("Windows-1252")
    assert any(i.level == "warning" and "not UTF-8" in i.message for i in report.issues)


def test_utf8_without_bom_and_bengali_names(app):
    run_import("first_name,last_name,email\nরবীন্দ্রনাথ,ঠাকুর,tagore@example.org\n".encode("utf-8"))
    assert members()[0].full_name == "রবীন্দ্রনাথ ঠাকুর"


def test_utf16_with_bom(app):
    data = "first_name\tlast_name\temail\nAda\tLovelace\tada@example.org\n".encode("utf-16")
    assert run_import(data).new == 1


def test_semicolon_separated_file(app):
    assert run_import("first_name;last_name;email\nAda;Lovelace;ada@example.org\n").new == 1
    assert members()[0].email == "ada@example.org"


@pytest.mark.parametrize("data", [b"", b"\xef\xbb\xbf", b"\r\n\r\n  \n", b",,,\r\n"])
def test_empty_file_is_refused_clearly(app, data):
    with pytest.raises(csvio.ImportFileError, match="The file is empty"):
        run_import(data)


def test_header_without_rows_is_refused(app):
    with pytest.raises(csvio.ImportFileError, match="no member rows"):
        run_import("first_name,last_name,email\r\n\r\n")


def test_missing_required_column_is_named(app):
    with pytest.raises(csvio.ImportFileError, match="no 'email' column"):
        run_import("first_name,last_name,phone\nAda,Lovelace,01712345678\n")
    assert count(Member) == 0


def test_data_without_a_header_is_explained(app):
    with pytest.raises(csvio.ImportFileError, match="must be the header"):
        run_import("Ada,Lovelace,ada@example.org\n")


def test_repeated_column_is_refused(app):
    with pytest.raises(csvio.ImportFileError, match="email appears twice"):
        run_import("first_name,last_name,email,Email\nAda,L,a@example.org,b@example.org\n")


def test_unknown_columns_warn_and_blank_lines_are_ignored(app):
    report = run_import("First Name,last_name,email,shoe_size\n\nAda,Lovelace,ada@example.org,38\n\n"
                        "Bo,B,bad@@example.org,41\n")
    assert report.new == 1 and report.rows == 2
    # Header is row 1; the blank line is row 2 as in a spreadsheet; Bo is on row 5.
    assert issues(report) == [(1, "shoe_size", "warning"), (5, "email", "error")]


def test_extra_cells_beyond_the_header_are_an_error(app):
    report = run_import("first_name,last_name,email\nAda,Lovelace,ada@example.org,surprise\n")
    assert report.new == 0 and issues(report) == [(2, "", "error")]


def test_apostrophe_before_a_formula_character_is_removed(app):
    run_import("first_name,last_name,email,phone\n'=SUM(A1),'-dash,ada@example.org,'+8801712345678\n"
               "'Apostrophe,O'Brien,bo@example.org,\n")
    ada, bo = sorted(members(), key=lambda m: m.email)
    assert (ada.first_name, ada.last_name, ada.phone) == ("=SUM(A1)", "-dash", "+8801712345678")
    assert (bo.first_name, bo.last_name) == ("'Apostrophe", "O'Brien")  # not a neutralised formula


# ---------------------------------------------------------------- per-row checks


def test_each_bad_row_is_reported_with_row_column_and_message_and_valid_rows_still_import(app, plan):
    data = (HEADER + "\n"
            ",Ada,Lovelace,ada@example.org,01712345678,1990-02-28,2020-01-01,STD,2025-07-01,,active\n"
            ",,Nameless,nameless@example.org,,,,,,,\n"
            ",Bad,Phone,phone@example.org,12,,,,,,\n"
            ",Bad,Date,date@example.org,,31/12/1990,,,,,\n"
            ",Bad,Plan,plan@example.org,,,,GOLD,2025-01-01,,\n"
            ",Bad,Dates,dates@example.org,,,,STD,2025-07-01,2025-06-01,\n"
            ",Bad,Status,status@example.org,,,,STD,2025-07-01,,paid\n"
            ",Future,Joiner,future@example.org,,,2030-01-01,,,,\n"
            ",No,Start,start@example.org,,,,STD,,,\n"
            ",No,Plan,noplan@example.org,,,,,2025-01-01,,\n")
    report = run_import(data)
    assert report.new == 1 and report.error_rows == 9
    found = {(i.row, i.column): i.message for i in report.issues}
    assert set(found) == {(3, "first_name"), (4, "phone"), (5, "date_of_birth"), (6, "plan_code"),
                          (7, "term_ends_on"), (8, "term_status"), (9, "joined_on"), (10, "term_starts_on"),
                          (11, "plan_code")}
    assert found[(3, "first_name")] == "First name is required."
    assert "2024-01-31" in found[(5, "date_of_birth")]
    assert "GOLD" in found[(6, "plan_code")]
    assert "ends before it starts" in found[(7, "term_ends_on")]
    assert [m.email for m in members()] == ["ada@example.org"]
    ada = members()[0]
    assert ada.phone == "+8801712345678" and ada.date_of_birth == date(1990, 2, 28)
    assert count(Membership) == 1


def test_duplicate_emails_inside_the_file_are_reported(app):
    report = run_import("first_name,last_name,email\nAda,A,ada@example.org\nAda,Again,ADA@Example.org \n"
                        "Bo,B,bo@example.org\n")
    assert report.new == 2
    assert [(i.row, i.column, i.message) for i in report.issues] == [(3, "email", "The same email as row 2.")]


def test_duplicate_member_numbers_and_external_ids_inside_the_file(app, make_member):
    make_member(external_id="CRM-1")
    db.session.commit()
    report = run_import("member_number,first_name,last_name,email,external_id\n"
                        "X1,Ada,A,a@example.org,\nX1,Bo,B,b@example.org,\n,Cy,C,c@example.org,CRM-1\n"
                        ",Di,D,d@example.org,CRM-2\n,Ed,E,e@example.org,CRM-2\n")
    assert report.new == 2
    assert issues(report) == [(3, "member_number", "error"), (4, "external_id", "error"),
                              (6, "external_id", "error")]


def test_dry_run_counts_and_reports_but_writes_nothing(app, plan):
    report = run_import("first_name,last_name,email,plan_code,term_starts_on,organization\n"
                        "Ada,A,a@example.org,STD,2025-07-01,Acme Ltd\nBo,B,bad,STD,2025-07-01,\n",
                        dry_run=True)
    assert (report.new, report.error_rows, report.terms) == (1, 1, 1)
    assert report.organizations_created == ["Acme Ltd"]
    assert count(Member) == count(Membership) == count(Organization) == count(AuditLog) == 0
    assert db.session.get(Counter, "member") is None


# ---------------------------------------------------------------- matching existing members


def test_existing_member_matched_by_normalised_email_is_skipped(app, make_member):
    m = make_member(first_name="Ada", email="Ada.Lovelace@Example.org", phone="01712345678")
    db.session.commit()
    report = run_import("first_name,last_name,email,phone\nAdelaide,Lovelace,ada.lovelace@EXAMPLE.org ,\n",
                        on_match="skip")
    assert (report.skipped, report.new, report.updated) == (1, 0, 0)
    db.session.refresh(m)
    assert m.first_name == "Ada" and m.phone == "+8801712345678"
    assert count(Member) == 1


def test_existing_member_matched_by_email_is_updated_and_audited(app, make_member):
    m = make_member(first_name="Ada", last_name="Lovelace", email="ada@example.org", phone="01712345678",
                    city="London")
    db.session.commit()
    report = run_import("first_name,last_name,email,phone\nAdelaide,Lovelace,ADA@example.org,\n"
                        "Bo,New,bo@example.org,\n", on_match="update")
    assert (report.updated, report.new) == (1, 1)
    db.session.refresh(m)
    # Columns in the file are applied (an empty cell clears); columns not in the file are kept.
    assert (m.first_name, m.phone, m.city) == ("Adelaide", None, "London")
    audit = db.session.scalar(select(AuditLog).where(AuditLog.action == "member.update"))
    assert audit.member_id == m.id and set(audit.changes) == {"first_name", "phone"}


def test_unchanged_rows_are_counted_as_unchanged(app, make_member):
    make_member(first_name="Ada", last_name="Lovelace", email="ada@example.org")
    db.session.commit()
    report = run_import("first_name,last_name,email\nAda,Lovelace,ada@example.org\n", on_match="update")
    assert (report.unchanged, report.updated) == (1, 0)
    assert db.session.scalar(select(func.count()).where(AuditLog.action == "member.update")) == 0


def test_match_by_member_number_can_change_the_email(app, make_member):
    m = make_member(email="old@example.org")
    db.session.commit()
    report = run_import(f"member_number,first_name,last_name,email\n{m.member_number},Ada,L,new@example.org\n",
                        on_match="update")
    assert report.updated == 1
    db.session.refresh(m)
    assert m.email == "new@example.org" and m.email_normalized == "new@example.org"


def test_email_and_number_of_two_different_members_is_an_error(app, make_member):
    a = make_member(email="a@example.org")
    b = make_member(email="b@example.org")
    db.session.commit()
    report = run_import(f"member_number,first_name,last_name,email\n{b.member_number},X,Y,a@example.org\n"
                        "M999999,X,Y,b@example.org\n", on_match="update")
    assert report.updated == 0 and report.error_rows == 2
    assert issues(report) == [(2, "member_number", "error"), (3, "member_number", "error")]
    assert a.member_number in report.issues[0].message


# ---------------------------------------------------------------- terms


def _term(member: Member) -> Membership:
    return db.session.scalars(select(Membership).where(Membership.member_id == member.id)).one()


def test_imported_terms_follow_their_status(app, plan):
    data = ("first_name,last_name,email,plan_code,term_starts_on,term_ends_on,term_status,term_cancelled_on\n"
            "Act,Ive,active@example.org,STD,2025-07-01,2026-06-30,active,\n"
            "Gr,Ace,grace@example.org,STD,2025-06-01,2026-05-31,grace,\n"
            "La,Psed,lapsed@example.org,STD,2024-01-01,2024-12-31,lapsed,\n"
            "Pen,Ding,pending@example.org,STD,2026-06-01,2027-05-31,pending,\n"
            "Can,Celled,cancelled@example.org,STD,2025-07-01,2026-06-30,cancelled,\n"
            "Early,Cancel,early@example.org,STD,2025-07-01,2026-06-30,cancelled,2026-01-31\n"
            "Up,Coming,upcoming@example.org,STD,2026-07-01,,upcoming,\n")
    report = run_import(data)
    assert report.new == 7 and report.terms == 7 and not report.issues
    by_email = {m.email.split("@")[0]: m for m in members()}
    assert {k: m.status for k, m in by_email.items()} == {
        "active": "active", "grace": "grace", "lapsed": "lapsed", "pending": "pending",
        "cancelled": "cancelled", "early": "cancelled", "upcoming": "pending"}
    active = _term(by_email["active"])
    assert (active.source, active.awaiting_payment, active.paid_on) == ("import", False, date(2025, 7, 1))
    assert by_email["active"].expires_on == date(2026, 6, 30)
    assert by_email["active"].plan_id == plan.id
    assert _term(by_email["pending"]).awaiting_payment is True
    cancelled = _term(by_email["cancelled"])
    assert (cancelled.cancelled_on, cancelled.cancel_reason) == (TODAY, "imported")
    assert _term(by_email["early"]).cancelled_on == date(2026, 1, 31)
    upcoming = _term(by_email["upcoming"])
    assert (upcoming.status, upcoming.ends_on) == ("upcoming", date(2027, 6, 30))  # end worked out from the plan


def test_a_status_the_dates_contradict_is_a_warning_and_the_dates_decide(app, plan):
    report = run_import("first_name,last_name,email,plan_code,term_starts_on,term_ends_on,term_status\n"
                        "Ada,L,ada@example.org,STD,2020-01-01,2020-12-31,active\n")
    assert report.new == 1
    assert [(i.row, i.column, i.level) for i in report.issues] == [(2, "term_status", "warning")]
    assert "lapsed" in report.issues[0].message
    assert members()[0].status == "lapsed"


def test_status_override_is_imported(app, plan):
    run_import("first_name,last_name,email,plan_code,term_starts_on,term_ends_on,term_status,status_override,"
               "status_override_until\nAda,L,ada@example.org,STD,2020-01-01,2020-12-31,active,active,2026-12-31\n")
    term = _term(members()[0])
    assert (term.override_status, term.override_until, term.override_reason) == (
        "active", date(2026, 12, 31), "imported")
    assert members()[0].status == "active"


def test_lifetime_plan_terms_have_no_end(app, make_plan):
    make_plan(code="LIFE", period_kind="lifetime", fee_minor=0)
    db.session.commit()
    report = run_import("first_name,last_name,email,plan_code,term_starts_on,term_ends_on\n"
                        "Ada,L,ada@example.org,LIFE,2010-01-01,\nBo,B,bo@example.org,life,2010-01-01,2011-01-01\n")
    assert report.new == 1 and issues(report) == [(3, "term_ends_on", "error")]
    assert _term(members()[0]).ends_on is None and members()[0].status == "active"


def test_unknown_plans_are_created_when_asked(app):
    report = run_import("first_name,last_name,email,plan_code,term_starts_on\n"
                        "Ada,L,ada@example.org,GOLD,2026-01-01\nBo,B,bo@example.org,GOLD,2026-02-01\n",
                        create_plans=True)
    assert report.new == 2 and report.plans_created == ["GOLD"]
    plan = db.session.scalars(select(Plan)).one()
    assert (plan.code, plan.fee_minor, plan.period_kind) == ("GOLD", 0, "rolling")
    assert {m.status for m in members()} == {"active"}


def test_organisation_term_is_created_once_and_covers_its_contacts(app, make_plan):
    make_plan(code="CORP", is_organizational=True, fee_minor=0)
    db.session.commit()
    report = run_import("first_name,last_name,email,organization,primary_contact,plan_code,term_starts_on,"
                        "term_ends_on,term_status\n"
                        "Ada,L,ada@example.org,Acme Ltd,yes,CORP,2026-01-01,2026-12-31,active\n"
                        "Bo,B,bo@example.org,ACME LTD,yes,CORP,2026-01-01,2026-12-31,active\n"
                        "Cy,C,cy@example.org,,,CORP,2026-01-01,,\n")
    assert report.new == 2
    assert issues(report) == [(3, "primary_contact", "warning"), (4, "organization", "error")]
    org = db.session.scalars(select(Organization)).one()
    assert org.name == "Acme Ltd" and org.status == "active"
    assert count(Membership) == 1
    ada, bo = members()
    assert (ada.status, bo.status) == ("active", "active")
    assert (ada.is_primary_contact, bo.is_primary_contact) == (True, False)


def test_referrals_may_point_to_a_later_row(app, make_member):
    old = make_member()
    db.session.commit()
    report = run_import(f"member_number,first_name,last_name,email,referred_by\n"
                        f"A1,Ada,L,a@example.org,B1\nB1,Bo,B,b@example.org,{old.member_number}\n"
                        f"C1,Cy,C,c@example.org,NOPE\nD1,Di,D,d@example.org,D1\n")
    assert report.new == 2 and issues(report) == [(4, "referred_by", "error"), (5, "referred_by", "error")]
    by_number = {m.member_number: m for m in members()}
    assert by_number["A1"].referred_by_id == by_number["B1"].id
    assert by_number["B1"].referred_by_id == old.id


def test_a_new_term_overlapping_an_existing_one_is_refused(app, plan, make_member, make_term):
    m = make_member(email="ada@example.org")
    make_term(m, plan, starts_on=date(2025, 7, 1), today=date(2025, 7, 1))
    db.session.commit()
    header = "first_name,last_name,email,plan_code,term_starts_on,term_ends_on\n"
    report = run_import(header + "Ada,L,ada@example.org,STD,2026-01-01,2026-12-31\n", on_match="update")
    assert issues(report) == [(2, "term_starts_on", "error")]
    # The same term again is simply there already; a later term is added.
    report = run_import(header + "Ada,L,ada@example.org,STD,2025-07-01,2026-06-30\n", on_match="update")
    assert report.error_rows == 0 and report.terms == 0
    report = run_import(header + "Ada,L,ada@example.org,STD,2026-07-01,2027-06-30\n", on_match="update")
    assert report.updated == 1 and report.terms == 1
    db.session.refresh(m)
    assert m.expires_on == date(2027, 6, 30)


def test_import_is_audited_once_plus_a_line_per_new_member(app):
    run_import("first_name,last_name,email\nAda,L,a@example.org\nBo,B,b@example.org\n")
    actions = sorted(db.session.scalars(select(AuditLog.action)))
    assert actions == ["member.create", "member.create", "member.import"]
    summary = db.session.scalar(select(AuditLog).where(AuditLog.action == "member.import"))
    assert summary.changes["new"] == 2 and summary.changes["file"] == "members.csv"
    created = db.session.scalars(select(AuditLog).where(AuditLog.action == "member.create")).all()
    assert {a.member_id for a in created} == {m.id for m in members()}


def test_search_finds_imported_members(app):
    from werkzeug.datastructures import MultiDict

    from membership.members.queries import MemberFilter, member_query
    run_import("first_name,last_name,email,phone\nরবীন্দ্রনাথ,ঠাকুর,t@example.org,01712345678\n")
    found = db.session.scalars(member_query(MemberFilter.from_args(MultiDict({"q": "ঠাকু"})))).all()
    assert [m.email for m in found] == ["t@example.org"]
    found = db.session.scalars(member_query(MemberFilter.from_args(MultiDict({"q": "01712 345"})))).all()
    assert len(found) == 1


def test_rows_span_several_batches(app, plan, monkeypatch):
    monkeypatch.setattr(csvio, "IMPORT_BATCH", 3)
    rows = "".join(f"Name{i},L,m{i}@example.org,STD,2026-01-01\n" for i in range(10))
    rows += "Dup,L,m1@example.org,STD,2026-01-01\n"
    report = run_import("first_name,last_name,email,plan_code,term_starts_on\n" + rows)
    assert (report.new, report.error_rows) == (10, 1)
    assert issues(report) == [(12, "email", "error")]
    assert count(Member) == count(Membership) == 10
    assert len({m.member_number for m in members()}) == 10


# ---------------------------------------------------------------- the web flow


def upload(client, data: bytes, name="members.csv", **fields):
    return client.post("/staff/import", data={"file": (io.BytesIO(data), name), "on_match": "skip", **fields},
                       content_type="multipart/form-data")


def test_upload_page_shows_the_form_and_the_columns(staff_client):
    page = staff_client.get("/staff/import")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert 'type="file"' in text and "term_status" in text and "csrf_token" in text
    assert "create_plans" not in text  # staff cannot create plans; admins can


def test_admin_may_create_plans_from_the_upload(admin_client):
    assert "create_plans" in admin_client.get("/staff/import").get_data(as_text=True)
    response = upload(admin_client, b"first_name,last_name,email,plan_code,term_starts_on\n"
                                    b"Ada,L,a@example.org,GOLD,2026-01-01\n", create_plans="y")
    preview = admin_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Plans to create: GOLD" in preview


def test_upload_preview_confirm(staff_client, plan, app):
    data = (b"first_name,last_name,email,phone,plan_code,term_starts_on\r\n"
            b"Ada,Lovelace,ada@example.org,01712345678,STD,2025-07-01\r\n"
            b"Bad,Phone,bad@example.org,12345,,\r\n"
            b"Bo,B,bo@example.org,,STD,2025-07-01\r\n")
    response = upload(staff_client, data)
    assert response.status_code == 302
    preview_url = response.headers["Location"]
    token = preview_url.rsplit("/", 1)[1]
    folder = Path(app.instance_path) / "imports"
    assert (folder / f"{token}.csv").exists()
    assert count(Member) == 0  # nothing written before the confirm

    page = staff_client.get(preview_url)
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'id="count-new-members">2<' in text and 'id="count-rows-with-errors">1<' in text
    assert "<td>3</td>" in text and "<code>phone</code>" in text and "not valid" in text
    assert "Import 2 members" in text

    response = staff_client.post(f"/staff/import/{token}/confirm")
    assert response.status_code == 302
    assert sorted(m.email for m in members()) == ["ada@example.org", "bo@example.org"]
    assert not (folder / f"{token}.csv").exists()
    follow = staff_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "2 new" in follow
    audit = db.session.scalar(select(AuditLog).where(AuditLog.action == "member.import"))
    assert audit.actor.email == "staff@example.org"

    # A second confirm (double submit) imports nothing more.
    assert staff_client.post(f"/staff/import/{token}/confirm").status_code == 404
    assert count(Member) == 2


def test_update_choice_is_kept_with_the_upload(staff_client, make_member):
    m = make_member(first_name="Ada", email="ada@example.org")
    db.session.commit()
    response = staff_client.post("/staff/import", data={
        "file": (io.BytesIO(b"first_name,last_name,email\nAdelaide,L,ada@example.org\n"), "m.csv"),
        "on_match": "update"}, content_type="multipart/form-data")
    preview = staff_client.get(response.headers["Location"]).get_data(as_text=True)
    assert 'id="count-updated">1<' in preview
    staff_client.post(response.headers["Location"] + "/confirm")
    db.session.refresh(m)
    assert m.first_name == "Adelaide"


def test_discard_removes_the_upload_and_writes_nothing(staff_client, app):
    response = upload(staff_client, b"first_name,last_name,email\nAda,L,a@example.org\n")
    token = response.headers["Location"].rsplit("/", 1)[1]
    assert staff_client.post(f"/staff/import/{token}/discard").status_code == 302
    assert not list((Path(app.instance_path) / "imports").glob(f"{token}*"))
    assert staff_client.get(f"/staff/import/{token}").status_code == 404
    assert count(Member) == 0


@pytest.mark.parametrize("data, message", [
    (b"", "The file is empty."),
    (b"first_name,last_name,phone\nAda,L,0171\n", "no &#39;email&#39; column"),
    (b"first_name,last_name,email\n", "no member rows"),
])
def test_unreadable_uploads_get_a_message_and_write_nothing(staff_client, app, data, message):
    response = upload(staff_client, data)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert not list((Path(app.instance_path) / "imports").glob("*.csv"))
    assert count(Member) == 0


def test_upload_without_a_file(staff_client):
    response = staff_client.post("/staff/import", data={"on_match": "skip"}, content_type="multipart/form-data")
    assert response.status_code == 422
    assert "Choose a CSV file" in response.get_data(as_text=True)


def test_upload_size_limit(staff_client, app):
    app.config["IMPORT_MAX_BYTES"] = 2000
    big = b"first_name,last_name,email\n" + b"".join(b"Name,L,m%d@example.org\n" % i for i in range(200))
    response = upload(staff_client, big)
    assert response.status_code == 413
    assert "larger than" in response.get_data(as_text=True)
    assert not list((Path(app.instance_path) / "imports").glob("*.csv"))


def test_another_user_cannot_see_or_confirm_an_upload(client, staff_user, make_user):
    login(client, staff_user)
    token = upload(client, b"first_name,last_name,email\nAda,L,a@example.org\n").headers["Location"] \
        .rsplit("/", 1)[1]
    client.post("/logout")
    other = make_user("staff", email="other@example.org")
    login(client, other)
    assert client.get(f"/staff/import/{token}").status_code == 404
    assert client.post(f"/staff/import/{token}/confirm").status_code == 404
    assert client.get("/staff/import/not-a-token").status_code == 404
    assert count(Member) == 0


def test_preview_paginates_many_problems(staff_client):
    rows = b"".join(b"Name%d,L,bad-email-%d\n" % (i, i) for i in range(150))
    response = upload(staff_client, b"first_name,last_name,email\n" + rows)
    url = response.headers["Location"]
    first = staff_client.get(url).get_data(as_text=True)
    second = staff_client.get(url + "?page=2").get_data(as_text=True)
    assert first.count("badge text-bg-danger") == 100 and second.count("badge text-bg-danger") == 50
    assert "<td>151</td>" in second and "<td>151</td>" not in first
    assert "There is nothing to import" in first


def test_failure_midway_leaves_nothing_behind(staff_client, plan, monkeypatch):
    """The second batch makes the database refuse a row: the first batch, already flushed, is
    rolled back with it."""
    monkeypatch.setattr(csvio, "IMPORT_BATCH", 2)
    original = csvio._Importer.insert_new
    calls = []

    def failing(self, rows):
        calls.append(len(rows))
        if len(calls) == 2:
            rows[0].values["member_number"] = "M000001"  # already taken by the first batch
        return original(self, rows)

    monkeypatch.setattr(csvio._Importer, "insert_new", failing)
    data = b"first_name,last_name,email,plan_code,term_starts_on,organization\n" + b"".join(
        b"N%d,L,m%d@example.org,STD,2026-01-01,Org %d\n" % (i, i, i) for i in range(5))
    token = upload(staff_client, data).headers["Location"].rsplit("/", 1)[1]
    response = staff_client.post(f"/staff/import/{token}/confirm")
    assert len(calls) == 2
    assert response.status_code == 302 and response.headers["Location"].endswith(token)
    assert "Nothing was imported" in staff_client.get(response.headers["Location"]).get_data(as_text=True)
    assert count(Member) == count(Membership) == count(Organization) == 0
    assert db.session.scalar(select(func.count()).where(AuditLog.action.in_(
        ["member.import", "member.create", "organization.create"]))) == 0
    assert db.session.get(Counter, "member") is None
    # The upload is still there: once the problem is fixed, it can be confirmed again.
    monkeypatch.setattr(csvio._Importer, "insert_new", original)
    staff_client.post(f"/staff/import/{token}/confirm")
    assert count(Member) == 5


def test_template_download(staff_client):
    response = staff_client.get("/staff/import/template.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.data.decode("utf-8-sig").strip() == ",".join(csvio.COLUMNS)


def test_import_pages_need_staff(client, make_user):
    assert client.get("/staff/import").status_code in (302, 401)
    member = make_user("member", email="m@example.org")
    login(client, member)
    assert client.get("/staff/import").status_code == 403
    assert client.post("/staff/import").status_code == 403
    assert client.get("/staff/members/export").status_code == 403


def test_preview_metadata_keeps_the_choices(staff_client, app):
    response = upload(staff_client, b"first_name,last_name,email\nAda,L,a@example.org\n", on_match="update")
    token = response.headers["Location"].rsplit("/", 1)[1]
    meta = json.loads((Path(app.instance_path) / "imports" / f"{token}.json").read_text())
    assert meta["on_match"] == "update"
    assert meta["report"]["new"] == 1 and meta["filename"] == "members.csv"
