"""The campaigns' scheduler job: queue the emails of campaigns whose time has come. A sweep over
what is due as of `now`, so a run missed or stopped half-way is finished by the next one, and the
dedupe keys make a second run (or a second scheduler) queue nothing twice."""
from __future__ import annotations

import os
from typing import Any

from flask import current_app

from membership.scheduler import Every, Job, JobContext, register_job


def send_campaigns(ctx: JobContext) -> dict[str, Any]:
    """Queue every due campaign through the outbox, committing per batch (ctx.checkpoint renews the
    lease); the deliver-email job sends them at CAMPAIGN_RATE_PER_MINUTE."""
    from membership.campaigns.services import queue_due

    batch = int(os.environ.get("SAMITI_CAMPAIGN_BATCH") or current_app.config.get("CAMPAIGN_BATCH_SIZE", 500))
    return queue_due(ctx.session, now=ctx.now, batch_size=batch, on_batch=ctx.checkpoint)


register_job(Job("send-campaigns", "membership.campaigns.jobs:send_campaigns", Every(60),
                 "Queue the emails of campaigns scheduled for now or earlier (Staff > Campaigns); each member "
                 "gets a campaign once.", lease_seconds=10 * 60))
