"""The scheduler's heartbeat: each scheduler process writes when it was last alive, every
HEARTBEAT_SECONDS, in its own transaction (apart from the jobs: a long job does not stop it)."""
from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from membership.ops.models import SchedulerHeartbeat

HEARTBEAT_SECONDS = 30
# Rows of schedulers that stopped without saying so are deleted after this long.
FORGET_AFTER = timedelta(days=7)


def beat(session: Session, holder: str, *, now: datetime) -> None:
    """Record that the scheduler `holder` is alive at `now` (insert on its first beat). Commits."""
    found = session.execute(update(SchedulerHeartbeat).where(SchedulerHeartbeat.holder == holder)
                            .values(beat_at=now).execution_options(synchronize_session=False)).rowcount
    if not found:
        session.add(SchedulerHeartbeat(holder=holder, host=socket.gethostname()[:100], pid=os.getpid(),
                                       started_at=now, beat_at=now))
    session.execute(delete(SchedulerHeartbeat).where(SchedulerHeartbeat.beat_at < now - FORGET_AFTER)
                    .execution_options(synchronize_session=False))
    session.commit()


def stop(session: Session, holder: str) -> None:
    """A scheduler stopping cleanly takes its row away. Commits."""
    session.execute(delete(SchedulerHeartbeat).where(SchedulerHeartbeat.holder == holder)
                    .execution_options(synchronize_session=False))
    session.commit()


def latest_beat(session: Session) -> tuple[datetime | None, int]:
    """The newest heartbeat of any scheduler, and how many schedulers have beaten at all."""
    row = session.execute(select(func.max(SchedulerHeartbeat.beat_at), func.count())
                          .select_from(SchedulerHeartbeat)).one()
    latest = row[0]
    if latest is not None and latest.tzinfo is None:  # func.max bypasses the column type on SQLite
        from datetime import timezone
        latest = latest.replace(tzinfo=timezone.utc)
    return latest, int(row[1])
