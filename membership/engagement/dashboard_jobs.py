"""The dashboard's scheduler job (listed by `flask --app wsgi scheduler jobs`)."""
from __future__ import annotations

from datetime import time
from typing import Any

from membership.scheduler import Daily, Job, JobContext, register_job


def dashboard_refresh(ctx: JobContext) -> dict[str, Any]:
    """Precompute today's dashboard snapshot (status over time, renewals and lapses, cohorts,
    12-month rates) so the first staff member to open the home page does not wait for it. A
    second run the same day recomputes and replaces it (harmless). The runner commits."""
    from membership.engagement.dashboard import refresh_dashboard
    snapshot = refresh_dashboard(ctx.session, ctx.today, now=ctx.now)
    return {"as_of": snapshot["as_of"], "terms_due": snapshot["renewal"]["due"]}


register_job(Job("dashboard-refresh", "membership.engagement.dashboard_jobs:dashboard_refresh", Daily(time(2, 45)),
                 "Precompute the staff dashboard's figures of the day (members by status over time, renewals "
                 "and lapses per month, cohorts, renewal and retention rates)."))
