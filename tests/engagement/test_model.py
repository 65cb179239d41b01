"""Back-test measures against hand-computed values, and the fit."""
from __future__ import annotations

import random

import pytest

from membership.engagement import scoring
from membership.engagement.model import average_precision, fit, roc_auc


def test_roc_auc_by_hand():
    # pairs (pos, neg): (0.35 vs 0.1) yes, (0.35 vs 0.4) no, (0.8 vs 0.1) yes, (0.8 vs 0.4) yes -> 3/4
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert roc_auc([0, 1], [0.2, 0.9]) == 1.0
    assert roc_auc([1, 0], [0.2, 0.9]) == 0.0


def test_roc_auc_counts_ties_as_a_half():
    assert roc_auc([0, 1], [0.5, 0.5]) == 0.5
    # pos 0.5 vs negs 0.5 (tie 1/2) and 0.1 (win 1): (1.5)/2
    assert roc_auc([1, 0, 0], [0.5, 0.5, 0.1]) == pytest.approx(0.75)


def test_roc_auc_needs_both_classes():
    assert roc_auc([1, 1], [0.1, 0.2]) is None
    assert roc_auc([], []) is None


def test_average_precision_by_hand():
    # ranked: 0.8 (pos) precision 1/1; 0.4 (neg); 0.35 (pos) precision 2/3 -> (1 + 2/3) / 2
    assert average_precision([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(5 / 6)
    assert average_precision([1, 0, 0], [0.9, 0.5, 0.1]) == 1.0
    # ranked: neg, neg, pos: precision 1/3
    assert average_precision([1, 0, 0], [0.1, 0.5, 0.9]) == pytest.approx(1 / 3)


def test_average_precision_treats_a_tie_as_one_step():
    assert average_precision([0, 1], [0.5, 0.5]) == 0.5
    assert average_precision([0, 0], [0.5, 0.1]) is None


def test_fit_learns_that_silence_means_lapse():
    rng = random.Random(5)
    rows = []
    for _ in range(600):
        days = rng.uniform(0, 400)
        events = rng.randrange(0, 6)
        z = -2 + days / 60 - 0.4 * events
        label = 1 if rng.random() < scoring.sigmoid(z) else 0
        rows.append(({"days_since_last_activity": days, "activities_90d": 3, "events_attended_365d": events,
                      "tenure_years": 4}, label))
    params = fit(rows)
    assert params["weights"]["months_since_last_activity"] > 0.5
    assert params["weights"]["events_attended_365d"] < 0
    y = [label for _, label in rows]
    p = [scoring.probability(f, params)[0] for f, _ in rows]
    assert roc_auc(y, p) > 0.8
    # a constant input gets no weight (and no division by zero)
    assert params["weights"]["activities_90d"] == pytest.approx(0, abs=1e-6)
