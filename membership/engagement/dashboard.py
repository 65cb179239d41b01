"""The staff dashboard's figures, as plain functions of a session and `today` (issue 6, item 6).

Two kinds of figures:

* live figures (`live_figures`): a handful of aggregate queries on indexed columns - members by
  status, joins this month, renewals due. Computed on every request.
* the daily snapshot (`compute_snapshot`): everything that needs the whole history of terms -
  members by status at each month end, renewals and lapses per month, the cohort table, the
  12-month renewal, churn and retention rates and event participation. One streamed pass over all
  terms (ordered by member, so memory holds one member's terms at a time), stored as JSON in the
  Setting table under "dashboard:<date>" by `refresh_dashboard`, which the daily
  "dashboard-refresh" job calls. A page that finds no snapshot for today computes it (and keeps
  it in memory, see staff.views_home): GET requests write nothing to the database.
* the score figures (`score_figures`): engagement bands and median, risk by plan. They change
  only when the scoring job runs, so they are stored with the snapshot and recomputed when the
  scoring job has finished a run since.

Past statuses are rebuilt from the terms' dates with the rules of plans.status.status_on, with
two simplifications: a term's payment/approval flags are taken as they are now (a term paid late
counts from its start), and staff overrides are ignored (they are exceptions of the present day).
Organisations' terms are not counted: the dashboard is about members.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import groupby
from typing import Any, Iterable

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from membership.core.time import add_months, local_midnight_utc, tz, utcnow
from membership.engagement.models import ENGAGEMENT_BANDS, RISK_BANDS, CurrentScore, Setting
from membership.events.models import Event, EventRegistration
from membership.members.models import Member
from membership.plans.models import Membership, Plan

CACHE_PREFIX = "dashboard:"
SNAPSHOT_VERSION = 1
SERIES_MONTHS = 24
COHORT_QUARTERS = 12
COHORT_YEARS = (1, 2, 3)
RENEWAL_WINDOW_DAYS = 30
CURRENT = ("active", "grace")
# Snapshots older than this many days are deleted when a new one is written.
KEEP_SNAPSHOT_DAYS = 7


def cache_key(today: date) -> str:
    return f"{CACHE_PREFIX}{today.isoformat()}"


def month_bounds(day: date) -> tuple[date, date]:
    """First and last day of the month of `day`."""
    first = day.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return first, following - timedelta(days=1)


def month_points(today: date, months: int = SERIES_MONTHS) -> list[date]:
    """The last day of each of the last `months` months, the current month's point being today."""
    first = today.replace(day=1)
    points = [month_bounds(add_months(first, -k))[1] for k in range(months - 1, 0, -1)]
    return points + [today]


def quarter_start(day: date) -> date:
    return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


def quarter_label(start: date) -> str:
    return f"{start.year} Q{(start.month - 1) // 3 + 1}"


# ---------------------------------------------------------------- one member's terms as intervals


@dataclass(frozen=True)
class Span:
    """A paid term as the days it covers: active from `starts_on` to `active_to` (None: lifetime),
    current (active or grace) to `current_to`. A cancellation cuts both at the day before."""
    starts_on: date
    active_to: date | None
    current_to: date | None
    cancelled: bool = False

    @classmethod
    def of(cls, starts_on: date, ends_on: date | None, grace_days: int, cancelled_on: date | None) -> "Span | None":
        active_to = ends_on
        current_to = None if ends_on is None else ends_on + timedelta(days=grace_days or 0)
        if cancelled_on is not None:
            if cancelled_on <= starts_on:
                return None  # cancelled before it began: covered nothing
            cut = cancelled_on - timedelta(days=1)
            active_to = cut if active_to is None else min(active_to, cut)
            current_to = cut if current_to is None else min(current_to, cut)
        return cls(starts_on, active_to, current_to, cancelled_on is not None)


def status_at(spans: list[Span], day: date) -> str | None:
    """"active", "grace", "former" (was a member, is not current) or None (not yet a member)."""
    started = False
    grace = False
    for s in spans:
        if s.starts_on > day:
            continue
        started = True
        if s.active_to is None or day <= s.active_to:
            return "active"
        if s.current_to is None or day <= s.current_to:
            grace = True
    if grace:
        return "grace"
    return "former" if started else None


def term_outcome(span: Span, spans: list[Span], today: date) -> str | None:
    """What became of a term that ended: "renewed" (a later paid term starts no later than the
    day after its grace period), "lapsed" (its grace period is over without one), None (still
    active or in grace, a lifetime term, or a cancelled one: a cancellation is not a renewal
    decision - often it is staff correcting a term - and the member list could not show it)."""
    if span.active_to is None or span.current_to is None or span.cancelled:
        return None
    limit = span.current_to + timedelta(days=1)
    if any(o is not span and span.starts_on < o.starts_on <= limit for o in spans):
        return "renewed"
    if span.active_to >= today:
        return None
    return "lapsed" if span.current_to < today else None


# ---------------------------------------------------------------- the daily snapshot


@dataclass
class _Tally:
    """Accumulators of one pass over all members' terms."""
    today: date
    points: list[date]
    year_ago: date
    cohort_starts: list[date]
    status_series: dict[str, list[int]] = field(default_factory=dict)
    renewed: list[int] = field(default_factory=list)
    lapsed: list[int] = field(default_factory=list)
    window_renewed: int = 0
    window_lapsed: int = 0
    current_year_ago: int = 0
    retained: int = 0
    cohorts: dict[date, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.status_series = {k: [0] * len(self.points) for k in ("active", "grace", "former")}
        self.renewed = [0] * len(self.points)
        self.lapsed = [0] * len(self.points)
        self.month_index = {(p.year, p.month): i for i, p in enumerate(self.points)}
        self.cohorts = {q: {"joined": 0, "current": [0] * len(COHORT_YEARS)} for q in self.cohort_starts}

    def add_member(self, joined_on: date | None, spans: list[Span]) -> None:
        today = self.today
        for i, point in enumerate(self.points):
            status = status_at(spans, point)
            if status:
                self.status_series[status][i] += 1
        for span in spans:
            outcome = term_outcome(span, spans, today)
            if outcome is None:
                continue
            index = self.month_index.get((span.active_to.year, span.active_to.month))
            if index is not None:
                (self.renewed if outcome == "renewed" else self.lapsed)[index] += 1
            if self.year_ago <= span.active_to < today:
                if outcome == "renewed":
                    self.window_renewed += 1
                else:
                    self.window_lapsed += 1
        if status_at(spans, self.year_ago) in CURRENT:
            self.current_year_ago += 1
            if status_at(spans, today) in CURRENT:
                self.retained += 1
        if joined_on is not None:
            cohort = self.cohorts.get(quarter_start(joined_on))
            if cohort is not None:
                cohort["joined"] += 1
                for k, years in enumerate(COHORT_YEARS):
                    day = add_months(joined_on, 12 * years)
                    if day <= today and status_at(spans, day) in CURRENT:
                        cohort["current"][k] += 1


def _member_terms(session: Session, batch_size: int) -> Iterable[tuple[int, date, list[Span]]]:
    """(member id, joined on, spans of its paid terms) for every live member, streamed in member
    order (members without terms have no spans)."""
    stmt = (select(Member.id, Member.joined_on, Membership.starts_on, Membership.ends_on, Membership.grace_days,
                   Membership.cancelled_on, Membership.awaiting_payment, Membership.awaiting_approval)
            .outerjoin(Membership, Membership.member_id == Member.id)
            .where(Member.erased_at.is_(None))
            .order_by(Member.id, Membership.starts_on, Membership.id)
            .execution_options(yield_per=batch_size))
    rows = session.execute(stmt)
    for member_id, group in groupby(rows, key=lambda r: r[0]):
        joined_on = None
        spans: list[Span] = []
        for _id, joined, starts, ends, grace, cancelled, awaiting_payment, awaiting_approval in group:
            joined_on = joined
            if starts is None or awaiting_payment or awaiting_approval:
                continue
            span = Span.of(starts, ends, grace, cancelled)
            if span is not None:
                spans.append(span)
        yield member_id, joined_on, spans


def event_participation(session: Session, today: date) -> dict[str, int]:
    """Current members (cached status) and how many of them attended at least one event that
    started in the 12 months up to today."""
    zone = tz()
    since = local_midnight_utc(add_months(today, -12), zone)
    until = local_midnight_utc(today + timedelta(days=1), zone)
    current = Member.status.in_(CURRENT) & Member.erased_at.is_(None)
    members = session.scalar(select(func.count()).select_from(Member).where(current)) or 0
    attended = session.scalar(
        select(func.count(func.distinct(EventRegistration.member_id)))
        .join(Event, Event.id == EventRegistration.event_id)
        .join(Member, Member.id == EventRegistration.member_id)
        .where(EventRegistration.status == "attended", Event.starts_at >= since, Event.starts_at < until,
               current)) or 0
    return {"members": int(members), "attended": int(attended)}


def compute_snapshot(session: Session, today: date, *, batch_size: int = 5000) -> dict[str, Any]:
    """The heavy dashboard figures as of `today`, as a JSON-ready dict (see the module docstring).
    Reads only."""
    points = month_points(today)
    first_quarter = quarter_start(add_months(quarter_start(today), -3 * (COHORT_QUARTERS - 1)))
    cohort_starts = [add_months(first_quarter, 3 * k) for k in range(COHORT_QUARTERS)]
    tally = _Tally(today=today, points=points, year_ago=add_months(today, -12), cohort_starts=cohort_starts)
    for _member_id, joined_on, spans in _member_terms(session, batch_size):
        tally.add_member(joined_on, spans)

    due = tally.window_renewed + tally.window_lapsed
    cohorts = []
    for start in cohort_starts:
        end = add_months(start, 3) - timedelta(days=1)
        data = tally.cohorts[start]
        shares = []
        for k, years in enumerate(COHORT_YEARS):
            # known only when every member of the quarter has reached the anniversary
            known = add_months(end, 12 * years) <= today and data["joined"] > 0
            shares.append(data["current"][k] / data["joined"] if known else None)
        cohorts.append({"quarter": quarter_label(start), "from": start.isoformat(), "to": end.isoformat(),
                        "joined": data["joined"], "current": data["current"], "shares": shares})
    return {
        "version": SNAPSHOT_VERSION,
        "as_of": today.isoformat(),
        "computed_at": utcnow().isoformat(timespec="seconds"),
        "months": [p.isoformat() for p in points],
        "status_series": tally.status_series,
        "renewed": tally.renewed,
        "lapsed": tally.lapsed,
        "renewal": {"from": tally.year_ago.isoformat(), "to": (today - timedelta(days=1)).isoformat(),
                    "renewed": tally.window_renewed, "lapsed": tally.window_lapsed, "due": due,
                    "rate": tally.window_renewed / due if due else None,
                    "churn": tally.window_lapsed / due if due else None},
        "retention": {"since": tally.year_ago.isoformat(), "base": tally.current_year_ago,
                      "retained": tally.retained,
                      "rate": tally.retained / tally.current_year_ago if tally.current_year_ago else None},
        "participation": event_participation(session, today),
        "cohorts": cohorts,
    }


def _store(session: Session, key: str, value: dict[str, Any], now: datetime) -> None:
    setting = session.get(Setting, key)
    if setting is None:
        setting = Setting(key=key)
        session.add(setting)
    setting.value = value
    setting.updated_at = now


def refresh_dashboard(session: Session, today: date, *, now: datetime | None = None) -> dict[str, Any]:
    """Compute today's snapshot and score figures and store them under "dashboard:<today>" and
    "dashboard:<today>:scores" (replacing any there), deleting those older than a week. Called by
    the daily "dashboard-refresh" job. Flushes; the caller commits. Returns the snapshot."""
    now = now or utcnow()
    snapshot = compute_snapshot(session, today)
    _store(session, cache_key(today), snapshot, now)
    _store(session, scores_key(today), score_figures(session), now)
    oldest = cache_key(today - timedelta(days=KEEP_SNAPSHOT_DAYS))
    session.execute(delete(Setting).where(Setting.key.like(f"{CACHE_PREFIX}%"), Setting.key < oldest))
    session.flush()
    return snapshot


def cached_snapshot(session: Session, today: date) -> dict[str, Any] | None:
    """Today's stored snapshot, or None when there is none (or it has an older layout). Reads only:
    a page that finds none computes the figures itself (GET requests write nothing)."""
    setting = session.get(Setting, cache_key(today))
    if setting is None or not isinstance(setting.value, dict) or setting.value.get("version") != SNAPSHOT_VERSION:
        return None
    return setting.value


def latest_snapshot(session: Session, today: date) -> dict[str, Any] | None:
    """The newest stored snapshot of the last KEEP_SNAPSHOT_DAYS days up to today (yesterday's,
    between midnight and the morning's dashboard-refresh run), or None. Reads only."""
    rows = session.scalars(
        select(Setting).where(Setting.key >= cache_key(today - timedelta(days=KEEP_SNAPSHOT_DAYS)),
                              Setting.key <= cache_key(today), Setting.key.not_like("%:scores"))
        .order_by(Setting.key.desc()).limit(KEEP_SNAPSHOT_DAYS + 1))
    for setting in rows:
        if isinstance(setting.value, dict) and setting.value.get("version") == SNAPSHOT_VERSION:
            return setting.value
    return None


# ---------------------------------------------------------------- score figures


SCORING_JOB = "engagement-scoring"


def score_figures(session: Session) -> dict[str, Any]:
    """Engagement bands and median, high-risk count and risk by plan of live members, from
    CurrentScore (JSON-ready). Reads only."""
    live = Member.erased_at.is_(None)
    rows = session.execute(
        select(CurrentScore.engagement_band, func.count()).join(Member, Member.id == CurrentScore.member_id)
        .where(live).group_by(CurrentScore.engagement_band)).all()
    bands = {band: 0 for band in ENGAGEMENT_BANDS}
    for band, n in rows:
        bands[band] = bands.get(band, 0) + int(n)
    scored = sum(bands.values())

    risk_rows = session.execute(
        select(Member.plan_id, Plan.name, CurrentScore.risk_band, func.count())
        .join(Member, Member.id == CurrentScore.member_id).outerjoin(Plan, Plan.id == Member.plan_id)
        .where(live, CurrentScore.risk_band.is_not(None))
        .group_by(Member.plan_id, Plan.name, CurrentScore.risk_band)).all()
    plans: dict[int | None, dict[str, Any]] = {}
    for plan_id, name, band, n in risk_rows:
        row = plans.setdefault(plan_id, {"plan_id": plan_id, "plan": name or "No plan",
                                         **{b: 0 for b in RISK_BANDS}})
        row[band] = row.get(band, 0) + int(n)
    risk_by_plan = sorted(plans.values(), key=lambda r: (-r.get("high", 0), r["plan"]))
    return {"computed_at": utcnow().isoformat(), "scored": scored, "median": _median_engagement(session, scored),
            "bands": bands, "at_risk": sum(r.get("high", 0) for r in risk_by_plan), "risk_by_plan": risk_by_plan}


def _median_engagement(session: Session, n: int) -> float | None:
    """The median engagement score of live members: the middle one or two values, fetched with
    OFFSET (no median aggregate on SQLite)."""
    if n == 0:
        return None
    stmt = (select(CurrentScore.engagement).join(Member, Member.id == CurrentScore.member_id)
            .where(Member.erased_at.is_(None)).order_by(CurrentScore.engagement)
            .offset((n - 1) // 2).limit(2 if n % 2 == 0 else 1))
    values = [float(v) for v in session.scalars(stmt)]
    return sum(values) / len(values)


def last_scoring_at(session: Session) -> datetime | None:
    """When the scoring job last finished successfully (a few rows through its index)."""
    from membership.notifications.models import JobRun
    return session.scalar(select(func.max(JobRun.finished_at))
                          .where(JobRun.job_name == SCORING_JOB, JobRun.status == "ok"))


def scores_key(today: date) -> str:
    return f"{cache_key(today)}:scores"


def cached_scores(session: Session, today: date, *, scored_at: datetime | None) -> dict[str, Any] | None:
    """The newest stored score figures of the last KEEP_SNAPSHOT_DAYS days up to today, or None
    when there are none or the scoring job has finished a run since they were computed
    (`scored_at`, from last_scoring_at: scores change only when it runs, at 02:30, before the
    dashboard job). Reads only."""
    from membership.core.time import as_utc
    setting = session.scalars(
        select(Setting).where(Setting.key >= scores_key(today - timedelta(days=KEEP_SNAPSHOT_DAYS)),
                              Setting.key <= scores_key(today), Setting.key.like("%:scores"))
        .order_by(Setting.key.desc()).limit(1)).first()
    if setting is None or not isinstance(setting.value, dict) or "computed_at" not in setting.value:
        return None
    if scored_at is not None and as_utc(scored_at) > datetime.fromisoformat(setting.value["computed_at"]):
        return None
    return setting.value


# ---------------------------------------------------------------- live figures


@dataclass
class LiveFigures:
    by_status: dict[str, int]
    current: int
    new_this_month: int
    due_to_renew: int
    scored: int
    median_engagement: float | None
    engagement_bands: dict[str, int]
    at_risk: int
    risk_by_plan: list[dict[str, Any]]


def status_counts(session: Session) -> dict[str, int]:
    """Live members by cached status. Counted through the status index for all members, less the
    erased ones (few, found by one scan of a column): filtering erased_at in the grouped query
    reads every row through the index, several times slower at 100,000 members on SQLite."""
    counts = {status: int(n) for status, n in
              session.execute(select(Member.status, func.count()).group_by(Member.status)).all()}
    for status in session.scalars(select(Member.status).where(Member.erased_at.is_not(None))):
        counts[status] -= 1
    return {status: n for status, n in counts.items() if n}


def live_figures(session: Session, today: date, scores: dict[str, Any]) -> LiveFigures:
    """The figures computed per request (aggregates on indexed columns), with the score figures."""
    live = Member.erased_at.is_(None)
    by_status = status_counts(session)
    month_first, month_last = month_bounds(today)
    new = session.scalar(select(func.count()).select_from(Member)
                         .where(live, Member.joined_on.between(month_first, month_last)))
    due = session.scalar(select(func.count()).select_from(Member).where(
        live, Member.status.in_(CURRENT),
        Member.expires_on.between(today, today + timedelta(days=RENEWAL_WINDOW_DAYS))))
    return LiveFigures(by_status=by_status, current=sum(by_status.get(s, 0) for s in CURRENT),
                       new_this_month=int(new or 0), due_to_renew=int(due or 0),
                       scored=scores["scored"], median_engagement=scores["median"],
                       engagement_bands=scores["bands"], at_risk=scores["at_risk"],
                       risk_by_plan=scores["risk_by_plan"])
