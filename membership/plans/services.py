"""Membership operations: term dates, join, renew, pay, cancel, override, status transitions.

Every function takes a session and explicit `today`/`now`/`actor`; it adds and flushes, the
caller commits (one transaction per request, job run or CLI command).
"""
from __future__ import annotations

from flask_babel import gettext as _
import calendar
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Callable

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from membership.core import formats
from membership.core.errors import AlreadyRenewed, Conflict, ValidationError
from membership.core.validation import clean_text
from membership.core.services import next_number, record_activity, record_audit
from membership.engagement.live import members_changed
from membership.core.time import add_months, local_date, period_end, tz
from membership.members.models import Member, Organization
from membership.plans.catalog import format_minor
from membership.plans.models import PAYMENT_METHODS, TERM_STATUSES, Membership, Payment, Plan
from membership.plans.status import holder_status, status_on

# ---------------------------------------------------------------- term dates


def _safe_date(year: int, month: int, day: int) -> date:
    return date(year, month, min(day, calendar.monthrange(year, month)[1]))


def fixed_period_start(plan: Plan, day: date) -> date:
    """Start of the plan's period (calendar or fiscal year, or shorter) that contains `day`."""
    anchor = _safe_date(day.year, plan.period_start_month or 1, plan.period_start_day or 1)
    months = plan.period_months
    while anchor > day:
        anchor = add_months(anchor, -months)
    while add_months(anchor, months) <= day:
        anchor = add_months(anchor, months)
    # add_months may have clamped the anchor day (e.g. 31st); put it back where the month allows.
    return _safe_date(anchor.year, anchor.month, plan.period_start_day or 1)


def _rollover_date(plan: Plan, period_start: date) -> date | None:
    if not (plan.rollover_month and plan.rollover_day):
        return None
    candidate = _safe_date(period_start.year, plan.rollover_month, plan.rollover_day)
    if candidate < period_start:
        candidate = _safe_date(period_start.year + 1, plan.rollover_month, plan.rollover_day)
    if candidate == period_start:
        return None  # a rollover on the period's first day would make every term two periods long
    return candidate


def term_dates(plan: Plan, start: date) -> tuple[date, date | None]:
    """(starts_on, ends_on) of a term of `plan` that begins on `start`.

    rolling: period_months from the start. fixed: to the end of the period containing the start,
    and to the end of the next one when the start is on or after the plan's rollover day.
    lifetime: no end.
    """
    if plan.period_kind == "lifetime":
        return start, None
    if plan.period_kind == "rolling":
        return start, period_end(start, plan.period_months)
    if plan.period_kind != "fixed":
        raise ValidationError(f"Unknown period kind {plan.period_kind!r}.")
    period_start = fixed_period_start(plan, start)
    periods = 1
    rollover = _rollover_date(plan, period_start)
    if rollover is not None and rollover < add_months(period_start, plan.period_months) and start >= rollover:
        periods = 2
    return start, add_months(period_start, plan.period_months * periods) - timedelta(days=1)


# ---------------------------------------------------------------- payments


@dataclass(frozen=True)
class PaymentInput:
    amount_minor: int
    method: str
    received_at: datetime
    reference: str | None = None
    note: str | None = None
    idempotency_key: str | None = None


def receipt_year(received_at: datetime) -> int:
    return local_date(received_at, tz()).year


def record_payment(session: Session, payment: PaymentInput, *, actor, now: datetime,
                   member: Member | None = None, organization: Organization | None = None,
                   membership: Membership | None = None, currency: str, notify: bool = True,
                   registration=None) -> Payment:
    """Record money received and give it the next receipt number of its (local) year.
    `registration`: the event registration it pays for (an EventRegistration), if any.

    With `notify`, the receipt email is queued in the same transaction (outbox).
    Marks `membership` paid when the payments cover its fee. Raises ValidationError for a bad
    amount or method, Conflict when the same form (idempotency key) was already recorded.
    """
    if payment.amount_minor is None or payment.amount_minor < 0:
        raise ValidationError(_("The amount cannot be negative."), field="amount")
    if payment.method not in PAYMENT_METHODS:
        raise ValidationError(_("Choose a payment method."), field="method")
    if payment.received_at > now + timedelta(minutes=5):
        raise ValidationError(_("The payment date cannot be in the future."), field="received_on")
    payment = replace(
        payment,
        reference=clean_text(payment.reference, field="reference", label="Reference", max_length=100),
        note=clean_text(payment.note, field="note", label="Note", max_length=2000, multiline=True))
    if membership is not None:
        member = member or membership.member
        organization = organization or membership.organization
    if payment.idempotency_key:
        existing = _payment_with_key(session, payment.idempotency_key)
        if existing is not None:
            raise Conflict(_("This payment was already recorded (receipt %(number)s).", number=existing.receipt_number))
    year = receipt_year(payment.received_at)
    try:
        # Number and row in one savepoint: if the row is refused (the same form committed by a
        # concurrent request), the counter goes back too and the sequence keeps no gap.
        with session.begin_nested():
            number = next_number(session, f"receipt:{year}")
            row = Payment(
                member_id=member.id if member else None,
                organization_id=organization.id if organization else None,
                membership_id=membership.id if membership else None,
                registration_id=registration.id if registration is not None else None,
                amount_minor=payment.amount_minor, currency=currency, method=payment.method,
                reference=(payment.reference or None), note=(payment.note or None),
                received_at=payment.received_at, recorded_by_id=getattr(actor, "id", None),
                receipt_number=f"R-{year}-{number:05d}", idempotency_key=payment.idempotency_key,
                created_at=now,
            )
            session.add(row)
            session.flush()
    except IntegrityError as e:
        if payment.idempotency_key and "idempotency_key" in str(e.orig):
            raise Conflict(_("This payment was already recorded.")) from None
        raise
    if membership is not None and membership.awaiting_payment:
        paid = sum(p.amount_minor for p in membership.payments if p.id != row.id) + row.amount_minor
        if paid >= membership.fee_minor:
            membership.awaiting_payment = False
            membership.paid_on = local_date(payment.received_at, tz())
    elif membership is not None and membership.paid_on is None:
        # Paid with the join or renewal itself (the term was created as paid).
        membership.paid_on = local_date(payment.received_at, tz())
    if member is not None:
        record_activity(session, member_id=member.id, kind="payment", occurred_at=payment.received_at,
                        source=row, detail={"amount_minor": row.amount_minor, "currency": currency,
                                            "receipt": row.receipt_number})
    record_audit(session, actor=actor, action="payment.record", entity=row, now=now,
                 member_id=member.id if member else None,
                 summary=f"Payment {row.receipt_number}: {currency} {format_minor(row.amount_minor)} by {row.method}")
    if member is not None:
        from membership.referrals.services import on_payment
        on_payment(session, member, row, actor=actor, now=now)  # a referrer's reward, once
    if notify:
        from membership.notifications.emails import queue_receipt
        queue_receipt(session, row, now=now)
    members_changed(session, [member.id if member else None], now=now)  # risk follows reality (issue 10)
    return row


def _payment_with_key(session: Session, key: str) -> Payment | None:
    return session.scalar(select(Payment).where(Payment.idempotency_key == key))


# ---------------------------------------------------------------- terms


def terms_of(session: Session, holder: Member | Organization) -> list[Membership]:
    column = Membership.member_id if isinstance(holder, Member) else Membership.organization_id
    return list(session.scalars(select(Membership).where(column == holder.id)
                                .order_by(Membership.starts_on, Membership.id)))


def latest_term(session: Session, holder: Member | Organization) -> Membership | None:
    terms = terms_of(session, holder)
    return terms[-1] if terms else None


def _holder_kwargs(holder) -> dict:
    if isinstance(holder, Member):
        return {"member_id": holder.id}
    return {"organization_id": holder.id}


def _plan_fits(plan: Plan, holder) -> None:
    if not plan.is_active:
        raise ValidationError(_("The plan %(name)s is retired.", name=plan.name), field="plan")
    if isinstance(holder, Organization) and not plan.is_organizational:
        raise ValidationError(_("%(name)s is not a plan for organisations.", name=plan.name), field="plan")
    if isinstance(holder, Member) and plan.is_organizational:
        raise ValidationError(_("%(name)s is a plan for organisations.", name=plan.name), field="plan")


def join(session: Session, holder: Member | Organization, plan: Plan, *, today: date, now: datetime,
         actor, starts_on: date | None = None, payment: PaymentInput | None = None,
         source: str = "staff", approved: bool = True, notify: bool = True) -> Membership:
    """Start a first (or fresh) term of `plan` for a member or organisation.

    With `notify`, a member's welcome email (once per member, unless the term waits for approval)
    and the payment's receipt are queued in the same transaction. Imports and demo data pass False.
    Free plans are paid at once; paid plans wait for `payment`; plans that need approval wait for
    staff unless `approved`. Raises Conflict when the holder already has a current or future term.
    """
    _plan_fits(plan, holder)
    for term in terms_of(session, holder):
        if status_on(term, today) in ("active", "grace", "upcoming", "pending"):
            raise Conflict(_("This membership is already current or pending; renew it instead."))
    start = starts_on or today
    starts, ends = term_dates(plan, start)
    term = Membership(
        **_holder_kwargs(holder), plan_id=plan.id, starts_on=starts, ends_on=ends,
        grace_days=plan.grace_days, fee_minor=plan.fee_minor, currency=plan.currency, source=source,
        awaiting_payment=plan.fee_minor > 0,  # record_payment clears it once the fee is covered
        awaiting_approval=plan.needs_approval and not approved,
        approved_at=now if (approved or not plan.needs_approval) else None,
        paid_on=today if plan.fee_minor == 0 else None,
        created_at=now, created_by_id=getattr(actor, "id", None),
    )
    session.add(term)
    session.flush()
    if payment is not None:
        record_payment(session, payment, actor=actor, now=now, membership=term, currency=plan.currency,
                       notify=notify,
                       **({"member": holder} if isinstance(holder, Member) else {"organization": holder}))
    member_id = holder.id if isinstance(holder, Member) else None
    if member_id:
        record_activity(session, member_id=member_id, kind="joined", occurred_at=now, source=term,
                        detail={"plan": plan.code, "starts_on": starts, "ends_on": ends})
    record_audit(session, actor=actor, action="membership.join", entity=term, now=now, member_id=member_id,
                 summary=f"Joined {plan.name}: {starts} to {ends or 'lifetime'}")
    refresh_status(session, holder, today=today, now=now)
    if notify and member_id and not term.awaiting_approval:
        from membership.notifications.emails import queue_welcome
        queue_welcome(session, holder, now=now, term=term)
    return term


def renewal_start(term: Membership, plan: Plan, today: date) -> date:
    """Where the next term begins: the day after the current end while active or in grace (no days
    lost, none given away); today after a lapse or cancellation, unless the plan backdates."""
    status = status_on(term, today)
    if status == "pending":
        raise Conflict(_("The current term is still waiting for payment or approval; settle it first."))
    if term.ends_on is None:
        if status != "cancelled":
            raise Conflict(_("A lifetime membership does not need renewing."))
        return today
    if status in ("lapsed", "cancelled"):
        if plan.backdate_after_lapse and status == "lapsed":
            # Continuity, but only when the backdated term still covers today: after a lapse of
            # more than a term, a backdated term would be over before it is paid for.
            start = term.ends_on + timedelta(days=1)
            _start, ends = term_dates(plan, start)
            if ends is None or ends >= today:
                return start
        return today
    return term.ends_on + timedelta(days=1)


def renewal_window_problem(term: Membership, plan: Plan, today: date) -> str | None:
    """Why a member may not renew `term` online on `plan` yet: a plan may open renewals only N
    days before the end. The window of the term's own plan counts as well as the new plan's (the
    later opening decides), so choosing another plan does not get round it; the portal's home page
    and its renew page both ask this function (through portal.views.renewal_for)."""
    if term.ends_on is None:
        return None
    windows = [p.renewal_opens_days for p in (term.plan, plan) if p is not None and p.renewal_opens_days is not None]
    if not windows:
        return None
    days = min(windows)
    opens = term.ends_on - timedelta(days=days)
    if today < opens:
        return f"Renewal opens on {opens:%d %b %Y}, {days} days before your membership ends."
    return None


def renew(session: Session, term: Membership, *, today: date, now: datetime, actor,
          plan: Plan | None = None, payment: PaymentInput | None = None, source: str = "renewal",
          enforce_window: bool = False, notify: bool = True) -> Membership:
    """Create the term that follows `term`, optionally on another plan, with its payment
    (and, with `notify`, the payment's receipt email).

    Raises AlreadyRenewed if `term` already has a successor (a double submit renews once: the
    unique `renews_id` settles races), Conflict when `term` is not the latest term or is pending,
    ValidationError for a retired or unsuitable plan or (members) a renewal window not yet open.
    """
    plan = plan or term.plan
    holder = term.member if term.member_id else term.organization
    if payment is not None and payment.idempotency_key:
        # The same form posted twice: the second post may name the term the first one created
        # (a view that renews "the latest term"), so the payment key is checked first.
        done = _payment_with_key(session, payment.idempotency_key)
        if done is not None:
            raise AlreadyRenewed(_("This renewal was already recorded (receipt %(number)s).", number=done.receipt_number))
    _plan_fits(plan, holder)
    successor = session.scalar(select(Membership).where(Membership.renews_id == term.id))
    if successor is not None:
        raise AlreadyRenewed(_("This term was already renewed (new term from %(day)s).",
                               day=formats.strftime(successor.starts_on, "%d %b %Y")))
    later = [t for t in terms_of(session, holder) if t.id != term.id and
             (t.starts_on, t.id) > (term.starts_on, term.id)]
    if later:
        raise Conflict(_("Only the latest term can be renewed."))
    if enforce_window:
        problem = renewal_window_problem(term, plan, today)
        if problem:
            raise ValidationError(problem)
    start = renewal_start(term, plan, today)
    starts, ends = term_dates(plan, start)
    new = Membership(
        **_holder_kwargs(holder), plan_id=plan.id, starts_on=starts, ends_on=ends,
        grace_days=plan.grace_days, fee_minor=plan.fee_minor, currency=plan.currency, source=source,
        renews_id=term.id, awaiting_payment=plan.fee_minor > 0,  # record_payment clears it once the fee is covered
        awaiting_approval=False, approved_at=now, paid_on=today if plan.fee_minor == 0 else None,
        created_at=now, created_by_id=getattr(actor, "id", None),
    )
    try:
        with session.begin_nested():
            session.add(new)
            session.flush()
    except IntegrityError:
        raise AlreadyRenewed(_("This term was already renewed.")) from None
    from membership.referrals.services import apply_pending_rewards
    apply_pending_rewards(session, new, actor=actor, now=now)  # referral months granted since the last term
    ends = new.ends_on
    if payment is not None:
        record_payment(session, payment, actor=actor, now=now, membership=new, currency=plan.currency,
                       notify=notify)
    member_id = holder.id if isinstance(holder, Member) else None
    detail = {"plan": plan.code, "starts_on": starts, "ends_on": ends, "previous_term": term.id,
              "days_late": max(0, (today - term.ends_on).days) if term.ends_on else 0}
    if plan.id != term.plan_id:
        detail["previous_plan"] = term.plan.code
    if member_id:
        record_activity(session, member_id=member_id, kind="renewed", occurred_at=now, source=new, detail=detail)
    record_audit(session, actor=actor, action="membership.renew", entity=new, now=now, member_id=member_id,
                 summary=f"Renewed on {plan.name}: {starts} to {ends or 'lifetime'}", changes=detail)
    refresh_status(session, holder, today=today, now=now)
    members_changed(session, [member_id], now=now)  # risk follows reality (issue 10)
    return new


def pay_term(session: Session, term: Membership, payment: PaymentInput, *, today: date, now: datetime,
             actor, notify: bool = True) -> Payment:
    """Record a payment against a term (typically one waiting for payment) and update statuses."""
    row = record_payment(session, payment, actor=actor, now=now, membership=term, currency=term.currency,
                         notify=notify)
    refresh_status(session, term.member or term.organization, today=today, now=now)
    return row


def approve(session: Session, term: Membership, *, today: date, now: datetime, actor) -> None:
    if not term.awaiting_approval:
        raise Conflict(_("This term does not wait for approval."))
    term.awaiting_approval = False
    term.approved_at = now
    record_audit(session, actor=actor, action="membership.approve", entity=term, now=now,
                 member_id=term.member_id, summary="Application approved")
    refresh_status(session, term.member or term.organization, today=today, now=now)


def cancel(session: Session, term: Membership, *, on: date, reason: str, today: date, now: datetime,
           actor) -> None:
    """Cancel a term from `on` with a reason. Raises ValidationError for a missing reason or a date
    outside the term, Conflict when it is already cancelled."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError(_("Give a reason for the cancellation."), field="reason")
    if term.cancelled_on is not None:
        raise Conflict(_("This term was already cancelled on %(day)s.", day=formats.strftime(term.cancelled_on, "%d %b %Y")))
    if on < term.starts_on and on < today:
        raise ValidationError(_("The cancellation date is before the term starts."), field="on")
    if term.ends_on is not None and on > term.ends_on:
        raise ValidationError(_("The cancellation date is after the term ends."), field="on")
    term.cancelled_on = max(on, min(term.starts_on, today)) if on < term.starts_on else on
    term.cancel_reason = reason
    if term.member_id:
        record_activity(session, member_id=term.member_id, kind="cancelled", occurred_at=now, source=term,
                        detail={"on": term.cancelled_on, "reason": reason})
    record_audit(session, actor=actor, action="membership.cancel", entity=term, now=now,
                 member_id=term.member_id, summary=f"Cancelled from {term.cancelled_on}: {reason}")
    refresh_status(session, term.member or term.organization, today=today, now=now)


OVERRIDABLE = ("active", "grace", "lapsed", "cancelled", "pending")


def set_override(session: Session, term: Membership, *, status: str, until: date | None, reason: str,
                 today: date, now: datetime, actor) -> None:
    """Force a term's status until a date (inclusive) or for good (`until` None)."""
    reason = (reason or "").strip()
    if status not in OVERRIDABLE:
        raise ValidationError(_("Choose a status."), field="status")
    if not reason:
        raise ValidationError(_("Give a reason for the override."), field="reason")
    if until is not None and until < today:
        raise ValidationError(_("The override must last until today or later."), field="until")
    old = (term.override_status, term.override_until)
    term.override_status, term.override_until, term.override_reason = status, until, reason
    record_audit(session, actor=actor, action="membership.override", entity=term, now=now,
                 member_id=term.member_id,
                 summary=f"Status overridden to {status} until {until or 'further notice'}: {reason}",
                 changes={"override": [list(old), [status, until]]})
    refresh_status(session, term.member or term.organization, today=today, now=now)


def clear_override(session: Session, term: Membership, *, today: date, now: datetime, actor,
                   reason: str = "cleared by staff") -> None:
    if not term.override_status:
        return
    record_audit(session, actor=actor, action="membership.override_clear", entity=term, now=now,
                 member_id=term.member_id,
                 summary=f"Override {term.override_status} removed ({reason})")
    term.override_status = term.override_until = term.override_reason = None
    refresh_status(session, term.member or term.organization, today=today, now=now)


# ---------------------------------------------------------------- cached status


def effective_terms(session: Session, holder: Member | Organization) -> list[Membership]:
    """The terms that decide a holder's status: its own, plus its organisation's for a contact."""
    terms = terms_of(session, holder)
    if isinstance(holder, Member) and holder.organization_id:
        terms += list(session.scalars(select(Membership).where(
            Membership.organization_id == holder.organization_id)))
    return terms


def refresh_status(session: Session, holder: Member | Organization, *, today: date, now: datetime) -> bool:
    """Recompute the cached status, plan and dates of a holder (and its terms); write a
    status-change activity when a member's status changed. For an organisation, refreshes its
    contacts too. Returns True when the holder's status changed."""
    own = terms_of(session, holder)
    for term in own:
        term.status = status_on(term, today)
    terms = effective_terms(session, holder)
    for term in terms:
        term.status = status_on(term, today)
    hs = holder_status(terms, today)
    old = holder.status
    holder.status = hs.status
    holder.plan_id = hs.term.plan_id if hs.term else None
    holder.expires_on = hs.expires_on
    if isinstance(holder, Member):
        holder.term_starts_on = hs.term.starts_on if hs.term else None
        if old != hs.status and old is not None:
            record_activity(session, member_id=holder.id, kind="status_changed", occurred_at=now,
                            detail={"from": old, "to": hs.status})
            if hs.status == "lapsed":
                record_activity(session, member_id=holder.id, kind="lapsed", occurred_at=now,
                                detail={"term": hs.term.id if hs.term else None})
    else:
        for contact in holder.contacts:
            refresh_status(session, contact, today=today, now=now)
    return old != hs.status


def apply_status_transitions(session: Session, *, today: date, now: datetime, batch_size: int = 500,
                             progress: Callable[[int], None] | None = None, notify: bool = True) -> dict[str, int]:
    """Daily sweep: expire overrides, move terms to their status of `today`, refresh their holders.
    With `notify`, a holder whose status becomes "lapsed" gets the lapsed notice (outbox, once).

    Works in batches by id (bounded memory) and flushes per batch; the caller commits (the
    scheduler job commits once per run, so a failed run changes nothing).
    """
    counts = {"terms_checked": 0, "terms_changed": 0, "overrides_expired": 0, "holders_changed": 0,
              "lapsed_notices": 0}
    expired = session.scalars(select(Membership).where(Membership.override_status.is_not(None),
                                                       Membership.override_until < today)).all()
    for term in expired:
        record_audit(session, actor=None, action="membership.override_expired", entity=term, now=now,
                     member_id=term.member_id, summary=f"Override {term.override_status} expired")
        term.override_status = term.override_until = term.override_reason = None
        counts["overrides_expired"] += 1
    session.flush()
    live = or_(Membership.status.in_(("pending", "upcoming", "active", "grace")),
               Membership.override_status.is_not(None),
               Membership.id.in_([t.id for t in expired]) if expired else False)
    last_id = 0
    while True:
        batch = session.scalars(select(Membership).where(live, Membership.id > last_id)
                                .order_by(Membership.id).limit(batch_size)).all()
        if not batch:
            break
        holders: dict[tuple[str, int], Member | Organization] = {}
        for term in batch:
            counts["terms_checked"] += 1
            new = status_on(term, today)
            if new != term.status or term.id in {t.id for t in expired}:
                counts["terms_changed"] += new != term.status
                term.status = new
                holder = term.member if term.member_id else term.organization
                holders[(type(holder).__name__, holder.id)] = holder
        for holder in holders.values():
            changed = refresh_status(session, holder, today=today, now=now)
            counts["holders_changed"] += changed
            if changed and notify and holder.status == "lapsed":
                counts["lapsed_notices"] += _notify_lapsed(session, holder, today=today, now=now)
        session.flush()
        last_id = batch[-1].id
        if progress:
            progress(len(batch))
    return counts


def _notify_lapsed(session: Session, holder: Member | Organization, *, today: date, now: datetime) -> int:
    from membership.notifications.emails import queue_lapsed_notice

    term = holder_status(effective_terms(session, holder), today).term
    if term is None:
        return 0
    return int(queue_lapsed_notice(session, holder, term, now=now) is not None)


def validate_status(status: str) -> str:
    if status not in TERM_STATUSES:
        raise ValidationError(f"Unknown status {status!r}.")
    return status
