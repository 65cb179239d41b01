"""Every dashboard figure links to exactly the members it counts, on random histories.

The dashboard's snapshot is computed in Python (engagement.dashboard); the member lists behind it
are SQL (members.term_history). Random histories - renewals on time, within grace and too late,
cancellations on the first day and midway, unpaid terms, lifetime terms, members who joined on
29 February - must give the same counts both ways, on SQLite and on PostgreSQL."""
from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from membership.core.time import add_months, local_today
from membership.engagement import dashboard
from membership.events.models import Event, EventRegistration
from membership.extensions import db
from membership.members.queries import MemberFilter, member_query
from membership.plans.models import Membership
from membership.plans.services import refresh_status
from membership.staff.views_home import figure_links
from tests.conftest import NOW


def count(url: str) -> int:
    args = MultiDict([(k, v) for k, values in parse_qs(urlsplit(url).query).items() for v in values])
    f = MemberFilter.from_args(args)
    assert not f.errors, (url, f.errors)
    return db.session.scalar(select(func.count()).select_from(member_query(f).order_by(None).subquery()))


def make_history(rng: random.Random, make_member, plans, today: date) -> None:
    for n in range(70):
        joined = today - timedelta(days=rng.randrange(30, 5 * 365))
        if n % 10 == 0:
            joined = date(2024, 2, 29)  # the anniversary of a leap day is 28 February
        member = make_member(first_name=f"R{n}", last_name="Random", joined_on=joined)
        start = joined
        for _ in range(rng.randrange(0, 5)):
            if start > today + timedelta(days=60):
                break
            plan = rng.choice(plans)
            lifetime = rng.random() < 0.04
            ends = None if lifetime else add_months(start, 12) - timedelta(days=1)
            roll = rng.random()
            cancelled = None
            if roll < 0.06:
                cancelled = start  # cancelled on its first day: covered nothing
            elif roll < 0.14 and ends is not None:
                cancelled = start + timedelta(days=rng.randrange(1, 300))
            db.session.add(Membership(
                member_id=member.id, plan_id=plan.id, starts_on=start, ends_on=ends, grace_days=plan.grace_days,
                fee_minor=0, currency="BDT", source="staff", cancelled_on=cancelled,
                awaiting_payment=rng.random() < 0.05, paid_on=start, status="active", created_at=NOW))
            if ends is None:
                break
            # the next term: straight after, within grace, on the last day of grace, or too late
            gap = rng.choice([1, 1, 1, 10, plan.grace_days + 1, plan.grace_days + 2, 90, 400])
            start = ends + timedelta(days=gap)
        db.session.flush()
        refresh_status(db.session, member, today=today, now=NOW)
        if rng.random() < 0.6:  # an event attended (or not) some time in the last two years
            starts = datetime.combine(today - timedelta(days=rng.randrange(0, 730)), time(12), tzinfo=timezone.utc)
            event = Event(title=f"Event {n}", starts_at=starts, ends_at=starts + timedelta(hours=2),
                          currency="BDT", status="finished", created_at=NOW, updated_at=NOW)
            db.session.add(event)
            db.session.flush()
            db.session.add(EventRegistration(event_id=event.id, member_id=member.id, person_key=f"member:{member.id}",
                                             status=rng.choice(["attended", "attended", "no_show"]), currency="BDT",
                                             registered_at=starts - timedelta(days=3)))
    db.session.commit()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_figure_and_its_list_agree_on_random_histories(app, make_member, make_plan, seed):
    today = local_today()
    plans = [make_plan(code=f"P{seed}0", grace_days=0), make_plan(code=f"P{seed}1", grace_days=14),
             make_plan(code=f"P{seed}2", grace_days=30)]
    make_history(random.Random(seed), make_member, plans, today)
    snap = dashboard.compute_snapshot(db.session, today)
    with app.test_request_context():
        links = figure_links(snap)

    for status in ("active", "grace", "former"):
        assert [count(url) for url in links["status"][status]] == snap["status_series"][status], status
    for outcome in ("renewed", "lapsed"):
        assert [count(url) for url in links["outcomes"][outcome]] == snap[outcome], outcome
    # yearly terms: a member has at most one term ending in any 12 months, so terms = members
    assert count(links["renewed"]) == snap["renewal"]["renewed"]
    assert count(links["lapsed"]) == snap["renewal"]["lapsed"]
    assert count(links["due"]) == snap["renewal"]["due"]
    assert count(links["retention_base"]) == snap["retention"]["base"]
    assert count(links["retained"]) == snap["retention"]["retained"]
    assert count(links["participation"]) == snap["participation"]["attended"]
    for cohort, urls in zip(snap["cohorts"], links["cohorts"]):
        for k, url in enumerate(urls):
            if cohort["shares"][k] is not None:
                assert count(url) == cohort["current"][k], (cohort["quarter"], k)
    # the histories are rich enough to mean something
    assert snap["renewal"]["renewed"] and snap["renewal"]["lapsed"] and snap["participation"]["attended"]
    assert sum(snap["status_series"]["grace"]) > 0


def test_the_anniversary_of_29_february_is_28_february(app, make_member, make_plan):
    """Current one year after joining on 29 February 2024 means current on 28 February 2025."""
    plan = make_plan(grace_days=0)
    leap = make_member(joined_on=date(2024, 2, 29))
    db.session.add(Membership(member_id=leap.id, plan_id=plan.id, starts_on=date(2024, 2, 29),
                              ends_on=date(2025, 2, 28), grace_days=0, fee_minor=0, currency="BDT",
                              source="staff", paid_on=date(2024, 2, 29), status="active", created_at=NOW))
    short = make_member(joined_on=date(2024, 2, 29))  # ended the day before the anniversary
    db.session.add(Membership(member_id=short.id, plan_id=plan.id, starts_on=date(2024, 2, 29),
                              ends_on=date(2025, 2, 27), grace_days=0, fee_minor=0, currency="BDT",
                              source="staff", paid_on=date(2024, 2, 29), status="active", created_at=NOW))
    db.session.commit()
    assert count("/staff/members?current_years=1") == 1
    assert add_months(date(2024, 2, 29), 12) == date(2025, 2, 28)
