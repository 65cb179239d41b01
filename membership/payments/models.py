"""Payments' own tables. A card kept at the provider for auto-renewal (Samiti never sees card numbers)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
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
