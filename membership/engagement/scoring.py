"""Engagement and churn-risk scoring as pure functions (no database, no clock).

Engagement: every activity is worth its kind's weight on the day it happens and halves every
`half_life_days`: score = sum(weight * 0.5 ** (age_days / half_life)).

Churn risk: a logistic model over a handful of readable inputs derived from the raw features
(`model_inputs`). A model is {"intercept": b, "weights": {input: w}, "scaling": {input: [ref, scale]}}
and p = 1 / (1 + exp(-(b + sum(w * (x - ref) / scale)))). The default model is written in natural
units around a typical member who renews (ref), so each contribution w * (x - ref) reads as "how
much this input moves the log-odds compared with a typical member"; a fitted model uses the
training mean and standard deviation. The top positive contributions become the reasons, in plain
words ("no event attended in 14 months").

Risk bands: high >= 0.6 (more likely to lapse than not, by a margin: worth a call), medium >= 0.3
(about twice the usual churn rate of an association: worth an invitation), else low.
"""
from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Iterable, Mapping

from membership.engagement.models import ENGAGEMENT_BANDS
from membership.engagement.settings import DEFAULT_BANDS

HIGH_RISK = 0.6
MEDIUM_RISK = 0.3
MONTH_DAYS = 30.44

# The model's inputs, in a fixed order (fit and explanations use it).
INPUTS = ("months_since_last_activity", "activities_90d", "trend", "events_attended_365d",
          "emails_opened_ratio", "clicks_365d", "tenure_years", "first_year", "previous_lapses",
          "late_renewals", "months_to_end")

# The transparent default: log-odds per unit of each input, around a typical renewing member.
DEFAULT_MODEL: dict[str, Any] = {
    "intercept": -1.6,  # a typical member: p = 0.17
    "weights": {
        "months_since_last_activity": 0.22,  # each silent month
        "activities_90d": -0.12,             # each activity in the last 90 days
        "trend": -0.5,                       # -1 (all activity long ago) .. +1 (all of it recent)
        "events_attended_365d": -0.3,        # each event attended in the last year
        "emails_opened_ratio": -1.2,         # share of the last 6 emails opened
        "clicks_365d": -0.08,                # each email link clicked in the last year
        "tenure_years": -0.08,               # each year of membership
        "first_year": 0.6,                   # first-year members lapse most
        "previous_lapses": 0.5,              # each earlier lapse
        "late_renewals": 0.35,               # each renewal paid after the term had ended
        "months_to_end": -0.05,              # the nearer the end, the more the silence matters
    },
    "scaling": {
        "months_since_last_activity": [1.0, 1.0], "activities_90d": [4.0, 1.0], "trend": [0.0, 1.0],
        "events_attended_365d": [2.0, 1.0], "emails_opened_ratio": [0.5, 1.0], "clicks_365d": [2.0, 1.0],
        "tenure_years": [3.0, 1.0], "first_year": [0.0, 1.0], "previous_lapses": [0.0, 1.0],
        "late_renewals": [0.0, 1.0], "months_to_end": [3.0, 1.0],
    },
}


# ---------------------------------------------------------------- engagement


def decay(age_days: float, half_life_days: float) -> float:
    """What one point is worth after `age_days` (1 today, 0.5 after one half-life)."""
    return 0.5 ** (max(age_days, 0.0) / half_life_days)


def engagement(activities: Iterable[tuple[str, datetime]], *, as_of: datetime, weights: Mapping[str, float],
               half_life_days: float) -> tuple[float, dict[str, float]]:
    """(score, breakdown by kind) of `activities` [(kind, occurred_at)] as of the moment `as_of`.
    Activities at or after `as_of` are ignored (they were not known then); kinds without a weight
    count 0. Breakdown values are rounded to 2 decimals, the score is their exact sum rounded."""
    per_kind: dict[str, float] = {}
    for kind, occurred_at in activities:
        if occurred_at >= as_of:
            continue
        w = weights.get(kind, 0.0)
        if not w:
            continue
        age = (as_of - occurred_at).total_seconds() / 86400
        per_kind[kind] = per_kind.get(kind, 0.0) + w * decay(age, half_life_days)
    return round(sum(per_kind.values()), 2), {k: round(v, 2) for k, v in per_kind.items()}


def engagement_from_decayed(decayed: Mapping[str, float], weights: Mapping[str, float]) -> tuple[float, dict[str, float]]:
    """The same score from per-kind sums of decay factors (what the SQL side computes)."""
    per_kind = {k: weights.get(k, 0.0) * v for k, v in decayed.items() if weights.get(k, 0.0) and v}
    return round(sum(per_kind.values()), 2), {k: round(v, 2) for k, v in per_kind.items()}


def band(score: float, thresholds: Mapping[str, float] = DEFAULT_BANDS) -> str:
    """One of ENGAGEMENT_BANDS: the first band whose lower bound the score reaches."""
    for name in ENGAGEMENT_BANDS[:-1]:
        if score >= thresholds[name]:
            return name
    return ENGAGEMENT_BANDS[-1]


# ---------------------------------------------------------------- churn risk


def model_inputs(features: Mapping[str, Any]) -> dict[str, float]:
    """The model's inputs from raw features (capped, so that one extreme value cannot dominate;
    an unknown email open ratio - no email sent - counts as the typical 0.5)."""
    days = features.get("days_since_last_activity")
    if days is None:
        # never active: silent since joining (so a member who joined last week is not ranked with
        # one who joined five years ago and never came)
        days = features.get("days_since_joined")
    a90 = features.get("activities_90d") or 0
    prev = features.get("activities_prev_90d") or 0
    ratio = features.get("emails_opened_ratio")
    tenure = features.get("tenure_years") or 0.0
    days_to_end = features.get("days_to_end")
    return {
        "months_since_last_activity": 24.0 if days is None else min(days / MONTH_DAYS, 24.0),
        "activities_90d": float(min(a90, 30)),
        "trend": (a90 - prev) / (a90 + prev) if a90 + prev else 0.0,
        "events_attended_365d": float(min(features.get("events_attended_365d") or 0, 12)),
        "emails_opened_ratio": 0.5 if ratio is None else float(ratio),
        "clicks_365d": float(min(features.get("clicks_365d") or 0, 20)),
        "tenure_years": float(min(tenure, 20.0)),
        "first_year": 1.0 if tenure < 1 else 0.0,
        "previous_lapses": float(min(features.get("previous_lapses") or 0, 5)),
        "late_renewals": float(min(features.get("late_renewals") or 0, 5)),
        "months_to_end": 3.0 if days_to_end is None else max(-2.0, min(days_to_end / MONTH_DAYS, 12.0)),
    }


def contributions(features: Mapping[str, Any], model: Mapping[str, Any] = DEFAULT_MODEL) -> dict[str, float]:
    """Each input's share of the log-odds: w * (x - ref) / scale."""
    x = model_inputs(features)
    scaling = model.get("scaling") or {}
    out = {}
    for name, w in model["weights"].items():
        ref, scale = scaling.get(name, (0.0, 1.0))
        out[name] = w * (x[name] - ref) / (scale or 1.0)
    return out


def sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def probability(features: Mapping[str, Any], model: Mapping[str, Any] = DEFAULT_MODEL) -> tuple[float, dict[str, float]]:
    """(probability of not renewing, contributions by input)."""
    c = contributions(features, model)
    return sigmoid(model["intercept"] + sum(c.values())), c


def score(features: Mapping[str, Any], model: Mapping[str, Any] = DEFAULT_MODEL) -> tuple[float, list[dict[str, Any]]]:
    """(probability of churning, the reasons true of this member) under `model`: the default
    model's form or a fitted one (engagement.fitted, told by its "format")."""
    if "format" in model:
        from membership.engagement import fitted

        p, contribs = fitted.probability(features, model)
        return p, fitted.reasons(features, contribs, model)
    p, contribs = probability(features, model)
    return p, reasons(features, contribs)


def risk_band(p: float | None) -> str | None:
    """high >= 0.6, medium >= 0.3, else low (None without a score)."""
    if p is None:
        return None
    return "high" if p >= HIGH_RISK else "medium" if p >= MEDIUM_RISK else "low"


def _times(n: int) -> str:
    return "once" if n == 1 else "twice" if n == 2 else f"{n} times"


def _months(days: float) -> str:
    n = max(1, round(days / MONTH_DAYS))
    return f"{n} month" + ("" if n == 1 else "s")


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def reason_text(name: str, f: Mapping[str, Any]) -> str:
    """Plain words for why input `name` raises the risk of this member."""
    if name == "months_since_last_activity":
        days = f.get("days_since_last_activity")
        return "no activity on record" if days is None else f"no activity for {_months(days)}"
    if name == "activities_90d":
        n = f.get("activities_90d") or 0
        return "no activity in the last 90 days" if n == 0 else \
            f"only {_count(n, 'activity', 'activities')} in the last 90 days"
    if name == "trend":
        return (f"less active than before ({f.get('activities_90d') or 0} activities in the last 90 days, "
                f"{f.get('activities_prev_90d') or 0} in the 90 days before)")
    if name == "events_attended_365d":
        n = f.get("events_attended_365d") or 0
        since = f.get("days_since_last_event")
        if n == 0:
            return "no event attended" if since is None else f"no event attended in {_months(since)}"
        return f"only {_count(n, 'event', 'events')} attended in the last year"
    if name == "emails_opened_ratio":
        sent, opened = f.get("emails_sent") or 0, f.get("emails_opened") or 0
        return f"opened none of the last {sent} emails" if opened == 0 else \
            f"opened only {opened} of the last {sent} emails"
    if name == "clicks_365d":
        n = f.get("clicks_365d") or 0
        return "no email link clicked in the last year" if n == 0 else \
            f"only {_count(n, 'email link', 'email links')} clicked in the last year"
    if name == "first_year":
        return "first year of membership"
    if name == "tenure_years":
        years = f.get("tenure_years") or 0
        return "first year of membership" if years < 1 else f"member for only {years:.0f} years"
    if name == "previous_lapses":
        return f"lapsed {_times(f.get('previous_lapses') or 0)} before"
    if name == "late_renewals":
        return f"renewed late {_times(f.get('late_renewals') or 0)}"
    if name == "months_to_end":
        d = f.get("days_to_end")
        if d is None:
            return "term ends soon"
        return f"term ended {-d} days ago, not renewed yet" if d < 0 else \
            f"term ends in {_count(d, 'day', 'days')}"
    return name.replace("_", " ")


def reason_holds(name: str, f: Mapping[str, Any]) -> bool:
    """Whether the words reason_text gives for input `name` are true of this member - a positive
    contribution alone is not enough (a fitted model can push the risk up for a member whose trend
    is flat, because flat is worse than the average there; the words would say "less active")."""
    a90, prev = f.get("activities_90d") or 0, f.get("activities_prev_90d") or 0
    if name == "months_since_last_activity":
        days = f.get("days_since_last_activity")
        return days is None or days >= 30
    if name == "activities_90d":
        return a90 < 4
    if name == "trend":
        return a90 < prev
    if name == "events_attended_365d":
        return (f.get("events_attended_365d") or 0) < 2
    if name == "emails_opened_ratio":
        sent = f.get("emails_sent") or 0
        return sent > 0 and (f.get("emails_opened") or 0) < sent / 2
    if name == "clicks_365d":
        return (f.get("clicks_365d") or 0) < 2
    if name == "first_year":
        return (f.get("tenure_years") or 0) < 1
    if name == "tenure_years":
        return (f.get("tenure_years") or 0) < 3
    if name == "previous_lapses":
        return (f.get("previous_lapses") or 0) > 0
    if name == "late_renewals":
        return (f.get("late_renewals") or 0) > 0
    if name == "months_to_end":
        d = f.get("days_to_end")
        return d is not None and d <= 90
    return True


def reasons(features: Mapping[str, Any], contribs: Mapping[str, float], *, top: int = 3,
            minimum: float = 0.05) -> list[dict[str, Any]]:
    """The top `top` inputs that raise the risk (contribution > `minimum`) and whose words are
    true of the member (reason_holds), most important first: [{"feature", "text", "weight"}]; the
    same text is not given twice (tenure and first year)."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for name, c in sorted(contribs.items(), key=lambda kv: -kv[1]):
        if c <= minimum or len(out) >= top:
            break
        if not reason_holds(name, features):
            continue
        text = reason_text(name, features)
        if text in seen:
            continue
        seen.add(text)
        out.append({"feature": name, "text": text, "weight": round(c, 2)})
    return out


ACTIONS = {
    "months_since_last_activity": "Call them: {text}",
    "activities_90d": "Call them: {text}",
    "trend": "Call them to ask how things are: they have become less active",
    "events_attended_365d": "Invite them to the next event",
    "emails_opened_ratio": "Reach them by phone or letter: they do not open emails",
    "clicks_365d": "Send them something they would want to read, or call them",
    "first_year": "Welcome call: ask what they hoped to get from membership",
    "tenure_years": "Welcome call: ask what they hoped to get from membership",
    "previous_lapses": "Remind them personally before the term ends and offer to renew by phone",
    "late_renewals": "Remind them personally before the term ends and offer to renew by phone",
    "months_to_end": "Send a personal renewal reminder",
}


def suggested_action(reason_list: list[Mapping[str, Any]]) -> str:
    """A plain next step chosen from the top reason."""
    if not reason_list:
        return "Call them to ask how things are"
    top = reason_list[0]
    return ACTIONS.get(top.get("feature", ""), "Call them to ask how things are").format(text=top.get("text", ""))
