"""Paying online: start a hosted checkout, and act on the provider's verified notification.

start_checkout asks the provider for a hosted page for what is due on a term (join or renewal) or
an event registration and records a Checkout; handle_notification verifies a webhook/IPN, records
it once (ProcessedNotification's unique (provider, event_ref) settles replays and races), checks
the amount and records the payment through plans.services (which activates the term) or the
events' payment function. Money for something already paid by hand is not recorded a second time:
the checkout becomes "paid_twice" for staff to refund. Services flush; the edge commits.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from collections.abc import Mapping

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from membership.core.errors import Conflict, DomainError, ValidationError
from membership.core.services import record_audit
from membership.core.settings import Settings
from membership.core.time import local_date
from membership.payments import sslcommerz, stripe
from membership.payments.base import CheckoutRequest, PaymentNotification, ProviderError
from membership.payments.errors import IgnoredNotification
from membership.payments.models import Checkout, ProcessedNotification, SavedCard
from membership.payments.registry import get_provider

ADAPTERS = (stripe, sslcommerz)  # imported so that they register (registry.register_adapter)
PROVIDER_NAMES = {"stripe": "Stripe", "sslcommerz": "SSLCommerz"}


class PaymentUnavailable(DomainError):
    """The provider could not start the payment (unreachable, timed out, refused)."""

    status_code = 502


@dataclass(frozen=True)
class ReturnUrls:
    success_url: str
    cancel_url: str
    notify_url: str


@dataclass(frozen=True)
class NotificationResult:
    outcome: str              # paid | paid_twice | failed | cancelled | duplicate | ignored | mismatch
    checkout: Checkout | None = None


def new_reference() -> str:
    return "chk_" + secrets.token_urlsafe(18)


def _due_for_term(session: Session, term) -> int:
    from membership.signup.services import amount_due
    return amount_due(session, term)


def _due_for_registration(session: Session, registration) -> int:
    from membership.events.dues import amount_due
    if registration.status not in ("confirmed", "attended"):
        return 0
    return amount_due(session, registration)


def start_checkout(session: Session, settings: Settings, provider_name: str, *, purpose: str, member,
                   urls, now: datetime, term=None, registration=None, save_card: bool = False) -> str:
    """Open a hosted payment for what `member` owes on `term` (purpose join/renewal) or on
    `registration` (purpose event); returns the provider's page to send the browser to.

    `urls(reference) -> ReturnUrls`. Raises ValidationError for an unknown provider or purpose,
    Conflict when nothing is due, PaymentUnavailable when the provider fails (nothing is kept: the
    edge rolls back)."""
    provider = get_provider(settings, provider_name)
    if provider is None:
        raise ValidationError(_("This way of paying online is not offered."))
    if purpose in ("join", "renewal"):
        if term is None or term.member_id != member.id:
            raise ValidationError(_("Choose a membership to pay for."))
        amount, currency = _due_for_term(session, term), term.currency
        description = (_("Renewal: %(plan)s", plan=term.plan.name) if purpose == "renewal"
                       else _("Membership: %(plan)s", plan=term.plan.name))
    elif purpose == "event":
        if registration is None or registration.member_id != member.id:
            raise ValidationError(_("Choose a registration to pay for."))
        amount, currency = _due_for_registration(session, registration), registration.currency
        description = _("Event: %(title)s", title=registration.event.title)
    else:
        raise ValidationError("Unknown purpose.")
    if amount <= 0:
        raise Conflict(_("Nothing is due: there is nothing to pay."))
    save_card = bool(save_card and provider.supports_saved_cards and purpose == "renewal")
    reference = new_reference()
    checkout = Checkout(reference=reference, provider=provider_name, purpose=purpose, member_id=member.id,
                        membership_id=term.id if term is not None else None,
                        registration_id=registration.id if registration is not None else None,
                        amount_minor=amount, currency=currency, description=description[:255], status="open",
                        save_card=save_card, created_at=now, updated_at=now)
    session.add(checkout)
    session.flush()
    u = urls(reference)
    try:
        hosted = provider.start_checkout(CheckoutRequest(
            reference=reference, amount_minor=amount, currency=currency, description=description,
            customer_email=member.email or "", customer_name=member.full_name, success_url=u.success_url,
            cancel_url=u.cancel_url, notify_url=u.notify_url, save_card=save_card))
    except ProviderError:
        raise PaymentUnavailable(_("We could not reach the payment service just now, so nothing was charged. "
                                   "Please try again in a few minutes, or pay another way.")) from None
    checkout.session_ref = hosted.session_ref[:255] if hosted.session_ref else None
    session.flush()
    return hosted.redirect_url


def _already_paid(session: Session, checkout: Checkout) -> bool:
    """Was what the checkout pays for settled meanwhile (staff recorded a payment by hand)?"""
    if checkout.membership_id is not None:
        term = checkout.membership
        return term is None or not term.awaiting_payment or term.cancelled_on is not None
    if checkout.registration_id is not None:
        registration = checkout.registration
        return registration is None or _due_for_registration(session, registration) <= 0
    return True


def _record(session: Session, settings: Settings, checkout: Checkout, note: PaymentNotification, *, now: datetime):
    from membership.plans.services import PaymentInput, pay_term
    reference = f"{note.provider}:{note.payment_ref}"
    received = min(note.received_at, now)
    if checkout.membership_id is not None:
        term = checkout.membership
        return pay_term(session, term, PaymentInput(amount_minor=note.amount_minor, method="online",
                                                    received_at=received, reference=reference,
                                                    note=checkout.description),
                        today=local_date(now, settings.timezone), now=now, actor=None)
    from membership.events.services import record_registration_payment
    return record_registration_payment(session, checkout.registration, amount_minor=note.amount_minor,
                                       method="online", received_at=received, reference=reference, now=now,
                                       actor=None, note=checkout.description)


def handle_notification(session: Session, settings: Settings, provider_name: str, headers: Mapping[str, str],
                        body: bytes, form: Mapping[str, str] | None, now: datetime) -> NotificationResult:
    """Verify and act on one webhook/IPN, once. Raises InvalidNotification (answer 400) for one that
    is not from the provider or does not match its checkout; flushes, the caller commits."""
    from membership.payments.base import InvalidNotification

    provider = get_provider(settings, provider_name)
    if provider is None:
        raise InvalidNotification(f"{provider_name} is not configured here.")
    try:
        note = provider.verify_notification(headers, body, form)
    except IgnoredNotification:
        return NotificationResult("ignored")
    # Locked: two different events about the same checkout (Stripe's completed and
    # async_payment_succeeded) arriving together are acted on one after the other.
    checkout = session.scalar(select(Checkout).where(Checkout.reference == note.reference,
                                                     Checkout.provider == provider_name).with_for_update())
    if checkout is None:
        raise InvalidNotification(f"No checkout {note.reference!r} at {provider_name}.")
    # The dedupe key first, in a savepoint: of two identical notifications, the second one's insert
    # fails (or waits for the first transaction and then fails) and records nothing.
    try:
        with session.begin_nested():
            seen = ProcessedNotification(provider=provider_name, event_ref=note.event_ref[:255],
                                         checkout_id=checkout.id, received_at=now, outcome="processing")
            session.add(seen)
            session.flush()
    except IntegrityError:
        return NotificationResult("duplicate", checkout)
    outcome = _act(session, settings, checkout, note, now=now)
    seen.outcome = outcome
    session.flush()
    return NotificationResult(outcome, checkout)


def _act(session: Session, settings: Settings, checkout: Checkout, note: PaymentNotification, *, now: datetime) -> str:
    if note.status != "paid":
        if checkout.status == "open":
            checkout.status = "failed" if note.status == "failed" else "expired"
            checkout.updated_at = now
        return checkout.status if checkout.status in ("failed", "expired") else "ignored"
    if checkout.is_paid:
        # Another event about the same money (Stripe sends completed and async_succeeded, say).
        return "duplicate"
    if note.amount_minor != checkout.amount_minor or note.currency.upper() != checkout.currency.upper():
        checkout.status = "failed"
        checkout.note = (f"The provider reported {note.currency} {note.amount_minor} (minor units), "
                         f"not {checkout.currency} {checkout.amount_minor}: nothing recorded.")
        checkout.payment_ref = note.payment_ref[:100]
        checkout.updated_at = now
        record_audit(session, actor=None, action="payment.online_mismatch", entity=checkout, now=now,
                     member_id=checkout.member_id, summary=checkout.note)
        return "mismatch"
    checkout.payment_ref = note.payment_ref[:100]
    checkout.paid_at = now
    checkout.updated_at = now
    if _already_paid(session, checkout):
        checkout.status = "paid_twice"
        checkout.note = "Paid online after it had been paid another way: refund the online payment."
        record_audit(session, actor=None, action="payment.online_paid_twice", entity=checkout, now=now,
                     member_id=checkout.member_id,
                     summary=f"Online payment {note.provider}:{note.payment_ref} for {checkout.description} "
                             f"arrived after it was already paid; not recorded, to be refunded.")
        return "paid_twice"
    payment = _record(session, settings, checkout, note, now=now)
    checkout.status = "paid"
    checkout.payment_id = payment.id
    if checkout.save_card and note.customer_ref and note.payment_method_ref and checkout.member_id:
        exists = session.scalar(select(SavedCard).where(SavedCard.member_id == checkout.member_id,
                                                        SavedCard.provider == note.provider,
                                                        SavedCard.payment_method_ref == note.payment_method_ref,
                                                        SavedCard.revoked_at.is_(None)))
        if exists is None:
            session.add(SavedCard(member_id=checkout.member_id, provider=note.provider,
                                  customer_ref=note.customer_ref[:100],
                                  payment_method_ref=note.payment_method_ref[:100], created_at=now))
    record_audit(session, actor=None, action="payment.online", entity=checkout, now=now,
                 member_id=checkout.member_id,
                 summary=f"Paid online ({note.provider}:{note.payment_ref}): {checkout.description}, "
                         f"receipt {payment.receipt_number}")
    session.flush()
    return "paid"


def online_providers(settings: Settings) -> dict[str, str]:
    """{name: label} of the providers configured here (empty: online payment is not offered)."""
    from membership.payments.registry import available_providers
    return {name: PROVIDER_NAMES.get(name, name) for name in available_providers(settings)}


def supports_saved_cards(settings: Settings, name: str) -> bool:
    provider = get_provider(settings, name)
    return bool(provider and provider.supports_saved_cards)
