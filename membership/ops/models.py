"""The scheduler processes' heartbeats: what /healthz reads to tell a running scheduler from none."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from membership.core.types import UTCDateTime
from membership.extensions import db


class SchedulerHeartbeat(db.Model):
    """One row per scheduler process (its lease holder id), refreshed every HEARTBEAT_SECONDS and
    deleted when it stops cleanly; a row whose beat is old is a scheduler that died."""

    __tablename__ = "scheduler_heartbeat"

    holder: Mapped[str] = mapped_column(String(100), primary_key=True)
    host: Mapped[str] = mapped_column(String(100))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    beat_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
