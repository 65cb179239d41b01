"""The fitted churn model (issue 10): on a generated history with a known answer it must beat the
recency rule and a plain logistic regression; it is kept only when it beats the default and the
rule; its reasons are true of the member they describe."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from membership.engagement import fitted, scoring
from membership.engagement.features import compute_features
from membership.engagement.model import fit_and_choose
from membership.engagement.models import ChurnModel
from membership.extensions import db
from membership.members.models import Member

from tests.engagement import rhythm_history

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)


@pytest.fixture
def history(app, make_member):
    return rhythm_history.make(make_member)


def test_the_fitted_model_beats_the_recency_rule_on_a_known_history(history):
    res = fit_and_choose(db.session, today=rhythm_history.TODAY, now=NOW, zone=rhythm_history.ZONE,
                         half_life_days=90, inactive_days=180)
    db.session.commit()
    assert res.definition == {"kind": "inactivity", "days": 180}
    print(res.message)
    assert res.train >= 200 and res.holdout >= 150, res
    m = res.measures
    assert m["fitted"]["auc"] > m["recency rule"]["auc"] + 0.01, m
    assert m["fitted"]["auc"] > m["default"]["auc"], m
    assert m["fitted"]["auc"] > m["baseline LR"]["auc"], m
    assert m["fitted"]["average_precision"] > m["recency rule"]["average_precision"], m
    assert res.kept and res.model.is_active and res.model.parameters["format"] == fitted.FORMAT
    row = db.session.scalars(select(ChurnModel).where(ChurnModel.is_active.is_(True))).one()
    assert row.id == res.model.id and row.auc == pytest.approx(m["fitted"]["auc"])
    assert row.parameters["holdout"]["measures"]["baseline LR"]["auc"] == pytest.approx(m["baseline LR"]["auc"])
    # the rhythm is what it learnt: silence against the usual gap raises the risk
    assert row.parameters["coef"]["silence_vs_rhythm"] > 0


def test_reasons_come_from_this_members_contributions_and_are_true(history):
    res = fit_and_choose(db.session, today=rhythm_history.TODAY, now=NOW, zone=rhythm_history.ZONE,
                         half_life_days=90, inactive_days=180)
    model = res.model.parameters
    day = rhythm_history.TODAY
    members = db.session.execute(select(Member.id, Member.joined_on)).all()
    feats = compute_features(db.session, members, day=day, zone=rhythm_history.ZONE, half_life_days=90)
    checked = 0
    for mid, mf in feats.items():
        f = mf.features
        p, why = scoring.score(f, model)
        _, contribs = fitted.probability(f, model)
        # the contributions add up to the score
        assert scoring.sigmoid(model["intercept"] + sum(contribs.values())) == pytest.approx(p)
        for r in why:
            name = r["input"]
            assert r["weight"] == pytest.approx(contribs[name], abs=0.01) and contribs[name] > 0.05
            text = r["text"]
            if text.startswith("no activity for"):
                assert f["days_since_last_activity"] >= 30
                n = int(text.split()[3])
                assert abs(n - f["days_since_last_activity"] / scoring.MONTH_DAYS) <= 0.5
            elif text.startswith("silent for"):
                gap = fitted.usual_gap(f)
                assert f["days_since_last_activity"] >= 2 * gap
            elif text.startswith("less active"):
                assert f["activities_90d"] < f["activities_prev_90d"] or f["activities_365d"] < f["activities_prev_365d"]
            elif text.startswith("only") and "last 90 days" in text:
                assert int(text.split()[1]) == f["activities_90d"]
            elif text.startswith("no activity in the last 90 days"):
                assert f["activities_90d"] == 0
            elif text.startswith("paid"):
                assert "nothing" in text or f["amount_365d"] > 0 or f["amount_total"] > 0
            checked += 1
    assert checked > 50
    # a weekly member silent for weeks is explained by the rhythm, not just the silence
    texts = [r["text"] for mf in feats.values() for r in scoring.score(mf.features, model)[1]]
    assert any(t.startswith("silent for") for t in texts)


def test_not_enough_history_keeps_the_default_and_says_what_to_do(app):
    res = fit_and_choose(db.session, today=date(2026, 6, 1), now=NOW, zone=rhythm_history.ZONE, half_life_days=90)
    assert res.model.kind == "default" and not res.kept
    assert "CHURN_INACTIVE_DAYS" in res.message


def test_churn_fit_command(history, runner, app):
    app.config["CHURN_INACTIVE_DAYS"] = 120
    result = runner.invoke(args=["churn", "fit", "--as-of", rhythm_history.TODAY.isoformat()])
    assert result.exit_code == 0, result.output
    assert "Churn: no activity for 120 days." in result.output
    for label in ("Samiti fitted model", "Samiti default score", "Days since last activity (rule)",
                  "Logistic regression (RFM+plan)"):
        assert label in result.output
    assert "kept and refitted on all cases" in result.output


def _line(output: str, label: str) -> tuple[float, float]:
    import re
    m = re.search(re.escape(label) + r"\s+([\d.]+)\s+([\d.]+)", output)
    assert m, output
    return float(m.group(1)), float(m.group(2))


def test_backtest_any_day_with_derived_outcomes_side_by_side(history, runner, app, tmp_path):
    app.config["CHURN_INACTIVE_DAYS"] = 180
    out = tmp_path / "scores.csv"
    result = runner.invoke(args=["churn", "backtest", "--as-of", "2025-11-17", "--scores-csv", str(out)])
    assert result.exit_code == 0, result.output
    text = result.output
    assert "outcomes derived: no activity in the 180 days after" in text
    samiti = _line(text, "Samiti churn risk")
    rule = _line(text, "Days since last activity (rule)")
    lr = _line(text, "Logistic regression (RFM+plan)")
    assert "a model fitted on" in text, text
    assert samiti[0] > rule[0] and samiti[0] > lr[0], text
    # the calibration table: ten tenths whose cases add up, churn rising from the lowest tenth to the highest
    lines = text.split("Calibration by tenth")[1].splitlines()[2:12]
    assert len(lines) == 10
    cells = [ln.split() for ln in lines]
    terms = int(text.split("Terms: ")[1].split()[0].replace(",", ""))
    assert sum(int(c[1].replace(",", "")) for c in cells) == terms
    assert float(cells[-1][3].rstrip("%")) > float(cells[0][3].rstrip("%"))
    import csv
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == terms and all(r["baseline_lr_risk"] for r in rows)


def test_backtest_with_given_outcomes(app, runner, make_member):
    from membership.core.models import Activity
    from membership.engagement.models import ChurnOutcome

    day = date(2025, 6, 1)
    for i in range(30):
        m = make_member(joined_on=date(2024, 1, 1))
        last = day - timedelta(days=5 if i % 2 else 200)
        db.session.add(Activity(member_id=m.id, kind="logged_in",
                                occurred_at=datetime(last.year, last.month, last.day, 6, tzinfo=timezone.utc)))
        db.session.add(ChurnOutcome(member_id=m.id, as_of=day, churned=not (i % 2), created_at=NOW))
    db.session.commit()
    result = runner.invoke(args=["churn", "backtest", "--as-of", day.isoformat(), "--model", "default"])
    assert result.exit_code == 0, result.output
    assert "outcomes given (outcomes.csv)" in result.output and "Terms: 30" in result.output
    assert _line(result.output, "Days since last activity (rule)")[0] == 1.0
    derived = runner.invoke(args=["churn", "backtest", "--as-of", day.isoformat(), "--model", "default",
                                  "--outcomes", "derived"])
    assert "outcomes derived" in derived.output
