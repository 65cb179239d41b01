"""The emails that domain events cause (the one-click unsubscribe is in notifications/unsubscribe.py).

Each queue_* function adds an outbox row in the caller's transaction (see outbox.enqueue) with
a dedupe key that makes it at most once per event, and returns the row or None (duplicate, no
address). The caller commits with the change that caused the email.
"""
from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy.orm import Session

from membership.core.i18n import language_of
from membership.notifications import templating
from membership.notifications.models import OutboxMessage
from membership.notifications.outbox import enqueue



def queue_welcome(session: Session, member, *, now: datetime, term=None) -> OutboxMessage | None:
    """The welcome email of a new member (once per member). `term`: the first term, if any."""
    return enqueue(session, template_key="welcome", dedupe_key=f"welcome:member:{member.id}", now=now,
                   member=member, context={"term": term} if term is not None else None, source=member)


def queue_receipt(session: Session, payment, *, now: datetime) -> OutboxMessage | None:
    """The receipt email of a payment (once per payment), to the paying member, or for an
    organisation to its primary contact, else the organisation's own address."""
    member = payment.member
    to_address = to_name = None
    if member is None and payment.organization is not None:
        org = payment.organization
        contact = org.primary_contact
        if contact is not None and contact.email:
            member = contact
        else:
            to_address, to_name = org.email, org.name
    if member is None and not to_address:
        return None
    return enqueue(session, template_key="payment_receipt", dedupe_key=f"receipt:payment:{payment.id}", now=now,
                   member=member, to_address=to_address, to_name=to_name, context={"payment": payment},
                   source=payment)


def queue_lapsed_notice(session: Session, holder, term, *, now: datetime) -> OutboxMessage | None:
    """Tell a member (or an organisation's primary contact) that their membership has lapsed:
    once per term and end date. Nothing for an address that bounces or a member who was erased."""
    from membership.members.models import Member

    member = holder if isinstance(holder, Member) else holder.primary_contact
    if member is None or not member.email or member.email_bouncing or member.erased_at is not None:
        return None
    context = {"term": term}
    if not isinstance(holder, Member):
        context["organization_name"] = holder.name
    return enqueue(session, template_key="lapsed_notice", dedupe_key=f"lapsed_notice:term:{term.id}:{term.ends_on}",
                   now=now, member=member, context=context, source=term)


def queue_password_reset(session: Session, user, *, reset_link: str, now: datetime,
                         link_expires_in: str = "1 hour") -> OutboxMessage | None:
    """A password-reset email to `user` (a User). Each link is its own email (keyed by the link)."""
    digest = hashlib.sha256(reset_link.encode()).hexdigest()[:24]
    return enqueue(session, template_key="password_reset", dedupe_key=f"password_reset:user:{user.id}:{digest}",
                   now=now, member=user.member, to_address=user.email, to_name=user.name or None,
                   context={"reset_link": reset_link, "link_expires_in": link_expires_in}, source=user,
                   language=language_of(member=user.member, user=user))


def queue_staff_digest(session: Session, user, *, digest_date, lines: list[str], now: datetime
                       ) -> OutboxMessage | None:
    """The staff digest of `digest_date` to a staff `user` (once per user and day)."""
    return enqueue(session, template_key="staff_digest",
                   dedupe_key=f"staff_digest:user:{user.id}:{digest_date.isoformat()}", now=now,
                   to_address=user.email, to_name=user.name or user.email, category="staff",
                   context={"digest_date": digest_date, "lines": list(lines),
                            "staff_link": templating.link("/staff/")}, source=user,
                   language=language_of(user=user))


def queue_we_miss_you(session: Session, member, alert, *, now: datetime) -> OutboxMessage | None:
    """The optional "we miss you" email to a member who crossed into high churn risk: once per risk
    episode (keyed by the alert). A marketing email: None for a member who does not accept them,
    has no address or bounces (enqueue's rules), or was erased."""
    from membership.notifications.templating import link

    if member is None or member.erased_at is not None:
        return None
    return enqueue(session, template_key="we_miss_you", dedupe_key=f"we_miss_you:alert:{alert.id}", now=now,
                   member=member, context={"events_link": link("/events/")}, source=alert)


def queue_staff_invitation(session: Session, user, *, invitation_link: str, invited_by: str, days: int,
                           now: datetime) -> OutboxMessage | None:
    """The invitation link to a new staff `user` (a User without a password). Each link is its own
    email (keyed by the link): a new link after a withdrawn one is sent again."""
    digest = hashlib.sha256(invitation_link.encode()).hexdigest()[:24]
    return enqueue(session, template_key="staff_invitation", dedupe_key=f"staff_invitation:user:{user.id}:{digest}",
                   now=now, to_address=user.email, to_name=user.name or user.email, category="staff",
                   context={"invitation_link": invitation_link, "link_expires_in": f"{days} days",
                            "role": user.role, "invited_by": invited_by}, source=user,
                   language=language_of(user=user))
