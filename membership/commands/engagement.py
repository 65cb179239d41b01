"""`flask history import` and `flask churn backtest|score`: load an association's history, judge
the churn score on it, and run the scoring once."""
from __future__ import annotations

import csv
import sys
from datetime import date
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy.exc import SQLAlchemyError

from membership.commands.common import require_schema
from membership.core.time import local_today, tz, utcnow
from membership.extensions import db

EXIT_ROW_ERRORS = 2


@click.group("history", cls=AppGroup)
def history_group():
    """Import an association's past members, terms and activities."""


@history_group.command("import")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--create-plans", is_flag=True, help="Create plans with unknown codes instead of refusing the rows.")
@click.option("--dry-run", is_flag=True, help="Check every row and print the report; write nothing.")
def history_import(directory: Path, create_plans: bool, dry_run: bool):
    """Import members.csv, memberships.csv, activities.csv and outcomes.csv from DIRECTORY.

    Prints one line per problem (file, row number as a spreadsheet shows it, column) and a
    summary. Exit status: 0 every row fine, 1 nothing imported, 2 rows with errors left out."""
    from membership.engagement import history

    require_schema()
    cfg = current_app.config
    try:
        total = history.count_rows(directory)
        with click.progressbar(length=total, label="Checking" if dry_run else "Importing", file=sys.stderr,
                               show_pos=True) as bar:
            report = history.import_history(db.session, directory, create_plans=create_plans, dry_run=dry_run,
                                            today=local_today(), now=utcnow(), zone=tz(),
                                            currency=cfg["CURRENCY"], region=cfg["PHONE_REGION"],
                                            progress=bar.update)
        if dry_run:
            db.session.rollback()
        else:
            db.session.commit()
    except history.HistoryFileError as e:
        db.session.rollback()
        raise click.ClickException(f"Nothing was imported: {e.message}")
    except (SQLAlchemyError, UnicodeDecodeError, csv.Error) as e:
        db.session.rollback()
        raise click.ClickException(f"Nothing was imported: {e.__class__.__name__}: {str(e)[:200]}")
    for issue in report.issues:
        click.echo(str(issue))
    if report.issue_count > len(report.issues):
        click.echo(f"... and {report.issue_count - len(report.issues):,} more problems")
    for line in report.table():
        click.echo(line)
    click.echo(report.summary())
    if report.error_rows:
        sys.exit(EXIT_ROW_ERRORS)


@click.group("churn", cls=AppGroup)
def churn_group():
    """Churn risk: back-test the score, run the scoring."""


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


@churn_group.command("backtest")
@click.option("--as-of", "as_of", required=True, type=click.DateTime(formats=["%Y-%m-%d"]),
              help="Score as of this day (YYYY-MM-DD), with only what was known then.")
@click.option("--horizon-days", default=90, show_default=True, type=click.IntRange(1, 3660),
              help="With renewals: judge the terms that end in this many days after the date.")
@click.option("--model", "model", type=click.Choice(["auto", "default"]), default="auto", show_default=True,
              help="auto: what Samiti would have used that day (a model fitted on the history known then, "
                   "when it beat the default and the rule), else the default model.")
@click.option("--outcomes", type=click.Choice(["auto", "given", "derived"]), default="auto", show_default=True,
              help="given: the outcomes imported for that day (outcomes.csv); derived: from renewals or from "
                   "CHURN_INACTIVE_DAYS; auto: given when there are some for the day.")
@click.option("--scores-csv", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write each case's scores and outcome to this CSV file.")
def churn_backtest(as_of, horizon_days: int, model: str, outcomes: str, scores_csv: Path | None):
    """Score members as of DATE with only what was known then and compare with what happened:
    ROC AUC, average precision and a calibration table by tenth, for Samiti's score, the recency
    rule and (with a fitted model) the default score and a plain logistic regression."""
    from membership.engagement.model import backtest, calibration
    from membership.members.csvio import neutralise
    from membership.engagement.settings import get_settings
    from membership.members.models import Member

    require_schema()
    day: date = as_of.date()
    settings = get_settings(db.session)
    result = backtest(db.session, as_of=day, horizon_days=horizon_days, zone=tz(),
                      half_life_days=settings.half_life_days, model=model, outcomes=outcomes,
                      inactive_days=current_app.config.get("CHURN_INACTIVE_DAYS") or None)
    cols = result.columns()
    if scores_csv:
        numbers = {}
        ids = [r.member_id for r in result.rows]
        for i in range(0, len(ids), 900):
            numbers.update({mid: (num, ext) for mid, num, ext in db.session.execute(
                db.select(Member.id, Member.member_number, Member.external_id).where(Member.id.in_(ids[i:i + 900])))})
        with open(scores_csv, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["member_number", "external_id", "term_id", "ends_on", "churn_risk", "risk_band",
                        "days_since_last_activity", "churned", "reasons", "default_risk", "baseline_lr_risk"])
            for k, r in enumerate(result.rows):
                num, ext = numbers.get(r.member_id, ("", ""))
                w.writerow([num, neutralise(ext or ""), r.term_id or "", r.ends_on.isoformat() if r.ends_on else "",
                            f"{r.risk:.4f}", r.risk_band or "",
                            "" if r.days_since_last_activity is None else r.days_since_last_activity, r.churned,
                            neutralise("; ".join(x["text"] for x in r.reasons)),
                            f"{cols['default'][k]:.4f}" if "default" in cols else "",
                            f"{cols['baseline_lr'][k]:.4f}" if "baseline_lr" in cols else ""])
    db.session.rollback()
    m = result.measures()
    click.echo(f"Back-test as of {day.isoformat()}; outcomes {result.outcomes}; score: {result.model_note}.")
    click.echo(f"Terms: {result.terms:,}")
    click.echo(f"Churn rate: {_pct(result.churn_rate)}")
    click.echo(f"{'':34} {'ROC AUC':>8} {'Avg precision':>14}")
    click.echo(f"{'Samiti churn risk':34} {_num(m['auc']):>8} {_num(m['average_precision']):>14}")
    click.echo(f"{'Days since last activity (rule)':34} {_num(m['baseline_auc']):>8} "
               f"{_num(m['baseline_average_precision']):>14}")
    if "default" in cols:
        click.echo(f"{'Samiti default score':34} {_num(m['default_auc']):>8} {_num(m['default_average_precision']):>14}")
    if "baseline_lr" in cols:
        click.echo(f"{'Logistic regression (RFM+plan)':34} {_num(m['baseline_lr_auc']):>8} "
                   f"{_num(m['baseline_lr_average_precision']):>14}")
    if result.rows:
        y = [r.churned for r in result.rows]
        tables = {k: calibration(y, v) for k, v in cols.items()}
        click.echo("Calibration by tenth of each score (lowest first): cases, mean predicted, actual churn")
        head = f"{'tenth':>5} {'cases':>7} {'Samiti pred':>11} {'actual':>7} {'rule days':>9} {'actual':>7}"
        if "baseline_lr" in tables:
            head += f" {'LR pred':>8} {'actual':>7}"
        click.echo(head)
        for g in range(len(tables["samiti"])):
            n, pred, act = tables["samiti"][g]
            _, rule_days, rule_act = tables["rule"][g] if g < len(tables["rule"]) else (0, 0.0, 0.0)
            line = f"{g + 1:>5} {n:>7,} {pred:>11.1%} {act:>7.1%} {rule_days:>9.0f} {rule_act:>7.1%}"
            if "baseline_lr" in tables and g < len(tables["baseline_lr"]):
                _, lp, la = tables["baseline_lr"][g]
                line += f" {lp:>8.1%} {la:>7.1%}"
            click.echo(line)
    if scores_csv:
        click.echo(f"Scores written to {scores_csv}.")


@churn_group.command("fit")
@click.option("--as-of", "as_of", type=click.DateTime(formats=["%Y-%m-%d"]),
              help="Fit with only the history whose outcome was known on this day (default: today).")
@click.option("--lead-days", default=60, show_default=True, type=click.IntRange(0, 3650),
              help="With renewals: score each past term this many days before its end (when staff can still act).")
def churn_fit(as_of, lead_days: int):
    """Fit the churn model on the association's history, back-test it on a time-based hold-out
    (the latest quarter of scoring days), and make it active only if it beats the default score
    and the recency rule there. Prints the hold-out measures, with a plain logistic regression on
    recency, frequency, amount, tenure and plan beside."""
    from membership.engagement.model import fit_and_choose
    from membership.engagement.settings import get_settings

    require_schema()
    day: date = as_of.date() if as_of else local_today()
    settings = get_settings(db.session)
    res = fit_and_choose(db.session, today=day, now=utcnow(), zone=tz(), half_life_days=settings.half_life_days,
                         inactive_days=current_app.config.get("CHURN_INACTIVE_DAYS") or None, lead_days=lead_days)
    db.session.commit()
    d = res.definition
    words = {"terms": "not renewing a term by the end of its grace",
             "inactivity": f"no activity for {d.get('days')} days",
             "given": f"the imported outcomes (known {d.get('days')} days after their day)"}[d["kind"]]
    click.echo(f"Churn: {words}. Cases known on {day.isoformat()}: {res.examples:,}, churned {res.churned:,}.")
    if res.measures:
        click.echo(f"Hold-out: learnt from {res.train:,}, tested on the {res.holdout:,} latest.")
        click.echo(f"{'':34} {'ROC AUC':>8} {'Avg precision':>14}")
        for name, label in (("fitted", "Samiti fitted model"), ("default", "Samiti default score"),
                            ("recency rule", "Days since last activity (rule)"),
                            ("baseline LR", "Logistic regression (RFM+plan)")):
            mm = res.measures[name]
            click.echo(f"{label:34} {_num(mm['auc']):>8} {_num(mm['average_precision']):>14}")
    click.echo(res.message)
    click.echo(f"Active model: #{res.model.id} ({res.model.kind}).")


@churn_group.command("score")
@click.option("--today", type=click.DateTime(formats=["%Y-%m-%d"]), help="Score as of this day (default: today).")
def churn_score(today):
    """Run the scoring once, as the daily jobs do: refit the churn model first when the last fit is
    a month old ("churn-model-fit"), then score every member in batches, committing each
    ("engagement-scoring")."""
    from sqlalchemy import func, select

    from membership.engagement.jobs import BATCH_SIZE, score_all
    from membership.members.models import Member

    require_schema()
    day = today.date() if today else local_today()
    members = db.session.scalar(select(func.count()).select_from(Member).where(Member.erased_at.is_(None))) or 0
    # one step for choosing the model, one per batch
    with click.progressbar(length=1 + -(-members // BATCH_SIZE), label="Scoring", file=sys.stderr) as bar:
        def step():
            db.session.commit()
            bar.update(1)
        counts = score_all(db.session, today=day, now=utcnow(), zone=tz(), on_batch=step, refit=True,
                           inactive_days=current_app.config.get("CHURN_INACTIVE_DAYS") or None)
        db.session.commit()
    click.echo(f"Scored {counts['scored']:,} members as of {day.isoformat()} in {counts['batches']} batches: "
               f"{counts['at_risk']:,} at high risk, {counts['opened']:,} alerts opened, "
               f"{counts['resolved']:,} resolved.")
