"""Help requests and their messages."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from membership.core.types import UTCDateTime
from membership.extensions import db

HELP_CATEGORIES = ("question", "complaint", "other")
# open: waiting for staff; answered: staff replied, waiting for the member; resolved: done (staff or the
# member said so); closed: ended without resolution because the member's account was closed.
HELP_STATUSES = ("open", "answered", "resolved", "closed")
UNRESOLVED = ("open", "answered")
AUTHOR_KINDS = ("member", "staff")


class HelpRequest(db.Model):
    """A question or complaint a member sent from the portal: one conversation with staff.

    `first_response_at`, `staff_reply_count` and `resolved_at` are kept as the conversation goes,
    so the staff home's figures are a few indexed aggregate queries, not a scan of messages.
    """

    __tablename__ = "help_request"

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id", ondelete="CASCADE"))
    subject: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(12), default="open")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Last message or status change: the member's list shows the most recently active first.
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    first_response_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    staff_reply_count: Mapped[int] = mapped_column(Integer, default=0)
    # Set when resolved, cleared when reopened: the last resolution counts.
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    # The member's account was closed: subject and messages were replaced by a placeholder.
    redacted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    member = relationship("Member")
    resolved_by = relationship("User", foreign_keys=[resolved_by_id])
    messages = relationship("HelpMessage", back_populates="request",
                            order_by="(HelpMessage.created_at, HelpMessage.id)")

    __table_args__ = (
        Index("ix_help_request_member_updated", "member_id", "updated_at"),
        # The staff queue: one status, oldest first.
        Index("ix_help_request_status_created", "status", "created_at"),
    )

    @property
    def number(self) -> str:
        return f"#{self.id}"

    @property
    def is_resolved(self) -> bool:
        return self.status == "resolved"

    @property
    def accepts_replies(self) -> bool:
        return self.status != "closed"

    def __repr__(self) -> str:
        return f"<HelpRequest {self.id} {self.status}>"


class HelpMessage(db.Model):
    """One message of a help request, by the member or by staff."""

    __tablename__ = "help_message"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("help_request.id", ondelete="CASCADE"))
    author_kind: Mapped[str] = mapped_column(String(8))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # A key per submitted form: the same form posted twice (a double click) adds one message.
    client_key: Mapped[str | None] = mapped_column(String(64), unique=True)

    request = relationship("HelpRequest", back_populates="messages")
    author = relationship("User")

    __table_args__ = (Index("ix_help_message_request_created", "request_id", "created_at"),)

    @property
    def is_staff(self) -> bool:
        return self.author_kind == "staff"
