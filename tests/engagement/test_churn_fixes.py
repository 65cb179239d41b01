"""Issue 10's fixes to the churn score: reasons only when true, constant inputs, members never
active, the exact scoring day of past terms."""
from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from membership.engagement import scoring
from membership.engagement.model import baseline_score, fit, labelled_terms, safe_std
from membership.extensions import db
from membership.plans.models import Membership

ZONE = ZoneInfo("Asia/Dhaka")


def test_trend_reason_only_when_activity_really_fell():
    # a model that (wrongly, but a fit can do it) pushes the risk up for every trend below +1
    model = {"intercept": 0.0, "weights": {"trend": -2.0}, "scaling": {"trend": [1.0, 1.0]}}
    for a90, prev in ((5, 5), (6, 3), (0, 0)):
        f = {"activities_90d": a90, "activities_prev_90d": prev, "days_since_last_activity": 3}
        p, contribs = scoring.probability(f, model)
        assert contribs["trend"] >= 0
        assert not any("less active" in r["text"] for r in scoring.reasons(f, contribs)), (a90, prev)
    f = {"activities_90d": 1, "activities_prev_90d": 6, "days_since_last_activity": 3}
    _, contribs = scoring.probability(f, model)
    assert [r["text"] for r in scoring.reasons(f, contribs)] == [
        "less active than before (1 activities in the last 90 days, 6 in the 90 days before)"]


def test_reasons_are_true_of_the_member():
    # a model with every weight pointing up: only the true reasons may be given
    model = {"intercept": 0.0, "weights": {k: 1.0 for k in scoring.INPUTS},
             "scaling": {k: [-100.0, 1.0] for k in scoring.INPUTS}}
    f = {"days_since_last_activity": 2, "activities_90d": 20, "activities_prev_90d": 3, "events_attended_365d": 5,
         "emails_sent": 6, "emails_opened": 6, "emails_opened_ratio": 1.0, "clicks_365d": 9, "tenure_years": 8,
         "previous_lapses": 2, "late_renewals": 0, "days_to_end": 300}
    _, contribs = scoring.probability(f, model)
    texts = [r["text"] for r in scoring.reasons(f, contribs, top=20)]
    assert texts == ["lapsed twice before"]


def test_constant_inputs_get_a_safe_scale():
    assert safe_std(1e-13, 0.1) == 1.0 and safe_std(0.0, 0.0) == 1.0 and safe_std(0.5, 3.0) == 0.5
    rng = random.Random(3)
    rows = []
    for _ in range(300):
        days = rng.uniform(0, 300)
        # 0.1 summed in floating point: a standard deviation of ~1e-17, not 0
        rows.append(({"days_since_last_activity": days, "emails_opened_ratio": 0.1 + 0.2 - 0.2,
                      "tenure_years": 4}, int(rng.random() < days / 300)))
    params = fit(rows)
    assert params["scaling"]["emails_opened_ratio"][1] == 1.0
    assert abs(params["weights"]["emails_opened_ratio"]) < 1e-6


def test_members_never_active_are_ranked_by_how_long_they_have_been_silent():
    new = {"days_since_last_activity": None, "days_since_joined": 20, "tenure_years": 0.05}
    old = {"days_since_last_activity": None, "days_since_joined": 900, "tenure_years": 2.5}
    older = {"days_since_last_activity": None, "days_since_joined": 3000, "tenure_years": 8.2}
    p = [scoring.probability(f)[0] for f in (new, old, older)]
    assert len(set(p)) == 3
    assert baseline_score(new) < baseline_score(old) < baseline_score(older)
    assert scoring.model_inputs(new)["months_since_last_activity"] == pytest.approx(20 / scoring.MONTH_DAYS)


def test_past_terms_are_scored_on_their_own_day_not_the_first_of_the_month(app, make_member, make_plan):
    plan = make_plan()
    m = make_member(joined_on=date(2023, 1, 1))
    db.session.add(Membership(member_id=m.id, plan_id=plan.id, starts_on=date(2024, 3, 29), ends_on=date(2025, 3, 28),
                              grace_days=30, fee_minor=0, currency="BDT", paid_on=date(2024, 3, 29), status="lapsed",
                              created_at=datetime(2024, 3, 29, tzinfo=timezone.utc)))
    db.session.commit()
    rows = labelled_terms(db.session, today=date(2026, 1, 1), zone=ZONE, half_life_days=90, lead_days=60)
    assert [(r.scored_on, r.label) for r in rows] == [(date(2025, 1, 27), 1)]
