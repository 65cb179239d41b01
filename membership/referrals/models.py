"""Referral rewards (codes are computed from the member id: see services). Who referred whom is Member.referred_by_id (set at join, by
staff or by the CSV import), so every path that records a referral agrees."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from membership.core.types import UTCDateTime
from membership.extensions import db
from membership.members.models import Member

REWARD_RULES = ("none", "month", "recognition")
# granted: waiting for the referrer's next term (month rule); used: added to that term;
# recognised: counted as recognition only
REWARD_STATUSES = ("granted", "used", "recognised")


class ReferralReward(db.Model):
    """The reward for one referral: at most one per referred member (unique), so recording the
    referred member's payment twice, or two payments at the same moment, rewards once."""

    __tablename__ = "referral_reward"

    id: Mapped[int] = mapped_column(primary_key=True)
    referred_member_id: Mapped[int] = mapped_column(ForeignKey("member.id", ondelete="CASCADE"), unique=True)
    referrer_id: Mapped[int] = mapped_column(ForeignKey("member.id", ondelete="CASCADE"), index=True)
    rule: Mapped[str] = mapped_column(String(12))
    months: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(12))
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payment.id", ondelete="SET NULL"))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_on_term_id: Mapped[int | None] = mapped_column(ForeignKey("membership.id", ondelete="SET NULL"))
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    referrer = relationship("Member", foreign_keys=[referrer_id])
    referred = relationship("Member", foreign_keys=[referred_member_id])


# "Whom did this member refer?" (member page, portal, top referrers) reads Member.referred_by_id:
# indexed here, with the referral code, rather than in members.models.
Index("ix_member_referred_by_id", Member.referred_by_id)
