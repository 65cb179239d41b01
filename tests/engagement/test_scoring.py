"""The scoring functions are pure: hand-checked values for decay, bands, the logistic model, its
contributions and the plain-word reasons."""
from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest

from membership.engagement import scoring
from membership.engagement.scoring import (DEFAULT_MODEL, band, contributions, engagement, probability, reasons,
                                           risk_band, suggested_action)

AS_OF = datetime(2026, 6, 15, tzinfo=timezone.utc)


def typical(**kw):
    """A member exactly at the default model's reference point: every contribution is 0."""
    f = {"days_since_last_activity": 30.44, "activities_90d": 4, "activities_prev_90d": 4,
         "events_attended_365d": 2, "days_since_last_event": 40, "emails_sent": 6, "emails_opened": 3,
         "emails_opened_ratio": 0.5, "clicks_365d": 2, "tenure_years": 3.0, "previous_lapses": 0,
         "late_renewals": 0, "days_to_end": 91.32}
    f.update(kw)
    return f


def test_decay_halves_every_half_life():
    assert scoring.decay(0, 90) == 1
    assert scoring.decay(90, 90) == 0.5
    assert scoring.decay(180, 90) == 0.25
    assert scoring.decay(45, 90) == pytest.approx(1 / math.sqrt(2))


def test_engagement_is_a_decayed_weighted_sum_of_what_happened_before():
    acts = [("event_attended", AS_OF - timedelta(days=90)),   # 10 * 0.5
            ("logged_in", AS_OF - timedelta(days=180)),       # 1 * 0.25
            ("logged_in", AS_OF - timedelta(days=0.5)),       # 1 * 0.5 ** (0.5/90)
            ("event_attended", AS_OF),                        # not before as_of: ignored
            ("event_attended", AS_OF + timedelta(days=3)),    # the future: ignored
            ("status_changed", AS_OF - timedelta(days=1))]    # no weight
    score, breakdown = engagement(acts, as_of=AS_OF, weights={"event_attended": 10, "logged_in": 1},
                                  half_life_days=90)
    login = 0.25 + 0.5 ** (0.5 / 90)
    assert breakdown == {"event_attended": 5.0, "logged_in": round(login, 2)}
    assert score == round(5 + login, 2) == 6.25


def test_engagement_from_decayed_sums_matches_the_row_by_row_score():
    acts = [("interaction", AS_OF - timedelta(days=d)) for d in (3, 40, 400)]
    decayed = {"interaction": sum(0.5 ** (d / 90) for d in (3, 40, 400))}
    assert scoring.engagement_from_decayed(decayed, {"interaction": 6}) == \
        engagement(acts, as_of=AS_OF, weights={"interaction": 6}, half_life_days=90)


@pytest.mark.parametrize("score,expected", [(40, "highly_engaged"), (39.99, "engaged"), (15, "engaged"),
                                            (14.9, "drifting"), (3, "drifting"), (2.99, "dormant"), (0, "dormant")])
def test_bands(score, expected):
    assert band(score) == expected


def test_bands_follow_custom_thresholds():
    assert band(10, {"highly_engaged": 10, "engaged": 5, "drifting": 1}) == "highly_engaged"


def test_a_typical_member_gets_the_intercept():
    p, c = probability(typical())
    assert all(abs(v) < 1e-9 for v in c.values())
    assert p == pytest.approx(1 / (1 + math.exp(1.6)))  # 0.168
    assert risk_band(p) == "low"
    assert reasons(typical(), c) == []


def test_an_inactive_member_by_hand():
    f = typical(days_since_last_activity=365.28, activities_90d=0, activities_prev_90d=0, events_attended_365d=1,
                days_since_last_event=300, emails_opened=0, emails_opened_ratio=0.0, clicks_365d=0, late_renewals=2)
    c = contributions(f)
    assert c["months_since_last_activity"] == pytest.approx(0.22 * 11)   # 12 silent months vs 1
    assert c["activities_90d"] == pytest.approx(0.48)
    assert c["events_attended_365d"] == pytest.approx(0.3)
    assert c["emails_opened_ratio"] == pytest.approx(0.6)
    assert c["clicks_365d"] == pytest.approx(0.16)
    assert c["late_renewals"] == pytest.approx(0.7)
    assert c["trend"] == 0 and c["tenure_years"] == 0 and c["months_to_end"] == pytest.approx(0)
    p, _ = probability(f)
    assert p == pytest.approx(1 / (1 + math.exp(-(-1.6 + 2.42 + 0.48 + 0.3 + 0.6 + 0.16 + 0.7))))  # 0.955
    assert risk_band(p) == "high"
    assert reasons(f, c) == [
        {"feature": "months_since_last_activity", "text": "no activity for 12 months", "weight": 2.42},
        {"feature": "late_renewals", "text": "renewed late twice", "weight": 0.7},
        {"feature": "emails_opened_ratio", "text": "opened none of the last 6 emails", "weight": 0.6},
    ]
    assert suggested_action(reasons(f, c)) == "Call them: no activity for 12 months"


def test_reason_texts():
    t = scoring.reason_text
    assert t("events_attended_365d", {"events_attended_365d": 0, "days_since_last_event": 426}) == \
        "no event attended in 14 months"
    assert t("events_attended_365d", {"events_attended_365d": 0, "days_since_last_event": None}) == "no event attended"
    assert t("months_since_last_activity", {"days_since_last_activity": 213}) == "no activity for 7 months"
    assert t("months_since_last_activity", {"days_since_last_activity": None}) == "no activity on record"
    assert t("late_renewals", {"late_renewals": 1}) == "renewed late once"
    assert t("late_renewals", {"late_renewals": 3}) == "renewed late 3 times"
    assert t("previous_lapses", {"previous_lapses": 2}) == "lapsed twice before"
    assert t("emails_opened_ratio", {"emails_sent": 6, "emails_opened": 1}) == "opened only 1 of the last 6 emails"
    assert t("first_year", {}) == "first year of membership"
    assert t("months_to_end", {"days_to_end": -5}) == "term ended 5 days ago, not renewed yet"


def test_a_first_year_member_gets_one_reason_for_it_not_two():
    f = typical(tenure_years=0.4)
    c = contributions(f)
    assert c["first_year"] == pytest.approx(0.6)
    assert c["tenure_years"] == pytest.approx(-0.08 * (0.4 - 3))
    r = reasons(f, c)
    assert [x["text"] for x in r] == ["first year of membership"]
    assert suggested_action(r).startswith("Welcome call")


def test_events_reason_suggests_an_invitation():
    f = typical(events_attended_365d=0, days_since_last_event=426)
    r = reasons(f, contributions(f))
    assert r[0]["text"] == "no event attended in 14 months"
    assert suggested_action(r) == "Invite them to the next event"


def test_unknown_email_ratio_is_neutral_and_caps_apply():
    assert scoring.model_inputs(typical(emails_opened_ratio=None))["emails_opened_ratio"] == 0.5
    x = scoring.model_inputs(typical(days_since_last_activity=None, activities_90d=500, days_to_end=-400))
    assert x["months_since_last_activity"] == 24 and x["activities_90d"] == 30 and x["months_to_end"] == -2


@pytest.mark.parametrize("p,expected", [(0.6, "high"), (0.5999, "medium"), (0.3, "medium"), (0.2999, "low"),
                                        (0.0, "low"), (None, None)])
def test_risk_bands(p, expected):
    assert risk_band(p) == expected


def test_the_default_model_is_readable():
    assert set(DEFAULT_MODEL["weights"]) == set(scoring.INPUTS) == set(DEFAULT_MODEL["scaling"])
