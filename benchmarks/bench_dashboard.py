"""Time the staff dashboard (GET /staff/) on a large database: after the 02:45 "dashboard-refresh"
job stored today's figures (warm: what staff see every morning) and with nothing stored or
remembered (cold: the first view computes the day's figures itself). Target: warm p95 < 300 ms.

    python benchmarks/bench_dashboard.py                       # benchmarks/out/bench.db
    python benchmarks/bench_dashboard.py --database-url postgresql+psycopg://postgres@127.0.0.1/DB

The database made by generate.py is not changed: a SQLite database is copied once to
`<name>_dashboard.db` beside it (reused on later runs) and the benchmark works on the copy. On the
copy (or on a PostgreSQL database, which is used as it is: give it one of its own) it runs the
migrations (an older generate.py did not make current_score, events, setting...) and, when they
are empty, fills them the way the scoring job and two years of events would: a CurrentScore row
for every member (random engagement, band from the score, churn risk for current members), 60
events with 42,000 registrations. Then it times `--cold-requests` cold requests (each deletes the
stored figures and the page's in-memory copy first), the job's refresh_dashboard, and
`--requests` warm requests, through the Flask test client signed in as a staff user.
"""
from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import delete, func, insert, select  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from membership import create_app  # noqa: E402
from membership.accounts import services as accounts  # noqa: E402
from membership.core.time import local_today, utcnow  # noqa: E402
from membership.engagement import dashboard  # noqa: E402
from membership.engagement.models import CurrentScore, Setting  # noqa: E402
from membership.events.models import Event, EventRegistration  # noqa: E402
from membership.extensions import db  # noqa: E402
from membership.members.models import Member  # noqa: E402

TARGET_MS = 300
LOGIN = ("bench-dashboard@example.com", "morning-figures-2026-kpi")
DEFAULT_DB = ROOT / "benchmarks" / "out" / "bench.db"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))] * 1000


def working_url(url: str) -> str:
    """A SQLite database is copied once (generate.py's file stays as it was); others are used as they are."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite"):
        return url
    source = Path(parsed.database)
    copy = source.with_name(f"{source.stem}_dashboard{source.suffix}")
    if not copy.exists():
        print(f"copying {source} to {copy} (once)", flush=True)
        shutil.copyfile(source, copy)
    return f"sqlite:///{copy}"


def prepare(rng: random.Random) -> None:
    """The schema brought up to date with the migrations (generate.py may predate events and
    engagement), a staff login, scores for every member and some events, if not there yet."""
    from flask_migrate import upgrade
    upgrade(directory=str(ROOT / "migrations"))
    user = accounts.get_user_by_email(db.session, LOGIN[0])
    if user is None:
        accounts.create_user(db.session, email=LOGIN[0], name="Benchmark", role="staff", password=LOGIN[1],
                             actor=None, now=utcnow())
    db.session.commit()
    today = local_today()
    if not db.session.scalar(select(func.count()).select_from(CurrentScore)):
        started = time.perf_counter()
        rows = []
        members = db.session.execute(select(Member.id, Member.status).where(Member.erased_at.is_(None))).all()
        for member_id, status in members:
            engagement = round(rng.expovariate(1 / 15), 2)
            band = ("highly_engaged" if engagement >= 40 else "engaged" if engagement >= 15
                    else "drifting" if engagement >= 5 else "dormant")
            risk = band_ = None
            if status in ("active", "grace"):
                risk = min(0.99, max(0.01, rng.betavariate(2, 5) + (0.3 if band == "dormant" else 0)))
                band_ = "high" if risk >= 0.6 else "medium" if risk >= 0.3 else "low"
            rows.append({"member_id": member_id, "scored_on": today, "engagement": engagement,
                         "engagement_band": band, "churn_risk": risk, "risk_band": band_, "reasons": None,
                         "last_activity_at": None})
            if len(rows) == 5000:
                db.session.execute(insert(CurrentScore), rows)
                rows = []
        if rows:
            db.session.execute(insert(CurrentScore), rows)
        db.session.commit()
        print(f"scored {len(members):,} members in {time.perf_counter() - started:.1f} s", flush=True)
    if not db.session.scalar(select(func.count()).select_from(Event)):
        started = time.perf_counter()
        ids = db.session.scalars(select(Member.id).where(Member.status.in_(("active", "grace", "lapsed")))).all()
        now = utcnow()
        registrations = 0
        for k in range(60):
            starts = now - timedelta(days=12 * k + 3)
            event = Event(title=f"Benchmark event {k}", starts_at=starts, ends_at=starts + timedelta(hours=2),
                          currency="BDT", status="finished", created_at=now, updated_at=now)
            db.session.add(event)
            db.session.flush()
            rows = [{"event_id": event.id, "member_id": mid, "person_key": f"member:{mid}",
                     "status": rng.choice(("attended", "attended", "attended", "no_show")), "source": "member",
                     "price_minor": 0, "currency": "BDT", "member_price": False,
                     "registered_at": starts - timedelta(days=5)}
                    for mid in rng.sample(ids, min(len(ids), 700))]
            db.session.execute(insert(EventRegistration), rows)
            registrations += len(rows)
        db.session.commit()
        print(f"made 60 events, {registrations:,} registrations in {time.perf_counter() - started:.1f} s",
              flush=True)


def time_get(client) -> float:
    started = time.perf_counter()
    response = client.get("/staff/")
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.status_code
    return elapsed


def drop_snapshot(today) -> None:
    """Forget every stored figure (the snapshots and the score figures of any day)."""
    db.session.execute(delete(Setting).where(Setting.key.like(f"{dashboard.CACHE_PREFIX}%")))
    db.session.commit()


def figure_urls(page: str) -> list[tuple[str, str]]:
    """(what, URL) of the member lists the dashboard links to: the key figures, the denominators,
    and one cell of each kind in the tables (the month-end statuses, renewals and lapses of a
    month, a cohort's share)."""
    import html
    import re
    out = [(anchor, html.unescape(url)) for anchor, url in
           re.findall(r'<a class="card text-decoration-none home-kpi" id="(fig-[\w-]+)" href="([^"]*)"', page)]
    denominators = re.search(r'id="figure-denominators">(.*?)</p>', page, re.S).group(1)
    out += [(f"denominator {i + 1}", html.unescape(u)) for i, u in enumerate(re.findall(r'href="([^"]*)"', denominators))]
    for table, label in (("table-status", "status at a month end"), ("table-renewals", "renewed/lapsed in a month"),
                         ("cohorts", "cohort share")):
        body = re.search(rf'<table[^>]*id="{table}".*?</table>', page, re.S).group(0)
        urls = [html.unescape(u) for u in re.findall(r'<a href="(/staff/members[^"]*)"', body)]
        out += [(f"{label} {i + 1}", u) for i, u in enumerate(urls[-3:])]
    return [(what, url) for what, url in out if url.startswith("/staff/members")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=f"sqlite:///{DEFAULT_DB}")
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--cold-requests", type=int, default=5)
    parser.add_argument("--seed", type=int, default=6)
    args = parser.parse_args()

    url = working_url(args.database_url)
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "INSTANCE_PATH": tempfile.mkdtemp(prefix="samiti-bench-"),
                      "SECRET_KEY": "benchmark", "WTF_CSRF_ENABLED": False, "RATELIMIT_ENABLED": False})
    with app.app_context():
        prepare(random.Random(args.seed))
        members = db.session.scalar(select(func.count()).select_from(Member))
        today = local_today()
        client = app.test_client()
        response = client.post("/login", data={"email": LOGIN[0], "password": LOGIN[1]})
        assert response.status_code == 302, response.status_code
        backend = db.engine.dialect.name

        cold = []
        for _ in range(args.cold_requests):
            drop_snapshot(today)
            app.extensions.get("samiti.dashboard", {}).clear()  # the page's in-memory copy
            db.session.remove()
            cold.append(time_get(client))

        # what the 02:45 job does
        drop_snapshot(today)
        started = time.perf_counter()
        dashboard.refresh_dashboard(db.session, today)
        db.session.commit()
        compute_s = time.perf_counter() - started
        app.extensions.get("samiti.dashboard", {}).clear()
        time_get(client)  # warm-up
        warm = []
        for _ in range(args.requests):
            db.session.remove()
            warm.append(time_get(client))

        # between midnight and the 02:45 run: only yesterday's figures are stored
        drop_snapshot(today)
        dashboard.refresh_dashboard(db.session, today - timedelta(days=1))
        db.session.commit()
        app.extensions.get("samiti.dashboard", {}).clear()
        night = []
        for _ in range(min(args.requests, 20)):
            db.session.remove()
            night.append(time_get(client))
        dashboard.refresh_dashboard(db.session, today)
        db.session.commit()

        # the member lists behind the figures (each timed 3 times, the best kept)
        page = client.get("/staff/").get_data(as_text=True)
        lists = []
        for what, url in figure_urls(page):
            times = []
            for _ in range(3):
                db.session.remove()
                started = time.perf_counter()
                response = client.get(url)
                times.append(time.perf_counter() - started)
                assert response.status_code == 200, (url, response.status_code)
            lists.append((what, min(times) * 1000, url))

    print(f"\n{backend}: {members:,} members, today {today}")
    print(f"  refresh_dashboard (the daily job's work): {compute_s * 1000:,.0f} ms")
    print(f"  GET /staff/ cold (nothing stored or in memory, {len(cold)} requests): p50 {pct(cold, 50):,.0f} ms, "
          f"p95 {pct(cold, 95):,.0f} ms")
    print(f"  GET /staff/ warm (after the job, {len(warm)} requests): p50 {pct(warm, 50):.0f} ms, p95 {pct(warm, 95):.0f} ms, "
          f"mean {statistics.mean(warm) * 1000:.0f} ms  (target p95 < {TARGET_MS} ms: "
          f"{'met' if pct(warm, 95) < TARGET_MS else 'NOT met'})")
    print(f"  GET /staff/ before the morning's run (yesterday's figures, {len(night)} requests): "
          f"p50 {pct(night, 50):.0f} ms, p95 {pct(night, 95):.0f} ms")
    print(f"\n  the member list behind each figure (GET, best of 3), {len(lists)} lists:")
    print(f"  {'figure':<32} {'ms':>8}")
    for what, ms, _url in lists:
        print(f"  {what:<32} {ms:>8,.0f}")
    slowest = max(ms for _what, ms, _url in lists)
    print(f"  slowest list: {slowest:,.0f} ms")
    return 0 if pct(warm, 95) < TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
