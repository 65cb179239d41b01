"""A generated history whose answer is known (issue 10): members come at their own rhythm (every
few days, every few weeks, every few months) until the day they leave for good. Silence means
churn only against the member's rhythm - a weekly member silent for seven weeks has left, a
quarterly one has not - which the "days since last activity" rule cannot see and a model that
learns the rhythm can. No terms: churn is "no activity for N days" (CHURN_INACTIVE_DAYS)."""
from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import insert

from membership.core.models import Activity
from membership.extensions import db

ZONE = ZoneInfo("Asia/Dhaka")
TODAY = date(2026, 6, 1)
START = date(2022, 6, 1)
GAPS = (3, 20, 60)  # mean days between two visits


def make(make_member, n: int = 360, seed: int = 7, today: date = TODAY) -> dict[int, dict]:
    """Members and their activities; returns {member id: {"gap", "leaves_on"}}."""
    rng = random.Random(seed)
    truth: dict[int, dict] = {}
    rows = []
    span = (today - START).days
    for i in range(n):
        joined = START + timedelta(days=rng.randrange(0, span - 400))
        m = make_member(joined_on=joined, email=None)
        gap = GAPS[i % len(GAPS)]
        leaves = joined + timedelta(days=int(rng.expovariate(1 / 700)) + 10)
        truth[m.id] = {"gap": gap, "leaves_on": leaves}
        t = float((joined - START).days)
        end = (min(leaves, today) - START).days
        while True:
            t += rng.expovariate(1 / gap)
            if t >= end:
                break
            day = START + timedelta(days=int(t))
            moment = datetime.combine(day, time(10 + rng.randrange(0, 8)), ZONE).astimezone(timezone.utc)
            if rng.random() < 0.25:
                rows.append({"member_id": m.id, "kind": "payment", "occurred_at": moment, "source_type": "import",
                             "detail": {"imported": True, "amount_minor": rng.randrange(500, 5000) * 100}})
            else:
                rows.append({"member_id": m.id, "kind": "logged_in", "occurred_at": moment, "source_type": "import",
                             "detail": None})
    db.session.flush()
    for i in range(0, len(rows), 5000):
        db.session.execute(insert(Activity.__table__), rows[i:i + 5000])
    db.session.commit()
    return truth
