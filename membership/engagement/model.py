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

from sqlalchemy import func, select
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
    conditions = (m.member_id.is_not(None), m.ends_on.is_not(None), m.cancelled_on.is_(None),
                  m.awaiting_payment.is_(False), Member.erased_at.is_(None),
                  m.ends_on < today)  # grace is checked below
    total = session.scalar(select(func.count()).select_from(m).join(Member, Member.id == m.member_id)
                           .where(*conditions)) or 0
    # a large association has more past terms than `limit`: take every k-th (by id) over the whole
    # history rather than the latest few months only, so that a time-based hold-out has older
    # outcomes to learn from
    step = max(1, math.ceil(total * 1.05 / limit)) if limit else 1
    stmt = (select(m.id, m.member_id, m.starts_on, m.ends_on, m.grace_days, Member.joined_on)
            .join(Member, Member.id == m.member_id).where(*conditions))
    if step > 1:
        stmt = stmt.where(m.id % step == 0)
    candidates = session.execute(stmt.order_by(m.ends_on.desc(), m.id.desc()).limit(limit * 2)).all()
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


def select_model(ex: Sequence[Any]) -> dict[str, Any] | None:
    """Fit on the older part of the examples (fitted.time_split), measure on the latest: the
    fitted model, the default score, the recency rule and the plain RFM+plan logistic regression.
    "kept": the fitted model beats the default and the rule; "final" is then refitted on all the
    examples (same penalty), else the hold-out fit. None when a side of the split has one class."""
    from membership.engagement import fitted

    train, hold = fitted.time_split(ex)
    yt, yh = [e.label for e in train], [e.label for e in hold]
    if not (0 < sum(yt) < len(yt)) or not (0 < sum(yh) < len(yh)):
        return None
    model = fitted.fit_lr([e.features for e in train], yt)
    base = fitted.fit_lr([e.features for e in train], yt, baseline=True)
    scores = {
        "fitted": [predict(e.features, model) for e in hold],
        "default": [predict(e.features, DEFAULT_MODEL) for e in hold],
        "recency rule": [baseline_score(e.features) for e in hold],
        "baseline LR": [predict(e.features, base) for e in hold],
    }
    measures = {k: {"auc": roc_auc(yh, v), "average_precision": average_precision(yh, v)} for k, v in scores.items()}
    auc = measures["fitted"]["auc"] or 0.0
    kept = auc > (measures["default"]["auc"] or 0.0) and auc > (measures["recency rule"]["auc"] or 0.0)
    final = fitted.fit_lr([e.features for e in ex], [e.label for e in ex], c=model["C"]) if kept else model
    return {"train": train, "hold": hold, "measures": measures, "kept": kept, "final": final, "model": model,
            "baseline": base}


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
    sel = select_model(ex)
    if sel is None:
        res.message = "The hold-out split has only one outcome: the active model stays."
        res.model = active_model(session, now=now)
        return res
    train, hold = sel["train"], sel["hold"]
    res.train, res.holdout, res.measures, res.kept = len(train), len(hold), sel["measures"], sel["kept"]
    auc = res.measures["fitted"]["auc"] or 0.0
    final = sel["final"]
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
    term_id: int | None
    ends_on: date | None
    churned: int
    risk: float
    risk_band: str | None
    days_since_last_activity: int | None
    reasons: list[dict[str, Any]]
    features: dict[str, Any] | None = None
    default_risk: float | None = None
    baseline_lr: float | None = None
    rule: float | None = None


@dataclass
class BacktestResult:
    as_of: date
    horizon_days: int
    model_note: str
    rows: list[BacktestRow]
    outcomes: str = "derived from renewals"
    trained_on: int = 0

    @property
    def terms(self) -> int:
        return len(self.rows)

    @property
    def churn_rate(self) -> float | None:
        return sum(r.churned for r in self.rows) / len(self.rows) if self.rows else None

    def columns(self) -> dict[str, list[float]]:
        """The scores side by side: Samiti's, the recency rule's, and (when fitted) the default's
        and the plain logistic regression's."""
        out = {"samiti": [r.risk for r in self.rows],
               "rule": [r.rule if r.rule is not None else
                        baseline_score({"days_since_last_activity": r.days_since_last_activity}) for r in self.rows]}
        if self.rows and all(r.default_risk is not None for r in self.rows):
            out["default"] = [r.default_risk for r in self.rows]
        if self.rows and all(r.baseline_lr is not None for r in self.rows):
            out["baseline_lr"] = [r.baseline_lr for r in self.rows]
        return out

    def measures(self) -> dict[str, float | None]:
        y = [r.churned for r in self.rows]
        cols = self.columns()
        out = {"auc": roc_auc(y, cols["samiti"]), "average_precision": average_precision(y, cols["samiti"]),
               "baseline_auc": roc_auc(y, cols["rule"]), "baseline_average_precision": average_precision(y, cols["rule"])}
        for k in ("default", "baseline_lr"):
            if k in cols:
                out[f"{k}_auc"], out[f"{k}_average_precision"] = roc_auc(y, cols[k]), average_precision(y, cols[k])
        return out


def calibration(y: Sequence[int], p: Sequence[float], groups: int = 10) -> list[tuple[int, float, float]]:
    """By tenth of the score (lowest first): (cases, mean score, actual churn rate)."""
    order = sorted(range(len(y)), key=lambda i: (p[i], i))
    out = []
    n = len(order)
    for g in range(groups):
        idx = order[g * n // groups:(g + 1) * n // groups]
        if idx:
            out.append((len(idx), sum(p[i] for i in idx) / len(idx), sum(y[i] for i in idx) / len(idx)))
    return out


def _population(session: Session, definition: dict[str, Any], *, as_of: date, horizon_days: int, zone,
                outcomes: str) -> tuple[list[tuple[int, date | None, int | None, date | None, int]], str]:
    """The cases to judge: [(member_id, joined_on, term_id, ends_on, churned)] and how the outcomes
    were found."""
    from membership.engagement import fitted
    from membership.engagement.models import ChurnOutcome

    if outcomes in ("auto", "given"):
        given = session.execute(select(ChurnOutcome.member_id, Member.joined_on, ChurnOutcome.churned)
                                .join(Member, Member.id == ChurnOutcome.member_id)
                                .where(ChurnOutcome.as_of == as_of, Member.erased_at.is_(None))
                                .order_by(ChurnOutcome.member_id)).all()
        if given or outcomes == "given":
            return [(mid, j, None, None, int(c)) for mid, j, c in given], "given (outcomes.csv)"
    if definition["kind"] in ("inactivity", "given"):
        days = definition["days"]
        alive = fitted.alive_members(session, day=as_of, zone=zone, days=days)
        ids = sorted(alive)
        from membership.engagement.features import day_end
        later = fitted.active_between(session, ids, start=day_end(as_of, zone),
                                      end=day_end(as_of + timedelta(days=days), zone))
        return ([(mid, alive[mid], None, None, 0 if mid in later else 1) for mid in ids],
                f"derived: no activity in the {days} days after")
    m = Membership
    end = as_of + timedelta(days=horizon_days)
    terms = session.execute(
        select(m.id, m.member_id, m.starts_on, m.ends_on, m.grace_days, m.paid_on, Member.joined_on)
        .join(Member, Member.id == m.member_id)
        .where(m.ends_on > as_of, m.ends_on <= end, m.cancelled_on.is_(None), m.awaiting_payment.is_(False),
               m.starts_on <= as_of, Member.erased_at.is_(None))
        .order_by(m.member_id, m.ends_on)).all()
    chosen: dict[int, Any] = {}
    for t in terms:  # one term per member (the first ending), and only terms known on as_of
        if t.paid_on is not None and t.paid_on > as_of:
            continue
        chosen.setdefault(t.member_id, t)
    items = list(chosen.values())
    ids = [t.member_id for t in items]
    all_terms: dict[int, list[Any]] = {}
    for i in range(0, len(ids), 900):
        for row in session.execute(select(m.id, m.member_id, m.starts_on, m.ends_on, m.grace_days,
                                          m.awaiting_payment, m.cancelled_on).where(m.member_id.in_(ids[i:i + 900]))):
            all_terms.setdefault(row.member_id, []).append(row)
    return ([(t.member_id, t.joined_on, t.id, t.ends_on,
              0 if renewed_by_grace(all_terms.get(t.member_id, []), t) else 1) for t in items],
            f"derived: renewed by the end of the grace period (terms ending in the {horizon_days} days after)")


def backtest(session: Session, *, as_of: date, horizon_days: int, zone, half_life_days: float,
             model: str = "auto", batch_size: int = 1000, inactive_days: int | None = None,
             outcomes: str = "auto") -> BacktestResult:
    """Score, as of `as_of` and with only what was known then, the cases whose outcome is judged,
    and compare with what happened. Cases and outcomes: the outcomes imported for that day
    (outcomes.csv, `outcomes` "auto" or "given"); else derived - members not churned yet on the day
    with churned = no activity in the N days after (CHURN_INACTIVE_DAYS), or every member term
    ending in the `horizon_days` after, churned = no next term by the end of its grace.
    `model`: "default", or "auto" - what Samiti would have used that day: a model fitted on the
    history known on `as_of` (same rules as `churn fit`: kept only when it beat the default and the
    recency rule on its own hold-out), else the default; a plain logistic regression on recency,
    frequency, amount, tenure and plan, fitted on the same history, is scored beside. Reads only."""
    from membership.engagement import fitted

    definition = definition_of(session, inactive_days)
    params, note, base, trained = DEFAULT_MODEL, "the default model", None, 0
    if model == "auto":
        ex = examples_for(session, definition, today=as_of, zone=zone, half_life_days=half_life_days)
        churned = sum(e.label for e in ex)
        if not (len(ex) >= MIN_TERMS and churned >= MIN_LAPSES and churned < len(ex)):
            note = (f"the default model (too little history known on {as_of} to fit: {len(ex):,} cases, "
                    f"{churned:,} churned)")
        else:
            sel = select_model(ex)
            if sel is None:
                note = (f"the default model (of the {len(ex):,} cases known on {as_of}, too few had their outcome "
                        f"known before the latest quarter of scoring days to learn from honestly)")
            else:
                trained = len(ex)
                base = fitted.fit_lr([e.features for e in ex], [e.label for e in ex], baseline=True)
                if sel["kept"]:
                    params = sel["final"]
                    note = (f"a model fitted on {len(ex):,} cases whose outcome was known on {as_of} "
                            f"(hold-out AUC {sel['measures']['fitted']['auc']:.3f})")
                else:
                    note = (f"the default model (the model fitted on {len(ex):,} cases did not beat it and the "
                            f"recency rule on its hold-out)")
    cases, how = _population(session, definition, as_of=as_of, horizon_days=horizon_days, zone=zone,
                             outcomes=outcomes)
    out: list[BacktestRow] = []
    for i in range(0, len(cases), batch_size):
        chunk = cases[i:i + batch_size]
        targets = {c[0]: c[2] for c in chunk if c[2] is not None}
        feats = compute_features(session, [(c[0], c[1]) for c in chunk], day=as_of, zone=zone,
                                 half_life_days=half_life_days, target_terms=targets or None)
        for mid, _, term_id, ends_on, churned in chunk:
            mf = feats[mid]
            f = mf.features
            if mf.renewed and term_id is not None:
                p, why, d, b = 0.0, [], 0.0, 0.0
            else:
                p, why = scoring.score(f, params)
                d = predict(f, DEFAULT_MODEL)
                b = predict(f, base) if base is not None else None
            out.append(BacktestRow(mid, term_id, ends_on, churned, p, scoring.risk_band(p),
                                   f["days_since_last_activity"], why, f,
                                   default_risk=d if params is not DEFAULT_MODEL else None,
                                   baseline_lr=b, rule=baseline_score(f)))
    return BacktestResult(as_of, horizon_days, note, out, outcomes=how, trained_on=trained)
