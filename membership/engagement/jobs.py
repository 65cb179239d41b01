"""The daily "engagement-scoring" job: score every member in batches, keep the history, refresh
the current scores, and open or close churn-risk alerts. Records no activities."""
from __future__ import annotations

from datetime import date, datetime, time
from typing import Any, Callable

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from membership.core.db import conflict_insert
from membership.engagement import scoring
from membership.engagement.alerts import update_alerts
from membership.engagement.features import compute_features
from membership.engagement.model import active_model, choose_model
from membership.engagement.models import CurrentScore, MemberScore, RiskAlert, Setting
from membership.engagement.settings import get_settings
from membership.members.models import Member
from membership.scheduler import Daily, Job, register_job

BATCH_SIZE = 1000
REFIT_DAYS = 30
LAST_FIT_KEY = "engagement.last_fit_attempt"


def _upsert(session: Session, table, rows: list[dict[str, Any]], keys: list[str]) -> None:
    if not rows:
        return
    stmt = conflict_insert(session.get_bind().dialect.name)(table)
    stmt = stmt.on_conflict_do_update(index_elements=keys,
                                      set_={c: stmt.excluded[c] for c in rows[0] if c not in keys})
    session.execute(stmt, rows)


def inactive_days_setting() -> int | None:
    """CHURN_INACTIVE_DAYS of the running app (0 or unset: churn means not renewing a term)."""
    from flask import current_app, has_app_context

    days = current_app.config.get("CHURN_INACTIVE_DAYS") if has_app_context() else None
    return int(days) if days else None


def still_there(features: dict[str, Any], inactive_days: int) -> bool:
    """Not churned yet under "no activity for N days": active in the last N days, or joined then."""
    days = features.get("days_since_last_activity")
    if days is None:
        days = features.get("days_since_joined")
    return days is not None and days <= inactive_days


def score_member(mf, *, settings, model: dict[str, Any], inactive_days: int | None = None) -> dict[str, Any]:
    """One member's scores from its features (pure). Churn risk for a member with a current term
    (the risk of not renewing it) and, with `inactive_days` (CHURN_INACTIVE_DAYS), also for a
    member without one who has not churned yet by that definition (the risk of going silent)."""
    score, breakdown = scoring.engagement_from_decayed(mf.decayed, settings.weights)
    out: dict[str, Any] = {"engagement": score, "engagement_band": scoring.band(score, settings.bands),
                           "breakdown": breakdown, "churn_risk": None, "risk_band": None, "reasons": None,
                           "renewed": mf.renewed}
    if mf.term is not None and mf.renewed:
        # the next term is already there: this one will not lapse
        out.update(churn_risk=0.0, risk_band="low", reasons=[])
    elif mf.term is not None or (inactive_days and still_there(mf.features, inactive_days)):
        p, why = scoring.score(mf.features, model)
        out.update(churn_risk=round(p, 4), risk_band=scoring.risk_band(p), reasons=why)
    return out


def refit_if_due(session: Session, *, today: date, now: datetime, zone, half_life_days: float,
                 inactive_days: int | None = None) -> dict[str, Any]:
    """Fit a churn model on the history (model.choose_model) when the last attempt is REFIT_DAYS
    old or more. A fit reads the whole history, so it is tried at most once every REFIT_DAYS (the
    Setting row remembers the last attempt, also when there was not enough history to fit).
    Flushes; the caller commits."""
    attempt = session.get(Setting, LAST_FIT_KEY)
    last = date.fromisoformat(attempt.value) if attempt is not None and attempt.value else None
    if last is not None and 0 <= (today - last).days < REFIT_DAYS:
        return {"fitted": False, "last_attempt": last.isoformat()}
    active = choose_model(session, today=today, now=now, zone=zone, half_life_days=half_life_days,
                          inactive_days=inactive_days)
    if attempt is None:
        session.add(Setting(key=LAST_FIT_KEY, value=today.isoformat(), updated_at=now))
    else:
        attempt.value, attempt.updated_at = today.isoformat(), now
    session.flush()
    return {"fitted": True, "active_model": active.id, "kind": active.kind}


def score_all(session: Session, *, today: date, now: datetime, zone, batch_size: int = BATCH_SIZE,
              on_batch: Callable[[], None] | None = None, refit: bool = False,
              inactive_days: int | None = None) -> dict[str, Any]:
    """Score every non-erased member as of `today`: MemberScore (one row per member and day,
    replaced on a re-run the same day), CurrentScore (upserted), and alerts. Batches of
    `batch_size` members; `on_batch` (the job's checkpoint: commit) after each one, so memory
    stays bounded and a crash keeps the batches done. With `refit`, first fits a model on the
    history when the latest fit is older than REFIT_DAYS (the scheduler does that in its own job,
    "churn-model-fit", so the daily scoring stays well within its time)."""
    settings = get_settings(session)
    if refit:
        refit_if_due(session, today=today, now=now, zone=zone, half_life_days=settings.half_life_days,
                     inactive_days=inactive_days)
    model_row = active_model(session, now=now)
    model, model_id = model_row.parameters, model_row.id
    if on_batch:
        on_batch()
    counts = {"scored": 0, "batches": 0, "at_risk": 0, "opened": 0, "resolved": 0, "model_id": model_id}
    if settings.we_miss_you:
        counts["we_miss_you"] = 0
    last_id = 0
    while True:
        members = session.execute(select(Member.id, Member.joined_on)
                                  .where(Member.erased_at.is_(None), Member.id > last_id)
                                  .order_by(Member.id).limit(batch_size)).all()
        if not members:
            break
        last_id = members[-1][0]
        ids = [m[0] for m in members]
        feats = compute_features(session, members, day=today, zone=zone, half_life_days=settings.half_life_days)
        previous = dict(session.execute(select(CurrentScore.member_id, CurrentScore.risk_band)
                                        .where(CurrentScore.member_id.in_(ids), CurrentScore.scored_on < today)).all())
        # a re-run the same day compares with the band before today's first run
        same_day = set(session.scalars(select(CurrentScore.member_id)
                                       .where(CurrentScore.member_id.in_(ids), CurrentScore.scored_on >= today)))
        history, current, scores = [], [], {}
        for mid in ids:
            mf = feats[mid]
            s = score_member(mf, settings=settings, model=model, inactive_days=inactive_days)
            scores[mid] = s
            history.append({"member_id": mid, "scored_on": today, "engagement": s["engagement"],
                            "engagement_band": s["engagement_band"], "churn_risk": s["churn_risk"],
                            "risk_band": s["risk_band"], "reasons": s["reasons"], "features": mf.features,
                            "breakdown": s["breakdown"], "model_id": model_id if s["churn_risk"] is not None else None})
            current.append({"member_id": mid, "scored_on": today, "engagement": s["engagement"],
                            "engagement_band": s["engagement_band"], "churn_risk": s["churn_risk"],
                            "risk_band": s["risk_band"], "reasons": s["reasons"],
                            "last_activity_at": mf.last_activity_at})
            counts["at_risk"] += s["risk_band"] == "high"
        _upsert(session, MemberScore.__table__, history, ["member_id", "scored_on"])
        _upsert(session, CurrentScore.__table__, current, ["member_id"])
        prev_bands = {mid: band for mid, band in previous.items()}
        for mid in same_day:
            prev_bands[mid] = "high"  # today's first run already dealt with this member's episode
        opened: list[RiskAlert] = []
        c = update_alerts(session, scores, prev_bands, today=today, now=now, opened=opened)
        if settings.we_miss_you and opened:
            counts["we_miss_you"] += _we_miss_you(session, opened, now=now)
        counts["opened"] += c["opened"]
        counts["resolved"] += c["resolved"]
        counts["scored"] += len(ids)
        counts["batches"] += 1
        if on_batch:
            on_batch()
    # members erased since their alert opened are not scored any more: close their alerts
    erased = select(Member.id).where(Member.erased_at.is_not(None)).scalar_subquery()
    counts["resolved"] += session.execute(
        update(RiskAlert).where(RiskAlert.status == "open", RiskAlert.member_id.in_(erased))
        .values(status="resolved", closed_at=now, close_reason="Member erased.")).rowcount or 0
    return counts


def _we_miss_you(session: Session, alerts: list[RiskAlert], *, now: datetime) -> int:
    """Queue the "we miss you" email for each newly opened alert (in the scoring's transaction, so
    a crash before the batch commits loses neither). Returns how many were queued."""
    from membership.notifications.emails import queue_we_miss_you

    members = {m.id: m for m in session.scalars(select(Member).where(Member.id.in_([a.member_id for a in alerts])))}
    return sum(queue_we_miss_you(session, members.get(a.member_id), a, now=now) is not None for a in alerts)


def engagement_scoring(ctx) -> dict[str, Any]:
    """The scheduler job: score all members as of the local day, in batches, committing each."""
    return score_all(ctx.session, today=ctx.today, now=ctx.now, zone=ctx.zone, on_batch=ctx.checkpoint,
                     inactive_days=inactive_days_setting())


def churn_model_fit(ctx) -> dict[str, Any]:
    """The scheduler job: refit the churn model on the history when the last fit is a month old
    (a daily job that does nothing on most days), before the day's scoring."""
    settings = get_settings(ctx.session)
    return refit_if_due(ctx.session, today=ctx.today, now=ctx.now, zone=ctx.zone,
                        half_life_days=settings.half_life_days, inactive_days=inactive_days_setting())


register_job(Job("churn-model-fit", "membership.engagement.jobs:churn_model_fit", Daily(time(2, 0)),
                 "Once a month, fit a churn-risk model on the association's history of renewals and lapses, "
                 "back-test it, and make it active if it beats the default model.", lease_seconds=60 * 60))
register_job(Job("engagement-scoring", "membership.engagement.jobs:engagement_scoring", Daily(time(2, 30)),
                 "Score every member's engagement and churn risk, keep the history, open and close "
                 "churn-risk alerts.", lease_seconds=60 * 60))
