"""Account closure requests."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from membership.core.types import UTCDateTime
from membership.extensions import db

CLOSURE_STATUSES = ("pending", "confirmed", "declined", "withdrawn")


class ClosureRequest(db.Model):
    """A member asked for their account to be closed; staff confirm (the personal data is then
    erased) or decline (with a note the member is emailed), or the member withdraws it."""

    __tablename__ = "closure_request"

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(12), default="pending")
    reason: Mapped[str | None] = mapped_column(Text)  # the member's, optional; cleared by the erasure
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    decision_note: Mapped[str | None] = mapped_column(Text)  # staff's, sent to the member on a decline
    # The member's id while the request is pending, NULL after: at most one pending request per
    # member, kept by a plain unique constraint that works the same on SQLite and PostgreSQL.
    pending_member_id: Mapped[int | None] = mapped_column(unique=True)

    member = relationship("Member")
    decided_by = relationship("User")

    __table_args__ = (Index("ix_closure_request_status_requested", "status", "requested_at"),)

    @property
    def is_pending(self) -> bool:
        return self.status == "pending"
