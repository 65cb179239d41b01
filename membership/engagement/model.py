"""Churn models: the transparent default, fitting on the association's own history, back-test
measures, and the choice of the active model.

Fitting is plain logistic regression with an L2 penalty, solved by Newton's method (IRLS) on
standardised inputs, in pure Python: there are only a dozen inputs and a few thousand past terms,
so no numerical library is needed.

Training data: past terms whose outcome is known on the training day (ended, grace period over),
each labelled 1 if no next term started by the end of its grace period, with its features as of
`end - lead_days` (default 60: the moment staff can still act).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from membership.engagement import scoring
from membership.engagement.features import compute_features
from membership.engagement.models import ChurnModel
from membership.members.models import Member
from membership.plans.models import Membership

DEFAULT_MODEL = scoring.DEFAULT_MODEL
MIN_TERMS = 200
MIN_LAPSES = 20
LEAD_DAYS = 60
MAX_TRAINING_TERMS = 20_000
HOLDOUT_SHARE = 0.25


# ---------------------------------------------------------------- measures


def roc_auc(y: Sequence[int], p: Sequence[float]) -> float | None:
    """Area under the ROC curve: the chance that a random positive scores above a random negative
    (ties count a half). None when one class is missing."""
    pairs = sorted(zip(p, y), key=lambda t: t[0])
    pos = sum(1 for v in y if v)
    neg = len(y) - pos
    if not pos or not neg:
        return None
    rank_sum = 0.0
    i = 0
    while i < len(pairs):  # average ranks over ties
        j = i
        while j + 1 < len(pairs) and pairs[j + 1][0] == pairs[i][0]:
            j += 1
        avg_rank = (i + j) / 2 + 1
        rank_sum += avg_rank * sum(1 for k in range(i, j + 1) if pairs[k][1])
        i = j + 1
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


def average_precision(y: Sequence[int], p: Sequence[float]) -> float | None:
    """Average precision: the mean, over the positives, of the precision among the cases scored
    at least as high (ties form one step, as scikit-learn does). None without positives."""
    pos = sum(1 for v in y if v)
    if not pos:
        return None
    order = sorted(zip(p, y), key=lambda t: -t[0])
    ap = 0.0
    tp = seen = 0
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and order[j + 1][0] == order[i][0]:
            j += 1
        block_pos = sum(1 for k in range(i, j + 1) if order[k][1])
        tp += block_pos
        seen += j - i + 1
        ap += block_pos / pos * (tp / seen)
        i = j + 1
    return ap


# ---------------------------------------------------------------- fitting


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting (a is small and positive definite)."""
    n = len(b)
    m = [row[:] + [b[i]] for i, row in enumerate(a)]
    for col in range(n):
        piv = max(range(col, n), key=lambda r: abs(m[r][col]))
        m[col], m[piv] = m[piv], m[col]
        d = m[col][col] or 1e-12
        for r in range(col + 1, n):
            f = m[r][col] / d
            if f:
                for c in range(col, n + 1):
                    m[r][c] -= f * m[col][c]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        x[r] = (m[r][n] - sum(m[r][c] * x[c] for c in range(r + 1, n))) / (m[r][r] or 1e-12)
    return x


def safe_std(std: float, mean: float) -> float:
    """A standard deviation to divide by: 1 when the input is (numerically) constant - rounding
    leaves ~1e-13 for a constant column, and dividing by that blows rounding noise up into weights."""
    return std if std > 1e-9 * max(1.0, abs(mean)) else 1.0


def fit(rows: Iterable[tuple[dict[str, Any], int]], *, l2: float = 1.0, iterations: int = 25) -> dict[str, Any]:
    """Fit a logistic model on [(raw features, label)] (label 1 = did not renew). Returns model
    parameters in the form scoring.probability reads: intercept, weights per input, scaling
    [mean, std] per input (so each weight is per standard deviation)."""
    data = [([scoring.model_inputs(f)[k] for k in scoring.INPUTS], int(y)) for f, y in rows]
    n = len(data)
    if n == 0:
        raise ValueError("no training rows")
    d = len(scoring.INPUTS)
    means = [sum(x[j] for x, _ in data) / n for j in range(d)]
    stds = [safe_std(math.sqrt(sum((x[j] - means[j]) ** 2 for x, _ in data) / n), means[j]) for j in range(d)]
    xs = [[1.0] + [(x[j] - means[j]) / stds[j] for j in range(d)] for x, _ in data]
    ys = [y for _, y in data]
    beta = [0.0] * (d + 1)
    for _ in range(iterations):
        grad = [0.0] * (d + 1)
        hess = [[0.0] * (d + 1) for _ in range(d + 1)]
        for x, y in zip(xs, ys):
            z = sum(b * v for b, v in zip(beta, x))
            p = scoring.sigmoid(z)
            w = p * (1 - p)
            r = y - p
            for i in range(d + 1):
                xi = x[i]
                grad[i] += r * xi
                wxi = w * xi
                row = hess[i]
                for j in range(i, d + 1):
                    row[j] += wxi * x[j]
        for i in range(d + 1):
            for j in range(i):
                hess[i][j] = hess[j][i]
        for i in range(1, d + 1):  # no penalty on the intercept
            grad[i] -= l2 * beta[i]
            hess[i][i] += l2
        step = _solve(hess, grad)
        beta = [b + s for b, s in zip(beta, step)]
        if max(abs(s) for s in step) < 1e-6:
            break
    return {
        "intercept": beta[0],
        "weights": {k: beta[i + 1] for i, k in enumerate(scoring.INPUTS)},
        "scaling": {k: [means[i], stds[i]] for i, k in enumerate(scoring.INPUTS)},
    }


def baseline_score(features: dict[str, Any]) -> float:
    """The plain rule to beat: the longer since the last activity (or since joining, for a member
    never active), the riskier."""
    days = features.get("days_since_last_activity")
    if days is None:
        days = features.get("days_since_joined")
    return 100_000.0 if days is None else float(days)


# ---------------------------------------------------------------- history


@dataclass
class LabelledTerm:
    term_id: int
    member_id: int
    ends_on: date
    scored_on: date
    label: int
    features: dict[str, Any]
    known_on: date | None = None  # the first day the outcome was known (grace over)


def renewed_by_grace(terms: Sequence[Any], term: Any) -> bool:
    """Whether a later paid, uncancelled term started no later than the end of `term`'s grace."""
    limit = term.ends_on + timedelta(days=term.grace_days or 0)
    return any(t.id != term.id and t.starts_on > term.starts_on and t.starts_on <= limit + timedelta(days=1)
               and not t.awaiting_payment and t.cancelled_on is None for t in terms)


def labelled_terms(session: Session, *, today: date, zone, half_life_days: float, lead_days: int = LEAD_DAYS,
                   limit: int = MAX_TRAINING_TERMS, batch_size: int = 1000) -> list[LabelledTerm]:
    """Past member terms whose outcome is known on `today` (grace over), the latest `limit`, with
    their label and their features as of (end - lead_days), rounded down to the first of the
    the features are computed per scoring day, in batches (the day is not rounded: a term ending
    on the 28th is scored lead_days before the 28th)."""
    m = Membership
    candidates = session.execute(
        select(m.id, m.member_id, m.starts_on, m.ends_on, m.grace_days, Member.joined_on)
        .join(Member, Member.id == m.member_id)
        .where(m.member_id.is_not(None), m.ends_on.is_not(None), m.cancelled_on.is_(None),
               m.awaiting_payment.is_(False), Member.erased_at.is_(None),
               m.ends_on < today)  # grace is checked below
        .order_by(m.ends_on.desc(), m.id.desc()).limit(limit * 2)).all()  # most qualify: bounded memory
    chosen = []
    for row in candidates:
        if row.ends_on + timedelta(days=(row.grace_days or 0) + 1) >= today:
            continue  # outcome not known yet
        as_of = row.ends_on - timedelta(days=lead_days)
        if as_of < row.starts_on:
            continue  # too short a term to have been scored that early
        chosen.append((row, as_of))
        if len(chosen) >= limit:
            break
    # all terms of the chosen members, for the labels (the outcome is known: use everything)
    member_ids = sorted({r.member_id for r, _ in chosen})
    all_terms: dict[int, list[Any]] = {}
    for i in range(0, len(member_ids), batch_size):
        chunk = member_ids[i:i + batch_size]
        for t in session.execute(select(m.id, m.member_id, m.starts_on, m.ends_on, m.grace_days,
                                        m.awaiting_payment, m.cancelled_on).where(m.member_id.in_(chunk))):
            all_terms.setdefault(t.member_id, []).append(t)
    by_day: dict[date, list[Any]] = {}
    for row, as_of in chosen:
        by_day.setdefault(as_of, []).append(row)
    out: list[LabelledTerm] = []
    for as_of, rows in sorted(by_day.items()):
        for i in range(0, len(rows), batch_size):
            chunk = rows[i:i + batch_size]
            # a member may have two terms scored on the same day only in odd data: keep the first
            targets: dict[int, int] = {}
            for r in chunk:
                targets.setdefault(r.member_id, r.id)
            feats = compute_features(session, {(r.member_id, r.joined_on) for r in chunk}, day=as_of, zone=zone,
                                     half_life_days=half_life_days, target_terms=targets)
            for r in chunk:
                if targets[r.member_id] != r.id:
                    continue
                mf = feats[r.member_id]
                label = 0 if renewed_by_grace(all_terms.get(r.member_id, []), r) else 1
                out.append(LabelledTerm(r.id, r.member_id, r.ends_on, as_of, label, mf.features,
                                        r.ends_on + timedelta(days=(r.grace_days or 0) + 1)))
    out.sort(key=lambda t: (t.ends_on, t.term_id))
    return out


def predict(features: dict[str, Any], model: dict[str, Any]) -> float:
    return scoring.score(features, model)[0]


def evaluate(model: dict[str, Any], rows: Sequence[Any]) -> tuple[float | None, float | None]:
    y = [r.label for r in rows]
    p = [predict(r.features, model) for r in rows]
    return roc_auc(y, p), average_precision(y, p)


def default_model_row(session: Session, *, now: datetime) -> ChurnModel:
    """The stored default model (made once)."""
    row = session.scalars(select(ChurnModel).where(ChurnModel.kind == "default").order_by(ChurnModel.id)).first()
    if row is None:
        row = ChurnModel(kind="default", parameters=DEFAULT_MODEL, fitted_at=now, is_active=False,
                         note="The transparent default model: readable weights, not fitted to this association.")
        session.add(row)
        session.flush()
    return row


def active_model(session: Session, *, now: datetime) -> ChurnModel:
    """The active model: the latest fitted one marked active, else the default (stored once)."""
    row = session.scalars(select(ChurnModel).where(ChurnModel.is_active.is_(True))
                          .order_by(ChurnModel.fitted_at.desc(), ChurnModel.id.desc())).first()
    return row or default_model_row(session, now=now)


def definition_of(session: Session, inactive_days: int | None) -> dict[str, Any]:
    """The churn definition the labels follow: outcomes given by the import when there are any;
    else "no activity for N days" when CHURN_INACTIVE_DAYS is set; else not renewing a term."""
    from membership.engagement import fitted

    if fitted.has_given_outcomes(session):
        return {"kind": "given", "days": inactive_days or 365}
    if inactive_days:
        return {"kind": "inactivity", "days": int(inactive_days)}
    return {"kind": "terms"}


def examples_for(session: Session, definition: dict[str, Any], *, today: date, zone, half_life_days: float,
                 lead_days: int = LEAD_DAYS) -> list[Any]:
    """Labelled examples (fitted.Example) whose outcome was known on `today`, in time order."""
    from membership.engagement import fitted

    if definition["kind"] == "given":
        return fitted.given_examples(session, known_by=today, zone=zone, half_life_days=half_life_days,
                                     horizon_days=definition["days"])
    if definition["kind"] == "inactivity":
        return fitted.inactivity_examples(session, today=today, zone=zone, half_life_days=half_life_days,
                                          days=definition["days"])
    terms = labelled_terms(session, today=today, zone=zone, half_life_days=half_life_days, lead_days=lead_days)
    return [fitted.Example(t.member_id, t.scored_on, t.known_on, t.label, t.features) for t in terms]


@dataclass
class FitResult:
    """What `churn fit` did: the numbers on the hold-out and the model kept."""
    definition: dict[str, Any]
    examples: int
    churned: int
    train: int = 0
    holdout: int = 0
    measures: dict[str, dict[str, float | None]] | None = None  # name -> {"auc", "average_precision"}
    kept: bool = False
    model: ChurnModel | None = None
    message: str = ""


def fit_and_choose(session: Session, *, today: date, now: datetime, zone, half_life_days: float,
                   inactive_days: int | None = None, lead_days: int = LEAD_DAYS,
                   min_examples: int = MIN_TERMS, min_churned: int = MIN_LAPSES) -> FitResult:
    """Fit the churn model on the association's history known on `today` and keep it only when it
    beats both the default score and the recency rule on a time-based hold-out (the latest
    quarter of scoring days; it learns only from outcomes known before them). The plain logistic
    regression on recency, frequency, amount, tenure and plan is fitted on the same split and
    reported beside. A kept model is refitted on all the examples, stored as a ChurnModel row
    (parameters: JSON, format fitted.FORMAT, with its hold-out measures) and made active. Flushes;
    the caller commits."""
    from membership.engagement import fitted

    default_model_row(session, now=now)
    definition = definition_of(session, inactive_days)
    ex = examples_for(session, definition, today=today, zone=zone, half_life_days=half_life_days,
                      lead_days=lead_days)
    churned = sum(e.label for e in ex)
    res = FitResult(definition, len(ex), churned)
    if len(ex) < min_examples or churned < min_churned or churned == len(ex):
        res.message = (f"Not enough history to fit: {len(ex):,} labelled cases with {churned:,} churned "
                       f"(at least {min_examples} with {min_churned} churned, and some who stayed, are needed)")
        if definition["kind"] == "terms":
            res.message += ("; an association without renewals can set CHURN_INACTIVE_DAYS (churned = no "
                            "activity for that many days) or import outcomes.csv")
        res.model = active_model(session, now=now)
        return res
    train, hold = fitted.time_split(ex)
    res.train, res.holdout = len(train), len(hold)
    yt, yh = [e.label for e in train], [e.label for e in hold]
    if not (0 < sum(yt) < len(yt)) or not (0 < sum(yh) < len(yh)):
        res.message = "The hold-out split has only one outcome: the active model stays."
        res.model = active_model(session, now=now)
        return res
    model = fitted.fit_lr([e.features for e in train], yt)
    base = fitted.fit_lr([e.features for e in train], yt, baseline=True)
    scores = {
        "fitted": [predict(e.features, model) for e in hold],
        "default": [predict(e.features, DEFAULT_MODEL) for e in hold],
        "recency rule": [baseline_score(e.features) for e in hold],
        "baseline LR": [predict(e.features, base) for e in hold],
    }
    res.measures = {k: {"auc": roc_auc(yh, v), "average_precision": average_precision(yh, v)}
                    for k, v in scores.items()}
    auc = res.measures["fitted"]["auc"] or 0.0
    res.kept = auc > (res.measures["default"]["auc"] or 0.0) and auc > (res.measures["recency rule"]["auc"] or 0.0)
    final = fitted.fit_lr([e.features for e in ex], [e.label for e in ex], c=model["C"]) if res.kept else model
    final = {**final, "definition": definition, "lead_days": lead_days, "trained_until": today.isoformat(),
             "holdout": {"train": len(train), "test": len(hold),
                         "first_test_day": hold[0].scored_on.isoformat() if hold else None,
                         "measures": res.measures},
             "default_auc": res.measures["default"]["auc"], "baseline_lr_auc": res.measures["baseline LR"]["auc"]}
    m = res.measures
    row = ChurnModel(kind="fitted", parameters=final, fitted_at=now, training_terms=len(ex) if res.kept else len(train),
                     churn_rate=churned / len(ex), auc=m["fitted"]["auc"],
                     average_precision=m["fitted"]["average_precision"], baseline_auc=m["recency rule"]["auc"],
                     is_active=res.kept,
                     note=(f"Fitted on {len(train):,} cases, tested on the {len(hold):,} latest: AUC "
                           f"{auc:.3f} vs {m['default']['auc'] or 0:.3f} for the default score, "
                           f"{m['recency rule']['auc'] or 0:.3f} for the recency rule and "
                           f"{m['baseline LR']['auc'] or 0:.3f} for a plain logistic regression"
                           + ("; kept and refitted on all cases." if res.kept else "; not better: not kept.")))
    if res.kept:
        session.execute(ChurnModel.__table__.update().where(ChurnModel.is_active.is_(True)).values(is_active=False))
    session.add(row)
    session.flush()
    res.model = row if res.kept else active_model(session, now=now)
    res.message = row.note
    return res


def choose_model(session: Session, *, today: date, now: datetime, zone, half_life_days: float,
                 inactive_days: int | None = None, lead_days: int = LEAD_DAYS, min_terms: int = MIN_TERMS,
                 min_lapses: int = MIN_LAPSES) -> ChurnModel:
    """fit_and_choose, returning the active model."""
    return fit_and_choose(session, today=today, now=now, zone=zone, half_life_days=half_life_days,
                          inactive_days=inactive_days, lead_days=lead_days, min_examples=min_terms,
                          min_churned=min_lapses).model


# ---------------------------------------------------------------- back-test


@dataclass
class BacktestRow:
    member_id: int
    term_id: int
    ends_on: date
    churned: int
    risk: float
    risk_band: str | None
    days_since_last_activity: int | None
    reasons: list[dict[str, Any]]


@dataclass
class BacktestResult:
    as_of: date
    horizon_days: int
    model_note: str
    rows: list[BacktestRow]

    @property
    def terms(self) -> int:
        return len(self.rows)

    @property
    def churn_rate(self) -> float | None:
        return sum(r.churned for r in self.rows) / len(self.rows) if self.rows else None

    def measures(self) -> dict[str, float | None]:
        y = [r.churned for r in self.rows]
        risk = [r.risk for r in self.rows]
        base = [baseline_score({"days_since_last_activity": r.days_since_last_activity}) for r in self.rows]
        return {"auc": roc_auc(y, risk), "average_precision": average_precision(y, risk),
                "baseline_auc": roc_auc(y, base), "baseline_average_precision": average_precision(y, base)}


def backtest(session: Session, *, as_of: date, horizon_days: int, zone, half_life_days: float,
             model: str = "auto", batch_size: int = 1000) -> BacktestResult:
    """Score, as of `as_of` and with only what was known then, every member term that ends in the
    `horizon_days` days after it, and compare with what happened: churned = no next term started
    by the end of the grace period. `model`: "default", or "auto" (a model fitted on the history
    whose outcome was known on `as_of`, when there is enough of it, else the default). Reads only."""
    m = Membership
    params, note = DEFAULT_MODEL, "the default model"
    if model == "auto":
        rows = labelled_terms(session, today=as_of, zone=zone, half_life_days=half_life_days)
        lapses = sum(r.label for r in rows)
        if len(rows) >= MIN_TERMS and lapses >= MIN_LAPSES and lapses < len(rows):
            params = fit((r.features, r.label) for r in rows)
            note = f"a model fitted on {len(rows):,} terms whose outcome was known on {as_of}"
    end = as_of + timedelta(days=horizon_days)
    terms = session.execute(
        select(m.id, m.member_id, m.starts_on, m.ends_on, m.grace_days, m.paid_on, Member.joined_on)
        .join(Member, Member.id == m.member_id)
        .where(m.ends_on > as_of, m.ends_on <= end, m.cancelled_on.is_(None), m.awaiting_payment.is_(False),
               m.starts_on <= as_of, Member.erased_at.is_(None))
        .order_by(m.member_id, m.ends_on)).all()
    # one term per member (the first ending), and only terms known on as_of
    chosen: dict[int, Any] = {}
    for t in terms:
        if t.paid_on is not None and t.paid_on > as_of:
            continue
        chosen.setdefault(t.member_id, t)
    out: list[BacktestRow] = []
    items = list(chosen.values())
    for i in range(0, len(items), batch_size):
        chunk = items[i:i + batch_size]
        ids = [t.member_id for t in chunk]
        feats = compute_features(session, [(t.member_id, t.joined_on) for t in chunk], day=as_of, zone=zone,
                                 half_life_days=half_life_days, target_terms={t.member_id: t.id for t in chunk})
        all_terms: dict[int, list[Any]] = {}
        for row in session.execute(select(m.id, m.member_id, m.starts_on, m.ends_on, m.grace_days,
                                          m.awaiting_payment, m.cancelled_on).where(m.member_id.in_(ids))):
            all_terms.setdefault(row.member_id, []).append(row)
        for t in chunk:
            mf = feats[t.member_id]
            churned = 0 if renewed_by_grace(all_terms.get(t.member_id, []), t) else 1
            if mf.renewed:
                p, why = 0.0, []
            else:
                p, contribs = scoring.probability(mf.features, params)
                why = scoring.reasons(mf.features, contribs)
            out.append(BacktestRow(t.member_id, t.id, t.ends_on, churned, p, scoring.risk_band(p),
                                   mf.features["days_since_last_activity"], why))
    return BacktestResult(as_of, horizon_days, note, out)
