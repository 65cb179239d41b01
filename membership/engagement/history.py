"""Import an association's history (members, past terms, activities) from three CSV files, so
that the churn score can be fitted and back-tested on real data.

    members.csv      external_id, first_name, last_name, email (may be empty), joined_on
    memberships.csv  external_id, plan_code, starts_on, ends_on, paid_on, amount
    activities.csv   external_id, occurred_at, kind, amount, detail [, activity_id]
    outcomes.csv     external_id, churned (1/0, yes/no, true/false), as_of   (optional)

Members are matched by external_id (missing ones are created, existing ones are left as they
are). Terms are keyed by (member, starts_on). Activities lose nothing: with an `activity_id`
column, it is the key (per member); without one, the whole row is (member, moment, kind, amount,
detail) and identical rows in one file are all kept - the second identical row is the second
occurrence, not a duplicate (two same-day purchases of the same amount are two purchases). The
key is stored in Activity.dedupe_key, so a re-run skips exactly the rows already imported.
Outcomes are keyed by (member, as_of); a changed outcome replaces the stored one.
Rows already there are skipped, so the import can be re-run after fixing the rows it refused. Every bad row is reported
with its file, row number (the header is row 1) and column, and left out; the good rows are
imported. Unknown plan codes are errors unless `create_plans` (a free rolling one-year plan with
30 days' grace, inactive, named after its code). Inserts go in batches (bounded memory); the
caller commits (or rolls back for a dry run).
"""
from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Callable, Iterator
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from membership.core.errors import DomainError
from membership.core.services import ACTIVITY_KINDS
from membership.core.models import Activity
from membership.engagement.models import ChurnOutcome
from membership.members.models import Member
from membership.members.services import create_member, validate_member
from membership.plans.models import Membership, Plan
from membership.plans.status import holder_status, status_on

FILES = ("members.csv", "memberships.csv", "activities.csv", "outcomes.csv")
COLUMNS = {
    "members.csv": ("external_id", "first_name", "last_name", "email", "joined_on"),
    "memberships.csv": ("external_id", "plan_code", "starts_on", "ends_on", "paid_on", "amount"),
    "activities.csv": ("external_id", "occurred_at", "kind", "amount", "detail", "activity_id"),
    "outcomes.csv": ("external_id", "churned", "as_of"),
}
REQUIRED = {
    "members.csv": ("external_id", "first_name", "joined_on"),
    "memberships.csv": ("external_id", "plan_code", "starts_on"),
    "activities.csv": ("external_id", "occurred_at", "kind"),
    "outcomes.csv": ("external_id", "churned", "as_of"),
}
BATCH = 1000
MAX_ISSUES = 5000


class HistoryFileError(DomainError):
    """A file cannot be read at all (missing, no header, a required column missing)."""


@dataclass(frozen=True)
class HistoryIssue:
    file: str
    row: int
    column: str
    message: str

    def __str__(self) -> str:
        return f"{self.file} row {self.row}" + (f", {self.column}" if self.column else "") + f": {self.message}"


@dataclass
class HistoryReport:
    dry_run: bool = False
    members_created: int = 0
    members_matched: int = 0
    terms: int = 0
    terms_skipped: int = 0
    activities: int = 0
    activities_skipped: int = 0
    outcomes: int = 0
    outcomes_skipped: int = 0
    read: dict[str, int] = field(default_factory=lambda: {f: 0 for f in FILES})
    refused: dict[str, int] = field(default_factory=lambda: {f: 0 for f in FILES})
    plans_created: list[str] = field(default_factory=list)
    error_rows: int = 0
    issues: list[HistoryIssue] = field(default_factory=list)
    issue_count: int = 0

    def add(self, issue: HistoryIssue) -> None:
        self.issue_count += 1
        if len(self.issues) < MAX_ISSUES:
            self.issues.append(issue)

    def summary(self) -> str:
        verb = "Would import" if self.dry_run else "Imported"
        text = (f"{verb}: {self.members_created:,} new members ({self.members_matched:,} already there), "
                f"{self.terms:,} terms ({self.terms_skipped:,} already there), {self.activities:,} activities ({self.activities_skipped:,} already there)")
        if self.read["outcomes.csv"]:
            text += f", {self.outcomes:,} outcomes ({self.outcomes_skipped:,} already there)"
        if self.plans_created:
            text += f"; {'would create' if self.dry_run else 'created'} plans {', '.join(self.plans_created)}"
        text += "."
        if self.error_rows:
            text += f" {self.error_rows:,} rows with errors were left out."
        return text

    def table(self) -> list[str]:
        """Per file: rows read, imported, skipped as already there, refused (read = the sum)."""
        done = {"members.csv": (self.members_created, self.members_matched),
                "memberships.csv": (self.terms, self.terms_skipped),
                "activities.csv": (self.activities, self.activities_skipped),
                "outcomes.csv": (self.outcomes, self.outcomes_skipped)}
        lines = [f"{'file':16} {'read':>10} {'imported':>10} {'already there':>14} {'refused':>8}"]
        for name in FILES:
            if not self.read[name]:
                continue
            imported, skipped = done[name]
            lines.append(f"{name:16} {self.read[name]:>10,} {imported:>10,} {skipped:>14,} {self.refused[name]:>8,}")
        return lines


class _RowError(Exception):
    def __init__(self, column: str, message: str):
        super().__init__(message)
        self.column, self.message = column, message


def count_rows(directory: Path) -> int:
    total = 0
    for name in FILES:
        path = directory / name
        if path.exists():
            with open(path, encoding="utf-8-sig", newline="") as fh:
                total += max(0, sum(1 for _ in csv.reader(fh)) - 1)
    return total


def _rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """(row number as a spreadsheet shows it, {column: stripped text}) for each non-empty row."""
    name = path.name
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise HistoryFileError(f"{name}: the file is empty.")
        cols = [h.strip().lower().replace(" ", "_") for h in header]
        missing = [c for c in REQUIRED[name] if c not in cols]
        if missing:
            raise HistoryFileError(f"{name}: the header lacks the column{'s' if len(missing) > 1 else ''} "
                                   f"{', '.join(missing)}.")
        for n, cells in enumerate(reader, start=2):
            if not any(c.strip() for c in cells):
                continue
            yield n, {c: (cells[i].strip() if i < len(cells) else "") for i, c in enumerate(cols)}


def _date(row: dict[str, str], column: str, *, required: bool = False) -> date | None:
    value = row.get(column, "")
    if not value:
        if required:
            raise _RowError(column, "is required")
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _RowError(column, f"{value!r} is not a date (use YYYY-MM-DD)") from None


def _moment(row: dict[str, str], column: str, zone: ZoneInfo) -> datetime:
    value = row.get(column, "")
    if not value:
        raise _RowError(column, "is required")
    try:
        if len(value) == 10:
            moment = datetime.combine(date.fromisoformat(value), time(12, 0), zone)  # a day: its local noon
        else:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=zone)
    except ValueError:
        raise _RowError(column, f"{value!r} is not a date or date-time (use YYYY-MM-DD or YYYY-MM-DD HH:MM)") from None
    return moment.astimezone(ZoneInfo("UTC"))


def _amount(row: dict[str, str], column: str) -> int | None:
    value = row.get(column, "").replace(",", "")
    if not value:
        return None
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise _RowError(column, f"{value!r} is not an amount") from None
    if amount < 0 or not amount.is_finite():
        raise _RowError(column, "cannot be negative")
    return int((amount * 100).to_integral_value())


def _flag(row: dict[str, str], column: str) -> bool:
    value = row.get(column, "").lower()
    if value in ("1", "yes", "true", "y", "churned"):
        return True
    if value in ("0", "no", "false", "n", "renewed", "stayed"):
        return False
    raise _RowError(column, f"{value!r} is not 1 or 0 (yes/no, true/false)" if value else "is required")


def activity_key(external_id: str, activity_id: str, kind: str, moment: datetime, amount: int | None, note: str,
                 occurrences: dict[str, int]) -> str:
    """The dedupe key of an imported activity: its activity_id (per member) when given, else the
    whole row plus its occurrence number in the file (the first identical row is #1, the next #2),
    so identical rows are all kept and a re-run of the same file matches each one to itself."""
    if activity_id:
        raw = f"id|{external_id}|{activity_id}"
    else:
        row = f"row|{external_id}|{moment.isoformat()}|{kind}|{'' if amount is None else amount}|{note}"
        occurrences[row] = occurrences.get(row, 0) + 1
        raw = f"{row}|{occurrences[row]}"
    return "import:" + hashlib.sha256(raw.encode("utf-8")).hexdigest()[:40]


def import_history(session: Session, directory: Path, *, create_plans: bool, dry_run: bool, today: date,
                   now: datetime, zone: ZoneInfo, currency: str, region: str,
                   progress: Callable[[int], None] | None = None) -> HistoryReport:
    """Import the files found in `directory` (members.csv is optional when the members exist).
    Raises HistoryFileError when a file cannot be read; flushes, the caller commits."""
    directory = Path(directory)
    if not any((directory / f).exists() for f in FILES):
        raise HistoryFileError(f"{directory}: none of {', '.join(FILES)} is there.")
    report = HistoryReport(dry_run=dry_run)
    tick = progress or (lambda n: None)
    bad_rows: set[tuple[str, int]] = set()

    def problem(file: str, n: int, column: str, message: str) -> None:
        report.add(HistoryIssue(file, n, column, message))
        if (file, n) not in bad_rows:
            report.refused[file] += 1
        bad_rows.add((file, n))

    ext_ids: dict[str, int] = {}  # external_id -> member id, for the members this import touches

    def lookup(keys: set[str]) -> None:
        missing = [k for k in keys if k not in ext_ids]
        for i in range(0, len(missing), 900):
            chunk = missing[i:i + 900]
            ext_ids.update(dict(session.execute(select(Member.external_id, Member.id)
                                                .where(Member.external_id.in_(chunk))).all()))

    # ---- members
    path = directory / "members.csv"
    if path.exists():
        seen: set[str] = set()
        batch: list[tuple[int, dict[str, str]]] = []

        def flush_members() -> None:
            lookup({r["external_id"] for _, r in batch})
            for n, r in batch:
                ext = r["external_id"]
                if ext in ext_ids:
                    report.members_matched += 1
                    continue
                try:
                    joined = _date(r, "joined_on", required=True)
                    data = validate_member({"first_name": r.get("first_name"), "last_name": r.get("last_name"),
                                            "email": r.get("email") or None, "joined_on": joined,
                                            "external_id": ext}, region=region, today=today)
                    member = create_member(session, data, actor=None, now=now, audit=False)
                except _RowError as e:
                    problem("members.csv", n, e.column, e.message)
                    continue
                except DomainError as e:
                    problem("members.csv", n, e.field or "", e.message)
                    continue
                ext_ids[ext] = member.id
                report.members_created += 1
            session.flush()
            session.expunge_all()
            tick(len(batch))
            batch.clear()

        for n, r in _rows(path):
            report.read["members.csv"] += 1
            ext = r.get("external_id", "")
            if not ext:
                problem("members.csv", n, "external_id", "is required")
                continue
            if len(ext) > 64:
                problem("members.csv", n, "external_id", "is longer than 64 characters")
                continue
            if ext in seen:
                problem("members.csv", n, "external_id", f"{ext!r} appears twice in the file")
                continue
            seen.add(ext)
            batch.append((n, r))
            if len(batch) >= BATCH:
                flush_members()
        if batch:
            flush_members()

    # ---- memberships
    plans = {code: (pid, grace, cur) for code, pid, grace, cur in
             session.execute(select(Plan.code, Plan.id, Plan.grace_days, Plan.currency))}
    touched: set[int] = set()
    path = directory / "memberships.csv"
    if path.exists():
        batch = []

        def flush_terms() -> None:
            lookup({r["external_id"] for _, r in batch})
            ids = {ext_ids[r["external_id"]] for _, r in batch if r["external_id"] in ext_ids}
            existing = set(session.execute(select(Membership.member_id, Membership.starts_on)
                                           .where(Membership.member_id.in_(ids))).all()) if ids else set()
            rows = []
            for n, r in batch:
                try:
                    member_id = ext_ids.get(r["external_id"])
                    if member_id is None:
                        raise _RowError("external_id", f"no member with external id {r['external_id']!r} "
                                                       "(not in members.csv nor in Samiti)")
                    code = r.get("plan_code", "")
                    if not code:
                        raise _RowError("plan_code", "is required")
                    if code not in plans:
                        if not create_plans:
                            raise _RowError("plan_code", f"unknown plan {code!r} (use --create-plans to create it)")
                        if len(code) > 32:
                            raise _RowError("plan_code", "is longer than 32 characters")
                        plan = Plan(code=code, name=code, fee_minor=0, currency=currency, period_kind="rolling",
                                    period_months=12, grace_days=30, joinable_online=False, is_active=False,
                                    created_at=now, description="Created by the history import.")
                        session.add(plan)
                        session.flush()
                        plans[code] = (plan.id, plan.grace_days, plan.currency)
                        report.plans_created.append(code)
                    starts = _date(r, "starts_on", required=True)
                    ends = _date(r, "ends_on")
                    if ends is not None and ends < starts:
                        raise _RowError("ends_on", "is before starts_on")
                    paid = _date(r, "paid_on")
                    fee = _amount(r, "amount")
                except _RowError as e:
                    problem("memberships.csv", n, e.column, e.message)
                    continue
                if (member_id, starts) in existing:
                    report.terms_skipped += 1
                    continue
                existing.add((member_id, starts))
                plan_id, grace, cur = plans[code]
                term = Membership(member_id=member_id, plan_id=plan_id, starts_on=starts, ends_on=ends,
                                  grace_days=grace, fee_minor=fee or 0, currency=cur, source="import",
                                  awaiting_payment=False, awaiting_approval=False,
                                  paid_on=paid, created_at=now)
                rows.append({"member_id": member_id, "plan_id": plan_id, "starts_on": starts, "ends_on": ends,
                             "grace_days": grace, "fee_minor": fee or 0, "currency": cur, "source": "import",
                             "awaiting_payment": False, "awaiting_approval": False, "paid_on": paid,
                             "status": status_on(term, today), "created_at": now})
                touched.add(member_id)
            if rows:
                session.execute(insert(Membership.__table__), rows)
            report.terms += len(rows)
            tick(len(batch))
            batch.clear()

        for n, r in _rows(path):
            report.read["memberships.csv"] += 1
            if not r.get("external_id"):
                problem("memberships.csv", n, "external_id", "is required")
                continue
            batch.append((n, r))
            if len(batch) >= BATCH:
                flush_terms()
        if batch:
            flush_terms()
    _refresh_cached(session, sorted(touched), today=today)

    # ---- activities
    path = directory / "activities.csv"
    if path.exists():
        batch = []
        occurrences: dict[str, int] = {}  # whole-row key -> how many times the file had it so far

        def flush_activities() -> None:
            lookup({r["external_id"] for _, r in batch})
            rows = []
            for n, r in batch:
                try:
                    member_id = ext_ids.get(r["external_id"])
                    if member_id is None:
                        raise _RowError("external_id", f"no member with external id {r['external_id']!r}")
                    kind = r.get("kind", "")
                    if kind not in ACTIVITY_KINDS:
                        raise _RowError("kind", f"unknown kind {kind!r} (one of {', '.join(sorted(ACTIVITY_KINDS))})")
                    moment = _moment(r, "occurred_at", zone)
                    if moment.astimezone(zone).date() > today:
                        raise _RowError("occurred_at", "is in the future")
                    amount = _amount(r, "amount")
                except _RowError as e:
                    problem("activities.csv", n, e.column, e.message)
                    continue
                note = r.get("detail", "")[:500]
                key = activity_key(r["external_id"], r.get("activity_id", ""), kind, moment, amount, note, occurrences)
                detail: dict[str, Any] = {"imported": True}
                if amount is not None:
                    detail["amount_minor"] = amount
                if note:
                    detail["note"] = note
                if r.get("activity_id"):
                    detail["activity_id"] = r["activity_id"][:64]
                rows.append({"member_id": member_id, "kind": kind, "occurred_at": moment,
                             "source_type": "import", "detail": detail, "dedupe_key": key})
            # rows already there (a re-run, or an overlapping file) have their key stored already
            existing: set[str] = set()
            keys = [row["dedupe_key"] for row in rows]
            for i in range(0, len(keys), 900):
                existing.update(session.scalars(select(Activity.dedupe_key)
                                                .where(Activity.dedupe_key.in_(keys[i:i + 900]))))
            # rows imported before keys were stored: each one matches one row of the file with the
            # same member, kind and moment (a re-run of an old import does not double them)
            legacy: dict[tuple[int, str, datetime], int] = {}
            ids = sorted({row["member_id"] for row in rows})
            a = Activity.__table__
            for i in range(0, len(ids), 900):
                for mid, kind, at in session.execute(
                        select(a.c.member_id, a.c.kind, Activity.occurred_at)
                        .where(a.c.member_id.in_(ids[i:i + 900]), a.c.source_type == "import",
                               a.c.dedupe_key.is_(None))):
                    legacy[(mid, kind, at)] = legacy.get((mid, kind, at), 0) + 1
            fresh, seen_keys = [], set()
            for row in rows:
                if row["dedupe_key"] in existing or row["dedupe_key"] in seen_keys:
                    report.activities_skipped += 1
                    continue
                old = (row["member_id"], row["kind"], row["occurred_at"])
                if legacy.get(old):
                    legacy[old] -= 1
                    report.activities_skipped += 1
                    continue
                seen_keys.add(row["dedupe_key"])
                fresh.append(row)
            if fresh:
                session.execute(insert(Activity.__table__), fresh)
            report.activities += len(fresh)
            tick(len(batch))
            batch.clear()

        for n, r in _rows(path):
            report.read["activities.csv"] += 1
            if not r.get("external_id"):
                problem("activities.csv", n, "external_id", "is required")
                continue
            batch.append((n, r))
            if len(batch) >= 5 * BATCH:
                flush_activities()
        if batch:
            flush_activities()

    # ---- outcomes
    path = directory / "outcomes.csv"
    if path.exists():
        batch = []

        def flush_outcomes() -> None:
            lookup({r["external_id"] for _, r in batch})
            parsed = []
            for n, r in batch:
                try:
                    member_id = ext_ids.get(r["external_id"])
                    if member_id is None:
                        raise _RowError("external_id", f"no member with external id {r['external_id']!r}")
                    churned = _flag(r, "churned")
                    as_of = _date(r, "as_of", required=True)
                    if as_of > today:
                        raise _RowError("as_of", "is in the future")
                except _RowError as e:
                    problem("outcomes.csv", n, e.column, e.message)
                    continue
                parsed.append((n, member_id, as_of, churned))
            ids = sorted({p[1] for p in parsed})
            existing: dict[tuple[int, date], ChurnOutcome] = {}
            for i in range(0, len(ids), 900):
                for o in session.scalars(select(ChurnOutcome).where(ChurnOutcome.member_id.in_(ids[i:i + 900]))):
                    existing[(o.member_id, o.as_of)] = o
            for n, member_id, as_of, churned in parsed:
                old = existing.get((member_id, as_of))
                if old is not None and old.churned == churned:
                    report.outcomes_skipped += 1
                    continue
                if old is not None:  # a corrected outcome replaces the one stored
                    old.churned = churned
                else:
                    old = ChurnOutcome(member_id=member_id, as_of=as_of, churned=churned, created_at=now)
                    session.add(old)
                    existing[(member_id, as_of)] = old
                report.outcomes += 1
            session.flush()
            tick(len(batch))
            batch.clear()

        for n, r in _rows(path):
            report.read["outcomes.csv"] += 1
            if not r.get("external_id"):
                problem("outcomes.csv", n, "external_id", "is required")
                continue
            batch.append((n, r))
            if len(batch) >= BATCH:
                flush_outcomes()
        if batch:
            flush_outcomes()
    report.error_rows = len(bad_rows)
    session.flush()
    return report


def _refresh_cached(session: Session, member_ids: list[int], *, today: date) -> None:
    """Recompute the cached status, plan and dates of members and their terms after an import,
    in batches, without writing status-change activities (the history is not news)."""
    for i in range(0, len(member_ids), BATCH):
        chunk = member_ids[i:i + BATCH]
        terms = session.scalars(select(Membership).where(Membership.member_id.in_(chunk))).all()
        by_member: dict[int, list[Membership]] = {}
        for t in terms:
            t.status = status_on(t, today)
            by_member.setdefault(t.member_id, []).append(t)
        for mid, own in by_member.items():
            hs = holder_status(own, today)
            session.execute(update(Member).where(Member.id == mid).values(
                status=hs.status, plan_id=hs.term.plan_id if hs.term else None,
                term_starts_on=hs.term.starts_on if hs.term else None, expires_on=hs.expires_on))
        session.flush()
        session.expunge_all()
