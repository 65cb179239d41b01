"""Member list queries: search, filters and sorting in SQL, shared by the list page, CSV export,
the API and benchmarks."""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from datetime import date, timedelta

from sqlalchemy import Select, and_, func, literal_column, or_, select, table
from sqlalchemy.orm import Session

from membership.core.time import local_midnight_utc, local_today, tz
from membership.engagement.models import ENGAGEMENT_BANDS, RISK_BANDS, CurrentScore
from membership.members.models import MEMBER_STATUSES, Member, MemberTag
from membership.members.services import search_key
from membership.members import term_history
from membership.members.term_history import HISTORY_STATUSES, OUTCOMES
from membership.plans.models import Plan

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TAG_SPACE = re.compile(r"\s+")
TAG_MAX = 50
SEGMENT_DEPTH = 3  # a segment saved from a segment's list may name another; no deeper than this


def normalize_tag(raw: str | None) -> str:
    """A tag as stored: control characters dropped, spaces collapsed, casefolded, at most 50 characters."""
    text = _TAG_SPACE.sub(" ", _CONTROL.sub(" ", raw or "")).strip().casefold()
    return text[:TAG_MAX].strip()

SORTS = {
    "name": (Member.last_name, Member.first_name, Member.id),
    "number": (Member.member_number,),
    "email": (Member.email_normalized, Member.id),
    "status": (Member.status, Member.last_name, Member.id),
    "plan": (Plan.name, Member.last_name, Member.id),
    "joined": (Member.joined_on, Member.id),
    "expires": (Member.expires_on, Member.id),
    "engagement": (CurrentScore.engagement, Member.id),  # through the outer join of current_score
}


@dataclass
class MemberFilter:
    """What staff can narrow the member list by. Built from query-string arguments."""
    q: str = ""
    status: list[str] = field(default_factory=list)
    plan_id: int | None = None
    organization_id: int | None = None
    joined_from: date | None = None
    joined_to: date | None = None
    expires_from: date | None = None
    expires_to: date | None = None
    # engagement (issue 6): bands and last activity from current_score, staff tags, a saved segment
    engagement: list[str] = field(default_factory=list)
    risk: list[str] = field(default_factory=list)
    active_before: date | None = None
    active_after: date | None = None
    tag: list[str] = field(default_factory=list)
    segment: int | None = None
    # the dashboard's figures (issue 6), from the history of terms (see members.term_history):
    # "status:YYYY-MM-DD" entries (current on that day...), a term outcome with the dates its term
    # ended between, current N years after joining, attended an event that started between dates
    was: list[str] = field(default_factory=list)
    outcome: str = ""
    ended_from: date | None = None
    ended_to: date | None = None
    as_of: date | None = None  # the day outcomes are judged on (a dashboard snapshot's day; default today)
    current_years: int | None = None
    attended_from: date | None = None
    attended_to: date | None = None
    sort: str = "name"
    errors: dict[str, str] = field(default_factory=dict)
    # the saved segment's own filter, attached by resolve_segment (not a URL argument)
    segment_filter: "MemberFilter | None" = field(default=None, repr=False, compare=False)

    @classmethod
    def from_args(cls, args) -> "MemberFilter":
        """Parse request args leniently: a bad value is reported in `errors` and ignored, never a 500."""
        f = cls()
        f.q = _CONTROL.sub("", args.get("q") or "").strip()[:200]
        f.status = [s for s in args.getlist("status") if s in MEMBER_STATUSES]
        f.engagement = [b for b in dict.fromkeys(args.getlist("engagement")) if b in ENGAGEMENT_BANDS]
        f.risk = [b for b in dict.fromkeys(args.getlist("risk")) if b in RISK_BANDS]
        f.tag = [t for t in dict.fromkeys(normalize_tag(t) for t in args.getlist("tag")) if t][:10]
        for name in ("plan_id", "organization_id", "segment"):
            raw = (args.get(name) or "").strip()
            if raw:
                if re.fullmatch(r"[0-9]{1,9}", raw):
                    setattr(f, name, int(raw))
                else:
                    f.errors[name] = "Not a valid choice."
        for raw in dict.fromkeys(args.getlist("was")):
            status, _, day = (raw or "").partition(":")
            parsed, problem = _parse_day(day)
            if status.strip() not in HISTORY_STATUSES or parsed is None or problem:
                f.errors["was"] = "Use a status and a date like current:2026-01-31."
                continue
            if len(f.was) < 4:
                f.was.append(f"{status.strip()}:{parsed.isoformat()}")
        outcome = (args.get("outcome") or "").strip()
        if outcome in OUTCOMES:
            f.outcome = outcome
        elif outcome:
            f.errors["outcome"] = "Not a valid choice."
        years = (args.get("current_years") or "").strip()
        if re.fullmatch(r"[1-9]|10", years):
            f.current_years = int(years)
        elif years:
            f.errors["current_years"] = "Use a number of years from 1 to 10."
        for name in ("joined_from", "joined_to", "expires_from", "expires_to", "active_before", "active_after",
                     "ended_from", "ended_to", "as_of", "attended_from", "attended_to"):
            day, problem = _parse_day(args.get(name))
            if problem:
                f.errors[name] = problem
            elif day is not None:
                setattr(f, name, day)
        sort = args.get("sort") or "name"
        f.sort = sort if sort.lstrip("-") in SORTS else "name"
        return f

    def as_args(self) -> dict:
        """The filter as URL arguments (for pagination, sorting and export links)."""
        out = {}
        for fl in fields(self):
            if fl.name in ("errors", "segment_filter"):
                continue
            value = getattr(self, fl.name)
            if value in (None, "", []):
                continue
            out[fl.name] = value.isoformat() if isinstance(value, date) else value
        return out

    @property
    def is_empty(self) -> bool:
        return not any(k for k in self.as_args() if k != "sort")


def _parse_day(raw: str | None) -> tuple[date | None, str | None]:
    """(the day, None), (None, None) for nothing given, or (None, what is wrong). Years 1 and 9999
    would overflow when moved to UTC or by a day, so a filter takes years 1000 to 2999."""
    text = (raw or "").strip()
    if not text:
        return None, None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        return None, "Use a date like 2026-01-31."
    if not date(1000, 1, 1) <= day <= date(2999, 12, 31):
        return None, "Use a date between the years 1000 and 2999."
    return day, None


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _contains(pattern_text: str, dialect: str):
    """search_text contains `pattern_text`, through the backend's trigram index (search_index)."""
    escaped = _like_escape(pattern_text)
    kwargs = {"escape": "\\"} if escaped != pattern_text else {}
    if dialect == "sqlite":
        fts = literal_column("member_search.search_text")
        return Member.id.in_(select(literal_column("rowid")).select_from(table("member_search"))
                             .where(fts.like(f"%{escaped}%", **kwargs)))
    return Member.search_text.like(f"%{escaped}%", **kwargs)


def search_condition(q: str, dialect: str | None = None):
    """Partial, case-insensitive match on names, email, member number and phone, in any script.

    Compares against Member.search_text (NFC, casefolded in Python, since SQLite's lower() folds
    ASCII only). Several words must all match. A query of digits also matches phone digits."""
    if dialect is None:
        from membership.extensions import db
        dialect = db.engine.dialect.name
    conditions = [_contains(word, dialect) for word in search_key(q).split()]
    digits = re.sub(r"\D", "", q)
    if len(digits) >= 4 and len(digits) >= len(re.sub(r"\s", "", q)) - 2:
        # "+880 1712-345678" or "01712 345 678": compare digits only.
        conditions = [or_(and_(*conditions), _contains(digits, dialect))]
    return and_(*conditions)


def member_query(f: MemberFilter, *, include_erased: bool = False) -> Select:
    """SELECT of Member rows matching the filter, sorted. Erased members are left out unless
    `include_erased` (a campaign shows how many it leaves out because they were erased)."""
    stmt = select(Member) if include_erased else select(Member).where(Member.erased_at.is_(None))
    if f.q:
        stmt = stmt.where(search_condition(f.q))
    if f.status:
        stmt = stmt.where(Member.status.in_(f.status))
    if f.plan_id:
        stmt = stmt.where(Member.plan_id == f.plan_id)
    if f.organization_id:
        stmt = stmt.where(Member.organization_id == f.organization_id)
    if f.joined_from:
        stmt = stmt.where(Member.joined_on >= f.joined_from)
    if f.joined_to:
        stmt = stmt.where(Member.joined_on <= f.joined_to)
    if f.expires_from:
        stmt = stmt.where(Member.expires_on >= f.expires_from)
    if f.expires_to:
        stmt = stmt.where(Member.expires_on <= f.expires_to)
    stmt = _engagement_conditions(stmt, f)
    stmt = _history_conditions(stmt, f)
    for tag in f.tag:
        # each tag through the member_tag primary key (member_id, tag)
        stmt = stmt.where(select(MemberTag.member_id).where(MemberTag.member_id == Member.id,
                                                            MemberTag.tag == tag).exists())
    if f.segment_filter is not None:
        inner = member_query(f.segment_filter, include_erased=include_erased).order_by(None).with_only_columns(Member.id)
        stmt = stmt.where(Member.id.in_(inner))
    columns = list(SORTS[f.sort.lstrip("-")])
    if f.q:
        # A search matches few members; find them through the search index, then sort them.
        # Ordered by the bare column, PostgreSQL would rather walk the column's index until it has
        # a page of matches, which takes the whole table when the matches sort last (Bengali
        # surnames after the Latin ones: 130 ms instead of 5 at 100,000 members). coalesce(x, x)
        # sorts the same but matches no index.
        columns[0] = func.coalesce(columns[0], columns[0])
    if f.sort.lstrip("-") == "plan":
        stmt = stmt.outerjoin(Plan, Plan.id == Member.plan_id)
    if f.sort.lstrip("-") == "engagement":
        # members not scored yet last, either way (PostgreSQL would put them first descending)
        stmt = stmt.order_by(CurrentScore.engagement.is_(None))
    if f.sort.startswith("-"):
        stmt = stmt.order_by(*(c.desc() for c in columns))
    else:
        stmt = stmt.order_by(*columns)
    return stmt


def _history_conditions(stmt: Select, f: MemberFilter) -> Select:
    """The dashboard's figures: statuses on past days, term outcomes, cohorts and event attendance
    (see members.term_history; events by their local start day)."""
    for entry in f.was:
        status, _, day = entry.partition(":")
        stmt = stmt.where(term_history.status_on(status, date.fromisoformat(day)))
    if f.outcome:
        stmt = stmt.where(term_history.term_outcome(f.outcome, f.ended_from, f.ended_to, f.as_of or local_today()))
    if f.current_years:
        stmt = stmt.where(term_history.current_years_after_joining(f.current_years))
    if f.attended_from or f.attended_to:
        from membership.events.models import Event, EventRegistration
        zone = tz()
        attended = (select(EventRegistration.member_id).join(Event, Event.id == EventRegistration.event_id)
                    .where(EventRegistration.status == "attended", EventRegistration.member_id.is_not(None)))
        if f.attended_from:
            attended = attended.where(Event.starts_at >= local_midnight_utc(f.attended_from, zone))
        if f.attended_to:
            attended = attended.where(Event.starts_at < local_midnight_utc(f.attended_to + timedelta(days=1), zone))
        stmt = stmt.where(Member.id.in_(attended))
    return stmt


def _engagement_conditions(stmt: Select, f: MemberFilter) -> Select:
    """Bands and last activity, through one outer join of current_score on its primary key.
    "Last active before D" includes members never active (or not yet scored)."""
    if not (f.engagement or f.risk or f.active_before or f.active_after or f.sort.lstrip("-") == "engagement"):
        return stmt
    stmt = stmt.outerjoin(CurrentScore, CurrentScore.member_id == Member.id)
    if f.engagement:
        stmt = stmt.where(CurrentScore.engagement_band.in_(f.engagement))
    if f.risk:
        stmt = stmt.where(CurrentScore.risk_band.in_(f.risk))
    if f.active_before or f.active_after:
        zone = tz()
        if f.active_before:
            stmt = stmt.where(or_(CurrentScore.last_activity_at.is_(None),
                                  CurrentScore.last_activity_at < local_midnight_utc(f.active_before, zone)))
        if f.active_after:
            stmt = stmt.where(CurrentScore.last_activity_at >= local_midnight_utc(f.active_after, zone))
    return stmt


def resolve_segment(session: Session, f: MemberFilter, *, depth: int = 0) -> MemberFilter:
    """Attach the saved segment `f.segment` names (its own filter, combined with f's with AND), or
    report it in f.errors when it does not exist. Returns f."""
    if not f.segment:
        return f
    from membership.engagement.models import Segment
    from werkzeug.datastructures import MultiDict

    row = session.get(Segment, f.segment)
    if row is None or depth >= SEGMENT_DEPTH:
        f.errors["segment"] = "This saved segment does not exist (any more)."
        f.segment = None
        return f
    inner = MemberFilter.from_args(MultiDict(_as_pairs(row.filters or {})))
    f.segment_filter = resolve_segment(session, inner, depth=depth + 1)
    return f


def _as_pairs(args: dict) -> list[tuple[str, str]]:
    pairs = []
    for key, value in args.items():
        for v in (value if isinstance(value, list) else [value]):
            pairs.append((key, str(v)))
    return pairs


def count_by_status(session: Session) -> dict[str, int]:
    from sqlalchemy import func
    rows = session.execute(select(Member.status, func.count()).where(Member.erased_at.is_(None))
                           .group_by(Member.status)).all()
    return {status: n for status, n in rows}
