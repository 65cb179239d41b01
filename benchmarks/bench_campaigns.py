"""Time a campaign to 10,000 recipients: queueing it through the outbox (target < 10 s), then its
report page and the campaign list at 100,000 members and 1 million tracking events (target p95 <
200 ms).

    python benchmarks/bench_campaigns.py --database-url sqlite:///benchmarks/out/campaigns.db
    python benchmarks/bench_campaigns.py --database-url postgresql+psycopg://postgres@127.0.0.1/samiti_bench_campaigns

The database is emptied and filled by the script (schema from the models, rows in bulk with
SQLAlchemy core): `--members` members (20% Bengali-speaking, 60% opted in), of whom `--tagged`
carry the tag "newsletter" (a saved segment) and `--recipients` of those opted in; nine earlier
campaigns of `--recipients` emails each; and `--events` tracking activities (opens, clicks and
sign-ins) spread over every email and member. The timed campaign goes to the segment: Send now,
then the scheduler's `send-campaigns` job queues it (the timed part: audience query, rendering of
every email in its member's language, multi-row inserts, commits per batch). Its emails are then
marked sent and get opens, clicks on three links and a few unsubscribes, and the report page and
the list are requested through the Flask test client signed in as staff, `--requests` times each
after a warm-up. Prints one table; a "!" marks a missed target.
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, insert, select, text, update  # noqa: E402

from membership import create_app  # noqa: E402
from membership.accounts import services as accounts  # noqa: E402
from membership.campaigns import services  # noqa: E402
from membership.campaigns.models import Campaign  # noqa: E402
from membership.core.models import Activity  # noqa: E402
from membership.engagement.models import Segment  # noqa: E402
from membership.extensions import db  # noqa: E402
from membership.members.models import Member, MemberTag  # noqa: E402
from membership.notifications.models import OutboxMessage  # noqa: E402

QUEUE_TARGET_S = 10
PAGE_TARGET_MS = 200
LOGIN = ("bench-campaigns@example.com", "monsoon-report-timing-2026")
NOW = datetime(2026, 6, 15, 6, 0, tzinfo=timezone.utc)
LINKS = ["http://127.0.0.1:5000/events/", "http://127.0.0.1:5000/my/", "http://127.0.0.1:5000/my/renew"]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))] * 1000


def reset(app) -> None:
    with app.app_context():
        database = db.engine.url.database
        if db.engine.dialect.name == "sqlite" and database and database != ":memory:":
            db.engine.dispose()  # a fresh file: dropping a million rows' tables takes minutes
            for suffix in ("", "-wal", "-shm"):
                Path(database + suffix).unlink(missing_ok=True)
        if db.engine.dialect.name == "postgresql":
            with db.engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
        else:
            db.drop_all()
        db.create_all()


def chunks(rows, size=5000):
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def fill(app, *, members: int, tagged: int, recipients: int, events: int, seed: int, progress) -> int:
    """Members, the segment, nine earlier campaigns' emails and the tracking events. Returns the
    segment's id."""
    rng = random.Random(seed)
    with app.app_context():
        conn = db.session.connection()
        rows, tags = [], []
        opted_tagged = 0
        for i in range(1, members + 1):
            is_tagged = i <= tagged
            opt_in = (opted_tagged < recipients) if is_tagged else rng.random() < 0.6
            if is_tagged and opt_in:
                opted_tagged += 1
            bn = rng.random() < 0.2
            first = ("রহিমা" if bn else "Rahima") + str(i % 97)
            rows.append({"id": i, "member_number": f"M{i:07d}", "first_name": first, "last_name": f"Khan{i % 1000}",
                         "email": f"m{i}@example.org", "email_normalized": f"m{i}@example.org",
                         "joined_on": date(2020, 1, 1) + timedelta(days=i % 2000), "language": "bn" if bn else "en",
                         "marketing_opt_in": opt_in, "directory_opt_in": False, "email_bouncing": False,
                         "is_primary_contact": False, "search_text": f"{first} khan{i % 1000} m{i}@example.org".lower(),
                         "status": "active" if rng.random() < 0.8 else "lapsed", "created_at": NOW, "updated_at": NOW})
            if is_tagged:
                tags.append({"member_id": i, "tag": "newsletter"})
        for part in chunks(rows):
            conn.execute(insert(Member), part)
        for part in chunks(tags):
            conn.execute(insert(MemberTag), part)
        db.session.commit()
        progress(f"{members:,} members")

        segment = Segment(name="Newsletter", filters={"tag": ["newsletter"]}, created_at=NOW)
        db.session.add(segment)
        # nine earlier campaigns, each with `recipients` emails, sent
        outbox_rows, message_id = [], 0
        old = []
        for c in range(9):
            sent_at = NOW - timedelta(days=30 * (c + 1))
            campaign = Campaign(name=f"Earlier {c}", kind="marketing", status="sent", filters={"tag": ["newsletter"]},
                                send_at=sent_at, queue_started_at=sent_at, queued_at=sent_at, created_at=sent_at,
                                updated_at=NOW, recipient_count=recipients)
            db.session.add(campaign)
            old.append(campaign)
        db.session.flush()
        for campaign in old:
            for member_id in range(1, recipients + 1):
                message_id += 1
                outbox_rows.append({"id": message_id, "dedupe_key": f"campaign:{campaign.id}:member:{member_id}",
                                    "template_key": "campaign", "category": "marketing", "member_id": member_id,
                                    "to_address": f"m{member_id}@example.org", "to_name": "", "subject": "Earlier news",
                                    "body_text": "News", "status": "sent", "attempts": 1, "next_attempt_at": NOW,
                                    "created_at": campaign.send_at, "sent_at": campaign.send_at,
                                    "source_type": "campaign", "source_id": campaign.id})
        for part in chunks(outbox_rows):
            conn = db.session.connection()
            conn.execute(insert(OutboxMessage), part)
        db.session.commit()
        progress(f"{len(outbox_rows):,} earlier campaign emails")

        batch, made = [], 0
        while made < events:
            roll = rng.random()
            if roll < 0.55:
                mid = rng.randint(1, message_id)
                batch.append({"member_id": (mid - 1) % recipients + 1, "kind": "email_opened",
                              "occurred_at": NOW - timedelta(days=rng.randint(1, 300)), "source_type": "outboxmessage",
                              "source_id": mid, "dedupe_key": None, "detail": {"template": "campaign"}})
            elif roll < 0.75:
                mid = rng.randint(1, message_id)
                batch.append({"member_id": (mid - 1) % recipients + 1, "kind": "email_clicked",
                              "occurred_at": NOW - timedelta(days=rng.randint(1, 300)), "source_type": "outboxmessage",
                              "source_id": mid, "dedupe_key": None,
                              "detail": {"template": "campaign", "url": rng.choice(LINKS)}})
            else:
                batch.append({"member_id": rng.randint(1, members), "kind": "logged_in",
                              "occurred_at": NOW - timedelta(days=rng.randint(1, 300)), "source_type": None,
                              "source_id": None, "dedupe_key": None, "detail": None})
            made += 1
            if len(batch) >= 10_000:
                db.session.connection().execute(insert(Activity), batch)
                batch = []
        if batch:
            db.session.connection().execute(insert(Activity), batch)
        db.session.commit()
        progress(f"{events:,} tracking events")
        if db.engine.dialect.name == "postgresql":  # explicit ids above: move the sequences past them
            for table in ("member", "outbox_message"):
                db.session.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                        f"(SELECT max(id) FROM {table}))"))
        accounts.create_user(db.session, email=LOGIN[0], name="Benchmark", role="staff", password=LOGIN[1],
                             actor=None, now=NOW)
        db.session.commit()
        if db.engine.dialect.name == "postgresql":
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                c.execute(text("VACUUM ANALYZE"))
        else:
            db.session.execute(text("ANALYZE"))
            db.session.commit()
        # the list figures the send-campaigns job stored when it queued each earlier campaign
        for campaign_id, figures in services.count_list_figures(db.session, [c.id for c in old]).items():
            db.session.execute(update(Campaign).where(Campaign.id == campaign_id)
                               .values(figures=figures, figures_at=NOW - timedelta(minutes=5)))
        db.session.commit()
        return segment.id


def queue_timed(app, segment_id: int) -> tuple[int, float, float, int]:
    """Compose, Send now, and the scheduler job: (campaign id, seconds of the job, seconds of the
    audience count shown on the campaign page)."""
    from membership import scheduler

    with app.app_context():
        campaign = services.save_campaign(
            db.session, None, name="Monsoon newsletter", kind="marketing", filters={"segment": segment_id},
            versions={"en": services.VersionText("Monsoon news for {{ member.first_name }}",
                                                 "Dear {{ member.first_name }},\nOur monsoon news.\n{{ portal_link }}",
                                                 '<p>Dear {{ member.first_name }},</p><p><a href="{{ portal_link }}">'
                                                 "Your membership</a></p>"),
                      "bn": services.VersionText("বর্ষার খবর {{ member.first_name }}",
                                                 "প্রিয় {{ member.first_name }},\nআমাদের বর্ষার খবর।", "")},
            actor=None, now=NOW)
        db.session.commit()
        started = time.perf_counter()
        counts = services.audience_counts(db.session, campaign)
        audience_s = time.perf_counter() - started
        services.schedule(db.session, campaign, send_at=NOW, actor=None, now=NOW)
        db.session.commit()
        started = time.perf_counter()
        outcome = scheduler.run_job("send-campaigns", now=NOW)
        elapsed = time.perf_counter() - started
        assert outcome.status == "ok", outcome.error
        assert outcome.counts["queued"] == counts["recipient"], (outcome.counts, counts)
        return campaign.id, elapsed, audience_s, outcome.counts["queued"]


def track(app, campaign_id: int, seed: int) -> None:
    """The campaign's emails sent; 40% opened, 15% clicked one of three links, 0.5% unsubscribed."""
    rng = random.Random(seed + 1)
    with app.app_context():
        db.session.execute(update(OutboxMessage).where(OutboxMessage.source_type == "campaign",
                                                       OutboxMessage.source_id == campaign_id)
                           .values(status="sent", sent_at=NOW))
        rows = db.session.execute(select(OutboxMessage.id, OutboxMessage.member_id).where(
            OutboxMessage.source_type == "campaign", OutboxMessage.source_id == campaign_id)).all()
        batch = []
        for message_id, member_id in rows:
            at = NOW + timedelta(hours=rng.randint(1, 48))
            if rng.random() < 0.4:
                batch.append({"member_id": member_id, "kind": "email_opened", "occurred_at": at,
                              "source_type": "outboxmessage", "source_id": message_id,
                              "dedupe_key": f"email_opened:{message_id}", "detail": {"template": "campaign"}})
                if rng.random() < 0.375:
                    url = rng.choice(LINKS)
                    batch.append({"member_id": member_id, "kind": "email_clicked", "occurred_at": at,
                                  "source_type": "outboxmessage", "source_id": message_id,
                                  "dedupe_key": f"email_clicked:{message_id}:{LINKS.index(url)}",
                                  "detail": {"template": "campaign", "url": url}})
            if rng.random() < 0.005:
                batch.append({"member_id": member_id, "kind": "profile_updated", "occurred_at": at,
                              "source_type": "campaign", "source_id": campaign_id, "dedupe_key": None,
                              "detail": {"marketing_opt_in": False, "via": "one-click"}})
        for part in chunks(batch):
            db.session.connection().execute(insert(Activity), part)
        db.session.commit()
        if db.engine.dialect.name == "postgresql":
            # what autovacuum does soon after a load this size (statistics, visibility map)
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                c.execute(text("VACUUM ANALYZE outbox_message"))
                c.execute(text("VACUUM ANALYZE activity"))


def time_pages(app, campaign_id: int, *, requests: int, warmup: int) -> dict[str, list[float]]:
    client = app.test_client()
    with app.app_context():
        response = client.post("/login", data={"email": LOGIN[0], "password": LOGIN[1]})
        assert response.status_code == 302, response.status_code
    paths = {"report page": f"/staff/campaigns/{campaign_id}", "campaign list": "/staff/campaigns",
             "opened members (page 1)": f"/staff/campaigns/{campaign_id}/members?figure=opened"}
    out = {}
    for name, path in paths.items():
        timings = []
        for i in range(warmup + requests):
            started = time.perf_counter()
            response = client.get(path)
            elapsed = time.perf_counter() - started
            assert response.status_code == 200, (path, response.status_code)
            if i >= warmup:
                timings.append(elapsed)
        out[name] = timings
    return out


def bench(url: str, args) -> list[str]:
    instance = tempfile.mkdtemp(prefix="samiti-bench-campaigns-")
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench", "INSTANCE_PATH": instance,
                      "MAIL_URL": "memory://", "RATELIMIT_ENABLED": False, "WTF_CSRF_ENABLED": False,
                      "CAMPAIGN_RATE_PER_MINUTE": 500})
    backend = "postgresql" if url.startswith("postgresql") else "sqlite"
    reset(app)
    started = time.perf_counter()
    segment_id = fill(app, members=args.members, tagged=args.tagged, recipients=args.recipients, events=args.events,
                      seed=args.seed, progress=lambda s: print(f"  [{backend}] {s} ({time.perf_counter() - started:.0f} s)",
                                                               flush=True))
    campaign_id, queue_s, audience_s, queued = queue_timed(app, segment_id)
    track(app, campaign_id, args.seed)
    with app.app_context():
        total_events = db.session.scalar(select(func.count()).select_from(Activity))
        figures = services.report(db.session, db.session.get(Campaign, campaign_id))["figures"]
    pages = time_pages(app, campaign_id, requests=args.requests, warmup=args.warmup)
    lines = [f"{backend:<11} {'queue ' + format(queued, ',') + ' emails (send-campaigns job)':<44} "
             f"{queue_s * 1000:>9.0f} {'':>9}  target < {QUEUE_TARGET_S} s{' !' if queue_s > QUEUE_TARGET_S else ''}",
             f"{backend:<11} {'audience count (who gets it, who is left out)':<44} {audience_s * 1000:>9.1f}"]
    for name, timings in pages.items():
        over = " !" if pct(timings, 95) > PAGE_TARGET_MS else ""
        lines.append(f"{backend:<11} {name:<44} {pct(timings, 50):>9.1f} {pct(timings, 95):>9.1f}  "
                     f"target p95 < {PAGE_TARGET_MS} ms{over}")
    lines.append(f"{backend:<11} (data: {args.members:,} members, {total_events:,} activities; report: "
                 f"sent {figures['sent']:,}, opened {figures['opened']:,}, clicked {figures['clicked']:,}, "
                 f"unsubscribed {figures['unsubscribed']:,})")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", action="append", dest="urls",
                        help="a database to EMPTY and fill (repeat for several; default benchmarks/out/campaigns.db)")
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--tagged", type=int, default=11_000)
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    (ROOT / "benchmarks" / "out").mkdir(exist_ok=True)
    urls = args.urls or [f"sqlite:///{ROOT / 'benchmarks' / 'out' / 'campaigns.db'}"]
    lines = []
    for url in urls:
        lines += bench(url, args)
    header = f"{'database':<11} {'what':<44} {'p50/ms':>9} {'p95 ms':>9}"
    print(f"{args.requests} requests per page after {args.warmup} warm-up ('!' marks a missed target)")
    print(header)
    print("-" * (len(header) + 24))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
