"""CSV export and import of the plan catalogue, so members move between instances exactly.

A member export names each member's plan by its code; the plans file carries what the code means
(fee, period, grace, renewal window, online joining...). Import the plans first and the members'
terms get the same dates and statuses as in the instance they came from.

===================  ======================================================================
column               meaning
===================  ======================================================================
code                 The plan's code (letters, digits, - and _): what members.csv names.
name                 The plan's name.
description          What the plan offers; may span several lines.
fee                  The fee as a decimal (1500.00); 0.00 is a free plan.
currency             ISO 4217 code of the fee; must be the association's CURRENCY.
period_kind          rolling, fixed or lifetime.
period_months        Length of a term in months (empty for lifetime).
period_start_month   fixed: the month (1-12) the periods begin.
period_start_day     fixed: the day of that month.
rollover_month       fixed: a join on or after this day also covers the next period (month).
rollover_day         ... and day (both empty: no rollover).
grace_days           Days after the end a member stays in grace before lapsing.
renewal_opens_days   Members may renew online this many days before the end (empty: any time).
backdate_after_lapse yes/no: after a lapse the new term starts the day after the old end.
joinable_online      yes/no: offered on the public join page.
needs_approval       yes/no: an online join waits for staff approval.
is_organizational    yes/no: held by an organisation for its contacts.
max_contacts         Organisational plans: most contacts (empty: no limit).
sort_order           Order on the join page and in lists.
active               yes/no: offered for joins and renewals (no: retired).
===================  ======================================================================

Import: a plan whose code is new is created (and retired when `active` is no); a plan whose code
exists is left as it is, with a warning naming the settings that differ. Rows are checked by
plans.catalog.validate_plan and reported like member rows (the header is row 1).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session

from membership.core.errors import ValidationError
from membership.members.csvio import (
    ImportFileError, Issue, _cell, _detect_delimiter, _detect_encoding, _header_name, _records, iter_csv_text,
    unneutralise)
from membership.plans import catalog
from membership.plans.models import Plan

PLAN_COLUMNS: tuple[str, ...] = (
    "code", "name", "description", "fee", "currency", "period_kind", "period_months", "period_start_month",
    "period_start_day", "rollover_month", "rollover_day", "grace_days", "renewal_opens_days",
    "backdate_after_lapse", "joinable_online", "needs_approval", "is_organizational", "max_contacts",
    "sort_order", "active",
)
REQUIRED_PLAN_COLUMNS = ("code", "name", "fee", "period_kind", "grace_days")
PLANS_FILENAME = "plans.csv"
MEMBERS_FILENAME = "members.csv"

# The settings compared when a plan's code exists already (validate_plan's output names).
_SETTINGS = ("name", "description", "fee_minor", "period_kind", "period_months", "period_start_month",
             "period_start_day", "rollover_month", "rollover_day", "grace_days", "renewal_opens_days",
             "backdate_after_lapse", "joinable_online", "needs_approval", "is_organizational", "max_contacts",
             "sort_order")
_YES = {"yes", "y", "true", "1", "on", "x"}
_NO = {"", "no", "n", "false", "0", "off"}


# ---------------------------------------------------------------- export


def plan_row(plan: Plan) -> list[str]:
    lifetime = plan.period_kind == "lifetime"
    values: list[Any] = [
        plan.code, plan.name, plan.description, catalog.format_minor(plan.fee_minor), plan.currency,
        plan.period_kind, None if lifetime else plan.period_months, plan.period_start_month,
        plan.period_start_day, plan.rollover_month, plan.rollover_day, plan.grace_days, plan.renewal_opens_days,
        bool(plan.backdate_after_lapse), bool(plan.joinable_online), bool(plan.needs_approval),
        bool(plan.is_organizational), plan.max_contacts, plan.sort_order, bool(plan.is_active),
    ]
    return [_cell(v) for v in values]


def iter_plan_rows(session: Session) -> Iterator[list[str]]:
    """The header, then every plan (retired ones too), by sort order and code: the order does not
    depend on database ids, so an instance that imported the file exports the same bytes."""
    yield list(PLAN_COLUMNS)
    for plan in session.scalars(select(Plan).order_by(Plan.sort_order, Plan.code)):
        yield plan_row(plan)


def plans_csv(session: Session, *, bom: bool = True) -> bytes:
    """The plans file (UTF-8 with a byte-order mark, CRLF, formula-safe cells)."""
    return "".join(iter_csv_text(iter_plan_rows(session), bom=bom)).encode("utf-8")


def plan_count(session: Session) -> int:
    return len(session.scalars(select(Plan.id)).all())


# ---------------------------------------------------------------- import


@dataclass
class PlanImportReport:
    rows: int = 0
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    error_rows: int = 0
    issues: list[Issue] = field(default_factory=list)

    def summary(self) -> str:
        text = f"Plans: {len(self.created)} new, {len(self.existing)} already here"
        if self.error_rows:
            text += f", {self.error_rows} with errors"
        return text + "."

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "created": self.created, "existing": self.existing,
                "errors": self.error_rows, "issues": [i.as_dict() for i in self.issues]}


def _yes_no(value: str, column: str) -> bool:
    text = value.strip().casefold()
    if text in _YES:
        return True
    if text in _NO:
        return False
    raise ValidationError(f"{value[:40]!r}: use yes or no.", field=column)


def import_plans(session: Session, source, *, currency: str, actor, now: datetime) -> PlanImportReport:
    """Create the plans of a plans file (path or bytes) whose code is new here; report the rest.

    Writes (flushes) the new plans through plans.catalog, audited as any new plan; the caller
    commits with the members, or rolls back (a dry run). Raises ImportFileError when the file
    cannot be read as a whole."""
    encoding = _detect_encoding(source)
    delimiter = _detect_delimiter(source, encoding)
    report = PlanImportReport()
    columns: dict[str, int] | None = None
    existing = {p.code.casefold(): p for p in session.scalars(select(Plan))}
    seen: dict[str, int] = {}
    for n, cells in _records(source, encoding, delimiter):
        if not any(c.strip() for c in cells):
            continue
        if columns is None:
            names = [_header_name(c) for c in cells]
            columns = {name: i for i, name in enumerate(names) if name in PLAN_COLUMNS}
            missing = [c for c in REQUIRED_PLAN_COLUMNS if c not in columns]
            if missing:
                raise ImportFileError(f"The plans file has no {', '.join(missing)} column (row {n} must be "
                                      f"its header: {', '.join(PLAN_COLUMNS)}).")
            continue
        report.rows += 1
        raw = {name: unneutralise(cells[i]) if i < len(cells) else "" for name, i in columns.items()}
        issues = _import_row(session, n, raw, existing, seen, report, currency=currency, actor=actor, now=now)
        if any(i.level == "error" for i in issues):
            report.error_rows += 1
        report.issues += issues
    if columns is None:
        raise ImportFileError("The plans file is empty.")
    session.flush()
    return report


def _import_row(session: Session, n: int, raw: dict[str, str], existing: dict[str, Plan], seen: dict[str, int],
                report: PlanImportReport, *, currency: str, actor, now: datetime) -> list[Issue]:
    code = raw.get("code", "").strip()
    issues: list[Issue] = []
    if code.casefold() in seen:
        return [Issue(n, "code", f"The same plan code as row {seen[code.casefold()]}.")]
    data: dict[str, Any] = {k: v for k, v in raw.items() if k not in ("currency", "active")}
    active = True
    for column in ("backdate_after_lapse", "joinable_online", "needs_approval", "is_organizational", "active"):
        if column in raw:
            try:
                value = _yes_no(raw[column], column)
            except ValidationError as e:
                issues.append(Issue(n, column, e.message))
                continue
            if column == "active":
                active = value
            else:
                data[column] = value
    given_currency = raw.get("currency", "").strip().upper()
    if given_currency and given_currency != currency:
        issues.append(Issue(n, "currency", f"The fee is in {given_currency[:3]}, but this association's "
                                           f"currency is {currency}; change the fee and the currency first."))
    plan = existing.get(code.casefold())
    try:
        values = catalog.validate_plan(session, data, plan=plan)
    except catalog.PlanInvalid as e:
        issues += [Issue(n, "fee" if k == "fee_minor" else k, message) for k, message in e.errors.items()]
        values = None
    if any(i.level == "error" for i in issues):
        return issues
    seen[code.casefold()] = n
    if plan is not None:
        report.existing.append(plan.code)
        differ = [k for k in _SETTINGS if getattr(plan, k) != values[k]]
        if bool(plan.is_active) != active:
            differ.append("active")
        if differ:
            issues.append(Issue(n, "code", f"The plan {plan.code} is here already with other settings "
                                           f"({', '.join(differ)}); it was kept as it is.", "warning"))
        return issues
    new = catalog.create_plan(session, data, currency=currency, actor=actor, now=now)
    if not active:
        catalog.retire_plan(session, new, actor=actor, now=now)
    existing[code.casefold()] = new
    report.created.append(new.code)
    return issues


def column_reference() -> list[tuple[str, str]]:
    """(column, meaning) for the plans file, read from this module's docstring."""
    from membership.members.csvio import column_reference as read
    return read(__doc__)
