"""The membership status lifecycle as pure functions of dates (no database, no clock).

A term's status on a day, checked in order, first match wins (CiviCRM's status rules):
  override   staff set a status until a date (or for good)
  cancelled  cancelled on or before the day
  pending    waiting for payment or approval
  upcoming   paid, but starts after the day (a renewal made early)
  active     starts_on <= day <= ends_on (lifetime: no end)
  grace      past the end, within the term's grace days
  lapsed     past the grace period
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Iterable, Protocol

from flask_babel import lazy_gettext as _l

CURRENT = frozenset({"active", "grace"})

# Lazy: each is translated when shown, in the language of the page (web.status_label for templates).
STATUS_LABELS = {
    "pending": _l("Pending"),
    "upcoming": _l("Starts later"),
    "active": _l("Active"),
    "grace": _l("Grace period"),
    "lapsed": _l("Lapsed"),
    "cancelled": _l("Cancelled"),
    "renewed": _l("Renewed"),  # display only (HistoryRow.status): a past term that a later one continued
    "none": _l("No membership"),
}


class TermLike(Protocol):
    starts_on: date
    ends_on: date | None
    grace_days: int
    awaiting_payment: bool
    awaiting_approval: bool
    cancelled_on: date | None
    override_status: str | None
    override_until: date | None


def status_on(term: TermLike, day: date) -> str:
    """The status of `term` on `day`."""
    if term.override_status and (term.override_until is None or day <= term.override_until):
        return term.override_status
    if term.cancelled_on is not None and term.cancelled_on <= day:
        return "cancelled"
    if term.awaiting_payment or term.awaiting_approval:
        return "pending"
    if day < term.starts_on:
        return "upcoming"
    if term.ends_on is None or day <= term.ends_on:
        return "active"
    if day <= term.ends_on + timedelta(days=term.grace_days or 0):
        return "grace"
    return "lapsed"


def grace_ends_on(term: TermLike) -> date | None:
    return None if term.ends_on is None else term.ends_on + timedelta(days=term.grace_days or 0)


def governing_term(terms: Iterable[TermLike], day: date) -> TermLike | None:
    """The term that decides a holder's status on `day`.

    A current term (active or grace) wins; an early renewal (upcoming) does not hide the term it
    follows. Otherwise the latest term that has started, so a lapse stays visible; otherwise the
    latest term of all (a pending application).
    """
    terms = sorted(terms, key=lambda t: (t.starts_on, getattr(t, "id", 0) or 0))
    if not terms:
        return None
    current = [t for t in terms if status_on(t, day) in CURRENT]
    if current:
        return current[-1]
    started = [t for t in terms if t.starts_on <= day and status_on(t, day) != "pending"]
    if started:
        return started[-1]
    return terms[-1]


@dataclass(frozen=True)
class HolderStatus:
    status: str
    term: TermLike | None
    expires_on: date | None  # end of the last paid, uncancelled term in the chain (None: lifetime/none)

    @property
    def is_current(self) -> bool:
        return self.status in CURRENT


def holder_status(terms: Iterable[TermLike], day: date) -> HolderStatus:
    """Status of a member or organisation on `day` from all its terms."""
    terms = list(terms)
    term = governing_term(terms, day)
    if term is None:
        return HolderStatus("none", None, None)
    status = status_on(term, day)
    if status == "upcoming":
        status = "pending"  # a first term that has not started yet: not a member yet
    paid = [t for t in terms if not (t.awaiting_payment or t.awaiting_approval)
            and (t.cancelled_on is None or t.cancelled_on > day)]
    if any(t.ends_on is None for t in paid):
        expires = None
    else:
        expires = max((t.ends_on for t in paid), default=term.ends_on)
    return HolderStatus(status, term, expires)


@dataclass(frozen=True)
class HistoryRow:
    """One line of a holder's term history: a term, or a gap between two terms (term None)."""
    term: TermLike | None
    starts_on: date
    ends_on: date | None
    continued: bool = False  # a later paid term starts no later than the day after this one ends

    @property
    def is_gap(self) -> bool:
        return self.term is None

    @property
    def days(self) -> int | None:
        return None if self.ends_on is None else (self.ends_on - self.starts_on).days + 1

    def status(self, day: date) -> str:
        """The term's status for a history line: a term that ended and was continued by a later
        one says "renewed", not "grace" or "lapsed" (its holder never was in grace or lapsed)."""
        if self.term is None:
            return "none"
        status = status_on(self.term, day)
        if self.continued and status in ("grace", "lapsed"):
            return "renewed"
        return status


def history_with_gaps(terms: Iterable[TermLike]) -> list[HistoryRow]:
    """Terms oldest first, with a gap row wherever a term starts later than the day after the
    latest end so far (a lapse before a renewal). Cancelled and pending terms are listed but do
    not cover days."""
    rows: list[HistoryRow] = []
    covered_to: date | None = None
    started = False
    ordered = sorted(terms, key=lambda t: (t.starts_on, getattr(t, "id", 0) or 0))
    paid = [t for t in ordered if not (t.awaiting_payment or t.awaiting_approval)
            and (t.cancelled_on is None or t.cancelled_on > t.starts_on)]
    for term in ordered:
        if started and covered_to is not None and term.starts_on > covered_to + timedelta(days=1):
            rows.append(HistoryRow(None, covered_to + timedelta(days=1), term.starts_on - timedelta(days=1)))
        continued = term.ends_on is not None and any(
            t is not term and term.starts_on < t.starts_on <= term.ends_on + timedelta(days=1) for t in paid)
        rows.append(HistoryRow(term, term.starts_on, term.ends_on, continued))
        if term.awaiting_payment or term.awaiting_approval:
            continue
        end = term.ends_on
        if term.cancelled_on is not None:
            end = min(end, term.cancelled_on - timedelta(days=1)) if end else term.cancelled_on - timedelta(days=1)
        if not started:
            started, covered_to = True, end
        elif covered_to is not None:
            covered_to = None if end is None else max(covered_to, end)
    return rows
