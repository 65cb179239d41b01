"""Member list queries: search, filters and sorting in SQL, shared by the list page, CSV export,
the API and benchmarks."""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from datetime import date

from sqlalchemy import Select, and_, func, literal_column, or_, select, table
from sqlalchemy.orm import Session

from membership.members.models import MEMBER_STATUSES, Member
from membership.members.services import search_key
from membership.plans.models import Plan

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

SORTS = {
    "name": (Member.last_name, Member.first_name, Member.id),
    "number": (Member.member_number,),
    "email": (Member.email_normalized, Member.id),
    "status": (Member.status, Member.last_name, Member.id),
    "plan": (Plan.name, Member.last_name, Member.id),
    "joined": (Member.joined_on, Member.id),
    "expires": (Member.expires_on, Member.id),
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
    sort: str = "name"
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_args(cls, args) -> "MemberFilter":
        """Parse request args leniently: a bad value is reported in `errors` and ignored, never a 500."""
        f = cls()
        f.q = _CONTROL.sub("", args.get("q") or "").strip()[:200]
        f.status = [s for s in args.getlist("status") if s in MEMBER_STATUSES]
        for name in ("plan_id", "organization_id"):
            raw = (args.get(name) or "").strip()
            if raw:
                if re.fullmatch(r"[0-9]{1,9}", raw):
                    setattr(f, name, int(raw))
                else:
                    f.errors[name] = "Not a valid choice."
        for name in ("joined_from", "joined_to", "expires_from", "expires_to"):
            raw = (args.get(name) or "").strip()
            if raw:
                try:
                    setattr(f, name, date.fromisoformat(raw))
                except ValueError:
                    f.errors[name] = "Use a date like 2026-01-31."
        sort = args.get("sort") or "name"
        f.sort = sort if sort.lstrip("-") in SORTS else "name"
        return f

    def as_args(self) -> dict:
        """The filter as URL arguments (for pagination, sorting and export links)."""
        out = {}
        for fl in fields(self):
            if fl.name == "errors":
                continue
            value = getattr(self, fl.name)
            if value in (None, "", []):
                continue
            out[fl.name] = value.isoformat() if isinstance(value, date) else value
        return out

    @property
    def is_empty(self) -> bool:
        return not any(k for k in self.as_args() if k != "sort")


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


def member_query(f: MemberFilter) -> Select:
    """SELECT of Member rows matching the filter, sorted."""
    stmt = select(Member).where(Member.erased_at.is_(None))
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
    if f.sort.startswith("-"):
        stmt = stmt.order_by(*(c.desc() for c in columns))
    else:
        stmt = stmt.order_by(*columns)
    return stmt


def count_by_status(session: Session) -> dict[str, int]:
    from sqlalchemy import func
    rows = session.execute(select(Member.status, func.count()).where(Member.erased_at.is_(None))
                           .group_by(Member.status)).all()
    return {status: n for status, n in rows}
