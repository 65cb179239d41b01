"""Member CSV export: formula neutralisation, the columns, the web download of the current filter,
and the round trip (export, import into an empty database, export again: the same rows)."""
from __future__ import annotations

import csv
import io
from datetime import date

import pytest
from sqlalchemy import func, select, update

from membership.core.models import AuditLog
from membership.extensions import db
from membership.members import csvio
from membership.members.models import Member
from membership.members.services import add_contact, save_organization
from membership.plans.models import Membership
from membership.plans.services import PaymentInput, apply_status_transitions, cancel, join, renew, set_override
from tests.conftest import NOW, TODAY


def export_bytes(f=None) -> bytes:
    out = io.BytesIO()
    csvio.export_members(db.session, out, f, today=TODAY)
    db.session.rollback()
    return out.getvalue()


def parse(data: bytes) -> list[dict[str, str]]:
    assert data.startswith(b"\xef\xbb\xbf")
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))


# ---------------------------------------------------------------- formulas


@pytest.mark.parametrize("value, written", [
    ("=SUM(A1:A9)", "'=SUM(A1:A9)"), ("+8801712345678", "'+8801712345678"), ("-5", "'-5"),
    ("@cmd", "'@cmd"), ("\tx", "'\tx"), ("\rx", "'\rx"), ("'=already", "''=already"),
    ("Ada", "Ada"), ("'quoted", "'quoted"), ("", ""), ("a=b", "a=b"), ("'", "'"),
])
def test_neutralise_and_back(value, written):
    assert csvio.neutralise(value) == written
    assert csvio.unneutralise(written) == value


def test_no_exported_cell_starts_a_formula():
    for first in "=+-@\t\r'":
        for value in (first, first + "x", "'" + first + "y", "''" + first):
            cell = csvio.neutralise(value)
            assert cell[:1] not in "=+-@\t\r"
            assert csvio.unneutralise(cell) == value


# ---------------------------------------------------------------- the file


def test_export_columns_dates_and_formulas(app, make_member, make_plan, make_term):
    plan = make_plan(code="STD", fee_minor=0)
    m = make_member(first_name="=HYPERLINK(\"http://x\")", last_name="@Evil", email="ada@example.org",
                    phone="01712345678", date_of_birth=date(1990, 2, 28), joined_on=date(2024, 1, 31),
                    marketing_opt_in=True, notes="line one\nline two")
    make_term(m, plan, starts_on=date(2025, 7, 1), today=date(2025, 7, 1))
    make_member(first_name="Plain", email=None)
    db.session.commit()
    data = export_bytes()
    assert data.startswith(b"\xef\xbb\xbfmember_number,first_name,")
    assert b"\r\n" in data
    rows = parse(data)
    assert list(rows[0]) == list(csvio.COLUMNS)
    ada = next(r for r in rows if r["email"] == "ada@example.org")
    assert ada["first_name"] == "'=HYPERLINK(\"http://x\")" and ada["last_name"] == "'@Evil"
    assert ada["phone"] == "'+8801712345678"
    assert (ada["date_of_birth"], ada["joined_on"]) == ("1990-02-28", "2024-01-31")
    assert (ada["marketing_opt_in"], ada["directory_opt_in"]) == ("yes", "no")
    assert ada["notes"] == "line one\nline two"
    assert (ada["plan_code"], ada["term_starts_on"], ada["term_ends_on"], ada["term_status"]) == (
        "STD", "2025-07-01", "2026-06-30", "active")
    plain = next(r for r in rows if r["first_name"] == "Plain")
    assert plain["plan_code"] == plain["term_status"] == plain["email"] == ""


def test_current_member_with_a_paid_renewal_runs_to_the_renewal_end(app, make_member, make_plan, make_term):
    plan = make_plan(code="STD", fee_minor=0)
    m = make_member()
    term = make_term(m, plan, starts_on=date(2025, 7, 1), today=date(2025, 7, 1))
    renew(db.session, term, today=TODAY, now=NOW, actor=None)
    db.session.commit()
    row = parse(export_bytes())[0]
    assert (row["term_starts_on"], row["term_ends_on"], row["term_status"]) == ("2025-07-01", "2027-06-30", "active")


# ---------------------------------------------------------------- the round trip


def _varied_database(make_member, make_plan, make_term):
    std = make_plan(code="STD", name="Standard", fee_minor=100000, grace_days=30)
    life = make_plan(code="LIFE", name="Life", fee_minor=0, period_kind="lifetime")
    fy = make_plan(code="FY", name="Calendar year", fee_minor=0, period_kind="fixed", period_months=12,
                   period_start_month=1, period_start_day=1)
    corp = make_plan(code="CORP", name="Corporate", fee_minor=0, is_organizational=True)
    paid = PaymentInput(amount_minor=100000, method="cash", received_at=NOW)

    a = make_member(first_name="=cmd|' /C calc'!A0", last_name="-Minus", email="formula@example.org",
                    phone="+8801712345678", notes="=1+1\r\nsecond line, with comma and \"quotes\"")
    make_term(a, std, starts_on=date(2025, 7, 1), today=date(2025, 7, 1))
    b = make_member(first_name="রবীন্দ্রনাথ", last_name="ঠাকুর", email="Tagore@Example.org", language="bn",
                    date_of_birth=date(1961, 5, 7), country="BD", city="কলকাতা", marketing_opt_in=True,
                    directory_opt_in=True, external_id="CRM-7", job_title="Poet", address_line1="6 Dwarkanath",
                    address_line2="Jorasanko", postcode="700007", referred_by_id=a.id)
    make_term(b, std, starts_on=date(2024, 1, 1), today=date(2024, 1, 1))          # lapsed
    c = make_member(first_name="@Grace", last_name="Period")
    make_term(c, std, starts_on=date(2025, 6, 2), today=date(2025, 6, 2))          # grace
    d = make_member(first_name="+Pending", last_name="Payer")
    make_term(d, std, starts_on=date(2026, 6, 1), today=TODAY, paid=False)          # pending
    e = make_member(first_name="Cancelled", last_name="Early")
    term = make_term(e, std, starts_on=date(2025, 7, 1), today=date(2025, 7, 1))
    cancel(db.session, term, on=date(2026, 1, 31), reason="moved away", today=date(2026, 1, 31), now=NOW,
           actor=None)
    f = make_member(first_name="Up", last_name="Coming")
    join(db.session, f, std, today=TODAY, now=NOW, actor=None, starts_on=date(2026, 8, 1), payment=paid)
    g = make_member(first_name="Over", last_name="Ridden")
    term = make_term(g, std, starts_on=date(2024, 1, 1), today=date(2024, 1, 1))
    set_override(db.session, term, status="active", until=date(2026, 12, 31), reason="board decision",
                 today=TODAY, now=NOW, actor=None)
    h = make_member(first_name="Life", last_name="Member")
    make_term(h, life, starts_on=date(2010, 3, 1), today=date(2010, 3, 1))
    i = make_member(first_name="Early", last_name="Renewer")
    term = make_term(i, std, starts_on=date(2025, 7, 1), today=date(2025, 7, 1))
    renew(db.session, term, today=TODAY, now=NOW, actor=None, payment=paid)
    j = make_member(first_name="Fiscal", last_name="Year")
    make_term(j, fy, starts_on=date(2026, 1, 1), today=date(2026, 1, 1))
    make_member(first_name="No", last_name="Term", email=None, joined_on=date(2019, 12, 31))

    org = save_organization(db.session, {"name": "Acme Ltd", "email": None, "phone": None, "website": None,
                                         "address": None, "notes": None}, actor=None, now=NOW)
    join(db.session, org, corp, today=TODAY, now=NOW, actor=None, starts_on=date(2026, 1, 1))
    for n, primary in ((1, True), (2, False)):
        contact = make_member(first_name=f"Contact{n}", last_name="Acme", job_title="Buyer")
        add_contact(db.session, org, contact, primary=primary, actor=None, now=NOW, today=TODAY)
    own = make_member(first_name="Both", last_name="Terms")
    make_term(own, std, starts_on=date(2026, 3, 1), today=date(2026, 3, 1))
    add_contact(db.session, org, own, primary=False, actor=None, now=NOW, today=TODAY)
    db.session.commit()


def _empty_everything_but_plans_and_users():
    db.session.execute(update(Member).values(referred_by_id=None))
    keep = {"plan", "user"}
    for table in reversed(db.metadata.sorted_tables):
        if table.name not in keep:
            db.session.execute(table.delete())
    db.session.commit()


def test_round_trip_export_import_export_gives_the_same_rows(app, make_member, make_plan, make_term):
    _varied_database(make_member, make_plan, make_term)
    first = export_bytes()
    rows = parse(first)
    assert len(rows) == 14
    statuses = {r["first_name"]: r["term_status"] for r in rows}
    assert statuses["'@Grace"] == "grace" and statuses["'+Pending"] == "pending"
    assert statuses["Up"] == "upcoming" and statuses["Over"] == "active" and statuses["রবীন্দ্রনাথ"] == "lapsed"
    assert statuses["Cancelled"] == "cancelled" and statuses["Contact1"] == "active"

    _empty_everything_but_plans_and_users()
    assert db.session.scalar(select(func.count()).select_from(Member)) == 0
    report = csvio.import_members(db.session, first, options=csvio.ImportOptions(dry_run=False), today=TODAY,
                                  now=NOW, actor=None, region="BD", currency="BDT", filename="export.csv")
    db.session.commit()
    assert (report.new, report.error_rows, report.issue_count) == (14, 0, 0), report.issues
    second = export_bytes()
    assert second.decode("utf-8-sig").splitlines() == first.decode("utf-8-sig").splitlines()
    assert second == first

    # And once more on top: every row matches an existing member and nothing changes.
    report = csvio.import_members(db.session, second, options=csvio.ImportOptions(on_match="update",
                                                                                  dry_run=False),
                                  today=TODAY, now=NOW, actor=None, region="BD", currency="BDT")
    db.session.commit()
    assert (report.new, report.updated, report.unchanged, report.error_rows) == (0, 0, 14, 0)
    assert export_bytes() == first


# ---------------------------------------------------------------- the web download


def test_web_export_streams_the_current_filter_and_is_audited(staff_client, make_member, make_plan, make_term):
    plan = make_plan(code="STD", fee_minor=0)
    active = make_member(first_name="Active", last_name="Zed", email="active@example.org")
    make_term(active, plan, starts_on=date(2025, 7, 1), today=date(2025, 7, 1))
    lapsed = make_member(first_name="Lapsed", last_name="Able")
    make_term(lapsed, plan, starts_on=date(2023, 1, 1), today=date(2023, 1, 1))
    make_member(first_name="Never", last_name="Joined")
    apply_status_transitions(db.session, today=TODAY, now=NOW)  # the daily job: Lapsed is lapsed now
    db.session.commit()

    response = staff_client.get("/staff/members/export?status=active")
    assert response.status_code == 200
    assert response.is_streamed
    assert response.mimetype == "text/csv"
    from membership.core.time import local_today
    assert response.headers["Content-Disposition"] == \
        f'attachment; filename="members-{local_today().isoformat()}.csv"'
    rows = parse(response.get_data())
    assert [r["email"] for r in rows] == ["active@example.org"]
    audit = db.session.scalar(select(AuditLog).where(AuditLog.action == "member.export"))
    assert audit.changes == {"filter": {"status": ["active"], "sort": "name"}, "count": 1}
    assert audit.actor.email == "staff@example.org"

    everyone = parse(staff_client.get("/staff/members/export?sort=-name").get_data())
    assert [r["first_name"] for r in everyone] == ["Active", "Never", "Lapsed"]  # last names Z, J.., A
    found = parse(staff_client.get("/staff/members/export?q=lapsed").get_data())
    assert [r["first_name"] for r in found] == ["Lapsed"]


def test_web_export_ignores_bad_filter_values(staff_client, make_member):
    make_member()
    db.session.commit()
    response = staff_client.get("/staff/members/export?plan_id=%C2%B2&joined_from=yesterday&q=a%00b")
    assert response.status_code == 200
    parse(response.get_data())


def test_export_of_many_members_in_several_batches(app, make_plan):
    from membership.members.services import create_member, validate_member
    plan = make_plan(code="STD", fee_minor=0)
    for n in range(25):
        m = create_member(db.session, validate_member({"first_name": f"N{n:02d}", "last_name": "L",
                                                       "email": f"n{n}@example.org"}, region="BD", today=TODAY),
                          actor=None, now=NOW, audit=False)
        if n % 2:
            join(db.session, m, plan, today=date(2026, 1, 1), now=NOW, actor=None, starts_on=date(2026, 1, 1))
    db.session.commit()
    out = io.BytesIO()
    seen = []
    written = csvio.export_members(db.session, out, today=TODAY, batch_size=4, progress=seen.append)
    db.session.rollback()
    rows = parse(out.getvalue())
    assert written == sum(seen) == 25 == len(rows)
    assert [r["term_status"] == "active" for r in rows] == [n % 2 == 1 for n in range(25)]
    assert db.session.scalar(select(func.count()).select_from(Membership)) == 12
    assert csvio.count_export(db.session) == 25
