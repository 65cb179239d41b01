"""The signup's scheduler job (listed by `flask --app wsgi scheduler jobs`)."""
from __future__ import annotations

from datetime import time
from typing import Any

from membership.scheduler import Daily, Job, JobContext, register_job


def prune_applications(ctx: JobContext) -> dict[str, Any]:
    """Delete online applications never confirmed within 30 days (signup.services.prune_unconfirmed)."""
    from membership.signup.services import prune_unconfirmed
    return prune_unconfirmed(ctx.session, now=ctx.now)


register_job(Job("prune-applications", "membership.signup.jobs:prune_applications", Daily(time(3, 40)),
                 "Delete online applications whose email address was never confirmed, 30 days after they "
                 "were made (their login and member record), unless staff have acted on them."))
