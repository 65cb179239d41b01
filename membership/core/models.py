"""Cross-domain records: the audit log, member activities and number counters."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from membership.core.types import UTCDateTime
from membership.extensions import db


class AuditLog(db.Model):
    """Who did what to which record, when, from where, with the changed fields."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"), index=True)
    action: Mapped[str] = mapped_column(String(64))
    entity_type: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[int | None]
    # The member the change concerns, so the member page can show its trail with one indexed query.
    member_id: Mapped[int | None] = mapped_column(ForeignKey("member.id", ondelete="SET NULL"), index=True)
    summary: Mapped[str] = mapped_column(Text, default="")
    changes: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    ip: Mapped[str | None] = mapped_column(String(64))

    actor = relationship("User", lazy="joined")

    __table_args__ = (Index("ix_audit_log_entity", "entity_type", "entity_id"),)


class Activity(db.Model):
    """One touchpoint of a member (joined, renewed, status change, interaction...)."""

    __tablename__ = "activity"

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    source_type: Mapped[str | None] = mapped_column(String(40))
    source_id: Mapped[int | None]
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # set for touchpoints counted once ("logged_in:<member>:<local day>", "email_opened:<message>"):
    # the unique index makes "once" hold when two requests record the same one at the same moment
    dedupe_key: Mapped[str | None] = mapped_column(String(120))

    __table_args__ = (
        Index("ix_activity_member_occurred", "member_id", "occurred_at"),
        Index("uq_activity_dedupe_key", "dedupe_key", unique=True),
        Index("ix_activity_kind_occurred", "kind", "occurred_at"),
    )


class Counter(db.Model):
    """Named gap-free sequences (receipt numbers per year, member numbers)."""

    __tablename__ = "counter"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(default=0)
