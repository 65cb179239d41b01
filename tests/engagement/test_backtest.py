"""The back-test on histories where the answer is known, through the CLI; choosing the model."""
from __future__ import annotations

import csv
import importlib.util
import re
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select

from membership.core.models import Activity
from membership.engagement.model import backtest, choose_model
from membership.engagement.models import ChurnModel
from membership.extensions import db
from membership.plans.models import Membership

ROOT = Path(__file__).resolve().parents[2]
ZONE = ZoneInfo("Asia/Dhaka")
AS_OF = date(2025, 6, 1)


def at(day: date, hour: int = 12) -> datetime:
    return datetime.combine(day, time(hour), ZONE).astimezone(timezone.utc)


def measures(output: str) -> dict[str, float]:
    out = {"terms": int(re.search(r"Terms: ([\d,]+)", output).group(1).replace(",", "")),
           "churn": float(re.search(r"Churn rate: ([\d.]+)%", output).group(1)) / 100}
    samiti = re.search(r"Samiti churn risk\s+([\d.]+)\s+([\d.]+)", output)
    rule = re.search(r"Days since last activity \(rule\)\s+([\d.]+)\s+([\d.]+)", output)
    out.update(auc=float(samiti.group(1)), ap=float(samiti.group(2)), rule_auc=float(rule.group(1)),
               rule_ap=float(rule.group(2)))
    return out


def known_history(make_member, plan, n=40):
    """Even members stay active and renew; odd ones went quiet a year ago and lapse - except every
    twentieth of each, who does the opposite (so the answer is known but not trivially perfect)."""
    truth = {}
    for i in range(n):
        m = make_member(joined_on=date(2022, 1, 1))
        ends = AS_OF + timedelta(days=10 + i)
        starts = ends.replace(year=ends.year - 1) + timedelta(days=1)
        db.session.add(Membership(member_id=m.id, plan_id=plan.id, starts_on=starts, ends_on=ends, grace_days=30,
                                  fee_minor=0, currency="BDT", paid_on=starts, status="active", created_at=at(starts)))
        active = i % 2 == 0
        last = AS_OF - timedelta(days=3 if active else 380)
        for k in range(12 if active else 4):
            db.session.add(Activity(member_id=m.id, kind="event_attended" if k % 3 == 0 else "logged_in",
                                    occurred_at=at(last - timedelta(days=25 * k))))
        renews = active != (i % 20 in (0, 1))
        if renews:
            nxt = ends + timedelta(days=1)
            db.session.add(Membership(member_id=m.id, plan_id=plan.id, starts_on=nxt, ends_on=nxt.replace(year=nxt.year + 1) - timedelta(days=1),
                                      grace_days=30, fee_minor=0, currency="BDT", paid_on=ends - timedelta(days=5),
                                      status="active", created_at=at(ends)))
            # what the member did after the scoring day must not help the score
        for k in range(5):
            db.session.add(Activity(member_id=m.id, kind="event_attended", occurred_at=at(AS_OF + timedelta(days=1 + k))))
        truth[m.id] = 0 if renews else 1
    db.session.commit()
    return truth


def test_backtest_on_a_known_history(app, runner, make_member, make_plan, tmp_path):
    plan = make_plan()
    truth = known_history(make_member, plan)
    out = tmp_path / "scores.csv"
    result = runner.invoke(args=["churn", "backtest", "--as-of", AS_OF.isoformat(), "--horizon-days", "60",
                                 "--model", "default", "--scores-csv", str(out)])
    assert result.exit_code == 0, result.output
    m = measures(result.output)
    assert m["terms"] == 40 and m["churn"] == sum(truth.values()) / 40 == 0.5
    assert m["auc"] > 0.8 and m["rule_auc"] > 0.7
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 40
    assert {r["churned"] for r in rows} == {"0", "1"}
    # the terms renewed early (paid before their end but after AS_OF) were not known as renewed on AS_OF
    assert all(float(r["churn_risk"]) > 0 for r in rows)

    result = backtest(db.session, as_of=AS_OF, horizon_days=60, zone=ZONE, half_life_days=90, model="default")
    assert {r.member_id: r.churned for r in result.rows} == truth


def load_example_module():
    spec = importlib.util.spec_from_file_location("make_example", ROOT / "examples" / "history" / "make_example.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_shipped_example_imports_and_back_tests_well(app, runner):
    result = runner.invoke(args=["history", "import", str(ROOT / "examples" / "history"), "--create-plans"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(args=["churn", "backtest", "--as-of", "2025-06-01", "--horizon-days", "365"])
    assert result.exit_code == 0, result.output
    m = measures(result.output)
    assert m["terms"] >= 30 and 0.05 < m["churn"] < 0.6
    assert m["auc"] > 0.8 and m["auc"] > m["rule_auc"]


def test_the_example_files_are_what_the_script_makes(tmp_path):
    load_example_module().write(tmp_path)
    for name in ("members.csv", "memberships.csv", "activities.csv"):
        assert (tmp_path / name).read_text() == (ROOT / "examples" / "history" / name).read_text()


def test_choose_model_fits_on_enough_history_and_keeps_its_quality(app, runner, tmp_path):
    load_example_module().write(tmp_path, members=220, seed=11)
    assert runner.invoke(args=["history", "import", str(tmp_path), "--create-plans"]).exit_code == 0
    now = datetime(2026, 6, 1, tzinfo=timezone.utc)
    active = choose_model(db.session, today=date(2026, 6, 1), now=now, zone=ZONE, half_life_days=90)
    db.session.commit()
    fitted = db.session.scalars(select(ChurnModel).where(ChurnModel.kind == "fitted")).one()
    default = db.session.scalars(select(ChurnModel).where(ChurnModel.kind == "default")).one()
    assert fitted.training_terms >= 150 and 0 < fitted.churn_rate < 1
    assert fitted.auc is not None and fitted.average_precision is not None and fitted.baseline_auc is not None
    assert fitted.auc > 0.7
    from membership.engagement import fitted as fitted_module
    assert fitted.parameters["format"] == fitted_module.FORMAT
    assert set(fitted_module.INPUTS) <= set(fitted.parameters["coef"]) and "weights" in default.parameters
    # active only if it beat the default and the recency rule on the hold-out
    assert fitted.is_active == (fitted.auc > fitted.parameters["default_auc"] and fitted.auc > fitted.baseline_auc)
    assert active.id == (fitted.id if fitted.is_active else default.id)


def test_too_little_history_keeps_the_default(app, make_member, make_plan):
    now = datetime(2026, 6, 1, tzinfo=timezone.utc)
    active = choose_model(db.session, today=date(2026, 6, 1), now=now, zone=ZONE, half_life_days=90)
    assert active.kind == "default" and active.parameters["intercept"] == -1.6
    assert choose_model(db.session, today=date(2026, 6, 1), now=now, zone=ZONE, half_life_days=90).id == active.id
