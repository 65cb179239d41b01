"""What a registration has paid and still owes: read by check-in, the emails, online payment and reports."""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from membership.events.models import EventRegistration


def amount_paid(session: Session, registration: EventRegistration) -> int:
    from membership.plans.models import Payment
    session.flush()
    return int(session.scalar(select(func.coalesce(func.sum(Payment.amount_minor), 0))
                              .where(Payment.registration_id == registration.id)) or 0)


def amount_due(session: Session, registration: EventRegistration) -> int:
    """Price minus payments received (never below 0)."""
    if registration.status == "cancelled":
        return 0
    return max(0, (registration.price_minor or 0) - amount_paid(session, registration))
