"""`flask members import FILE` and `flask members export FILE`."""
from __future__ import annotations

import csv
import io
from datetime import date

from sqlalchemy import func, select

from membership.core.models import AuditLog
from membership.extensions import db
from membership.members.models import Member
from membership.plans.models import Plan
from tests.conftest import NOW


def count_members() -> int:
    return db.session.scalar(select(func.count()).select_from(Member))


GOOD = ("first_name,last_name,email,phone\r\n"
        "Ada,Lovelace,ada@example.org,01712345678\r\n"
        "রবীন্দ্রনাথ,ঠাকুর,tagore@example.org,\r\n")


def write(tmp_path, text: str | bytes, name="members.csv"):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def test_import_writes_members_and_prints_a_summary(runner, tmp_path):
    result = runner.invoke(args=["members", "import", str(write(tmp_path, GOOD))])
    assert result.exit_code == 0, result.output
    assert "Imported 2 rows: 2 new, 0 updated, 0 skipped, 0 with errors." in result.output
    assert "Importing" in result.output  # the progress bar's label
    assert sorted(m.email for m in db.session.scalars(select(Member))) == ["ada@example.org", "tagore@example.org"]
    assert db.session.scalar(select(AuditLog).where(AuditLog.action == "member.import")) is not None


def test_dry_run_prints_the_per_row_report_and_writes_nothing(runner, tmp_path):
    path = write(tmp_path, GOOD + "Bad,Email,not-an-email,\r\nBad,Phone,p@example.org,123\r\n"
                                  "Dup,Ada,ADA@example.org,\r\n")
    result = runner.invoke(args=["members", "import", str(path), "--dry-run"])
    assert result.exit_code == 2, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("row 4, email: Email:")
    assert lines[1].startswith("row 5, phone: Phone:")
    assert lines[2] == "row 6, email: The same email as row 2."
    assert lines[3] == "Would import 5 rows: 2 new, 0 updated, 0 skipped, 3 with errors."
    assert count_members() == 0


def test_rows_with_errors_are_left_out_and_the_exit_status_says_so(runner, tmp_path):
    path = write(tmp_path, GOOD + "Bad,Email,not-an-email,\r\n")
    result = runner.invoke(args=["members", "import", str(path)])
    assert result.exit_code == 2
    assert "1 with errors" in result.output
    assert count_members() == 2


def test_fatal_problems_exit_1_and_write_nothing(runner, tmp_path):
    result = runner.invoke(args=["members", "import", str(write(tmp_path, b""))])
    assert result.exit_code == 1 and "The file is empty." in result.output
    result = runner.invoke(args=["members", "import", str(write(tmp_path, "first_name,email\nAda,a@example.org\n"))])
    assert result.exit_code == 1 and "no 'last_name' column" in result.output
    result = runner.invoke(args=["members", "import", str(tmp_path / "missing.csv")])
    assert result.exit_code == 2 and "does not exist" in result.output  # click's usage error
    assert count_members() == 0


def test_on_match_update_and_skip(runner, tmp_path, make_member):
    m = make_member(first_name="Ada", email="ada@example.org")
    db.session.commit()
    path = write(tmp_path, "first_name,last_name,email\nAdelaide,Lovelace,ada@example.org\n")
    result = runner.invoke(args=["members", "import", str(path)])
    assert "1 skipped" in result.output
    db.session.refresh(m)
    assert m.first_name == "Ada"
    result = runner.invoke(args=["members", "import", str(path), "--on-match", "update"])
    assert result.exit_code == 0 and "1 updated" in result.output
    db.session.refresh(m)
    assert m.first_name == "Adelaide"


def test_create_plans_option(runner, tmp_path):
    path = write(tmp_path, "first_name,last_name,email,plan_code,term_starts_on\nAda,L,a@example.org,GOLD,2026-01-01\n")
    result = runner.invoke(args=["members", "import", str(path)])
    assert result.exit_code == 2 and "row 2, plan_code: No plan has the code 'GOLD'." in result.output
    result = runner.invoke(args=["members", "import", str(path), "--create-plans"])
    assert result.exit_code == 0, result.output
    assert "Plans created: GOLD." in result.output
    assert db.session.scalar(select(Plan.code)) == "GOLD"
    assert db.session.scalar(select(Member.status)) in ("active", "lapsed", "grace")


def test_report_file_lists_every_problem(runner, tmp_path):
    path = write(tmp_path, "first_name,last_name,email\n" + "".join(f"N{i},L,bad{i}\n" for i in range(7)))
    report = tmp_path / "problems.csv"
    result = runner.invoke(args=["members", "import", str(path), "--dry-run", "--report", str(report)])
    assert result.exit_code == 2
    rows = list(csv.DictReader(io.StringIO(report.read_text("utf-8-sig"))))
    assert [r["row"] for r in rows] == [str(n) for n in range(2, 9)]
    assert {r["column"] for r in rows} == {"email"} and {r["level"] for r in rows} == {"error"}


def test_export_to_a_file_and_back(runner, tmp_path, make_member, make_plan, make_term):
    plan = make_plan(code="STD", fee_minor=0)
    m = make_member(first_name="=Formula", email="ada@example.org", phone="+8801712345678")
    make_term(m, plan, starts_on=date(2025, 7, 1), today=date(2025, 7, 1))
    make_member(first_name="Other")
    db.session.commit()
    out = tmp_path / "export.csv"
    result = runner.invoke(args=["members", "export", str(out)])
    assert result.exit_code == 0, result.output
    assert "Exported 2 members" in result.output
    data = out.read_bytes()
    assert data.startswith(b"\xef\xbb\xbfmember_number,")
    assert b"'=Formula" in data and b"'+8801712345678" in data
    audit = db.session.scalar(select(AuditLog).where(AuditLog.action == "member.export"))
    assert audit.changes["count"] == 2


def test_export_to_stdout_with_a_status_filter(runner, make_member, make_plan, make_term):
    plan = make_plan(code="STD", fee_minor=0)
    active = make_member(first_name="Active", email="active@example.org")
    from membership.core.time import local_today
    from membership.plans.services import join
    join(db.session, active, plan, today=local_today(), now=NOW, actor=None, starts_on=local_today())
    make_member(first_name="None")
    db.session.commit()
    result = runner.invoke(args=["members", "export", "-", "--status", "active", "--no-bom"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["email"] for r in rows] == ["active@example.org"]
    assert not result.stdout.startswith("\ufeff")


def test_cli_round_trip(runner, tmp_path, make_member, make_plan, make_term):
    plan = make_plan(code="STD", fee_minor=0)
    for n in range(3):
        m = make_member(first_name=f"-Dash{n}", notes="several\nlines")
        make_term(m, plan, starts_on=date(2025, 7, 1), today=date(2025, 7, 1))
    db.session.commit()
    first = tmp_path / "first.csv"
    runner.invoke(args=["members", "export", str(first)])
    db.session.execute(Member.__table__.delete().where(Member.id > 0))
    db.session.commit()
    result = runner.invoke(args=["members", "import", str(first)])
    assert result.exit_code == 0, result.output
    second = tmp_path / "second.csv"
    runner.invoke(args=["members", "export", str(second)])
    assert second.read_bytes() == first.read_bytes()
