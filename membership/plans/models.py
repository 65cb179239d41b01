"""Plans, membership terms and payments."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, CheckConstraint, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from membership.core.types import UTCDateTime
from membership.extensions import db

PERIOD_KINDS = ("rolling", "fixed", "lifetime")
TERM_STATUSES = ("pending", "upcoming", "active", "grace", "lapsed", "cancelled")
CURRENT_STATUSES = ("active", "grace")
TERM_SOURCES = ("join", "renewal", "staff", "import")
PAYMENT_METHODS = ("cash", "cheque", "bank_transfer", "card", "online", "other")


class Plan(db.Model):
    """A membership type: fee, period and grace."""

    __tablename__ = "plan"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str | None] = mapped_column(Text)
    fee_minor: Mapped[int] = mapped_column(Integer, default=0)
    currency: Mapped[str] = mapped_column(String(3))
    period_kind: Mapped[str] = mapped_column(String(10), default="rolling")
    # rolling: each term lasts period_months from its start; fixed: terms align to periods of
    # period_months that begin on (period_start_month, period_start_day) - a calendar or fiscal year.
    period_months: Mapped[int] = mapped_column(Integer, default=12)
    period_start_month: Mapped[int | None] = mapped_column(Integer)
    period_start_day: Mapped[int | None] = mapped_column(Integer)
    # fixed: a join on or after this day of the period also covers the next period.
    rollover_month: Mapped[int | None] = mapped_column(Integer)
    rollover_day: Mapped[int | None] = mapped_column(Integer)
    grace_days: Mapped[int] = mapped_column(Integer, default=30)
    # Members may renew online only this many days before the end (None: any time).
    renewal_opens_days: Mapped[int | None] = mapped_column(Integer)
    # After a lapse, start the new term the day after the old end (continuity) instead of today.
    backdate_after_lapse: Mapped[bool] = mapped_column(Boolean, default=False)
    joinable_online: Mapped[bool] = mapped_column(Boolean, default=True)
    needs_approval: Mapped[bool] = mapped_column(Boolean, default=False)
    is_organizational: Mapped[bool] = mapped_column(Boolean, default=False)
    max_contacts: Mapped[int | None] = mapped_column(Integer)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint("fee_minor >= 0", name="fee_not_negative"),
        CheckConstraint("grace_days >= 0", name="grace_not_negative"),
        CheckConstraint("period_months > 0", name="period_positive"),
    )

    @property
    def is_free(self) -> bool:
        return self.fee_minor == 0

    def __repr__(self) -> str:
        return f"<Plan {self.code}>"


class Membership(db.Model):
    """One term of a plan for a member or an organisation. The chain of terms is the history."""

    __tablename__ = "membership"

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int | None] = mapped_column(ForeignKey("member.id", ondelete="CASCADE"))
    organization_id: Mapped[int | None] = mapped_column(ForeignKey("organization.id", ondelete="CASCADE"))
    plan_id: Mapped[int] = mapped_column(ForeignKey("plan.id"))
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date | None] = mapped_column(Date)  # None: lifetime
    grace_days: Mapped[int] = mapped_column(Integer, default=0)  # copied from the plan at creation
    fee_minor: Mapped[int] = mapped_column(Integer, default=0)
    currency: Mapped[str] = mapped_column(String(3))
    source: Mapped[str] = mapped_column(String(10), default="staff")
    # The term this one renews; unique, so a double-submitted renewal cannot create two terms.
    renews_id: Mapped[int | None] = mapped_column(ForeignKey("membership.id", ondelete="SET NULL"), unique=True)
    awaiting_payment: Mapped[bool] = mapped_column(Boolean, default=False)
    awaiting_approval: Mapped[bool] = mapped_column(Boolean, default=False)
    paid_on: Mapped[date | None] = mapped_column(Date)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_on: Mapped[date | None] = mapped_column(Date)
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    override_status: Mapped[str | None] = mapped_column(String(16))
    override_until: Mapped[date | None] = mapped_column(Date)
    override_reason: Mapped[str | None] = mapped_column(Text)
    # Cached status_on(today), kept current by the daily transition job.
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))

    plan = relationship("Plan", lazy="joined")
    member = relationship("Member", foreign_keys=[member_id])
    organization = relationship("Organization", foreign_keys=[organization_id])
    renews = relationship("Membership", remote_side=[id], foreign_keys=[renews_id])
    payments = relationship("Payment", back_populates="membership", order_by="Payment.received_at")

    __table_args__ = (
        CheckConstraint("(member_id IS NULL) <> (organization_id IS NULL)", name="one_holder"),
        CheckConstraint("ends_on IS NULL OR ends_on >= starts_on", name="ends_after_start"),
        Index("ix_membership_member_starts", "member_id", "starts_on"),
        Index("ix_membership_org_starts", "organization_id", "starts_on"),
        Index("ix_membership_status_ends", "status", "ends_on"),
    )

    @property
    def holder_name(self) -> str:
        return self.member.full_name if self.member_id else self.organization.name

    def __repr__(self) -> str:
        return f"<Membership {self.id} {self.starts_on}..{self.ends_on} {self.status}>"


class Payment(db.Model):
    """Money received, with a gap-free receipt number per year."""

    __tablename__ = "payment"

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int | None] = mapped_column(ForeignKey("member.id", ondelete="SET NULL"), index=True)
    organization_id: Mapped[int | None] = mapped_column(
        ForeignKey("organization.id", ondelete="SET NULL"), index=True)
    membership_id: Mapped[int | None] = mapped_column(ForeignKey("membership.id", ondelete="SET NULL"), index=True)
    # or an event registration it pays for
    registration_id: Mapped[int | None] = mapped_column(ForeignKey("event_registration.id", ondelete="SET NULL"),
                                                        index=True)
    amount_minor: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    method: Mapped[str] = mapped_column(String(20))
    reference: Mapped[str | None] = mapped_column(String(100))
    note: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    receipt_number: Mapped[str] = mapped_column(String(32), unique=True)
    # A key per submitted form: the same form posted twice records one payment.
    idempotency_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    membership = relationship("Membership", back_populates="payments")
    registration = relationship("EventRegistration", back_populates="payments")
    member = relationship("Member")
    organization = relationship("Organization")
    recorded_by = relationship("User")

    __table_args__ = (CheckConstraint("amount_minor >= 0", name="amount_not_negative"),)
