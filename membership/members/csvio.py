"""CSV import and export of members with their plan and current term.

One column set serves both directions, so a file exported from Samiti imports again unchanged
(export, import into an empty database, export again: the same rows). The header row names the
columns; their order does not matter on import and unknown columns are ignored with a warning.
Dates are ISO (YYYY-MM-DD); yes/no columns accept yes/no, true/false, y/n, 1/0 (empty is no).

=====================  =====================================================================
column                 meaning
=====================  =====================================================================
member_number          The member's number (M000123). Import: an existing member with this
                       number is matched; empty on a new member: the next number is given.
first_name             Required column; required value for a new member.
last_name              Required column (the value may be empty).
email                  Required column (the value may be empty). Matched case-insensitively
                       with existing members; two rows with one address are refused.
phone                  Export: international form (+8801712345678). Import: local numbers are
                       read in the association's region (PHONE_REGION).
address_line1          Address, first line.
address_line2          Address, second line.
city                   City or town.
postcode               Postcode.
country                Two-letter country code (BD, GB).
date_of_birth          YYYY-MM-DD.
organization           Name of the member's organisation; created on import when new.
primary_contact        yes/no: the member is the organisation's primary contact.
job_title              Job title at the organisation.
joined_on              The day the member first joined (import: empty means today).
referred_by            Member number of the member who referred them (in the database or in
                       the same file).
language               en or bn (empty means en).
marketing_opt_in       yes/no: agrees to marketing emails.
directory_opt_in       yes/no: listed in the member directory.
external_id            The member's id in another system (unique).
notes                  Staff notes; may span several lines.
plan_code              Code of the plan of the current term; empty: no term. An organisational
                       plan means the term belongs to the organisation (imported once for it).
term_starts_on         First day of the current term (required with a plan).
term_ends_on           Last day of the current term; for a current member who has already
                       paid a renewal, the day the membership runs to. Empty: a lifetime term
                       (import: for other plans, the end is worked out from the plan).
term_status            pending, upcoming, active, grace, lapsed or cancelled: the status of the
                       current term on the day of the export (empty: no term). Import: pending
                       is a term waiting for payment (for a free plan: for approval),
                       cancelled is cancelled with the reason "imported", the others are paid
                       terms whose status follows from the dates (a different status in the
                       file is reported as a warning; the dates decide).
term_cancelled_on      The day the term was (or will be) cancelled. Import default for a
                       cancelled term: today, or the last day of a term that is already over.
status_override        A status staff have forced on the term: pending, active, grace, lapsed
                       or cancelled (empty: none).
status_override_until  The last day the override applies (empty: until further notice).
=====================  =====================================================================

Files are written as UTF-8 with a byte-order mark (so Excel reads non-ASCII names correctly) and
CRLF line ends. A cell that a spreadsheet would run as a formula (it starts with = + - @, a tab or
a carriage return) is written with a leading apostrophe; import removes that apostrophe again.
Import reads UTF-8 with or without a byte-order mark, UTF-16 with one, and falls back to
Windows-1252 / Latin-1 when the file is not UTF-8; commas, semicolons or tabs separate cells.

Import checks every row (members.services.validate_member, plan codes, dates, term status) and
reports problems per row: the row number as a spreadsheet shows it (the header is row 1), the
column and a message. Valid rows are written; rows with errors are left out. The whole import
is one transaction: the caller commits, or rolls back when anything fails, so it lands whole or
not at all.
"""
from __future__ import annotations

import codecs
import csv
import io
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from types import SimpleNamespace
from typing import Any, BinaryIO, Callable, Iterable, Iterator

from flask_babel import gettext as _
from sqlalchemy import Select, bindparam, func, or_, select, text, update
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, aliased

from membership.accounts.services import normalize_email
from membership.core.errors import ValidationError
from membership.core.models import AuditLog, Counter
from membership.core.services import next_number, record_audit
from membership.members.models import Member, Organization
from membership.members.queries import MemberFilter, member_query
from membership.members.services import (
    MemberData, build_search_text, clean_text, find_or_create_organization, search_key, update_member,
    validate_member)
from membership.plans.models import Membership, Plan
from membership.plans.services import refresh_status, term_dates
from membership.plans.status import CURRENT, holder_status, status_on

COLUMNS: tuple[str, ...] = (
    "member_number", "first_name", "last_name", "email", "phone", "address_line1", "address_line2", "city",
    "postcode", "country", "date_of_birth", "organization", "primary_contact", "job_title", "joined_on",
    "referred_by", "language", "marketing_opt_in", "directory_opt_in", "external_id", "notes",
    "plan_code", "term_starts_on", "term_ends_on", "term_status", "term_cancelled_on",
    "status_override", "status_override_until",
)
REQUIRED_COLUMNS: tuple[str, ...] = ("first_name", "last_name", "email")
TERM_STATUS_VALUES = ("pending", "upcoming", "active", "grace", "lapsed", "cancelled")
OVERRIDE_VALUES = ("pending", "active", "grace", "lapsed", "cancelled")
ON_MATCH = ("update", "skip")

# Member text fields taken as they are (validate_member cleans them).
_TEXT_FIELDS = ("first_name", "last_name", "email", "phone", "address_line1", "address_line2", "city",
                "postcode", "country", "job_title", "external_id", "notes", "language")
_DATE_FIELDS = ("date_of_birth", "joined_on")
_BOOL_FIELDS = ("marketing_opt_in", "directory_opt_in")
_TERM_COLUMNS = ("plan_code", "term_starts_on", "term_ends_on", "term_status", "term_cancelled_on",
                 "status_override", "status_override_until")
# validate_member's field names -> the CSV column to report.
_FIELD_COLUMN = {"organization_id": "organization"}

FORMULA_TRIGGERS = frozenset("=+-@\t\r")
_FIRST_CHECK = FORMULA_TRIGGERS | {"'"}
_TRUE = {"yes", "y", "true", "1", "on", "x"}
_FALSE = {"", "no", "n", "false", "0", "off"}

EXPORT_BATCH = 2000
IMPORT_BATCH = 1000
MAX_ISSUES = 5000
IMPORT_REASON = "imported"


# ---------------------------------------------------------------- formulas


def neutralise(value: str) -> str:
    """A cell a spreadsheet would run as a formula gets a leading apostrophe.

    A value that already starts with apostrophes before such a character gets one more, so that
    `unneutralise` gives back exactly what was exported."""
    if value and value[0] in _FIRST_CHECK and value.lstrip("'")[:1] in FORMULA_TRIGGERS:
        return "'" + value
    return value


def unneutralise(value: str) -> str:
    """Undo `neutralise`: drop the apostrophe in front of = + - @ tab or CR."""
    if value.startswith("'") and value.lstrip("'")[:1] in FORMULA_TRIGGERS:
        return value[1:]
    return value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if type(value) is str:
        return neutralise(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, date):
        return value.isoformat()
    return neutralise(str(value))


# ---------------------------------------------------------------- export


def _export_statement(f: MemberFilter | None) -> Select:
    referrer = aliased(Member)
    stmt = member_query(f or MemberFilter())
    return (stmt.with_only_columns(
        Member.id, Member.organization_id,
        Member.member_number, Member.first_name, Member.last_name, Member.email, Member.phone,
        Member.address_line1, Member.address_line2, Member.city, Member.postcode, Member.country,
        Member.date_of_birth, Organization.name, Member.is_primary_contact, Member.job_title,
        Member.joined_on, referrer.member_number, Member.language, Member.marketing_opt_in,
        Member.directory_opt_in, Member.external_id, Member.notes, maintain_column_froms=False)
        .select_from(Member)
        .outerjoin(Organization, Member.organization_id == Organization.id)
        .outerjoin(referrer, Member.referred_by_id == referrer.id))


_TERM_FIELDS = (Membership.id, Membership.member_id, Membership.organization_id, Membership.plan_id,
                Membership.starts_on, Membership.ends_on, Membership.grace_days, Membership.awaiting_payment,
                Membership.awaiting_approval, Membership.cancelled_on, Membership.override_status,
                Membership.override_until)


def count_export(session: Session, f: MemberFilter | None = None) -> int:
    """How many members an export of the filter writes."""
    stmt = member_query(f or MemberFilter()).order_by(None).with_only_columns(Member.id)
    return session.scalar(select(func.count()).select_from(stmt.subquery()))


def term_columns(terms: list, day: date, plan_codes: dict[int, str]) -> list[str]:
    """plan_code .. status_override_until for a holder with these terms (rows or objects with the
    attributes of a Membership) on `day`: its governing term (plans.status.holder_status)."""
    if not terms:
        return [""] * len(_TERM_COLUMNS)
    if len(terms) == 1:
        # The common case, without holder_status's sorting: the one term governs, and its end is
        # the end of the membership.
        term = terms[0]
        status = status_on(term, day)
        ends = term.ends_on
    else:
        hs = holder_status(terms, day)
        term = hs.term
        status = status_on(term, day)
        # A current member who has paid a renewal already is a member until the renewal ends.
        ends = hs.expires_on if status in CURRENT else term.ends_on
    override_live = term.override_status and (term.override_until is None or day <= term.override_until)
    return [
        _cell(plan_codes.get(term.plan_id, "")), _cell(term.starts_on), _cell(ends), status,
        _cell(term.cancelled_on),
        _cell(term.override_status if override_live else None),
        _cell(term.override_until if override_live else None),
    ]


def iter_export_rows(session: Session, f: MemberFilter | None = None, *, today: date,
                     batch_size: int = EXPORT_BATCH) -> Iterator[list[str]]:
    """The header, then one row per member matching `f` (all members when None), in the filter's
    sort order. Streams in batches: one query for the members (a server-side cursor on
    PostgreSQL) and one for the terms of each batch, so memory stays flat at any size."""
    yield list(COLUMNS)
    _plan_each_lookup(session)
    plan_codes = dict(session.execute(select(Plan.id, Plan.code)).all())
    org_terms: dict[int, list] = {}
    result = session.execute(_export_statement(f).execution_options(yield_per=batch_size))
    for batch in result.partitions():
        ids = [row[0] for row in batch]
        own: dict[int, list] = {}
        for term in session.execute(select(*_TERM_FIELDS).where(Membership.member_id.in_(_inline(ids)))):
            own.setdefault(term.member_id, []).append(term)
        missing = {row[1] for row in batch if row[1] is not None and row[1] not in org_terms}
        if missing:
            for org_id in missing:
                org_terms[org_id] = []
            for term in session.execute(select(*_TERM_FIELDS).where(
                    Membership.organization_id.in_(_inline(sorted(missing))))):
                org_terms[term.organization_id].append(term)
        for row in batch:
            terms = own.get(row[0], [])
            if row[1] is not None:
                terms = terms + org_terms[row[1]]
            yield [neutralise(v) if type(v) is str else _cell(v) for v in row[2:]] \
                + term_columns(terms, today, plan_codes)


def _inline(ids: list[int]):
    """A list of database ids written into the statement itself: psycopg would otherwise parse a
    statement with thousands of placeholders for every batch. Only for integers from the database."""
    return bindparam("ids", [int(i) for i in ids], expanding=True, literal_execute=True)


def _plan_each_lookup(session: Session) -> None:
    """PostgreSQL: plan every batch look-up (IN lists of a thousand keys) for its own values.

    psycopg prepares a statement run five times, and PostgreSQL may then keep one generic plan,
    made when the table looked empty (or before an import filled it): a sequential scan per batch
    whose cost grows with every batch. SET LOCAL lasts until the end of the transaction."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))


class _Sink:
    """A file-like target for csv.writer that keeps what was written until it is taken."""

    def __init__(self):
        self.parts: list[str] = []

    def write(self, text: str) -> int:
        self.parts.append(text)
        return len(text)

    def take(self) -> str:
        text = "".join(self.parts)
        self.parts.clear()
        return text


def iter_csv_text(rows: Iterable[list[str]], *, bom: bool = True, rows_per_chunk: int = 500) -> Iterator[str]:
    """CSV text in chunks of a few hundred rows (for a streamed download or a file)."""
    sink = _Sink()
    writer = csv.writer(sink, lineterminator="\r\n")
    if bom:
        sink.write("\ufeff")
    for n, row in enumerate(rows, 1):
        writer.writerow(row)
        if n % rows_per_chunk == 0:
            yield sink.take()
    rest = sink.take()
    if rest:
        yield rest


def export_members(session: Session, out, f: MemberFilter | None = None, *, today: date, bom: bool = True,
                   progress: Callable[[int], None] | None = None, batch_size: int = EXPORT_BATCH) -> int:
    """Write the export to the binary file `out` (UTF-8, with a byte-order mark unless `bom` is
    False). Returns the number of members written; `progress(n)` hears of every n written. Reads
    only; the caller audits and ends the transaction."""
    done = reported = 0

    def rows():
        nonlocal done
        for row in iter_export_rows(session, f, today=today, batch_size=batch_size):
            done += 1
            yield row

    for chunk in iter_csv_text(rows(), bom=bom):
        out.write(chunk.encode("utf-8"))
        members = max(done - 1, 0)  # the header is not a member
        if progress and members > reported:
            progress(members - reported)
        reported = members
    return max(done - 1, 0)


# ---------------------------------------------------------------- import: reading the file


class ImportFileError(ValidationError):
    """The file as a whole cannot be imported (empty, not CSV, a required column missing)."""


@dataclass
class Issue:
    row: int          # as a spreadsheet counts: the header is row 1
    column: str       # "" when the problem is the row as a whole
    message: str
    level: str = "error"  # or "warning"

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "column": self.column, "message": self.message, "level": self.level}


@dataclass
class FileInfo:
    """What a first quick pass over the file found: how to read it, and what it contains."""
    encoding: str
    delimiter: str
    header_row: int
    columns: dict[str, int]          # known column -> position
    unknown: list[str]
    rows: int                        # records after the header (blank lines included)
    filled: int = 0                  # ... of which not blank
    numbers: set[str] = field(default_factory=set)  # member numbers given in the file
    width: int = 0
    # casefolded plan codes whose terms give an end date (a plan --create-plans must make that is
    # not in this set has only open-ended terms in the file: a lifetime plan)
    plan_codes_with_end: set[str] = field(default_factory=set)

    @property
    def encoding_label(self) -> str:
        return {"utf-8-sig": "UTF-8", "utf-16": "UTF-16", "cp1252": "Windows-1252 (Latin-1)",
                "latin-1": "Latin-1"}.get(self.encoding, self.encoding)


@contextmanager
def _binary(source) -> Iterator[BinaryIO]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        yield io.BytesIO(bytes(source))
    else:
        with open(source, "rb") as fh:
            yield fh


def _detect_encoding(source) -> str:
    with _binary(source) as fh:
        head = fh.read(4)
        if head.startswith(codecs.BOM_UTF8):
            return "utf-8-sig"
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"
        for encoding in ("utf-8", "cp1252"):
            decoder = codecs.getincrementaldecoder(encoding)()
            fh.seek(0)
            try:
                while chunk := fh.read(1 << 20):
                    decoder.decode(chunk)
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                continue
            return "utf-8-sig" if encoding == "utf-8" else encoding
        return "latin-1"  # every byte is a Latin-1 character


def _detect_delimiter(source, encoding: str) -> str:
    with _binary(source) as fh:
        text = io.TextIOWrapper(fh, encoding=encoding, newline="", errors="replace")
        for _ in range(100):
            line = text.readline()
            if not line:
                break
            if line.strip():
                counts = {d: line.count(d) for d in (",", ";", "\t")}
                best = max(counts, key=counts.get)
                return best if counts[best] else ","
    return ","


def _records(source, encoding: str, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(row number, cells) for every record; a quoted line break stays inside its cell, so the
    row numbers are those a spreadsheet shows."""
    n = 0
    with _binary(source) as fh:
        text = io.TextIOWrapper(fh, encoding=encoding, newline="")
        reader = csv.reader(text, delimiter=delimiter)
        try:
            for n, cells in enumerate(reader, 1):
                yield n, cells
        except csv.Error as e:
            raise ImportFileError(f"Row {n + 1}: the file is not valid CSV ({e}).") from None


def _header_name(cell: str) -> str:
    return re.sub(r"[\s-]+", "_", cell.strip().lstrip("\ufeff").strip().lower())


def inspect_file(source) -> FileInfo:
    """Read the file once quickly: encoding, separator, header, row count, the member numbers it
    gives. Raises ImportFileError for an empty file, a missing or repeated column, or a file that
    is not CSV."""
    with _binary(source) as fh:
        if not fh.read(8).lstrip(b"\xef\xbb\xbf\xff\xfe").strip():
            fh.seek(0)
            if not fh.read(1 << 16).strip(b"\xef\xbb\xbf\xff\xfe\x00 \t\r\n,;"):
                raise ImportFileError("The file is empty.")
    encoding = _detect_encoding(source)
    delimiter = _detect_delimiter(source, encoding)
    info: FileInfo | None = None
    number_at = code_at = end_at = None
    for n, cells in _records(source, encoding, delimiter):
        if info is None:
            if not any(c.strip() for c in cells):
                continue
            info = _read_header(n, cells, encoding, delimiter)
            number_at = info.columns.get("member_number")
            code_at, end_at = info.columns.get("plan_code"), info.columns.get("term_ends_on")
            continue
        if code_at is not None and end_at is not None and max(code_at, end_at) < len(cells) \
                and cells[end_at].strip():
            info.plan_codes_with_end.add(unneutralise(cells[code_at]).strip().casefold())
        info.rows += 1
        if any(c.strip() for c in cells):
            info.filled += 1
        if number_at is not None and number_at < len(cells):
            number = unneutralise(cells[number_at]).strip()
            if number:
                info.numbers.add(number)
    if info is None:
        raise ImportFileError("The file is empty.")
    return info


def _read_header(n: int, cells: list[str], encoding: str, delimiter: str) -> FileInfo:
    names = [_header_name(c) for c in cells]
    columns: dict[str, int] = {}
    unknown: list[str] = []
    for i, name in enumerate(names):
        if not name:
            continue
        if name in columns or name in unknown:
            raise ImportFileError(f"The column {name} appears twice in the header (row {n}).")
        if name in COLUMNS:
            columns[name] = i
        else:
            unknown.append(name)
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        if not columns:
            raise ImportFileError(
                f"Row {n} must be the header, naming the columns (first_name, last_name, email, ...); "
                f"it has {', '.join(c for c in cells if c.strip())[:200]}.")
        raise ImportFileError(
            f"The file has no {' and no '.join(repr(c) for c in missing)} column. Required columns: "
            f"{', '.join(REQUIRED_COLUMNS)}.")
    return FileInfo(encoding=encoding, delimiter=delimiter, header_row=n, columns=columns, unknown=unknown,
                    rows=0, width=len(cells))


# ---------------------------------------------------------------- import: options and report


@dataclass
class ImportOptions:
    on_match: str = "skip"        # "update" or "skip" existing members found by email or number
    create_plans: bool = False    # create plans whose code is unknown (else: an error per row)
    dry_run: bool = True          # check and count only; write nothing

    def __post_init__(self):
        if self.on_match not in ON_MATCH:
            raise ValueError(f"on_match must be one of {ON_MATCH}")


@dataclass
class ImportReport:
    filename: str = ""
    dry_run: bool = True
    on_match: str = "skip"
    encoding: str = ""
    rows: int = 0          # member rows read (blank lines not counted)
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    error_rows: int = 0
    warnings: int = 0
    terms: int = 0         # terms created (or to be created)
    plans_created: list[str] = field(default_factory=list)
    organizations_created: list[str] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)  # the first MAX_ISSUES
    issue_count: int = 0

    @property
    def written(self) -> int:
        return self.new + self.updated

    def counts(self) -> dict[str, Any]:
        return {"rows": self.rows, "new": self.new, "updated": self.updated, "unchanged": self.unchanged,
                "skipped": self.skipped, "errors": self.error_rows, "warnings": self.warnings,
                "terms": self.terms, "plans_created": self.plans_created,
                "organizations_created": self.organizations_created}

    def summary(self) -> str:
        verb = "Would import" if self.dry_run else "Imported"
        parts = [f"{self.new:,} new", f"{self.updated:,} updated"]
        if self.unchanged:
            parts.append(f"{self.unchanged:,} unchanged")
        parts.append(f"{self.skipped:,} skipped")
        parts.append(f"{self.error_rows:,} with errors")
        text = f"{verb} {self.rows:,} rows: " + ", ".join(parts) + "."
        if self.plans_created:
            text += f" Plans {'to create' if self.dry_run else 'created'}: {', '.join(self.plans_created)}."
        if self.organizations_created:
            text += (f" {len(self.organizations_created):,} organisation(s) "
                     f"{'to create' if self.dry_run else 'created'}.")
        return text

    def as_dict(self) -> dict[str, Any]:
        return {"filename": self.filename, "dry_run": self.dry_run, "on_match": self.on_match,
                "encoding": self.encoding, "issue_count": self.issue_count, **self.counts(),
                "issues": [i.as_dict() for i in self.issues]}


# ---------------------------------------------------------------- import: rows


@dataclass
class _Term:
    """A term as plans.status reads it, before (or instead of) being a Membership row."""
    plan_id: int | None
    starts_on: date
    ends_on: date | None
    grace_days: int
    awaiting_payment: bool
    awaiting_approval: bool
    cancelled_on: date | None
    override_status: str | None
    override_until: date | None
    id: int = 10 ** 12  # sorts after terms already stored, as the new row will


@dataclass
class _TermSpec:
    plan_key: str
    starts_on: date
    ends_on: date | None
    pending: bool
    cancelled_on: date | None
    override_status: str | None
    override_until: date | None
    org_held: bool


@dataclass
class _Row:
    n: int
    raw: dict[str, str]
    issues: list[Issue] = field(default_factory=list)
    email_key: str | None = None
    number: str | None = None
    match: Member | None = None
    values: dict[str, Any] = field(default_factory=dict)
    org_name: str | None = None     # None: column absent or empty
    primary: bool | None = None
    referrer: str | None = None
    term: _TermSpec | None = None

    @property
    def ok(self) -> bool:
        return not any(i.level == "error" for i in self.issues)

    def error(self, column: str, message: str) -> None:
        self.issues.append(Issue(self.n, column, message))

    def warn(self, column: str, message: str) -> None:
        self.issues.append(Issue(self.n, column, message, "warning"))


def _parse_date(row: _Row, column: str) -> date | None:
    value = row.raw.get(column, "").strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        row.error(column, f"{value[:40]!r} is not a date; use the form 2024-01-31.")
        return None


def _parse_bool(row: _Row, column: str) -> bool | None:
    value = row.raw.get(column, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    row.error(column, f"{value[:40]!r}: use yes or no.")
    return None


class _Importer:
    def __init__(self, session: Session, info: FileInfo, options: ImportOptions, *, today: date, now: datetime,
                 actor, region: str, currency: str, report: ImportReport,
                 on_issue: Callable[[Issue], None] | None, max_issues: int, batch_size: int):
        self.session, self.info, self.options = session, info, options
        self.batch_size = batch_size
        self.today, self.now, self.actor = today, now, actor
        self.region, self.currency = region, currency
        self.report = report
        self.on_issue = on_issue
        self.max_issues = max_issues
        self.write = not options.dry_run
        self.present = set(info.columns)
        self.plans: dict[str, Any] = {p.code.casefold(): p for p in session.scalars(select(Plan))}
        self.orgs: dict[str, int] = dict(session.execute(
            select(Organization.name_normalized, Organization.id)).all())
        self.new_orgs: dict[str, int] = {}      # dry run: placeholder ids of organisations to create
        self.org_terms: dict[int, list] = {}
        self.orgs_with_new_terms: set[int] = set()
        self.emails_seen: dict[str, int] = {}
        self.numbers_seen: dict[str, int] = {}
        self.external_seen: dict[str, int] = {}
        self.primary_rows: dict[int, int] = {}  # org id -> row that names its primary contact
        self.primary_members: dict[int, int] = {}  # org id -> member id
        self.inserted_contacts: dict[int, set[int]] = {}  # org id -> contacts this import inserted
        self.referrals: list[tuple[int, int, str]] = []  # (row, member id, referrer number)
        self.highest_number = 0
        self.actor_id = getattr(actor, "id", None)

    # ---- reporting

    def emit(self, issue: Issue) -> None:
        self.report.issue_count += 1
        if issue.level == "warning":
            self.report.warnings += 1
        if len(self.report.issues) < self.max_issues:
            self.report.issues.append(issue)
        if self.on_issue:
            self.on_issue(issue)

    # ---- the run

    def run(self, records: Iterator[tuple[int, list[str]]], progress) -> None:
        for name in self.info.unknown:
            self.emit(Issue(self.info.header_row, name, "Unknown column; ignored.", "warning"))
        batch: list[tuple[int, list[str]]] = []
        for n, cells in records:
            if n <= self.info.header_row:
                continue
            batch.append((n, cells))
            if len(batch) >= self.batch_size:
                self.batch(batch)
                if progress:
                    progress(len(batch))
                batch = []
        if batch:
            self.batch(batch)
            if progress:
                progress(len(batch))
        if self.write:
            self.finish()

    def batch(self, records: list[tuple[int, list[str]]]) -> None:
        rows: list[_Row] = []
        width = self.info.width
        for n, cells in records:
            if not any(c.strip() for c in cells):
                continue  # a blank line
            size = len(cells)
            row = _Row(n, {name: (cells[i] if not cells[i].startswith("'") else unneutralise(cells[i]))
                           if i < size else "" for name, i in self.info.columns.items()})
            if len(cells) > width and any(c.strip() for c in cells[width:]):
                row.error("", f"This row has {len(cells)} cells but the header names {width} columns.")
            self.report.rows += 1
            self.read_keys(row)
            rows.append(row)
        self.match(rows)
        new_rows: list[_Row] = []
        for row in rows:
            if row.email_key and row.email_key in self.emails_seen:
                row.error("email", f"The same email as row {self.emails_seen[row.email_key]}.")
            if row.number and row.number in self.numbers_seen:
                row.error("member_number", f"The same member number as row {self.numbers_seen[row.number]}.")
            # Every fault of the row is reported at once, even when an earlier check failed.
            self.check(row)
            if not row.ok:
                self.report.error_rows += 1
            elif row.match is not None and self.options.on_match == "skip":
                self.report.skipped += 1
            elif row.match is not None:
                changed = self.apply_update(row)
                if changed:
                    self.report.updated += 1
                else:
                    self.report.unchanged += 1
            else:
                self.report.new += 1
                if row.term is not None:
                    self.report.terms += 1
                if self.write:
                    new_rows.append(row)
                elif row.org_name:  # count the organisations (and their terms) a real run would create
                    org_id = self.org_id(row.org_name)
                    if row.term is not None and row.term.org_held:
                        self.ensure_org_term(org_id, row.term)
            if row.ok:
                self.remember(row)
            for issue in row.issues:
                self.emit(issue)
        if self.write and new_rows:
            self.insert_new(new_rows)
        if self.write:
            self.session.flush()

    def read_keys(self, row: _Row) -> None:
        """The values that match a row with an existing member: email and member number."""
        # The comparison key of the address as written; validate_member checks its syntax later.
        email = row.raw.get("email", "").strip()
        row.email_key = normalize_email(email) if email else None
        number = row.raw.get("member_number", "").strip()
        row.number = number or None

    def match(self, rows: list[_Row]) -> None:
        emails = {r.email_key for r in rows if r.email_key}
        numbers = {r.number for r in rows if r.number}
        externals = {r.raw.get("external_id", "").strip() for r in rows} - {""}
        by_email: dict[str, Member] = {}
        by_number: dict[str, Member] = {}
        if emails or numbers:
            cond = []
            if emails:
                cond.append(Member.email_normalized.in_(emails))
            if numbers:
                cond.append(Member.member_number.in_(numbers))
            for m in self.session.scalars(select(Member).where(or_(*cond))):
                if m.email_normalized in emails:
                    by_email[m.email_normalized] = m
                if m.member_number in numbers:
                    by_number[m.member_number] = m
        self.external_owner = dict(self.session.execute(
            select(Member.external_id, Member.id).where(Member.external_id.in_(externals))).all()) \
            if externals else {}
        referrers = {r.raw.get("referred_by", "").strip() for r in rows} - {""} - self.info.numbers
        self.referrers_in_db = set(self.session.scalars(
            select(Member.member_number).where(Member.member_number.in_(referrers)))) if referrers else set()
        for row in rows:
            a = by_email.get(row.email_key) if row.email_key else None
            b = by_number.get(row.number) if row.number else None
            if a is not None and b is not None and a.id != b.id:
                row.error("member_number", f"The email belongs to {a.member_number} {a.full_name}, but member "
                                           f"number {row.number} is {b.full_name}'s.")
            elif a is not None and row.number and b is None:
                row.error("member_number", f"The email belongs to member {a.member_number} ({a.full_name}), "
                                           f"not {row.number}.")
            row.match = a or b

    def remember(self, row: _Row) -> None:
        if row.primary and row.org_name:
            self.primary_rows.setdefault(search_key(row.org_name), row.n)
        if row.email_key:
            self.emails_seen[row.email_key] = row.n
        if row.number:
            self.numbers_seen[row.number] = row.n
        external = row.values.get("external_id")
        if external:
            self.external_seen[external] = row.n

    # ---- checking one row

    def check(self, row: _Row) -> None:
        updating = row.match is not None
        if updating and self.options.on_match == "skip":
            return
        raw, present = row.raw, self.present
        data: dict[str, Any] = {}
        for name in _TEXT_FIELDS:
            if name in present:
                data[name] = raw[name]
        if "language" in data:
            data["language"] = data["language"].strip().lower()
        for name in _DATE_FIELDS:
            if name in present:
                value = _parse_date(row, name)
                if value is None and raw[name].strip():
                    continue  # reported by _parse_date
                if value is None and updating and name == "joined_on":
                    continue  # an empty cell keeps the date the member joined
                data[name] = value
        for name in _BOOL_FIELDS:
            if name in present:
                value = _parse_bool(row, name)
                if value is not None:
                    data[name] = value
        if row.number:
            data["member_number"] = row.number
        if updating and "language" in data and not data["language"]:
            del data["language"]  # an empty cell keeps the member's language
        try:
            values = validate_member(data, region=self.region, today=self.today, partial=updating).values
        except ValidationError as e:
            for name, message in (getattr(e, "errors", None) or {e.field or "": e.message}).items():
                row.error(_FIELD_COLUMN.get(name, name), message)
            values = {}
        row.values = values
        external = values.get("external_id")
        if external:
            owner = self.external_owner.get(external)
            if owner is not None and (row.match is None or owner != row.match.id):
                row.error("external_id", f"External id {external} belongs to another member.")
            elif external in self.external_seen:
                row.error("external_id", f"The same external id as row {self.external_seen[external]}.")
        self.check_organization(row)
        self.check_referrer(row)
        self.check_term(row)

    def check_organization(self, row: _Row) -> None:
        if "organization" in self.present:
            try:
                row.org_name = clean_text(row.raw["organization"], field="organization", label="Organisation",
                                          max_length=200)
            except ValidationError as e:
                row.error("organization", e.message)
        if "primary_contact" in self.present:
            row.primary = _parse_bool(row, "primary_contact")
            if row.primary and not row.org_name:
                row.warn("primary_contact", "No organisation given; the member cannot be its primary contact.")
                row.primary = False
            elif row.primary:
                key = search_key(row.org_name)
                other = self.primary_rows.get(key)
                if other is not None:
                    row.warn("primary_contact", f"Row {other} already names the primary contact of "
                                                f"{row.org_name}; this member is a contact only.")
                    row.primary = False

    def check_referrer(self, row: _Row) -> None:
        if "referred_by" not in self.present:
            return
        number = row.raw["referred_by"].strip()
        if not number:
            row.referrer = ""
            return
        own = row.number or (row.match.member_number if row.match is not None else None)
        if number == own:
            row.error("referred_by", "A member cannot refer themselves.")
        elif number not in self.info.numbers and number not in self.referrers_in_db:
            row.error("referred_by", f"No member has the number {number[:40]}.")
        else:
            row.referrer = number

    def plan_for(self, row: _Row, code: str):
        key = code.casefold()
        plan = self.plans.get(key)
        if plan is not None:
            return plan
        if not self.options.create_plans:
            row.error("plan_code", f"No plan has the code {code[:40]!r}.")
            return None
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", code):
            row.error("plan_code", "A plan code uses only letters A-Z, digits, - and _ (at most 32).")
            return None
        # Created on the first write. Without the plans file only a guess is possible: lifetime when
        # the file has a term_ends_on column but no term of the code has an end, else a rolling year with 30 days' grace; free,
        # and not offered online. The row says so, and where the real settings come from.
        lifetime = "term_ends_on" in self.present and key not in self.info.plan_codes_with_end
        plan = SimpleNamespace(id=None, code=code, name=code, period_kind="lifetime" if lifetime else "rolling",
                               period_months=12, grace_days=0 if lifetime else 30, fee_minor=0,
                               currency=self.currency, is_organizational=False, needs_approval=False,
                               to_create=True)
        self.plans[key] = plan
        self.report.plans_created.append(code)
        shape = _("a lifetime plan") if lifetime else _("a rolling one-year plan with 30 days' grace")
        row.warn("plan_code", _("No plan has the code %(code)s: it will be created as %(shape)s, free and not "
                                "offered online, so statuses may differ from where the file came from. Import "
                                "the plans file with it (members export writes one: a .zip, or --plans) to "
                                "carry the real fees, periods and grace.", code=code, shape=shape))
        return plan

    def check_term(self, row: _Row) -> None:
        raw, present = row.raw, self.present
        before = len(row.issues)

        def term_ok() -> bool:  # no fault in the term's columns so far (other columns' faults aside)
            return not any(i.level == "error" for i in row.issues[before:])

        given = {c: raw.get(c, "").strip() for c in _TERM_COLUMNS if c in present}
        code = given.get("plan_code", "")
        status = given.get("term_status", "").lower()
        if not code:
            if status in ("", "none") and not any(v for k, v in given.items() if k != "term_status"):
                return
            row.error("plan_code", "Give the plan of the term.")
            return
        plan = self.plan_for(row, code)
        starts = _parse_date(row, "term_starts_on")
        ends = _parse_date(row, "term_ends_on")
        cancelled_on = _parse_date(row, "term_cancelled_on")
        until = _parse_date(row, "status_override_until")
        if not given.get("term_starts_on"):
            row.error("term_starts_on", "Give the first day of the term.")
        if status and status not in TERM_STATUS_VALUES:
            row.error("term_status", f"{status[:20]!r} is not a status; use one of {', '.join(TERM_STATUS_VALUES)}.")
        override = given.get("status_override", "").lower() or None
        if override and override not in OVERRIDE_VALUES:
            row.error("status_override", f"{override[:20]!r} is not a status; use one of "
                                         f"{', '.join(OVERRIDE_VALUES)}.")
        if until and not override:
            row.error("status_override_until", "An override date needs a status_override.")
        if plan is None or starts is None or not term_ok():
            return
        if plan.period_kind == "lifetime":
            if ends is not None:
                row.error("term_ends_on", f"{plan.code} is a lifetime plan; leave term_ends_on empty.")
                return
        elif ends is None:
            ends = term_dates(plan, starts)[1]
        if ends is not None and ends < starts:
            row.error("term_ends_on", "The term ends before it starts.")
            return
        if status == "cancelled" and cancelled_on is None:
            cancelled_on = self.today if ends is None or ends >= self.today else ends
            cancelled_on = max(cancelled_on, min(starts, self.today))
        if cancelled_on is not None:
            if ends is not None and cancelled_on > ends:
                row.error("term_cancelled_on", "The term is cancelled after it ends.")
            elif cancelled_on < starts and cancelled_on < self.today:
                row.error("term_cancelled_on", "The term is cancelled before it starts.")
        if override and until is not None and until < self.today:
            row.warn("status_override_until", f"The override ended on {until.isoformat()}; not imported.")
            override, until = None, None
        org_held = bool(plan.is_organizational)
        if org_held and not row.org_name:
            row.error("organization", f"{plan.code} is a plan for organisations; give the organisation.")
        if not term_ok():
            return
        spec = _TermSpec(plan_key=code.casefold(), starts_on=starts, ends_on=ends, pending=status == "pending",
                         cancelled_on=cancelled_on, override_status=override, override_until=until,
                         org_held=org_held)
        actual = status_on(self.term_like(spec), self.today)
        if status and actual != status:
            row.warn("term_status", f"The file says {status}, but on {self.today.isoformat()} the dates give "
                                    f"{actual}; imported as {actual}.")
        row.term = spec
        if row.match is not None and not org_held and row.ok:
            problem = self.overlap(row.match, spec)
            if problem:
                row.error("term_starts_on", problem)
                row.term = None

    def term_like(self, spec: _TermSpec) -> _Term:
        plan = self.plans[spec.plan_key]
        pending = spec.pending
        return _Term(plan_id=plan.id, starts_on=spec.starts_on, ends_on=spec.ends_on, grace_days=plan.grace_days,
                     awaiting_payment=pending and plan.fee_minor > 0,
                     awaiting_approval=pending and not plan.fee_minor > 0,
                     cancelled_on=spec.cancelled_on, override_status=spec.override_status,
                     override_until=spec.override_until)

    def overlap(self, member: Member, spec: _TermSpec) -> str | None:
        """Why this term cannot be added to an existing member's history (None: it can, or it is
        there already)."""
        terms = list(self.session.scalars(select(Membership).where(Membership.member_id == member.id)))
        plan = self.plans[spec.plan_key]
        if any(t.plan_id == plan.id and t.starts_on == spec.starts_on for t in terms):
            return None
        for t in terms:
            if t.cancelled_on is not None and t.cancelled_on <= t.starts_on:
                continue
            t_end = t.ends_on or date.max
            s_end = spec.ends_on or date.max
            if t.starts_on <= s_end and spec.starts_on <= t_end:
                return (f"{member.member_number} already has a term from {t.starts_on.isoformat()} "
                        f"to {t.ends_on.isoformat() if t.ends_on else 'lifetime'} that overlaps this one; "
                        "change it on the member's page.")
        return None

    # ---- organisations, plans, terms

    def org_id(self, name: str) -> int:
        key = search_key(name)
        if key in self.orgs:
            return self.orgs[key]
        if not self.write:
            if key not in self.new_orgs:
                self.new_orgs[key] = -(len(self.new_orgs) + 1)
                self.report.organizations_created.append(name)
            return self.new_orgs[key]
        org = find_or_create_organization(self.session, name, actor=self.actor, now=self.now)
        self.orgs[key] = org.id
        self.report.organizations_created.append(name)
        return org.id

    def real_plan(self, key: str) -> Plan:
        plan = self.plans[key]
        if getattr(plan, "to_create", False) and self.write:
            from membership.plans import catalog
            plan = catalog.create_plan(self.session, {
                "code": plan.code, "name": plan.name, "fee": "0", "period_kind": plan.period_kind,
                "period_months": str(plan.period_months), "grace_days": str(plan.grace_days),
                "joinable_online": False}, currency=self.currency, actor=self.actor, now=self.now)
            self.plans[key] = plan
        return plan

    def terms_of_org(self, org_id: int) -> list:
        if org_id not in self.org_terms:
            self.org_terms[org_id] = list(self.session.scalars(
                select(Membership).where(Membership.organization_id == org_id))) if org_id > 0 else []
        return self.org_terms[org_id]

    def membership_values(self, spec: _TermSpec, plan: Plan, *, member_id=None, organization_id=None) -> dict:
        t = self.term_like(spec)
        t.plan_id = plan.id
        return dict(
            member_id=member_id, organization_id=organization_id, plan_id=plan.id,
            starts_on=spec.starts_on, ends_on=spec.ends_on, grace_days=plan.grace_days,
            fee_minor=plan.fee_minor, currency=plan.currency, source="import", renews_id=None,
            awaiting_payment=t.awaiting_payment, awaiting_approval=t.awaiting_approval,
            paid_on=None if spec.pending else min(spec.starts_on, self.today),
            approved_at=None if t.awaiting_approval else self.now,
            cancelled_on=spec.cancelled_on, cancel_reason=IMPORT_REASON if spec.cancelled_on else None,
            override_status=spec.override_status, override_until=spec.override_until,
            override_reason=IMPORT_REASON if spec.override_status else None,
            status=status_on(t, self.today), created_at=self.now, created_by_id=self.actor_id,
        )

    def ensure_org_term(self, org_id: int, spec: _TermSpec) -> bool:
        """Give the organisation this term unless it has it (same plan and start). True when added."""
        plan = self.real_plan(spec.plan_key)
        terms = self.terms_of_org(org_id)
        if any(t.plan_id == plan.id and t.starts_on == spec.starts_on for t in terms):
            return False
        if not self.write:
            terms.append(self.term_like(spec))
            return True
        term = Membership(**self.membership_values(spec, plan, organization_id=org_id))
        self.session.add(term)
        self.session.flush()
        terms.append(term)
        self.orgs_with_new_terms.add(org_id)
        return True

    # ---- writing

    def apply_update(self, row: _Row) -> bool:
        """Update a matched member from the row (dry run: only find out whether anything would
        change). Returns True when something changes."""
        member = row.match
        values = dict(row.values)
        if "member_number" in values and values["member_number"] == member.member_number:
            del values["member_number"]
        if values.get("email") and normalize_email(values["email"]) == member.email_normalized:
            del values["email"]  # the same address written with other capitals is no change
        extra: dict[str, Any] = {}
        if "organization" in self.present:
            extra["organization_id"] = self.org_id(row.org_name) if row.org_name else None
        if row.primary is not None:
            extra["is_primary_contact"] = row.primary
        if row.referrer == "":
            extra["referred_by_id"] = None
        changes = {k: v for k, v in {**values, **extra}.items() if getattr(member, k) != v}
        referral_changes = row.referrer and (member.referred_by is None
                                             or member.referred_by.member_number != row.referrer)
        term_added = False
        if row.term is not None:
            if row.term.org_held:
                org_id = extra.get("organization_id", member.organization_id)
                term_added = self.ensure_org_term(org_id, row.term)
            else:
                term_added = self.add_member_term(member, row.term)
            if term_added:
                self.report.terms += 1
        changed = bool(changes) or bool(referral_changes) or term_added
        if not self.write:
            return changed
        if changes:
            update_member(self.session, member, MemberData(changes), actor=self.actor, now=self.now)
        if row.referrer:
            self.referrals.append((row.n, member.id, row.referrer))
        if row.primary and member.organization_id:
            self.primary_members[member.organization_id] = member.id
        if term_added or "organization_id" in changes:
            self.session.flush()
            refresh_status(self.session, member, today=self.today, now=self.now)
        return changed

    def add_member_term(self, member: Member, spec: _TermSpec) -> bool:
        plan = self.real_plan(spec.plan_key)
        if plan.id is not None and self.session.scalar(select(Membership.id).where(
                Membership.member_id == member.id, Membership.plan_id == plan.id,
                Membership.starts_on == spec.starts_on).limit(1)) is not None:
            return False
        if self.write:
            term = Membership(**self.membership_values(spec, plan, member_id=member.id))
            self.session.add(term)
            record_audit(self.session, actor=self.actor, action="membership.import", entity=member, now=self.now,
                         member_id=member.id, summary=f"Imported term {plan.code}: {spec.starts_on} to "
                                                      f"{spec.ends_on or 'lifetime'}")
        return True

    def assign_numbers(self, count: int) -> list[str]:
        """`count` fresh member numbers from the 'member' counter, with the semantics of
        members.services.next_member_number: numbers already in use, or given in this file, are
        passed over, and the counter ends on the last number handed out. Taking the counter row
        (next_number's UPDATE) also serialises two imports running at once."""
        if count <= 0:
            return []
        session = self.session
        n = next_number(session, "member") - 1
        out: list[str] = []
        while len(out) < count:
            candidates: list[str] = []
            while len(candidates) < count - len(out):
                n += 1
                number = f"M{n:06d}"
                if number not in self.info.numbers:
                    candidates.append(number)
            taken = set(session.scalars(select(Member.member_number).where(Member.member_number.in_(candidates))))
            out += [c for c in candidates if c not in taken]
        session.execute(update(Counter).where(Counter.name == "member").values(value=n))
        return out

    def insert_new(self, rows: list[_Row]) -> None:
        numbers = iter(self.assign_numbers(sum(1 for r in rows if not r.values.get("member_number"))))
        member_dicts: list[dict] = []
        terms: dict[str, tuple[_TermSpec, Plan]] = {}
        for row in rows:
            v = row.values
            number = v.get("member_number") or next(numbers)
            m = re.fullmatch(r"M(\d{1,12})", number)
            if m and v.get("member_number"):
                self.highest_number = max(self.highest_number, int(m.group(1)))
            org_id = self.org_id(row.org_name) if row.org_name else None
            own: list = []
            if row.term is not None:
                plan = self.real_plan(row.term.plan_key)
                if row.term.org_held:
                    self.ensure_org_term(org_id, row.term)
                else:
                    terms[number] = (row.term, plan)
                    t = self.term_like(row.term)
                    t.plan_id = plan.id
                    own.append(t)
            effective = own + (self.terms_of_org(org_id) if org_id else [])
            hs = holder_status(effective, self.today)
            first, last, email = v["first_name"], v.get("last_name") or "", v.get("email")
            values = {
                "member_number": number, "first_name": first, "last_name": last, "email": email,
                "email_normalized": normalize_email(email) if email else None,
                "phone": v.get("phone"), "address_line1": v.get("address_line1"),
                "address_line2": v.get("address_line2"), "city": v.get("city"), "postcode": v.get("postcode"),
                "country": v.get("country"), "date_of_birth": v.get("date_of_birth"),
                "organization_id": org_id, "is_primary_contact": bool(row.primary and org_id),
                "job_title": v.get("job_title"), "joined_on": v.get("joined_on") or self.today,
                "referred_by_id": None, "language": v.get("language") or "en",
                "marketing_opt_in": bool(v.get("marketing_opt_in")),
                "directory_opt_in": bool(v.get("directory_opt_in")), "email_bouncing": False,
                "notes": v.get("notes"), "external_id": v.get("external_id"),
                "status": hs.status, "plan_id": hs.term.plan_id if hs.term else None,
                "term_starts_on": hs.term.starts_on if hs.term else None, "expires_on": hs.expires_on,
                "created_at": self.now, "updated_at": self.now, "erased_at": None,
            }
            values["search_text"] = build_search_text(SimpleNamespace(**values, full_name=f"{first} {last}".strip()))
            member_dicts.append(values)
        session = self.session
        ids = _bulk_insert(session, Member.__table__, member_dicts, key="member_number")
        term_dicts = [self.membership_values(spec, plan, member_id=ids[number])
                      for number, (spec, plan) in terms.items()]
        _bulk_insert(session, Membership.__table__, term_dicts)
        ip = session.info.get("ip")
        name = self.report.filename or "a file"
        _bulk_insert(session, AuditLog.__table__, [
            {"at": self.now, "actor_id": self.actor_id, "action": "member.create", "entity_type": "member",
             "entity_id": ids[d["member_number"]], "member_id": ids[d["member_number"]],
             "summary": f"Imported member {d['member_number']} {d['first_name']} {d['last_name']}".rstrip()
                        + f" from {name}", "ip": ip}
            for d in member_dicts])
        for row, d in zip(rows, member_dicts):
            if row.referrer:
                self.referrals.append((row.n, ids[d["member_number"]], row.referrer))
            if d["is_primary_contact"]:
                self.primary_members[d["organization_id"]] = ids[d["member_number"]]
            if d["organization_id"]:
                self.inserted_contacts.setdefault(d["organization_id"], set()).add(ids[d["member_number"]])

    def refresh_organization(self, org_id: int) -> None:
        """plans.services.refresh_status for an organisation that got a term, in bulk: contacts
        this import inserted get their cached status set directly; contacts that were there
        before go through refresh_status (which records their status change)."""

        session, today = self.session, self.today
        org = session.get(Organization, org_id)
        org_terms = list(session.scalars(select(Membership).where(Membership.organization_id == org_id)))
        for term in org_terms:
            term.status = status_on(term, today)
        hs = holder_status(org_terms, today)
        org.status, org.expires_on = hs.status, hs.expires_on
        org.plan_id = hs.term.plan_id if hs.term else None
        inserted = self.inserted_contacts.get(org_id, set())
        contacts = list(session.scalars(select(Member).where(Member.organization_id == org_id)))
        own: dict[int, list] = {}
        for term in session.scalars(select(Membership).where(
                Membership.member_id.in_([c.id for c in contacts if c.id in inserted]))):
            own.setdefault(term.member_id, []).append(term)
        for contact in contacts:
            if contact.id not in inserted:
                refresh_status(session, contact, today=today, now=self.now)
                continue
            hs = holder_status(own.get(contact.id, []) + org_terms, today)
            contact.status, contact.expires_on = hs.status, hs.expires_on
            contact.plan_id = hs.term.plan_id if hs.term else None
            contact.term_starts_on = hs.term.starts_on if hs.term else None

    def finish(self) -> None:
        """After the last row: referrals (they may point to a later row), primary contacts,
        organisations' cached status, and the member-number counter."""
        session = self.session
        session.flush()
        for i in range(0, len(self.referrals), 1000):
            chunk = self.referrals[i:i + 1000]
            ids = dict(session.execute(select(Member.member_number, Member.id).where(
                Member.member_number.in_({number for _, _, number in chunk}))).all())
            updates = []
            for n, member_id, number in chunk:
                if number in ids and ids[number] != member_id:
                    updates.append({"id": member_id, "referred_by_id": ids[number]})
                else:
                    self.emit(Issue(n, "referred_by", f"Member {number} was not imported; referral left "
                                                      "empty.", "warning"))
            if updates:
                session.execute(update(Member), updates)
        for org_id, member_id in self.primary_members.items():
            session.execute(update(Member).where(Member.organization_id == org_id, Member.id != member_id,
                                                 Member.is_primary_contact.is_(True))
                            .values(is_primary_contact=False))
        for org_id in self.orgs_with_new_terms:
            self.refresh_organization(org_id)
        if self.highest_number:
            value = session.scalar(select(Counter.value).where(Counter.name == "member"))
            if value is None:
                session.add(Counter(name="member", value=self.highest_number))
            elif value < self.highest_number:
                session.execute(update(Counter).where(Counter.name == "member")
                                .values(value=self.highest_number))
        session.flush()


SQLITE_IMPORT_CACHE_KIB = 65536


@contextmanager
def _sqlite_cache(session: Session, *, enlarge: bool) -> Iterator[None]:
    """SQLite: a bigger page cache on this connection while an import writes (its default 2 MB
    makes a 100,000-row transaction spill and re-read index pages); the old size afterwards."""
    if not enlarge or session.get_bind().dialect.name != "sqlite":
        yield
        return
    connection = session.connection()
    old = connection.exec_driver_sql("PRAGMA cache_size").scalar()
    connection.exec_driver_sql(f"PRAGMA cache_size = -{SQLITE_IMPORT_CACHE_KIB}")
    try:
        yield
    finally:
        try:
            connection.exec_driver_sql(f"PRAGMA cache_size = {int(old)}")
        except SQLAlchemyError:
            pass  # a failed transaction: the caller rolls back, and the size does no harm


def _bulk_insert(session: Session, table, rows: list[dict], *, key: str | None = None) -> dict[Any, int]:
    """Insert many rows fast; with `key`, return {row[key]: new id}.

    SQLite: the driver's executemany (a C loop). PostgreSQL: COPY, which loads the rows in one
    stream instead of one statement per row. Either way inside the session's transaction; the ids
    come back with one indexed query."""
    if not rows:
        return {}
    dialect = session.get_bind().dialect
    if dialect.name == "postgresql":
        # COPY skips SQLAlchemy, so Python-side column defaults (a flag added to the model later,
        # say) are filled in here as an INSERT would.
        defaults = {c.name: c.default.arg for c in table.columns
                    if c.name not in rows[0] and c.default is not None and c.default.is_scalar}
        columns = list(rows[0]) + list(defaults)
        if defaults:
            rows = [{**row, **defaults} for row in rows]
        cursor = session.connection().connection.dbapi_connection.cursor()
        quoted = ", ".join(f'"{c}"' for c in columns)
        statement = f'COPY "{table.name}" ({quoted}) FROM STDIN'
        try:
            with cursor.copy(statement) as copy:
                for row in rows:
                    copy.write_row([row[c] for c in columns])
        except dialect.loaded_dbapi.Error as e:
            # The same exception (IntegrityError...) as a statement sent through SQLAlchemy.
            raise DBAPIError.instance(statement, None, e, dialect.loaded_dbapi.Error, dialect=dialect) from e
        finally:
            cursor.close()
    else:
        session.execute(table.insert(), rows)
    if key is None:
        return {}
    return dict(session.execute(select(table.c[key], table.c.id).where(
        table.c[key].in_([r[key] for r in rows]))).all())


def import_members(session: Session, source, *, options: ImportOptions, today: date, now: datetime, actor,
                   region: str, currency: str, filename: str = "", info: FileInfo | None = None,
                   progress: Callable[[int], None] | None = None,
                   on_issue: Callable[[Issue], None] | None = None, max_issues: int = MAX_ISSUES,
                   batch_size: int | None = None, audit: bool = True) -> ImportReport:
    """Check every row of a members CSV and (unless `options.dry_run`) write the valid ones.

    `source` is a path or the file's bytes. Existing members are matched by normalised email and by
    member number and updated or skipped as `options.on_match` says. New members and their terms
    are inserted in batches; member numbers come from the 'member' counter. Writes one summary
    audit row ("member.import") plus a "member.create" row per new member (updates audit as
    update_member does). Flushes; the caller commits - or rolls back on any exception, so the import
    lands whole or not at all. Raises ImportFileError when the file cannot be read as a whole.
    `progress(n)` is called with the number of rows done after each batch; `on_issue(issue)` with
    every problem found (the report keeps the first `max_issues`). Rows go to the database
    `batch_size` at a time (default IMPORT_BATCH)."""
    info = info or inspect_file(source)
    if info.filled == 0:
        raise ImportFileError("The file has a header but no member rows.")
    report = ImportReport(filename=filename, dry_run=options.dry_run, on_match=options.on_match,
                          encoding=info.encoding_label)
    if info.encoding in ("cp1252", "latin-1"):
        issue = Issue(1, "", f"The file is not UTF-8; it was read as {info.encoding_label}.", "warning")
        report.issue_count += 1
        report.warnings += 1
        report.issues.append(issue)
        if on_issue:
            on_issue(issue)
    _plan_each_lookup(session)
    importer = _Importer(session, info, options, today=today, now=now, actor=actor, region=region,
                         currency=currency, report=report, on_issue=on_issue, max_issues=max_issues,
                         batch_size=batch_size or IMPORT_BATCH)
    with _sqlite_cache(session, enlarge=not options.dry_run):
        importer.run(_records(source, info.encoding, info.delimiter), progress)
    if audit and not options.dry_run:
        record_audit(session, actor=actor, action="member.import", entity=None, now=now,
                     summary=f"Imported {filename or 'a CSV file'}: {report.summary()}",
                     changes={"file": filename, "on_match": options.on_match,
                              "create_plans": options.create_plans, **report.counts()})
        session.flush()
    return report


def template_csv() -> str:
    """A header-only file to fill in."""
    return "".join(iter_csv_text([list(COLUMNS)]))


def column_reference(doc: str | None = None) -> list[tuple[str, str]]:
    """(column, meaning) for every column, read from this module's docstring (one source for the
    help page and the README), or from the table in another module's `doc`."""
    lines = (doc or __doc__ or "").splitlines()
    rules = [i for i, line in enumerate(lines) if line.startswith("=====")]
    if len(rules) < 3:
        return [(c, "") for c in COLUMNS] if doc is None else []
    width = lines[rules[0]].index(" ") + 2
    out: list[tuple[str, str]] = []
    for line in lines[rules[1] + 1:rules[2]]:
        name, text = line[:width].strip(), line[width:].strip()
        if name:
            out.append((name, text))
        elif out and text:
            out[-1] = (out[-1][0], f"{out[-1][1]} {text}")
    return out
