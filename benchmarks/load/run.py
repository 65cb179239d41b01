"""Proof on several processes: the production layout under load, started and stopped by itself.

    pip install -e '.[bench]'
    python benchmarks/load/run.py                       # PostgreSQL then SQLite, 5 minutes each
    python benchmarks/load/run.py --minutes 1 --db sqlite

PostgreSQL: a fresh database (<--pg-url's database>_load), two gunicorn instances of 2 workers each
(gunicorn.conf.py) and two `flask scheduler run` processes; SQLite: one gunicorn of 2 workers and
one scheduler. Demo-sized data (`flask demo`, 300 members), extra staff and member logins, a
campaign of --emails queued emails, the renewal reminders queued by `scheduler run-job`, the
limiter's counters in Redis. Locust headless drives --users users for --minutes (70% pages, 20%
searches, 10% writes: staff notes, renewals, event registrations on a member's behalf, on events
whose capacity is nearly taken). Emails go to an SMTP sink in this process (aiosmtpd), which counts
them by Message-ID. After the load the schedulers finish delivering, then everything stops.

Prints, per database: requests and server errors (5xx in the access logs), p50/p95 of pages,
searches and writes, emails in the outbox vs. received (each Message-ID exactly once), and the
events whose seated registrations exceed their capacity (must be none).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from email import message_from_bytes
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
PASSWORD = "load-test-password-2026"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- the SMTP sink


class Sink:
    """aiosmtpd in a thread: counts every received message by its Message-ID."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        self.ids: Counter[str] = Counter()
        self.without_id = 0
        self.lock = threading.Lock()
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                message = message_from_bytes(envelope.original_content or envelope.content)
                with sink.lock:
                    mid = message.get("Message-ID")
                    if mid:
                        sink.ids[mid.strip()] += 1
                    else:
                        sink.without_id += 1
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def total(self) -> int:
        with self.lock:
            return sum(self.ids.values()) + self.without_id

    def stop(self):
        self.controller.stop()


# ---------------------------------------------------------------- set-up


def fresh_postgres(url: str) -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = make_url(url)
    target = base.set(database=f"{base.database}_load")
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()
    return target.render_as_string(hide_password=False)


def drop_postgres(url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
    admin.dispose()


def flask(env: dict, *args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", *args], cwd=ROOT, env=env,
                          check=check, capture_output=True, text=True, **kw)


def prepare_data(env: dict, *, emails: int, out: Path, hosts: list[str]) -> dict:
    """Logins, a campaign in the outbox, nearly full events; returns Locust's targets."""
    from datetime import timedelta

    from sqlalchemy import func, select

    from membership import create_app
    from membership.accounts import services as accounts
    from membership.core.time import utcnow
    from membership.events.models import SEATED_STATUSES, Event, EventRegistration
    from membership.extensions import db
    from membership.members.models import Member
    from membership.notifications import outbox
    from membership.plans.models import Membership

    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        app = create_app()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    accounts.PASSWORD_METHOD = "pbkdf2:sha256:1000"  # the logins are made fast; sign-in checks any method
    now = utcnow()
    with app.app_context():
        session = db.session
        members = list(session.scalars(select(Member).where(Member.email.is_not(None)).order_by(Member.id)))
        staff, portal = [], []
        for i in range(10):
            email = f"load-staff-{i}@example.org"
            accounts.create_user(session, email=email, name=f"Load Staff {i}", role="staff", password=PASSWORD,
                                 actor=None, now=now)
            staff.append({"email": email, "password": PASSWORD})
        for member in members[:10]:
            user = accounts.create_user(session, email=f"load-member-{member.id}@example.org", name=member.full_name,
                                        role="member", password=PASSWORD, actor=None, now=now, member_id=member.id)
            portal.append({"email": user.email, "password": PASSWORD})
        # events people can still register for, with only a few seats left: registrations race
        upcoming = list(session.scalars(select(Event).where(Event.status == "published", Event.starts_at > now)
                                        .order_by(Event.starts_at)))
        contended = []
        for event in upcoming[:3]:
            seated = session.scalar(select(func.count()).select_from(EventRegistration).where(
                EventRegistration.event_id == event.id, EventRegistration.status.in_(SEATED_STATUSES)))
            event.capacity = max(seated, event.seats_taken) + 8
            contended.append(event.id)
        session.commit()
        # the campaign: one email per recipient, queued now (the schedulers deliver them)
        made = 0
        for i in range(emails):
            member = members[i % len(members)]
            message = outbox.enqueue(session, template_key="we_miss_you", dedupe_key=f"load-campaign:{i}", now=now,
                                     member=member, to_address=f"campaign-{i}@example.org", category="service",
                                     context={"events_link": hosts[0] + "/events/", "portal_link": hosts[0] + "/my/"})
            made += message is not None
            if i % 500 == 499:
                session.commit()
        session.commit()
        renewable = list(session.scalars(select(Membership.member_id).where(
            Membership.member_id.is_not(None), Membership.status.in_(("active", "grace", "lapsed")),
            Membership.ends_on.is_not(None), Membership.ends_on < (now + timedelta(days=60)).date()).distinct()))
        targets = {
            "hosts": hosts, "staff": staff, "members": portal,
            "member_ids": [m.id for m in members],
            "renewable_ids": renewable or [m.id for m in members[:50]],
            "event_ids": [e.id for e in session.scalars(select(Event).order_by(Event.id))],
            "contended_event_ids": contended,
            "member_lookups": [m.email for m in members],
            "search_words": sorted({m.last_name[:4] for m in members if m.last_name} |
                                   {m.first_name[:3] for m in members if m.first_name})[:80],
            "campaign_queued": made,
        }
        db.session.remove()
        db.engine.dispose()
    (out / "targets.json").write_text(json.dumps(targets))
    return targets


# ---------------------------------------------------------------- results


def outcome(url: str) -> dict:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as conn:
        statuses = dict(conn.execute(text("SELECT status, count(*) FROM outbox_message GROUP BY status")).all())
        sent_ids = [r[0] for r in conn.execute(text("SELECT message_id FROM outbox_message WHERE status = 'sent'"))]
        overbooked = conn.execute(text(
            "SELECT e.id, e.capacity, count(r.id) FROM event e JOIN event_registration r ON r.event_id = e.id "
            "AND r.status IN ('confirmed', 'attended', 'no_show') WHERE e.capacity IS NOT NULL "
            "GROUP BY e.id, e.capacity HAVING count(r.id) > e.capacity")).all()
        full = conn.execute(text(
            "SELECT count(*) FROM event e WHERE e.capacity IS NOT NULL AND (SELECT count(*) FROM event_registration r "
            "WHERE r.event_id = e.id AND r.status IN ('confirmed', 'attended', 'no_show')) = e.capacity")).scalar()
        waitlisted = conn.execute(text("SELECT count(*) FROM event_registration WHERE status = 'waitlisted'")).scalar()
        kinds = dict(conn.execute(text("SELECT template_key, count(*) FROM outbox_message GROUP BY template_key")).all())
    engine.dispose()
    return {"statuses": statuses, "sent_ids": sent_ids, "overbooked": overbooked, "full_events": full,
            "waitlisted": waitlisted, "kinds": kinds}


def locust_stats(prefix: Path) -> dict[str, dict]:
    rows = {}
    with open(f"{prefix}_stats.csv") as fh:
        for row in csv.DictReader(fh):
            rows[row["Name"]] = row
    return rows


def server_errors(logs: list[Path]) -> tuple[int, int, Counter]:
    line = re.compile(r'"[A-Z]+ \S+ HTTP/[\d.]+" (\d{3}) ')
    total, errors, codes = 0, 0, Counter()
    for log in logs:
        for match in line.finditer(log.read_text(errors="replace")):
            total += 1
            code = int(match.group(1))
            codes[code // 100 * 100] += 1
            errors += code >= 500
    return total, errors, codes


# ---------------------------------------------------------------- one run


def run(kind: str, args, work: Path) -> dict:
    print(f"\n=== {kind}: setting up in {work}", flush=True)
    sink = Sink()
    if kind == "postgresql":
        db_url, instances, schedulers = fresh_postgres(args.pg_url), 2, 2
    else:
        db_url, instances, schedulers = f"sqlite:///{work / 'load.db'}", 1, 1
    ports = [free_port() for _ in range(instances)]
    hosts = [f"http://127.0.0.1:{p}" for p in ports]
    env = {k: v for k, v in os.environ.items() if k not in ("FLASK_APP", "SAMITI_SERVER_URL")}
    env.update(DATABASE_URL=db_url, SAMITI_INSTANCE_PATH=str(work / "instance"), SECRET_KEY="load-test-secret",
               MAIL_URL=f"smtp://127.0.0.1:{sink.port}?timeout=30", MAIL_FROM="Load Test <noreply@example.org>",
               BASE_URL=hosts[0], RATELIMIT_STORAGE_URI=args.redis, RATELIMIT_KEY_PREFIX=f"samiti-load-{os.getpid()}",
               # every simulated user signs in from 127.0.0.1: the per-address limits would stop them
               LOGIN_LIMIT_PER_ADDRESS="10000 per minute", LOGIN_LIMIT_PER_ACCOUNT="10000 per minute",
               WEB_CONCURRENCY="2", PYTHONUNBUFFERED="1", LOG_LEVEL="WARNING")
    procs: list[tuple[str, subprocess.Popen]] = []
    logs: list[Path] = []
    try:
        flask(env, "db", "upgrade")
        done = flask(env, "demo", "--members", str(args.members))
        print("  " + done.stdout.strip().splitlines()[-2], flush=True)
        targets = prepare_data(env, emails=args.emails, out=work, hosts=hosts)
        print(f"  campaign queued: {targets['campaign_queued']} emails; contended events: "
              f"{targets['contended_event_ids']}", flush=True)

        for port in ports:
            log = work / f"gunicorn-{port}.log"
            logs.append(log)
            with open(log, "w") as out:
                procs.append(("gunicorn", subprocess.Popen(
                    [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"], cwd=ROOT,
                    env={**env, "BIND": f"127.0.0.1:{port}", "LOG_LEVEL": "info"}, stdout=out,
                    stderr=subprocess.STDOUT)))
        for i in range(schedulers):
            with open(work / f"scheduler-{i}.log", "w") as out:
                procs.append(("scheduler", subprocess.Popen(
                    [sys.executable, "-m", "flask", "--app", "wsgi", "scheduler", "run"], cwd=ROOT, env=env,
                    stdout=out, stderr=subprocess.STDOUT)))
        import urllib.request
        for host in hosts:
            for _ in range(240):
                try:
                    urllib.request.urlopen(host + "/login", timeout=5).read()
                    break
                except OSError:
                    time.sleep(0.5)
            else:
                raise RuntimeError(f"{host} did not start; see {work}")
        # the renewal reminders due, queued by the scheduler's own job (the schedulers deliver them)
        reminders = flask(env, "scheduler", "run-job", "renewal-reminders", "--force", check=False)
        print("  " + " ".join(reminders.stdout.split())[:200], flush=True)

        print(f"=== {kind}: Locust, {args.users} users for {args.minutes} min against {', '.join(hosts)}", flush=True)
        prefix = work / "locust"
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "locust", "-f", str(Path(__file__).with_name("locustfile.py")),
                        "--headless", "-u", str(args.users), "-r", str(max(1, args.users // 10)),
                        "-t", f"{int(args.minutes * 60)}s", "--csv", str(prefix), "--only-summary",
                        "--host", hosts[0], "--stop-timeout", "10", "--loglevel", "WARNING"],
                       cwd=ROOT, env={**env, "LOAD_TARGETS": str(work / "targets.json")}, check=False,
                       stdout=open(work / "locust.out", "w"), stderr=subprocess.STDOUT)
        load_seconds = time.monotonic() - started
        print(f"  load done in {load_seconds:.0f} s; waiting for the outbox to drain", flush=True)
        for name, proc in procs:
            if name == "gunicorn":
                proc.send_signal(signal.SIGTERM)
        for name, proc in procs:
            if name == "gunicorn":
                proc.wait(timeout=60)
        from sqlalchemy import create_engine, text
        engine = create_engine(db_url)
        deadline = time.monotonic() + args.drain_seconds
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                left = conn.execute(text("SELECT count(*) FROM outbox_message WHERE status IN ('queued', 'sending')"
                                         )).scalar()
            if not left:
                break
            time.sleep(2)
        engine.dispose()
        time.sleep(3)
        drained = time.monotonic() - started - load_seconds
    finally:
        for name, proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        sink.stop()

    result = outcome(db_url)
    stats = locust_stats(prefix)
    total, errors, codes = server_errors(logs)
    received = sink.ids
    sent = result["sent_ids"]
    duplicates = sum(1 for c in received.values() if c > 1)
    report = {
        "kind": kind, "instances": instances, "schedulers": schedulers, "minutes": args.minutes,
        "users": args.users, "requests": total, "server_errors": errors, "codes": dict(codes),
        "stats": {name: {"count": int(row["Request Count"]), "failures": int(row["Failure Count"]),
                         "p50": row["50%"], "p95": row["95%"]} for name, row in stats.items()},
        "outbox": result["statuses"], "outbox_kinds": result["kinds"], "sent": len(sent),
        "received": sum(received.values()), "received_ids": len(received), "duplicates": duplicates,
        "without_id": sink.without_id, "sent_not_received": len(set(sent) - set(received)),
        "received_not_sent": len(set(received) - set(sent)), "overbooked": result["overbooked"],
        "full_events": result["full_events"], "waitlisted": result["waitlisted"], "drain_seconds": round(drained),
    }
    (work / "report.json").write_text(json.dumps(report, indent=2, default=str))
    if kind == "postgresql" and not args.keep:
        drop_postgres(db_url)
    return report


def print_report(reports: list[dict]) -> None:
    print("\n| | " + " | ".join(f"{r['kind']} ({r['instances']} gunicorn x 2 workers, {r['schedulers']} scheduler"
                                 f"{'s' if r['schedulers'] > 1 else ''})" for r in reports) + " |")
    print("|---|" + "---|" * len(reports))

    def row(label, fn):
        print(f"| {label} | " + " | ".join(str(fn(r)) for r in reports) + " |")

    row("users x minutes", lambda r: f"{r['users']} x {r['minutes']:g}")
    row("requests (access logs)", lambda r: r["requests"])
    row("server errors (5xx)", lambda r: r["server_errors"])
    for name in ("pages", "searches", "writes", "forms", "login"):
        row(f"{name}: n / p50 / p95 ms", lambda r, n=name: (
            f"{r['stats'][n]['count']} / {r['stats'][n]['p50']} / {r['stats'][n]['p95']}" if n in r["stats"] else "-"))
    row("Locust failures", lambda r: r["stats"].get("Aggregated", {}).get("failures", "-"))
    row("outbox at the end", lambda r: ", ".join(f"{k} {v}" for k, v in sorted(r["outbox"].items())))
    row("emails sent / received / distinct Message-IDs", lambda r: f"{r['sent']} / {r['received']} / {r['received_ids']}")
    row("duplicates / sent not received / received not sent",
        lambda r: f"{r['duplicates']} / {r['sent_not_received']} / {r['received_not_sent']}")
    row("events over capacity (full / waitlisted)", lambda r: f"{len(r['overbooked'])} ({r['full_events']} full, "
                                                             f"{r['waitlisted']} waitlisted)")
    row("outbox drained after the load (s)", lambda r: r["drain_seconds"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("both", "postgresql", "sqlite"), default="both")
    parser.add_argument("--minutes", type=float, default=5)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--members", type=int, default=300)
    parser.add_argument("--emails", type=int, default=2000)
    parser.add_argument("--pg-url", default=os.environ.get("LOAD_PG_URL",
                                                           "postgresql+psycopg://postgres@127.0.0.1/samiti_prod"))
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--drain-seconds", type=int, default=600)
    parser.add_argument("--keep", action="store_true", help="keep the work folder and the load database")
    args = parser.parse_args(argv)
    reports = []
    for kind in (("postgresql", "sqlite") if args.db == "both" else (args.db,)):
        work = Path(tempfile.mkdtemp(prefix=f"samiti-load-{kind}-"))
        try:
            reports.append(run(kind, args, work))
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
            else:
                print(f"  kept {work}")
    print_report(reports)
    bad = [r["kind"] for r in reports if r["server_errors"] or r["duplicates"] or r["overbooked"]
           or r["sent_not_received"] or r["received_not_sent"] or r["outbox"].get("queued")]
    if bad:
        print(f"\nFAILED: {', '.join(bad)}")
        return 1
    print("\nOK: no server errors, every email delivered exactly once, no event over capacity.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
