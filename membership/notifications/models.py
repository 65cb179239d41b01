"""Email outbox, templates, reminder rules, and the scheduler's leases and run records."""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from membership.core.types import UTCDateTime
from membership.extensions import db

OUTBOX_STATUSES = ("queued", "sending", "sent", "failed", "cancelled")
EMAIL_CATEGORIES = ("service", "marketing", "staff")


class OutboxMessage(db.Model):
    """One email, written in the same transaction as the change that causes it.

    `dedupe_key` is unique: the same reminder for the same term (say) cannot be queued twice,
    whatever re-runs, crashes or second schedulers happen. The dispatcher claims rows
    (queued -> sending), sends, and marks them sent; a claim older than the claim timeout is
    taken back, so nothing stays stuck in "sending" after a crash.
    """

    __tablename__ = "outbox_message"

    id: Mapped[int] = mapped_column(primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    template_key: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(16), default="service")
    member_id: Mapped[int | None] = mapped_column(ForeignKey("member.id", ondelete="SET NULL"))
    to_address: Mapped[str] = mapped_column(String(254))
    to_name: Mapped[str] = mapped_column(String(200), default="")
    subject: Mapped[str] = mapped_column(String(300))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)  # why the member gets it (shown in service emails)
    headers: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    attachments: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)  # [{filename, content_type, data_b64}]
    message_id: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(12), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # What caused it, e.g. ("membership", 42) for a renewal reminder.
    source_type: Mapped[str | None] = mapped_column(String(40))
    source_id: Mapped[int | None]

    member = relationship("Member")

    __table_args__ = (
        Index("ix_outbox_message_due", "status", "next_attempt_at"),
        Index("ix_outbox_message_member", "member_id", "created_at"),
        # The Outbox page: newest first, all or by status.
        Index("ix_outbox_message_created", "created_at"),
        Index("ix_outbox_message_status_created", "status", "created_at"),
    )


class EmailTemplate(db.Model):
    """A staff-edited version of a shipped email template in one language (no row: the shipped
    default in that language is used)."""

    __tablename__ = "email_template"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(8), default="en")
    subject: Mapped[str] = mapped_column(String(300))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))

    __table_args__ = (UniqueConstraint("key", "language", name="uq_email_template_key_language"),)


class ReminderRule(db.Model):
    """Send `template_key` when a term's end is `offset_days` away (negative: before the end)."""

    __tablename__ = "reminder_rule"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    offset_days: Mapped[int] = mapped_column(Integer)
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("plan.id", ondelete="CASCADE"))
    template_key: Mapped[str] = mapped_column(String(64))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Terms whose offset day fell before this date get nothing from the rule (no back-fill).
    effective_from: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    plan = relationship("Plan")


class JobLease(db.Model):
    """Who may run a job now: taken with a conditional update, so two schedulers cannot both run it."""

    __tablename__ = "job_lease"

    job_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(100))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Daily jobs: the last local day (association's zone) the job completed for, so a restart
    # or a second scheduler the same day does nothing, whatever the clock does at a DST change.
    done_for: Mapped[date | None] = mapped_column(Date)


class JobRun(db.Model):
    """One run of a scheduled job: when, as of which moment, what it did, or why it failed."""

    __tablename__ = "job_run"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_name: Mapped[str] = mapped_column(String(64))
    holder: Mapped[str] = mapped_column(String(100))
    as_of: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(12), default="running")  # running, ok, error, skipped
    counts: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    # Daily jobs: the local day this run was for.
    run_for: Mapped[date | None] = mapped_column(Date)

    __table_args__ = (Index("ix_job_run_job_started", "job_name", "started_at"),)
