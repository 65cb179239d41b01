"""Auto-renewal by card (issue 12.3): a member who ticked "Renew automatically with this card" at a
checkout has a SavedCard; before each term ends they get a notice, and on the term's last day the
card is charged and the term renewed through the ordinary plans.services.renew + record_payment.

Two sweeps, run by the scheduler (payments.autorenew_jobs), computed from state so a missed day is
caught up and a second run does nothing twice:

  notices  AUTO_RENEW_NOTICE_DAYS before the charge day (and every day until the day before, if the
           scheduler was down), one email per card and term (the outbox's dedupe key);
  charges  from the charge day (the term's `ends_on`, inside the plan's renewal window) while the
           term is still active or in grace. Each (card, term) has one AutoRenewalCharge row, unique,
           moved to "charging" by a compare-and-swap UPDATE and committed before the provider is
           called: a second scheduler, or a rerun, finds it claimed or done. A decline is recorded,
           emailed, and retried at most once a day, MAX_FAILURES times in all; meanwhile the term is
           simply not renewed, so the ordinary renewal reminders, grace and lapse run as usual. A
           ProviderError (timeout, provider down) means "not charged": the next run tries again with
           the same idempotency key, so a charge that did go through at the provider is not repeated.

Who is charged: the member's own latest term, active or in grace, with an end date (not lifetime),
not cancelled, not pending, not already renewed (by hand or otherwise), on a plan that is still
offered and has a fee. Organisation terms are never charged.

Every function takes a session and explicit `now`/`today`/settings; it adds and flushes. The
charge sweep commits through `checkpoint` (the scheduler's commit) around each provider call, because
the claim must be visible to other processes before money moves.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Callable

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from membership.core.errors import DomainError
from membership.core.services import record_audit
from membership.core.settings import Settings
from membership.members.models import Member
from membership.payments.autorenew_models import AutoRenewalCharge
from membership.payments.base import ProviderError
from membership.payments.models import SavedCard
from membership.payments.registry import get_provider
from membership.plans.models import Membership, Payment, Plan
from membership.plans.services import renewal_window_problem
from membership.plans.status import status_on

log = logging.getLogger("samiti.autorenew")

MAX_FAILURES = 3
# A claim left "charging" this long belongs to a process that died mid-call: it may be taken over
# (the idempotency key is the same, so the provider does not charge twice).
STALE_CLAIM = timedelta(hours=1)
STOP_PATH = "/my/#autorenew"  # the portal home's auto-renewal box, with its Stop button


# ---------------------------------------------------------------- who, what and when


def active_card(session: Session, member: Member) -> SavedCard | None:
    """The member's card for auto-renewal: the latest one not revoked, else None."""
    return session.scalar(select(SavedCard).where(SavedCard.member_id == member.id, SavedCard.revoked_at.is_(None))
                          .order_by(SavedCard.created_at.desc(), SavedCard.id.desc()).limit(1))


def _latest_own_term(session: Session, member: Member) -> Membership | None:
    return session.scalar(select(Membership).where(Membership.member_id == member.id)
                          .order_by(Membership.starts_on.desc(), Membership.id.desc()).limit(1))


def why_not_charged(session: Session, term: Membership | None, today: date) -> str | None:
    """Why `term` (a member's latest own term) is not one auto-renewal charges, or None when it is:
    no_term, lifetime, not_current (cancelled, lapsed, pending, upcoming), renewed, plan_retired, free."""
    if term is None:
        return "no_term"
    if term.ends_on is None:
        return "lifetime"
    if status_on(term, today) not in ("active", "grace"):
        return "not_current"
    if term.member is None or term.member.erased_at is not None:
        return "not_current"
    if session.scalar(select(Membership.id).where(Membership.renews_id == term.id).limit(1)) is not None:
        return "renewed"
    plan: Plan = term.plan
    if plan is None or not plan.is_active:
        return "plan_retired"
    if (plan.fee_minor or 0) <= 0:
        return "free"
    return None


def charge_day(term: Membership) -> date:
    """The day the card is charged for `term`: its last day. The next term then starts the day after
    (plans.services.renewal_start), so no day is lost and none given away; a plan's renewal window
    (renewal_opens_days) always opens on or before the last day, so the charge is inside it."""
    return term.ends_on


@dataclass(frozen=True)
class AutoRenewal:
    """What the portal and the member page show: "on, with <card>, next charge of <amount> on <date>".
    `next_charge_on` is None when nothing will be charged (e.g. a lifetime plan, or MAX_FAILURES
    declines); `last_failure` is the latest decline of this term, if any."""
    card: SavedCard
    term: Membership | None
    amount_minor: int | None
    currency: str | None
    next_charge_on: date | None
    last_failure: str | None = None
    gave_up: bool = False


def status_of(session: Session, member: Member, *, today: date) -> AutoRenewal | None:
    """The member's auto-renewal, or None when it is off (no card, or every card stopped)."""
    card = active_card(session, member)
    if card is None:
        return None
    term = _latest_own_term(session, member)
    if why_not_charged(session, term, today) is not None:
        return AutoRenewal(card, term, None, None, None)
    charge = session.scalar(select(AutoRenewalCharge).where(AutoRenewalCharge.card_id == card.id,
                                                            AutoRenewalCharge.term_id == term.id))
    amount = charge.amount_minor if charge is not None else term.plan.fee_minor
    currency = charge.currency if charge is not None else term.plan.currency
    on = max(charge_day(term), today)
    if charge is not None and charge.status == "declined" and charge.last_attempt_on is not None:
        on = max(on, charge.last_attempt_on + timedelta(days=1))
    if charge is not None and charge.status in ("gave_up", "paid", "unapplied"):
        return AutoRenewal(card, term, amount, currency, None, charge.failure_message, charge.status == "gave_up")
    return AutoRenewal(card, term, amount, currency, on, charge.failure_message if charge and charge.failures else None)


def _candidates(session: Session, today: date) -> list[tuple[SavedCard, Membership]]:
    """(card, term) for every member with an active card whose latest own term auto-renewal charges."""
    cards = session.scalars(select(SavedCard).where(SavedCard.revoked_at.is_(None))
                            .order_by(SavedCard.member_id, SavedCard.created_at.desc(), SavedCard.id.desc())).all()
    out, seen = [], set()
    for card in cards:
        if card.member_id in seen:
            continue  # the member's latest card only
        seen.add(card.member_id)
        term = _latest_own_term(session, card.member)
        if why_not_charged(session, term, today) is None:
            out.append((card, term))
    return out


def _money(minor: int, currency: str) -> str:
    from membership.core.formats import money
    return money(minor, currency)


def _in_language_of(member: Member):
    from membership.core.i18n import in_language, language_of
    return in_language(language_of(member=member))


# ---------------------------------------------------------------- notices


def notice_key(card: SavedCard, term: Membership) -> str:
    return f"autorenew:notice:{card.id}:{term.id}:{term.ends_on.isoformat()}"


def queue_notices(session: Session, *, settings: Settings, now: datetime, today: date) -> dict[str, int]:
    """Email every opted-in member whose charge day is `settings.auto_renew_notice_days` days away
    (or nearer, when a run was missed, but not on the day itself): once per card and term, in the
    member's language, with the amount, the day, the card and a link to stop. Adds outbox rows and
    flushes; the caller commits. Returns counts: checked, queued, already_sent, not_due."""
    from membership.notifications.outbox import enqueue
    from membership.notifications.templating import link

    days = max(0, int(settings.auto_renew_notice_days))
    counts = dict.fromkeys(("checked", "queued", "already_sent", "not_due"), 0)
    for card, term in _candidates(session, today):
        counts["checked"] += 1
        on = charge_day(term)
        if not (on - timedelta(days=days) <= today < on):
            counts["not_due"] += 1
            continue
        member = card.member
        with _in_language_of(member):
            context = {"term": term, "card_label": card.label or "", "charge_date": on,
                       "amount": _money(term.plan.fee_minor, term.plan.currency), "stop_link": link(STOP_PATH)}
        row = enqueue(session, template_key="autorenew_notice", dedupe_key=notice_key(card, term), now=now,
                      member=member, context=context, source=card)
        counts["queued" if row is not None else "already_sent"] += 1
    session.flush()
    return counts


# ---------------------------------------------------------------- charges


def idempotency_key(charge: AutoRenewalCharge) -> str:
    """The provider's idempotency key of the next attempt: the card, the term and the attempt number
    (declines so far + 1). A retry after a timeout reuses it (the provider answers with the first
    outcome, never charging twice); a retry after a decline is a new attempt."""
    return f"samiti-autorenew-{charge.card_id}-{charge.term_id}-{charge.failures + 1}"


def _row_for(session: Session, card: SavedCard, term: Membership, *, now: datetime) -> AutoRenewalCharge:
    key = (AutoRenewalCharge.card_id == card.id, AutoRenewalCharge.term_id == term.id)
    row = session.scalar(select(AutoRenewalCharge).where(*key))
    if row is not None:
        return row
    try:
        with session.begin_nested():
            row = AutoRenewalCharge(card_id=card.id, term_id=term.id, member_id=card.member_id, status="pending",
                                    amount_minor=term.plan.fee_minor, currency=term.plan.currency, attempts=0,
                                    failures=0, created_at=now, updated_at=now)
            session.add(row)
            session.flush()
        return row
    except IntegrityError:  # another process inserted it first (it waited for that one's commit)
        return session.scalar(select(AutoRenewalCharge).where(*key))


def _claim(session: Session, row: AutoRenewalCharge, *, now: datetime, today: date) -> bool:
    """Move `row` to "charging" if it may be attempted now; True when this process got it.
    A compare-and-swap UPDATE: on PostgreSQL a concurrent one waits for the first and then finds the
    row no longer claimable."""
    claimable = or_(AutoRenewalCharge.status.in_(("pending", "error")),
                    and_(AutoRenewalCharge.status == "declined",
                         or_(AutoRenewalCharge.last_attempt_on.is_(None), AutoRenewalCharge.last_attempt_on < today)),
                    and_(AutoRenewalCharge.status == "charging", AutoRenewalCharge.claimed_at < now - STALE_CLAIM))
    done = session.execute(update(AutoRenewalCharge).where(AutoRenewalCharge.id == row.id, claimable)
                           .values(status="charging", claimed_at=now, last_attempt_on=today, updated_at=now,
                                   attempts=AutoRenewalCharge.attempts + 1)
                           .execution_options(synchronize_session=False)).rowcount
    return done == 1


def charge_due(session: Session, *, settings: Settings, now: datetime, today: date,
               checkpoint: Callable[[], None] = lambda: None) -> dict[str, Any]:
    """Charge every saved card whose term's charge day has come and renew the term with the payment
    (method "online", reference "<provider>:<payment_ref>", the usual receipt email). Exactly once
    per card and term: see the module docstring. `checkpoint` commits (the scheduler's): it is called
    after each claim, before the provider is asked, and after each outcome.
    Returns counts: checked, not_due, no_provider, busy (claimed elsewhere, done, or tried today),
    paid, declined, gave_up, provider_errors, unapplied."""
    counts = dict.fromkeys(("checked", "not_due", "no_provider", "busy", "paid", "declined", "gave_up",
                            "provider_errors", "unapplied"), 0)
    work = [(card.id, term.id) for card, term in _candidates(session, today)]
    for card_id, term_id in work:
        counts["checked"] += 1
        card, term = session.get(SavedCard, card_id), session.get(Membership, term_id)
        if today < charge_day(term) or renewal_window_problem(term, term.plan, today) is not None:
            counts["not_due"] += 1
            continue
        provider = get_provider(settings, card.provider)
        if provider is None:
            counts["no_provider"] += 1
            log.warning("auto-renewal: provider %r of card %s is not configured", card.provider, card.id)
            continue
        row = _row_for(session, card, term, now=now)
        if not _claim(session, row, now=now, today=today):
            counts["busy"] += 1
            continue
        checkpoint()  # the claim is visible to every other process before money moves
        row = session.get(AutoRenewalCharge, row.id, populate_existing=True)
        card, term = session.get(SavedCard, card_id), session.get(Membership, term_id)
        counts[_attempt(session, provider, row, card, term, settings=settings, now=now, today=today)] += 1
        session.flush()
        checkpoint()
    return counts


def _attempt(session: Session, provider, row: AutoRenewalCharge, card: SavedCard, term: Membership, *,
             settings: Settings, now: datetime, today: date) -> str:
    """Ask the provider for the money of a claimed row and record the outcome; returns the count's name."""
    plan = term.plan
    description = f"{settings.association_name}: renewal of {plan.name} from {term.ends_on + timedelta(days=1)}"
    try:
        result = provider.charge_saved(customer_ref=card.customer_ref, payment_method_ref=card.payment_method_ref,
                                       amount_minor=row.amount_minor, currency=row.currency,
                                       description=description[:200], idempotency_key=idempotency_key(row))
    except ProviderError as exc:
        row.status, row.failure_message, row.updated_at = "error", (str(exc) or type(exc).__name__)[:500], now
        log.warning("auto-renewal of term %s: provider error, will retry: %s", term.id, exc)
        return "provider_errors"
    if result.status != "paid":
        row.failures += 1
        row.status = "gave_up" if row.failures >= MAX_FAILURES else "declined"
        row.failure_message = (result.failure_message or "declined")[:500]
        row.updated_at = now
        record_audit(session, actor=None, action="autorenew.declined", entity=row, now=now, member_id=row.member_id,
                     summary=f"Automatic renewal: card {card.label or card.id} declined "
                             f"({row.failures} of {MAX_FAILURES}): {row.failure_message}")
        _queue_declined(session, row, card, term, now=now)
        return "gave_up" if row.status == "gave_up" else "declined"
    return _renew_with(session, row, card, term, result.payment_ref or "", now=now, today=today)


def _renew_with(session: Session, row: AutoRenewalCharge, card: SavedCard, term: Membership, payment_ref: str, *,
                now: datetime, today: date) -> str:
    from membership.plans.services import PaymentInput, record_payment, renew

    payment = PaymentInput(amount_minor=row.amount_minor, method="online", received_at=now,
                           reference=f"{card.provider}:{payment_ref}"[:100], idempotency_key=f"autorenew:{row.id}")
    row.payment_ref, row.updated_at, row.failure_message = payment_ref[:100] or None, now, None
    try:
        with session.begin_nested():
            new = renew(session, term, today=today, now=now, actor=None, payment=payment, source="autorenew",
                        notify=True)
        row.status, row.new_term_id = "paid", new.id
        row.payment_id = session.scalar(select(Payment.id).where(Payment.idempotency_key == payment.idempotency_key))
        return "paid"
    except DomainError as exc:
        # Charged, but the term can no longer be renewed (renewed by hand a moment ago, say): the money
        # is recorded against the member, without a term, for staff to refund or apply.
        log.error("auto-renewal of term %s: charged (%s) but not renewed: %s", term.id, payment_ref, exc)
        paid = session.scalar(select(Payment).where(Payment.idempotency_key == payment.idempotency_key))
        if paid is None:
            paid = record_payment(session, payment, actor=None, now=now, member=card.member, currency=row.currency)
        row.status, row.payment_id = "unapplied", paid.id
        row.failure_message = f"charged but not renewed: {exc}"[:500]
        record_audit(session, actor=None, action="autorenew.unapplied", entity=row, now=now, member_id=row.member_id,
                     summary=f"Automatic renewal: card charged (receipt {paid.receipt_number}) but the term "
                             f"was not renewed: {exc}")
        return "unapplied"


def _queue_declined(session: Session, row: AutoRenewalCharge, card: SavedCard, term: Membership, *, now: datetime):
    from membership.notifications.outbox import enqueue

    member = card.member
    with _in_language_of(member):
        amount = _money(row.amount_minor, row.currency)
    return enqueue(session, template_key="autorenew_declined", dedupe_key=f"autorenew:declined:{row.id}:{row.failures}",
                   now=now, member=member, source=row,
                   context={"term": term, "card_label": card.label or "", "amount": amount,
                            "will_retry": row.status == "declined", "failure_message": row.failure_message or ""})


# ---------------------------------------------------------------- stop


def stop(session: Session, member: Member, *, actor, now: datetime, via: str) -> bool:
    """Stop auto-renewal: revoke every active card of `member` (revoked_at), audit it and email the
    member a confirmation. `via`: "member" or "staff" (for the audit). Returns False when it was off
    already (nothing written). Flushes; the caller commits."""
    cards = session.scalars(select(SavedCard).where(SavedCard.member_id == member.id,
                                                    SavedCard.revoked_at.is_(None)).order_by(SavedCard.id)).all()
    if not cards:
        return False
    for card in cards:
        card.revoked_at = now
    label = cards[-1].label or ""
    record_audit(session, actor=actor, action="autorenew.stop", entity=cards[-1], now=now, member_id=member.id,
                 summary=f"Automatic renewal stopped by {'the member' if via == 'member' else 'staff'}"
                         + (f" (card {label})" if label else ""),
                 changes={"cards": [c.id for c in cards], "via": via})
    from membership.notifications.outbox import enqueue
    enqueue(session, template_key="autorenew_stopped", dedupe_key=f"autorenew:stopped:{cards[-1].id}", now=now,
            member=member, context={"card_label": label}, source=cards[-1])
    session.flush()
    return True
