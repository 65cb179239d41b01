"""Payments' own tables. A card kept at the provider for auto-renewal (Samiti never sees card numbers)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from membership.core.types import UTCDateTime
from membership.extensions import db


class SavedCard(db.Model):
    """A member's card saved at the provider (Stripe customer + payment method) when they opted in to
    auto-renewal at checkout. Revoked when the member stops auto-renewal or the provider says it is gone."""

    __tablename__ = "saved_card"

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id", ondelete="CASCADE"), index=True)
    provider: Mapped[str] = mapped_column(String(20))
    customer_ref: Mapped[str] = mapped_column(String(100))
    payment_method_ref: Mapped[str] = mapped_column(String(100))
    label: Mapped[str | None] = mapped_column(String(60))    # "Visa ending 4242", as the provider tells it
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    member = relationship("Member")

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


CHECKOUT_PURPOSES = ("join", "renewal", "event")
# paid_twice: the provider confirmed money for something already paid by hand; staff refund it.
CHECKOUT_STATUSES = ("open", "paid", "failed", "cancelled", "expired", "paid_twice")


class Checkout(db.Model):
    """One attempt to pay online: what it pays for, how much, at which provider, and what came of it.
    `reference` is Samiti's id sent to the provider (Stripe client_reference_id, SSLCommerz tran_id)."""

    __tablename__ = "checkout"

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(40), unique=True)
    provider: Mapped[str] = mapped_column(String(20))
    purpose: Mapped[str] = mapped_column(String(10))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("member.id", ondelete="SET NULL"), index=True)
    membership_id: Mapped[int | None] = mapped_column(ForeignKey("membership.id", ondelete="SET NULL"), index=True)
    registration_id: Mapped[int | None] = mapped_column(
        ForeignKey("event_registration.id", ondelete="SET NULL"), index=True)
    amount_minor: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    description: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(12), default="open")
    session_ref: Mapped[str | None] = mapped_column(String(255))
    payment_ref: Mapped[str | None] = mapped_column(String(100))   # the provider's id of the money
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payment.id", ondelete="SET NULL"))
    save_card: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str | None] = mapped_column(Text)                  # why it is paid_twice / failed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    member = relationship("Member")
    membership = relationship("Membership")
    registration = relationship("EventRegistration")
    payment = relationship("Payment")

    __table_args__ = (
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        Index("ix_checkout_status_created", "status", "created_at"),
    )

    @property
    def is_paid(self) -> bool:
        return self.status in ("paid", "paid_twice")


class ProcessedNotification(db.Model):
    """A provider notification already acted on. (provider, event_ref) is unique: a replayed or
    duplicated webhook/IPN, even two at the same moment, is processed once."""

    __tablename__ = "processed_notification"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(20))
    event_ref: Mapped[str] = mapped_column(String(255))
    checkout_id: Mapped[int | None] = mapped_column(ForeignKey("checkout.id", ondelete="SET NULL"), index=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(20))

    __table_args__ = (UniqueConstraint("provider", "event_ref", name="uq_processed_notification_event"),)
