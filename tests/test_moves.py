"""Exact moves between instances (issue 13, item 5): the plans travel with the members.

export (zip of plans.csv + members.csv) -> import into an empty database -> export gives the same
bytes, on the demo data, through the command line; the plans file on its own; the web zip;
--create-plans without a plans file says what it guessed."""
from __future__ import annotations

import csv
import io
import zipfile
from datetime import date

import pytest
from sqlalchemy import func, select

from membership.extensions import db
from membership.members import csvio, transfer
from membership.members.models import Member
from membership.plans import csvio as plans_csvio
from membership.plans.models import Membership, Plan
from tests.conftest import NOW, TODAY, _empty_all_tables


@pytest.fixture
def fixed_clock(monkeypatch):
    from membership.commands import members as commands
    monkeypatch.setattr(commands, "local_today", lambda *a, **k: TODAY)
    monkeypatch.setattr(commands, "utcnow", lambda: NOW)


def _rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def _unzip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _empty_database() -> None:
    db.session.rollback()
    _empty_all_tables()
    assert db.session.scalar(select(func.count()).select_from(Plan)) == 0


def test_demo_export_import_export_gives_the_same_bytes(app, runner, tmp_path, fixed_clock):
    result = runner.invoke(args=["demo", "--members", "150", "--seed", "3", "--today", TODAY.isoformat()])
    assert result.exit_code == 0, result.output
    first = tmp_path / "first.zip"
    result = runner.invoke(args=["members", "export", str(first)])
    assert result.exit_code == 0, result.output
    files = _unzip(first.read_bytes())
    assert sorted(files) == ["members.csv", "plans.csv"]
    plans = {r["code"]: r for r in _rows(files["plans.csv"])}
    assert plans["LIFE"]["period_kind"] == "lifetime" and plans["CAL"]["period_kind"] == "fixed"
    assert (plans["CAL"]["period_start_month"], plans["CAL"]["period_start_day"]) == ("1", "1")
    assert plans["IND"]["renewal_opens_days"] == "60" and plans["CORP"]["is_organizational"] == "yes"
    assert plans["LIFE"]["joinable_online"] == "no" and plans["IND"]["fee"] == "2000.00"
    members = _rows(files["members.csv"])
    by_status: dict[str, list[dict]] = {}
    for row in members:
        by_status.setdefault(row["term_status"], []).append(row)
    assert by_status.get("grace"), "the demo should have members in grace"
    lifetime = [r for r in members if r["plan_code"] == "LIFE"]
    assert lifetime and all(r["term_ends_on"] == "" for r in lifetime)
    assert any(r["plan_code"] == "CAL" for r in members)

    _empty_database()
    result = runner.invoke(args=["members", "import", str(first)])
    assert result.exit_code == 0, result.output
    assert "Plans: 5 new, 0 already here." in result.output
    assert "warning" not in result.output, result.output
    second = tmp_path / "second.zip"
    assert runner.invoke(args=["members", "export", str(second)]).exit_code == 0
    assert _unzip(second.read_bytes()) == files
    assert second.read_bytes() == first.read_bytes()
    # The lifetime terms stayed open-ended, and a member in grace is in grace here too.
    assert db.session.scalar(select(func.count()).select_from(Membership).join(Plan).where(
        Plan.code == "LIFE", Membership.ends_on.is_not(None))) == 0
    graced = by_status["grace"][0]
    assert db.session.scalar(select(Member.status).where(
        Member.member_number == graced["member_number"])) == "grace"

    # A folder works the same way, and so do the two files given apart.
    folder = tmp_path / "move"
    folder.mkdir()
    assert runner.invoke(args=["members", "export", str(folder)]).exit_code == 0
    assert (folder / "plans.csv").read_bytes() == files["plans.csv"]
    assert (folder / "members.csv").read_bytes() == files["members.csv"]
    _empty_database()
    result = runner.invoke(args=["members", "import", str(folder / "members.csv"), "--plans",
                                 str(folder / "plans.csv")])
    assert result.exit_code == 0, result.output
    assert _unzip(transfer.zip_bytes(db.session, today=TODAY)) == files


def test_without_the_plans_file_create_plans_says_what_it_guessed(app, runner, tmp_path, make_plan, make_member,
                                                                   make_term, fixed_clock):
    life = make_plan(code="LIFE", period_kind="lifetime", grace_days=0, fee_minor=2500000)
    ind = make_plan(code="IND", grace_days=60, fee_minor=200000)
    a = make_member(first_name="Ada", email="ada@example.org")
    make_term(a, life, starts_on=date(2020, 1, 1), today=TODAY)
    b = make_member(first_name="Bo", email="bo@example.org")
    make_term(b, ind, starts_on=date(2025, 5, 1), today=TODAY)  # ended 2026-04-30: in 60 days' grace
    db.session.commit()
    path = tmp_path / "members.csv"
    assert runner.invoke(args=["members", "export", str(path)]).exit_code == 0
    assert {r["first_name"]: r["term_status"] for r in _rows(path.read_bytes())} == {"Ada": "active",
                                                                                    "Bo": "grace"}
    _empty_database()
    result = runner.invoke(args=["members", "import", str(path)])
    assert result.exit_code == 2 and "No plan has the code 'IND'" in result.output
    assert db.session.scalar(select(func.count()).select_from(Member)) == 0
    result = runner.invoke(args=["members", "import", str(path), "--create-plans"])
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "No plan has the code LIFE: it will be created as a lifetime plan" in out
    assert "No plan has the code IND: it will be created as a rolling one-year plan with 30 days' grace" in out
    assert "The file says grace, but on 2026-06-15 the dates give lapsed" in out
    assert "the plans above were guessed" in out
    plans = {p.code: p for p in db.session.scalars(select(Plan))}
    assert plans["LIFE"].period_kind == "lifetime" and not plans["LIFE"].joinable_online
    assert db.session.scalar(select(Membership.ends_on).where(Membership.plan_id == plans["LIFE"].id)) is None


def test_plans_file_round_trip_keeps_every_setting_and_existing_plans(app, make_plan):
    make_plan(code="FY", name="Fiscal =year", period_kind="fixed", period_months=12, period_start_month=7,
              period_start_day=1, rollover_month=4, rollover_day=1, grace_days=15, renewal_opens_days=30,
              backdate_after_lapse=True, needs_approval=True, fee_minor=150050, description="two\nlines",
              sort_order=3)
    old = make_plan(code="OLD", fee_minor=0, is_active=False)
    make_plan(code="ORG", is_organizational=True, max_contacts=5, joinable_online=False, fee_minor=0)
    db.session.commit()
    first = plans_csvio.plans_csv(db.session)
    rows = {r["code"]: r for r in _rows(first)}
    assert rows["FY"]["name"] == "Fiscal =year" and rows["FY"]["fee"] == "1500.50"
    assert rows["OLD"]["active"] == "no" and rows["ORG"]["max_contacts"] == "5"
    assert old.is_active is False

    _empty_database()
    report = plans_csvio.import_plans(db.session, first, currency="BDT", actor=None, now=NOW)
    db.session.commit()
    assert sorted(report.created) == ["FY", "OLD", "ORG"] and not report.issues
    assert plans_csvio.plans_csv(db.session) == first
    # Again on top: nothing new, nothing changed, no warning.
    report = plans_csvio.import_plans(db.session, first, currency="BDT", actor=None, now=NOW)
    assert (report.created, sorted(report.existing), report.issues) == ([], ["FY", "OLD", "ORG"], [])
    changed = first.replace(b",15,30,", b",20,30,")
    report = plans_csvio.import_plans(db.session, changed, currency="BDT", actor=None, now=NOW)
    assert [(i.column, i.level) for i in report.issues] == [("code", "warning")]
    assert "grace_days" in report.issues[0].message
    assert db.session.scalar(select(Plan.grace_days).where(Plan.code == "FY")) == 15


def test_plans_file_rows_with_faults_are_reported(app):
    data = ("code,name,fee,currency,period_kind,period_months,grace_days,active\n"
            "OK,Fine,10.00,BDT,rolling,12,30,yes\n"
            "BAD CODE,Bad,-1,BDT,weekly,12,30,maybe\n"
            "USD,Dollar,10.00,USD,rolling,12,30,yes\n"
            "ok,Twice,10.00,BDT,rolling,12,30,yes\n").encode()
    report = plans_csvio.import_plans(db.session, data, currency="BDT", actor=None, now=NOW)
    faults = {(i.row, i.column) for i in report.issues}
    assert {(3, "code"), (3, "fee"), (3, "period_kind"), (3, "active")} <= faults
    assert (4, "currency") in faults and (5, "code") in faults
    assert report.created == ["OK"] and report.error_rows == 3
    with pytest.raises(csvio.ImportFileError):
        plans_csvio.import_plans(db.session, b"code,name\nA,B\n", currency="BDT", actor=None, now=NOW)


def test_zip_without_members_csv_is_refused(app, runner, tmp_path):
    path = tmp_path / "x.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("people.csv", "first_name,last_name,email\n")
    result = runner.invoke(args=["members", "import", str(path)])
    assert result.exit_code == 1 and "must hold one members.csv" in result.output


def test_web_zip_export_and_import(admin_client, make_plan, make_member, make_term):
    life = make_plan(code="LIFE", period_kind="lifetime", grace_days=0, fee_minor=0)
    m = make_member(first_name="Ada", email="ada@example.org")
    make_term(m, life, starts_on=date(2020, 1, 1), today=TODAY)
    db.session.commit()
    response = admin_client.get("/staff/members/export.zip")
    assert response.status_code == 200 and response.mimetype == "application/zip"
    data = response.get_data()
    files = _unzip(data)
    assert sorted(files) == ["members.csv", "plans.csv"]
    assert _rows(files["plans.csv"])[0]["period_kind"] == "lifetime"

    db.session.execute(Membership.__table__.delete())
    db.session.execute(Member.__table__.delete())
    db.session.execute(Plan.__table__.delete())
    db.session.commit()
    response = admin_client.post("/staff/import", data={"file": (io.BytesIO(data), "move.zip"),
                                                         "on_match": "skip"},
                                 content_type="multipart/form-data")
    assert response.status_code == 302, response.get_data(as_text=True)
    preview = admin_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "LIFE" in preview and "plans.csv" in preview
    assert db.session.scalar(select(func.count()).select_from(Plan)) == 0  # nothing written yet
    token = response.headers["Location"].rstrip("/").rsplit("/", 1)[1]
    response = admin_client.post(f"/staff/import/{token}/confirm")
    assert response.status_code == 302
    plan = db.session.scalars(select(Plan)).one()
    assert plan.period_kind == "lifetime"
    assert db.session.scalar(select(Membership.ends_on)) is None


def test_staff_zip_upload_uses_the_plans_here(staff_client, make_plan, app):
    make_plan(code="IND", fee_minor=0)
    db.session.commit()
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("move/plans.csv", "code,name,fee,currency,period_kind,period_months,grace_days\n"
                                     "GOLD,Gold,10.00,BDT,rolling,12,30\n")
        z.writestr("move/members.csv", "first_name,last_name,email,plan_code,term_starts_on\n"
                                       "Ada,L,ada@example.org,IND,2026-01-01\nBo,B,bo@example.org,GOLD,2026-01-01\n")
    response = staff_client.post("/staff/import", data={"file": (io.BytesIO(archive.getvalue()), "move.zip"),
                                                         "on_match": "skip"}, content_type="multipart/form-data")
    assert response.status_code == 302
    preview = staff_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "only an admin can import plans" in preview and "No plan has the code" in preview
    token = response.headers["Location"].rsplit("/", 1)[1]
    assert staff_client.post(f"/staff/import/{token}/confirm").status_code == 302
    assert db.session.scalar(select(func.count()).select_from(Plan)) == 1  # no GOLD
    assert db.session.scalar(select(func.count()).select_from(Member)) == 1


def test_dry_run_of_a_zip_writes_no_plan(app, runner, tmp_path, make_plan, make_member, make_term, fixed_clock):
    plan = make_plan(code="GOLD", grace_days=10, fee_minor=0)
    make_term(make_member(first_name="Ada", email="ada@example.org"), plan, starts_on=date(2026, 1, 1), today=TODAY)
    db.session.commit()
    path = tmp_path / "move.zip"
    assert runner.invoke(args=["members", "export", str(path)]).exit_code == 0
    _empty_database()
    result = runner.invoke(args=["members", "import", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "Plans: 1 new" in result.output and "Would import 1 rows: 1 new" in result.output
    assert db.session.scalar(select(func.count()).select_from(Plan)) == 0
    assert db.session.scalar(select(func.count()).select_from(Member)) == 0
