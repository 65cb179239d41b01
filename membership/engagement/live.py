"""Risk that follows reality (issue 10): re-score members the moment something that changes their
risk is recorded - a renewal, a payment, an event attended, a staff contact - instead of waiting
for the night's scoring, so that staff never see "80% high risk, call them" about someone who has
just paid.

The one function the other domains call is `members_changed` (a hook line in plans.services,
events.services and members.services). It scores the members as the daily job would (same
features, same active model, same settings), replaces today's score rows, and closes an open
alert whose reason is gone (renewed, risk fell, no current term). It never opens an alert: new
episodes are the daily job's, which also tells staff in the digest. Runs in the caller's
transaction (flushes; the caller commits): the write and the new score commit together.
"""
from __future__ import annotations

from datetime import datetime
from typing import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from membership.members.models import Member


def members_changed(session: Session, member_ids: Iterable[int | None], *, now: datetime) -> int:
    """Re-score these members as of the local day of `now` (ids may include None: organisations,
    guests - ignored). Members never scored are left to the nightly job. Returns how many were
    re-scored."""
    from membership.core.time import local_date, tz
    from membership.engagement.alerts import update_alerts
    from membership.engagement.features import compute_features
    from membership.engagement.jobs import _upsert, inactive_days_setting, score_member
    from membership.engagement.model import active_model
    from membership.engagement.models import CurrentScore, MemberScore
    from membership.engagement.settings import get_settings

    ids = sorted({int(i) for i in member_ids if i})
    if not ids:
        return 0
    session.flush()  # the caller's new term, payment or activity must be visible to the queries
    zone = tz()
    today = local_date(now, zone)
    # only members with a score to correct: one never scored waits for the nightly job (and a bulk
    # load - the demo, a history replay - before the first scoring costs one indexed query a call)
    members = session.execute(select(Member.id, Member.joined_on)
                              .join(CurrentScore, CurrentScore.member_id == Member.id)
                              .where(Member.id.in_(ids), Member.erased_at.is_(None))).all()
    if not members:
        return 0
    settings = get_settings(session)
    model_row = active_model(session, now=now)
    inactive_days = inactive_days_setting()
    feats = compute_features(session, members, day=today, zone=zone, half_life_days=settings.half_life_days)
    history, current, scores = [], [], {}
    for mid, _ in members:
        mf = feats[mid]
        s = score_member(mf, settings=settings, model=model_row.parameters, inactive_days=inactive_days)
        scores[mid] = s
        row = {"member_id": mid, "scored_on": today, "engagement": s["engagement"],
               "engagement_band": s["engagement_band"], "churn_risk": s["churn_risk"], "risk_band": s["risk_band"],
               "reasons": s["reasons"]}
        history.append({**row, "features": mf.features, "breakdown": s["breakdown"],
                        "model_id": model_row.id if s["churn_risk"] is not None else None})
        current.append({**row, "last_activity_at": mf.last_activity_at})
    _upsert(session, MemberScore.__table__, history, ["member_id", "scored_on"])
    _upsert(session, CurrentScore.__table__, current, ["member_id"])
    # loaded score objects would show the old values: reload them on next access
    for obj in list(session.identity_map.values()):
        if isinstance(obj, (CurrentScore, MemberScore)) and obj.member_id in scores:
            session.expire(obj)
    # closes what no longer holds; "high" as the previous band so that no alert opens here
    update_alerts(session, scores, {mid: "high" for mid in scores}, today=today, now=now)
    return len(scores)
