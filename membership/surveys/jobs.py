"""The scheduler job of surveys: a sweep, so a missed run catches up and a second run sends nothing twice."""
from __future__ import annotations

from typing import Any

from membership.scheduler import Every, Job, JobContext, register_job


def event_survey_invitations(ctx: JobContext) -> dict[str, Any]:
    """Invite the attendees of events that ended to the open surveys attached to events."""
    from membership.surveys.services import invite_event_attendees
    return invite_event_attendees(ctx.session, now=ctx.now)


register_job(Job("survey-invitations", "membership.surveys.jobs:event_survey_invitations", Every(900),
                 "Email the attendees of events that ended the surveys attached to events (once each).",
                 lease_seconds=10 * 60))
