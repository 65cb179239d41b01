"""Campaigns and their language versions.

A campaign's emails are outbox rows whose source is the campaign (source_type "campaign",
source_id its id) and whose dedupe key is "campaign:<id>:member:<member id>": the outbox, not a
table of our own, is the record of who was sent what, so the report counts outbox rows and the
activities (opens, clicks) recorded against them. The two indexes below make those counts cheap.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from membership.core.models import Activity
from membership.core.types import UTCDateTime
from membership.extensions import db
from membership.notifications.models import OutboxMessage

CAMPAIGN_KINDS = ("marketing", "service")
# draft -> scheduled (Send now is "scheduled for now") -> sending (the job is queueing its emails)
# -> sent (every email is in the outbox); a scheduled campaign can go back to draft.
CAMPAIGN_STATUSES = ("draft", "scheduled", "sending", "sent")
SOURCE_TYPE = "campaign"


class Campaign(db.Model):
    """One email to a group of members. `filters` are member-list arguments (MemberFilter.as_args():
    a saved segment is {"segment": id}, combined with any other filter)."""

    __tablename__ = "campaign"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))  # for staff; members see the subject
    kind: Mapped[str] = mapped_column(String(16), default="marketing")
    status: Mapped[str] = mapped_column(String(12), default="draft")
    filters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    queue_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # every email queued
    recipient_count: Mapped[int | None] = mapped_column(Integer)
    # The campaign list's figures (total, sent, failed, opened, clicked, unsubscribed), refreshed by
    # the send-campaigns job every few minutes: the list shows many campaigns without counting
    # every one's emails and activities on each view (the report page counts live).
    figures: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    figures_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    versions = relationship("CampaignVersion", back_populates="campaign", cascade="all, delete-orphan",
                            order_by="CampaignVersion.language")
    created_by = relationship("User")

    __table_args__ = (
        Index("ix_campaign_due", "status", "send_at"),
        Index("ix_campaign_created", "created_at"),
    )

    def version(self, language: str) -> "CampaignVersion | None":
        return next((v for v in self.versions if v.language == language), None)


class CampaignVersion(db.Model):
    """The subject and body of a campaign in one language (sandboxed template text)."""

    __tablename__ = "campaign_version"

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"))
    language: Mapped[str] = mapped_column(String(8))
    subject: Mapped[str] = mapped_column(String(300))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)

    campaign = relationship("Campaign", back_populates="versions")

    __table_args__ = (UniqueConstraint("campaign_id", "language", name="uq_campaign_version_language"),)


# The report's counts: a campaign's outbox rows by status, and the opens/clicks/unsubscribes
# recorded against them (activity.source_* names the outbox message, or the campaign).
# id and member_id ride along so that PostgreSQL answers from the index alone (no visit to the
# wide rows, whose bodies are most of the table)
Index("ix_outbox_message_source", OutboxMessage.source_type, OutboxMessage.source_id, OutboxMessage.status,
      OutboxMessage.id, OutboxMessage.member_id)
Index("ix_activity_source", Activity.source_type, Activity.source_id, Activity.kind)
