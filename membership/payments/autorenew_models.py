"""Auto-renewal's own table: one row per (saved card, term) that the card renews.

The row is claimed (inserted, then moved to "charging" by a compare-and-swap UPDATE and committed)
before the provider is asked for money, so two scheduler processes, or a rerun, charge a term once.
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from membership.core.types import UTCDateTime
from membership.extensions import db

# pending: claimed, not charged yet; charging: a process is asking the provider now;
# error: the provider could not be reached (not charged; retried on the next run);
# declined: the card was declined (retried once a day); gave_up: declined MAX_FAILURES times;
# paid: charged and the term renewed; unapplied: charged, but the renewal could not be recorded
# (the term was renewed by hand meanwhile): staff refund or apply it.
CHARGE_STATUSES = ("pending", "charging", "error", "declined", "gave_up", "paid", "unapplied")


class AutoRenewalCharge(db.Model):
    """The automatic renewal of one term by one saved card: its attempts and their outcome."""

    __tablename__ = "auto_renewal_charge"
    __table_args__ = (UniqueConstraint("card_id", "term_id", name="uq_auto_renewal_charge_card_term"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    card_id: Mapped[int] = mapped_column(ForeignKey("saved_card.id", ondelete="CASCADE"))
    term_id: Mapped[int] = mapped_column(ForeignKey("membership.id", ondelete="CASCADE"), index=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    amount_minor: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    attempts: Mapped[int] = mapped_column(Integer, default=0)     # calls to the provider
    failures: Mapped[int] = mapped_column(Integer, default=0)     # declines (not timeouts)
    last_attempt_on: Mapped[date | None] = mapped_column(Date)    # local day of the last call
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failure_message: Mapped[str | None] = mapped_column(String(500))
    payment_ref: Mapped[str | None] = mapped_column(String(100))
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payment.id", ondelete="SET NULL"))
    new_term_id: Mapped[int | None] = mapped_column(ForeignKey("membership.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    card = relationship("SavedCard")
    term = relationship("Membership", foreign_keys=[term_id])
    payment = relationship("Payment")
