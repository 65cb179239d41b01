"""Auto-renewal's scheduler jobs (listed by `flask --app wsgi scheduler jobs`)."""
from __future__ import annotations

from datetime import time
from typing import Any

from membership.scheduler import Daily, Job, JobContext, register_job


def autorenew_notices(ctx: JobContext) -> dict[str, Any]:
    """Queue the "we will charge your card on ..." notices that are due (payments.autorenew.queue_notices)."""
    from membership.core.settings import current_settings
    from membership.payments.autorenew import queue_notices
    return queue_notices(ctx.session, settings=current_settings(), now=ctx.now, today=ctx.today)


def autorenew_charges(ctx: JobContext) -> dict[str, Any]:
    """Charge the saved cards whose charge day has come and renew their terms
    (payments.autorenew.charge_due); commits around each provider call."""
    from membership.core.settings import current_settings
    from membership.payments.autorenew import charge_due
    return charge_due(ctx.session, settings=current_settings(), now=ctx.now, today=ctx.today,
                      checkpoint=ctx.checkpoint)


register_job(Job("autorenew-notices", "membership.payments.autorenew_jobs:autorenew_notices", Daily(time(7, 30)),
                 "Email members who renew automatically by card AUTO_RENEW_NOTICE_DAYS before their card is "
                 "charged (amount, day, card, and how to stop), once per term."))
register_job(Job("autorenew-charges", "membership.payments.autorenew_jobs:autorenew_charges", Daily(time(9, 0)),
                 "Charge the saved card of each member who renews automatically on the last day of their term "
                 "and renew it; a declined card is emailed and retried once a day, three times at most."))
