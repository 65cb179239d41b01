"""The scheduler jobs of events (listed by `flask --app wsgi scheduler jobs`). Both are sweeps over
what is due as of `now`, so a missed run is caught up and a second run sends nothing twice."""
from __future__ import annotations

from typing import Any

from membership.scheduler import Every, Job, JobContext, register_job


def event_reminders(ctx: JobContext) -> dict[str, Any]:
    """Queue the event reminders that are due (once per registration)."""
    from membership.events.services import queue_event_reminders
    return queue_event_reminders(ctx.session, now=ctx.now)


def finish_events(ctx: JobContext) -> dict[str, Any]:
    """Finish events that ended (attendance and no-shows recorded), then queue feedback requests."""
    from membership.events.services import finish_ended_events
    return finish_ended_events(ctx.session, now=ctx.now)


register_job(Job("event-reminders", "membership.events.jobs:event_reminders", Every(900),
                 "Email the people registered for an event its reminder, as many hours before the start "
                 "as the event says.", lease_seconds=10 * 60))
register_job(Job("finish-events", "membership.events.jobs:finish_events", Every(900),
                 "Record attendance and no-shows of events that ended; email attendees a feedback request.",
                 lease_seconds=10 * 60))
