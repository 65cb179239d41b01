"""The fitted churn model (issue 10): a logistic regression on the association's own history over
richer, readable inputs, with reasons from each input's contribution to this member's score.

Why a logistic regression and not a tree ensemble: every contribution is exact and additive
(log-odds = intercept + sum of coefficient x standardised input), so "why is this member at
risk" has one true answer, written in plain words; the inputs carry the non-linear shape instead
(logarithms of counts, amounts and silences, silence measured against the member's own rhythm,
trends over 90 days and a year, plan indicators). scikit-learn fits it (well-kept, and its solver
handles collinear inputs and the penalty choice); scoring needs nothing but this module, so the
daily job does not import scikit-learn and the stored model is plain JSON (versioned by FORMAT).

Inputs are built from the raw features of engagement.features (all known on the scoring day).
Definitions of churn for the training labels (`definition`):
  terms       a term not followed by the next one by the end of its grace (scored lead_days before
              its end) - associations with renewals;
  inactivity  no activity in the N days after the scoring day (CHURN_INACTIVE_DAYS) - associations
              without fixed terms (shops, courses, clubs with no fees);
  given       the outcomes imported with outcomes.csv (member, as_of, churned).
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Iterable, Mapping, Sequence

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from membership.core.models import Activity
from membership.engagement import scoring
from membership.engagement.features import PASSIVE_KINDS, compute_features, day_end
from membership.engagement.models import ChurnOutcome
from membership.members.models import Member

FORMAT = "samiti-lr/1"
BASELINE_FORMAT = "samiti-lr-baseline/1"
MAX_EXAMPLES = 20_000
MIN_EXAMPLES = 200
MIN_CHURNED = 20
HOLDOUT_SHARE = 0.25
PLAN_MIN = 20      # a plan gets its own input when at least this many training examples are on it
MAX_PLANS = 12
C_GRID = (0.03, 0.1, 0.3, 1.0, 3.0)

# the richer inputs, in a fixed order
INPUTS = (
    "log_days_silent", "never_active", "silence_vs_rhythm",
    "log_activities_30d", "log_activities_90d", "log_activities_365d", "log_activities_prev_365d",
    "log_activities_total", "trend_90d", "trend_365d",
    "log_payments_total", "log_amount_365d", "log_amount_prev_365d", "log_amount_total",
    "log_tenure_days", "first_year", "has_term", "months_to_end", "previous_lapses", "late_renewals",
    "log_events_365d", "log_days_since_event", "emails_opened_ratio", "log_clicks_365d",
)
# what a plain model would use: recency, frequency, amount, tenure (+ plan)
BASELINE_INPUTS = ("days_silent", "activities_total", "amount_total", "tenure_days")


def _log(x: float | None) -> float:
    return math.log1p(max(0.0, float(x or 0)))


def days_silent(f: Mapping[str, Any]) -> float:
    """Days since the last activity; for a member never active, days since joining."""
    days = f.get("days_since_last_activity")
    if days is None:
        days = f.get("days_since_joined")
    return float(days or 0)


def usual_gap(f: Mapping[str, Any]) -> float | None:
    """The member's usual number of days between two activities (None with fewer than two)."""
    n = f.get("activities_total") or 0
    first, last = f.get("days_since_first_activity"), f.get("days_since_last_activity")
    if n < 2 or first is None or last is None:
        return None
    return max(1.0, (first - last) / (n - 1))


def inputs(f: Mapping[str, Any]) -> dict[str, float]:
    """The fitted model's inputs from one member's raw features (plan indicators aside)."""
    a90, prev90 = f.get("activities_90d") or 0, f.get("activities_prev_90d") or 0
    a365, prev365 = f.get("activities_365d") or 0, f.get("activities_prev_365d") or 0
    silent = days_silent(f)
    gap = usual_gap(f)
    if gap is None:  # no rhythm yet: compare with a year
        rhythm = silent / 365.0
    else:
        rhythm = silent / gap
    tenure_days = f.get("days_since_joined")
    if tenure_days is None:
        tenure_days = (f.get("tenure_years") or 0) * 365.25
    ratio = f.get("emails_opened_ratio")
    d_end = f.get("days_to_end")
    event_age = f.get("days_since_last_event")
    return {
        "log_days_silent": _log(silent),
        "never_active": 1.0 if f.get("days_since_last_activity") is None else 0.0,
        "silence_vs_rhythm": _log(min(rhythm, 100.0)),
        "log_activities_30d": _log(f.get("activities_30d")),
        "log_activities_90d": _log(a90),
        "log_activities_365d": _log(a365),
        "log_activities_prev_365d": _log(prev365),
        "log_activities_total": _log(f.get("activities_total")),
        "trend_90d": (a90 - prev90) / (a90 + prev90) if a90 + prev90 else 0.0,
        "trend_365d": (a365 - prev365) / (a365 + prev365) if a365 + prev365 else 0.0,
        "log_payments_total": _log(f.get("payments_total")),
        "log_amount_365d": _log(f.get("amount_365d")),
        "log_amount_prev_365d": _log(f.get("amount_prev_365d")),
        "log_amount_total": _log(f.get("amount_total")),
        "log_tenure_days": _log(tenure_days),
        "first_year": 1.0 if tenure_days < 365 else 0.0,
        "has_term": 1.0 if d_end is not None else 0.0,
        "months_to_end": 0.0 if d_end is None else max(-2.0, min(d_end / scoring.MONTH_DAYS, 12.0)),
        "previous_lapses": float(min(f.get("previous_lapses") or 0, 5)),
        "late_renewals": float(min(f.get("late_renewals") or 0, 5)),
        "log_events_365d": _log(f.get("events_attended_365d")),
        # never attended: as if two years ago (a constant, so an association without events
        # gets no weight on it - not a copy of the tenure)
        "log_days_since_event": _log(730 if event_age is None else min(event_age, 730)),
        "emails_opened_ratio": 0.5 if ratio is None else float(ratio),
        "log_clicks_365d": _log(f.get("clicks_365d")),
    }


def baseline_inputs(f: Mapping[str, Any]) -> dict[str, float]:
    tenure_days = f.get("days_since_joined")
    if tenure_days is None:
        tenure_days = (f.get("tenure_years") or 0) * 365.25
    return {"days_silent": days_silent(f), "activities_total": float(f.get("activities_total") or 0),
            "amount_total": float(f.get("amount_total") or 0), "tenure_days": float(tenure_days)}


def _vector(f: Mapping[str, Any], model: Mapping[str, Any]) -> dict[str, float]:
    x = (baseline_inputs if model.get("format") == BASELINE_FORMAT else inputs)(f)
    plan = f.get("plan")
    for code in model.get("plans", ()):
        x[f"plan:{code}"] = 1.0 if plan == code else 0.0
    return x


def contributions(f: Mapping[str, Any], model: Mapping[str, Any]) -> dict[str, float]:
    """Each input's exact share of this member's log-odds: coef * (x - mean) / std."""
    x = _vector(f, model)
    out = {}
    for name, coef in model["coef"].items():
        mean, std = model["scaling"][name]
        out[name] = coef * (x.get(name, 0.0) - mean) / std
    return out


def probability(f: Mapping[str, Any], model: Mapping[str, Any]) -> tuple[float, dict[str, float]]:
    c = contributions(f, model)
    return scoring.sigmoid(model["intercept"] + sum(c.values())), c


# ---------------------------------------------------------------- reasons


def _months(days: float) -> str:
    return scoring._months(days)


def _n(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _money(x: float) -> str:
    return f"{x:,.0f}" if x >= 10 else f"{x:,.2f}"


def reason_text(name: str, f: Mapping[str, Any], below_mean: bool) -> str | None:
    """Plain words for input `name` raising this member's risk, or None when no true words fit:
    `below_mean` says on which side of the typical member this one is (a positive contribution
    with a negative coefficient means a value below the training mean)."""
    a90, prev90 = f.get("activities_90d") or 0, f.get("activities_prev_90d") or 0
    a365, prev365 = f.get("activities_365d") or 0, f.get("activities_prev_365d") or 0
    never = f.get("days_since_last_activity") is None
    silent = days_silent(f)
    if name in ("log_days_silent", "never_active"):
        if below_mean:
            return None
        if never:
            return "no activity on record since joining" + (f" {_months(silent)} ago" if silent >= 30 else "")
        return f"no activity for {_months(silent)}" if silent >= 30 else None
    if name == "silence_vs_rhythm":
        gap = usual_gap(f)
        if below_mean or gap is None or never or silent < 2 * gap or silent < 14:
            return None
        return (f"silent for {silent / gap:.0f} times their usual gap between activities "
                f"({_n(round(gap), 'day', 'days')})")
    windows = {"log_activities_30d": ("activities_30d", "the last 30 days"),
               "log_activities_90d": ("activities_90d", "the last 90 days"),
               "log_activities_365d": ("activities_365d", "the last year"),
               "log_activities_total": ("activities_total", "all their history")}
    if name in windows:
        key, words = windows[name]
        if not below_mean:
            return None
        n = f.get(key) or 0
        return f"no activity in {words}" if n == 0 else f"only {_n(n, 'activity', 'activities')} in {words}"
    if name == "trend_90d":
        return (f"less active than before ({a90} activities in the last 90 days, {prev90} in the 90 days before)"
                if below_mean and a90 < prev90 else None)
    if name == "trend_365d":
        return (f"less active this year than the year before ({a365} activities against {prev365})"
                if below_mean and a365 < prev365 else None)
    if name == "log_payments_total":
        n = f.get("payments_total") or 0
        return None if not below_mean else ("no payment on record" if n == 0 else
                                             f"only {_n(n, 'payment', 'payments')} on record")
    if name in ("log_amount_365d", "log_amount_total"):
        if not below_mean:
            return None
        amount = f.get("amount_365d" if name == "log_amount_365d" else "amount_total") or 0
        when = "in the last year" if name == "log_amount_365d" else "in all their history"
        return f"paid nothing {when}" if amount == 0 else f"paid only {_money(amount)} {when}"
    if name == "log_amount_prev_365d":
        return None
    if name in ("log_tenure_days", "first_year"):
        tenure = (f.get("days_since_joined") or (f.get("tenure_years") or 0) * 365.25)
        if name == "first_year" and below_mean:
            return None
        if name == "log_tenure_days" and not below_mean:
            return None
        return "first year of membership" if tenure < 365 else f"member for only {tenure / 365.25:.0f} years"
    if name == "months_to_end":
        d = f.get("days_to_end")
        if d is None or not below_mean or d > 90:
            return None
        return f"term ended {-d} days ago, not renewed yet" if d < 0 else f"term ends in {_n(d, 'day', 'days')}"
    if name == "previous_lapses":
        n = f.get("previous_lapses") or 0
        return f"lapsed {scoring._times(n)} before" if n and not below_mean else None
    if name == "late_renewals":
        n = f.get("late_renewals") or 0
        return f"renewed late {scoring._times(n)}" if n and not below_mean else None
    if name == "log_events_365d":
        n = f.get("events_attended_365d") or 0
        if not below_mean:
            return None
        return "no event attended in the last year" if n == 0 else f"only {_n(n, 'event', 'events')} attended in the last year"
    if name == "log_days_since_event":
        if below_mean:
            return None
        age = f.get("days_since_last_event")
        return "never attended an event" if age is None else f"no event attended in {_months(age)}"
    if name == "emails_opened_ratio":
        sent, opened = f.get("emails_sent") or 0, f.get("emails_opened") or 0
        if not below_mean or not sent or opened * 2 >= sent:
            return None
        return f"opened none of the last {sent} emails" if opened == 0 else f"opened only {opened} of the last {sent} emails"
    if name == "log_clicks_365d":
        n = f.get("clicks_365d") or 0
        return None if not below_mean or n >= 2 else ("no email link clicked in the last year" if n == 0 else
                                                      "only one email link clicked in the last year")
    if name.startswith("plan:"):
        code = name[5:]
        return f"on plan {code}, whose members lapse more often" if f.get("plan") == code and not below_mean else None
    return None  # has_term and anything unknown: no words


ACTION_OF = {
    "log_days_silent": "months_since_last_activity", "never_active": "months_since_last_activity",
    "silence_vs_rhythm": "months_since_last_activity", "log_activities_30d": "activities_90d",
    "log_activities_90d": "activities_90d", "log_activities_365d": "activities_90d",
    "log_activities_total": "activities_90d", "trend_90d": "trend", "trend_365d": "trend",
    "log_events_365d": "events_attended_365d", "log_days_since_event": "events_attended_365d",
    "log_clicks_365d": "clicks_365d", "log_tenure_days": "first_year", "first_year": "first_year",
    "months_to_end": "months_to_end", "previous_lapses": "previous_lapses", "late_renewals": "late_renewals",
    "emails_opened_ratio": "emails_opened_ratio",
}


def reasons(f: Mapping[str, Any], contribs: Mapping[str, float], model: Mapping[str, Any], *, top: int = 3,
            minimum: float = 0.05) -> list[dict[str, Any]]:
    """The inputs that raise THIS member's risk most (contribution > `minimum`), in plain words
    that are true of the member, most important first: [{"feature", "text", "weight"}]. The
    "feature" is the default model's name of the same idea (for the suggested action)."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for name, c in sorted(contribs.items(), key=lambda kv: -kv[1]):
        if c <= minimum or len(out) >= top:
            break
        below = model["coef"][name] < 0
        text = reason_text(name, f, below)
        if text is None or text in seen:
            continue
        seen.add(text)
        out.append({"feature": ACTION_OF.get(name, name), "input": name, "text": text, "weight": round(c, 2)})
    return out


# ---------------------------------------------------------------- fitting


def _design(rows: Sequence[Mapping[str, Any]], names: Sequence[str], plans: Sequence[str], baseline: bool):
    make = baseline_inputs if baseline else inputs
    cols = list(names) + [f"plan:{p}" for p in plans]
    out = []
    for f in rows:
        x = make(f)
        plan = f.get("plan")
        for p in plans:
            x[f"plan:{p}"] = 1.0 if plan == p else 0.0
        out.append([x[c] for c in cols])
    return cols, out


def common_plans(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    counts: dict[str, int] = {}
    for f in rows:
        if f.get("plan"):
            counts[f["plan"]] = counts.get(f["plan"], 0) + 1
    plans = sorted((p for p, n in counts.items() if n >= PLAN_MIN), key=lambda p: (-counts[p], p))[:MAX_PLANS]
    return plans if len(plans) > 1 else []


def fit_lr(features: Sequence[Mapping[str, Any]], labels: Sequence[int], *, baseline: bool = False,
           c: float | None = None) -> dict[str, Any]:
    """Fit the model (or, with `baseline`, the plain logistic regression on recency, frequency,
    amount, tenure and plan) on raw features and labels (1 = churned). The penalty is chosen on
    the latest fifth of the rows (they come in time order) unless `c` is given. Returns the JSON
    parameters scoring reads."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from membership.engagement.model import roc_auc, safe_std

    plans = common_plans(features)
    cols, rows = _design(features, BASELINE_INPUTS if baseline else INPUTS, plans, baseline)
    x = np.asarray(rows, dtype=float)
    y = np.asarray(labels, dtype=int)
    means = x.mean(axis=0)
    stds = np.array([safe_std(float(s), float(m)) for s, m in zip(x.std(axis=0), means)])
    z = (x - means) / stds
    if c is None:
        cut = int(len(y) * 0.8)
        best = (-1.0, 1.0)
        if 0 < y[:cut].sum() < cut and 0 < y[cut:].sum() < len(y) - cut:
            for cand in C_GRID:
                m = LogisticRegression(C=cand, max_iter=2000).fit(z[:cut], y[:cut])
                auc = roc_auc(list(y[cut:]), list(m.decision_function(z[cut:])))
                if auc is not None and auc > best[0]:
                    best = (auc, cand)
        c = best[1]
    m = LogisticRegression(C=c, max_iter=2000).fit(z, y)
    return {"format": BASELINE_FORMAT if baseline else FORMAT, "intercept": float(m.intercept_[0]),
            "coef": {name: float(w) for name, w in zip(cols, m.coef_[0])},
            "scaling": {name: [float(mu), float(sd)] for name, mu, sd in zip(cols, means, stds)},
            "plans": plans, "C": c}


# ---------------------------------------------------------------- labelled examples


@dataclass
class Example:
    member_id: int
    scored_on: date
    known_on: date      # the first day the outcome was known
    label: int
    features: dict[str, Any]


def inactivity_examples(session: Session, *, today: date, zone, half_life_days: float, days: int,
                        limit: int = MAX_EXAMPLES, snapshots: int = 12, batch_size: int = 1000,
                        seed: int = 10) -> list[Example]:
    """Labelled examples for the "no activity in `days` days" definition: on each of `snapshots`
    scoring days (the latest one `days` before `today`, so its outcome is known, then every
    min(30, days // 3) days before, at least 14), every member still active by the definition (some activity in
    the `days` before, or joined then) is scored, labelled 1 when no activity followed in the next
    `days` days. At most `limit` examples (a fixed random sample per scoring day)."""
    step = max(14, min(30, days // 3))
    rng = random.Random(seed)
    out: list[Example] = []
    per_day = max(1, limit // snapshots)
    for k in range(snapshots - 1, -1, -1):
        s = today - timedelta(days=days + 1 + k * step)
        population = alive_members(session, day=s, zone=zone, days=days)
        if not population:
            continue
        ids = sorted(population)
        if len(ids) > per_day:
            ids = sorted(rng.sample(ids, per_day))
        later = active_between(session, ids, start=day_end(s, zone),
                               end=day_end(s + timedelta(days=days), zone))
        for i in range(0, len(ids), batch_size):
            chunk = ids[i:i + batch_size]
            feats = compute_features(session, [(mid, population[mid]) for mid in chunk], day=s, zone=zone,
                                     half_life_days=half_life_days)
            for mid in chunk:
                out.append(Example(mid, s, s + timedelta(days=days), 0 if mid in later else 1, feats[mid].features))
    return out


def alive_members(session: Session, *, day: date, zone, days: int) -> dict[int, date | None]:
    """{member id: joined_on} of members not erased, joined by `day`, with an activity in the `days`
    days up to `day` or joined in them: those who have not churned yet by the definition."""
    end = day_end(day, zone)
    start = day_end(day - timedelta(days=days), zone)
    a = Activity.__table__
    recent = (select(a.c.member_id).where(Activity.occurred_at >= start, Activity.occurred_at < end,
                                          a.c.kind.not_in(PASSIVE_KINDS)).distinct())
    active = set(session.scalars(recent))
    out = {}
    for mid, joined in session.execute(select(Member.id, Member.joined_on).where(
            Member.erased_at.is_(None), Member.joined_on <= day)):
        if mid in active or (joined is not None and joined > day - timedelta(days=days)):
            out[mid] = joined
    return out


def active_between(session: Session, ids: Sequence[int], *, start: datetime, end: datetime) -> set[int]:
    a = Activity.__table__
    out: set[int] = set()
    for i in range(0, len(ids), 900):
        out.update(session.scalars(select(a.c.member_id).where(
            a.c.member_id.in_(ids[i:i + 900]), Activity.occurred_at >= start, Activity.occurred_at < end,
            a.c.kind.not_in(PASSIVE_KINDS)).distinct()))
    return out


def given_examples(session: Session, *, known_by: date, zone, half_life_days: float, horizon_days: int,
                   limit: int = MAX_EXAMPLES, batch_size: int = 1000) -> list[Example]:
    """Examples from imported outcomes (outcomes.csv) whose as_of is `horizon_days` or more before
    `known_by` (an outcome is taken as known `horizon_days` after its day)."""
    rows = session.execute(
        select(ChurnOutcome.member_id, ChurnOutcome.as_of, ChurnOutcome.churned, Member.joined_on)
        .join(Member, Member.id == ChurnOutcome.member_id)
        .where(Member.erased_at.is_(None), ChurnOutcome.as_of <= known_by - timedelta(days=horizon_days))
        .order_by(ChurnOutcome.as_of.desc(), ChurnOutcome.member_id).limit(limit)).all()
    by_day: dict[date, list[Any]] = {}
    for r in rows:
        by_day.setdefault(r.as_of, []).append(r)
    out = []
    for day, items in sorted(by_day.items()):
        for i in range(0, len(items), batch_size):
            chunk = items[i:i + batch_size]
            feats = compute_features(session, [(r.member_id, r.joined_on) for r in chunk], day=day, zone=zone,
                                     half_life_days=half_life_days)
            out.extend(Example(r.member_id, day, day + timedelta(days=horizon_days), int(r.churned),
                               feats[r.member_id].features) for r in chunk)
    return out


def has_given_outcomes(session: Session) -> bool:
    return session.scalar(select(ChurnOutcome.id).limit(1)) is not None


def time_split(examples: Sequence[Example], share: float = HOLDOUT_SHARE) -> tuple[list[Example], list[Example]]:
    """A time-based hold-out: the latest `share` of scoring days is the test; the training rows are
    those whose outcome was already known on the first test day (nothing from the future)."""
    ex = sorted(examples, key=lambda e: (e.scored_on, e.member_id))
    if not ex:
        return [], []
    cut_day = ex[int(len(ex) * (1 - share))].scored_on
    if cut_day == ex[0].scored_on:  # one scoring day only (e.g. a single snapshot): split by member
        cut = int(len(ex) * (1 - share))
        return ex[:cut], ex[cut:]
    hold = [e for e in ex if e.scored_on >= cut_day]
    train = [e for e in ex if e.scored_on < cut_day and e.known_on <= cut_day]
    return train, hold
