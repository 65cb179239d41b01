"""`flask history import DIR`: members, terms and activities from CSV, with a per-row report."""
from __future__ import annotations

import re
from datetime import date

from sqlalchemy import func, select

from membership.core.models import Activity
from membership.extensions import db
from membership.members.models import Member
from membership.plans.models import Membership, Plan

MEMBERS = """external_id,first_name,last_name,email,joined_on
A1,Ayesha,Ahmed,ayesha@example.org,2022-01-10
A2,Rahim,Khan,,2023-05-01
A3,Nusrat,Islam,nusrat@example.org,2021-03-15
"""
TERMS = """external_id,plan_code,starts_on,ends_on,paid_on,amount
A1,STD,2022-01-10,2023-01-09,2022-01-10,1500
A1,STD,2023-01-10,2024-01-09,2023-01-20,1500
A2,STU,2023-05-01,2024-04-30,2023-05-01,500.00
A3,STD,2021-03-15,2022-03-14,,
"""
ACTIVITIES = """external_id,occurred_at,kind,amount,detail
A1,2022-03-01,event_attended,,AGM
A1,2023-02-01 18:30,logged_in,,
A2,2023-06-01T10:00:00+06:00,interaction,,phone call
A3,2021-04-01,payment,1500,
"""


def write(tmp_path, members=MEMBERS, terms=TERMS, activities=ACTIVITIES):
    d = tmp_path / "history"
    d.mkdir()
    for name, text in (("members.csv", members), ("memberships.csv", terms), ("activities.csv", activities)):
        if text is not None:
            (d / name).write_text(text, encoding="utf-8")
    return d


def count(model):
    return db.session.scalar(select(func.count()).select_from(model))


def test_good_files(app, runner, make_plan, tmp_path):
    make_plan(code="STD", grace_days=30)
    make_plan(code="STU", grace_days=15)
    db.session.commit()
    result = runner.invoke(args=["history", "import", str(write(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "Imported: 3 new members (0 already there), 4 terms (0 already there), 4 activities" in result.output
    a1 = db.session.scalars(select(Member).where(Member.external_id == "A1")).one()
    assert a1.first_name == "Ayesha" and a1.joined_on == date(2022, 1, 10)
    assert db.session.scalars(select(Member).where(Member.external_id == "A2")).one().email is None
    terms = db.session.scalars(select(Membership).where(Membership.member_id == a1.id)
                               .order_by(Membership.starts_on)).all()
    assert [(t.starts_on, t.ends_on, t.paid_on, t.fee_minor, t.source) for t in terms] == [
        (date(2022, 1, 10), date(2023, 1, 9), date(2022, 1, 10), 150000, "import"),
        (date(2023, 1, 10), date(2024, 1, 9), date(2023, 1, 20), 150000, "import")]
    assert all(t.status == "lapsed" for t in terms[1:]) and a1.status == "lapsed"
    stu = db.session.scalars(select(Membership).join(Plan).where(Plan.code == "STU")).one()
    assert stu.grace_days == 15
    acts = db.session.scalars(select(Activity).order_by(Activity.occurred_at)).all()
    assert [a.kind for a in acts] == ["payment", "event_attended", "logged_in", "interaction"]
    assert acts[0].detail == {"imported": True, "amount_minor": 150000}
    assert acts[3].occurred_at.hour == 4  # 10:00 in Dhaka
    assert acts[1].detail["note"] == "AGM"

    # re-running adds nothing
    again = runner.invoke(args=["history", "import", str(tmp_path / "history")])
    assert again.exit_code == 0, again.output
    assert "0 new members (3 already there), 0 terms (4 already there), 0 activities (4 already there)" in again.output
    assert count(Member) == 3 and count(Membership) == 4 and count(Activity) == 4


def test_bad_rows_are_reported_with_row_numbers_and_the_rest_imported(app, runner, make_plan, tmp_path):
    make_plan(code="STD")
    db.session.commit()
    members = MEMBERS + "A4,,Nameless,,2020-01-01\nA5,Ok,Date,,2020-13-01\nA1,Twice,Again,,2020-01-01\n"
    terms = TERMS + "A9,STD,2020-01-01,2020-12-31,,\nA1,STD,2024-02-01,2024-01-01,,\n"
    activities = ACTIVITIES + "A1,2022-05-01,dancing,,\nA1,someday,logged_in,,\n"
    result = runner.invoke(args=["history", "import", str(write(tmp_path, members, terms, activities))])
    assert result.exit_code == 2, result.output
    out = result.output
    assert "members.csv row 5, first_name: First name is required." in out or "members.csv row 5, first_name:" in out
    assert "members.csv row 6, joined_on: '2020-13-01' is not a date (use YYYY-MM-DD)" in out
    assert "members.csv row 7, external_id: 'A1' appears twice in the file" in out
    assert "memberships.csv row 4, plan_code: unknown plan 'STU' (use --create-plans to create it)" in out
    assert "memberships.csv row 6, external_id: no member with external id 'A9'" in out
    assert "memberships.csv row 7, ends_on: is before starts_on" in out
    assert "activities.csv row 6, kind: unknown kind 'dancing'" in out
    assert "activities.csv row 7, occurred_at: 'someday' is not a date or date-time" in out
    assert "8 rows with errors were left out." in out
    assert count(Member) == 3 and count(Membership) == 3 and count(Activity) == 4


def test_create_plans_and_dry_run(app, runner, tmp_path):
    d = write(tmp_path)
    dry = runner.invoke(args=["history", "import", str(d), "--create-plans", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "Would import: 3 new members" in dry.output and "would create plans STD, STU" in dry.output
    db.session.rollback()
    assert count(Member) == 0 and count(Membership) == 0 and count(Activity) == 0 and count(Plan) == 0

    refused = runner.invoke(args=["history", "import", str(d)])
    assert refused.exit_code == 2 and "unknown plan 'STD'" in refused.output

    made = runner.invoke(args=["history", "import", str(d), "--create-plans"])
    assert made.exit_code == 0, made.output
    plan = db.session.scalars(select(Plan).where(Plan.code == "STU")).one()
    assert plan.fee_minor == 0 and plan.grace_days == 30 and not plan.is_active
    assert count(Membership) == 4


def test_a_missing_column_imports_nothing(app, runner, tmp_path):
    d = write(tmp_path, members="external_id,first_name\nA1,Ayesha\n", terms=None, activities=None)
    result = runner.invoke(args=["history", "import", str(d)])
    assert result.exit_code == 1
    assert "members.csv: the header lacks the column joined_on." in result.output
    assert count(Member) == 0


def test_nothing_is_lost_two_same_day_purchases_are_two(app, runner, make_plan, tmp_path):
    """Same member, kind and day: both kept, whether the rows differ (amount) or are identical;
    a re-run adds nothing and reports every row as already there (issue 10)."""
    make_plan(code="STD")
    make_plan(code="STU")
    db.session.commit()
    activities = ("external_id,occurred_at,kind,amount,detail\n"
                  "A1,2023-03-01,payment,100,\nA1,2023-03-01,payment,250,\n"
                  "A1,2023-03-01,payment,100,\nA1,2023-03-01 09:00,payment,100,\n"
                  "A2,2023-03-01,payment,100,\n")
    d = write(tmp_path, activities=activities)
    result = runner.invoke(args=["history", "import", str(d)])
    assert result.exit_code == 0, result.output
    assert count(Activity) == 5
    a1 = db.session.scalars(select(Member).where(Member.external_id == "A1")).one()
    amounts = sorted(a.detail["amount_minor"] for a in db.session.scalars(
        select(Activity).where(Activity.member_id == a1.id)))
    assert amounts == [10000, 10000, 10000, 25000]
    assert re.search(r"activities\.csv\s+5\s+5\s+0\s+0", result.output), result.output
    again = runner.invoke(args=["history", "import", str(d)])
    assert again.exit_code == 0, again.output
    assert count(Activity) == 5
    assert re.search(r"activities\.csv\s+5\s+0\s+5\s+0", again.output), again.output
    # a third identical row added to the file later is a new purchase: only it is imported
    (d / "activities.csv").write_text(activities + "A1,2023-03-01,payment,100,\n", encoding="utf-8")
    third = runner.invoke(args=["history", "import", str(d)])
    assert re.search(r"activities\.csv\s+6\s+1\s+5\s+0", third.output), third.output
    assert count(Activity) == 6


def test_activity_id_is_the_key_when_given(app, runner, make_plan, tmp_path):
    make_plan(code="STD")
    make_plan(code="STU")
    db.session.commit()
    activities = ("external_id,occurred_at,kind,amount,detail,activity_id\n"
                  "A1,2023-03-01,payment,100,,p-1\nA1,2023-03-01,payment,100,,p-2\n"
                  "A1,2023-03-02,payment,100,,p-1\nA1,someday,payment,1,,p-3\n")
    d = write(tmp_path, activities=activities)
    result = runner.invoke(args=["history", "import", str(d)])
    assert result.exit_code == 2, result.output
    # p-1 twice in one file: the second is the same activity (already there), not a new one
    assert count(Activity) == 2
    assert re.search(r"activities\.csv\s+4\s+2\s+1\s+1", result.output), result.output
    assert "activities.csv row 5, occurred_at" in result.output
    ids = sorted(a.detail["activity_id"] for a in db.session.scalars(select(Activity)))
    assert ids == ["p-1", "p-2"]


def test_outcomes_are_imported_corrected_and_checked(app, runner, make_plan, tmp_path):
    from membership.engagement.models import ChurnOutcome

    make_plan(code="STD")
    make_plan(code="STU")
    db.session.commit()
    d = write(tmp_path)
    (d / "outcomes.csv").write_text("external_id,churned,as_of\nA1,1,2023-06-01\nA2,no,2023-06-01\n"
                                    "A3,maybe,2023-06-01\nA9,1,2023-06-01\nA1,0,2099-01-01\n", encoding="utf-8")
    result = runner.invoke(args=["history", "import", str(d), "--create-plans"])
    assert result.exit_code == 2, result.output
    assert "outcomes.csv row 4, churned: 'maybe' is not 1 or 0" in result.output
    assert "outcomes.csv row 5, external_id: no member with external id 'A9'" in result.output
    assert "outcomes.csv row 6, as_of: is in the future" in result.output
    assert re.search(r"outcomes\.csv\s+5\s+2\s+0\s+3", result.output), result.output
    got = {(o.member.external_id if hasattr(o, "member") else o.member_id, o.as_of, o.churned)
           for o in db.session.scalars(select(ChurnOutcome))}
    assert len(got) == 2 and {c for *_, c in got} == {True, False}
    (d / "outcomes.csv").write_text("external_id,churned,as_of\nA1,0,2023-06-01\nA2,no,2023-06-01\n",
                                    encoding="utf-8")
    again = runner.invoke(args=["history", "import", str(d)])
    assert again.exit_code == 0, again.output
    assert re.search(r"outcomes\.csv\s+2\s+1\s+1\s+0", again.output), again.output
    assert not any(o.churned for o in db.session.scalars(select(ChurnOutcome)))


def test_a_rerun_over_rows_imported_before_keys_were_stored_does_not_double_them(app, runner, make_plan, tmp_path):

    make_plan(code="STD")
    make_plan(code="STU")
    db.session.commit()
    activities = "external_id,occurred_at,kind,amount,detail\nA1,2023-03-01,payment,100,\nA1,2023-03-01,payment,100,\n"
    d = write(tmp_path, activities=activities)
    assert runner.invoke(args=["history", "import", str(d)]).exit_code == 0
    # as the old import left them: no key
    db.session.execute(Activity.__table__.update().values(dedupe_key=None))
    db.session.execute(Activity.__table__.delete().where(Activity.id == db.session.scalar(select(func.max(Activity.id)))))
    db.session.commit()
    assert count(Activity) == 1
    again = runner.invoke(args=["history", "import", str(d)])
    assert re.search(r"activities\.csv\s+2\s+1\s+1\s+0", again.output), again.output
    assert count(Activity) == 2
