"""Time the renewal-reminder job and the email dispatcher at 100,000 members (issue 3, item 11).

    /work/venv/bin/python benchmarks/bench_reminders.py                     # SQLite and PostgreSQL
    /work/venv/bin/python benchmarks/bench_reminders.py --backend sqlite --members 20000 --due 2000

Builds a database of N members, each with one paid 12-month term, of whom D reach a reminder
rule's day on the benchmark day (a quarter each at 30 and 7 days before the end, on the last
day, and 14 days after it: the four default rules). The other terms end on days that no rule
reaches on that day or within its catch-up window, so the D reminders are exactly what is due.
Then, each in a fresh Python process (so its peak resident memory is its own):

  1. queue   `run_job("renewal-reminders", now=...)`, the scheduler's own path (lease, run
             record, sweep in batches, one outbox row per reminder, commits per batch);
  2. deliver the dispatcher (`outbox.deliver_pending`) sending every queued message through the
             file backend (.eml files in a temporary folder);
  3. re-run  the reminder job once more, forced: it must queue nothing (all already sent).

Prints seconds, processor time, rate and peak resident memory per step ("above start": the
peak minus the process's size once the app is loaded, i.e. what the step itself needed). Target (issue 3): queue + deliver under 10 s
together, under 300 MB. PostgreSQL uses the database samiti_h8_bench (BENCH_PG_URL), recreated.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, time as dtime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ZONE = "Asia/Dhaka"
DAY = date(2026, 6, 1)  # the benchmark's "today"
AS_OF = datetime.combine(DAY, dtime(8, 0), tzinfo=ZoneInfo(ZONE)).astimezone(timezone.utc)
SQLITE_PATH = Path(tempfile.gettempdir()) / "samiti_bench_reminders.db"
PG_URL = os.environ.get("BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1/samiti_h8_bench")
RULES = (-30, -7, 0, 14)
CHUNK = 10_000


def _app(url: str, mail_dir: Path | None = None):
    from membership import create_app

    return create_app({"SQLALCHEMY_DATABASE_URI": url, "TIMEZONE": ZONE, "SECRET_KEY": "bench",
                       "INSTANCE_PATH": str(Path(tempfile.gettempdir()) / "samiti_bench_instance"),
                       "MAIL_URL": f"file://{mail_dir}" if mail_dir else "file://",
                       "ASSOCIATION_NAME": "Benchmark Association"})


def _ends_on_for(i: int, members: int, due: int) -> date:
    """Member i's term end: the first `due` members reach one of the four rules today; the
    others end on days no rule reaches today (nor within the 7-day catch-up window)."""
    if i < due:
        return DAY - timedelta(days=RULES[i % 4])
    # quiet days: 31..400 days ahead, or 22..400 days ago outside the +14 rule's window
    quiet = [d for d in range(-400, 401) if not (-22 < d < 31)]
    return DAY + timedelta(days=quiet[i % len(quiet)])


def build(url: str, members: int, due: int) -> dict:
    """A fresh schema and the data, with bulk inserts (minutes of ORM work otherwise)."""
    from sqlalchemy import insert, text

    from membership.extensions import db
    from membership.members.models import Member
    from membership.notifications.models import ReminderRule
    from membership.plans.models import Membership, Plan

    from sqlalchemy.engine import make_url

    started = time.perf_counter()
    if url.startswith("sqlite"):
        # a new file: dropping 100,000-row tables with foreign keys on takes minutes
        for suffix in ("", "-wal", "-shm"):
            Path(make_url(url).database + suffix).unlink(missing_ok=True)
    app = _app(url)
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            with db.engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
        db.create_all()
        now = datetime(2025, 1, 1, tzinfo=timezone.utc)
        db.session.execute(insert(Plan), [{"code": "STD", "name": "Standard", "fee_minor": 100000, "currency": "BDT",
                                           "period_kind": "rolling", "period_months": 12, "grace_days": 30,
                                           "created_at": now}])
        for offset, key in zip(RULES, ("renewal_reminder_30", "renewal_reminder_7", "renewal_due_today",
                                       "grace_notice")):
            db.session.add(ReminderRule(name=f"rule {offset}", offset_days=offset, template_key=key,
                                        effective_from=date(2020, 1, 1), created_at=now))
        db.session.commit()
        for start in range(0, members, CHUNK):
            people, terms = [], []
            for i in range(start, min(members, start + CHUNK)):
                ends = _ends_on_for(i, members, due)
                starts = ends - timedelta(days=364)
                status = "active" if ends >= DAY else ("grace" if ends >= DAY - timedelta(days=30) else "lapsed")
                people.append({"id": i + 1, "member_number": f"M-{i + 1:06d}", "first_name": f"Member{i}",
                               "last_name": "Benchmark", "email": f"member{i}@bench.example",
                               "email_normalized": f"member{i}@bench.example", "joined_on": starts,
                               "status": status, "plan_id": 1, "term_starts_on": starts, "expires_on": ends,
                               "search_text": f"member{i} benchmark", "created_at": now, "updated_at": now})
                terms.append({"id": i + 1, "member_id": i + 1, "plan_id": 1, "starts_on": starts, "ends_on": ends,
                              "grace_days": 30, "fee_minor": 100000, "currency": "BDT", "source": "import",
                              "status": status, "paid_on": starts, "created_at": now})
            db.session.execute(insert(Member), people)
            db.session.execute(insert(Membership), terms)
            db.session.commit()
        if db.engine.dialect.name == "postgresql":
            for table in ("member", "membership"):
                db.session.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {members})"))
            db.session.commit()
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE"))
        else:
            db.session.execute(text("ANALYZE"))
            db.session.commit()
        db.engine.dispose()
    return {"seconds": time.perf_counter() - started}


def step(url: str, name: str, mail_dir: str) -> dict:
    """One measured step, in this (fresh) process."""
    from membership.extensions import db

    app = _app(url, Path(mail_dir))
    with app.app_context():
        db.session.execute(db.select(1))  # connect before the clock starts
        db.session.rollback()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        baseline, cpu_before = usage.ru_maxrss, usage.ru_utime + usage.ru_stime
        started = time.perf_counter()
        if name in ("queue", "rerun"):
            from membership.scheduler import run_job
            outcome = run_job("renewal-reminders", now=AS_OF, force=name == "rerun")
            assert outcome.status == "ok", outcome
            counts = outcome.counts
            rows = counts["queued"] if name == "queue" else counts["already_sent"]
        else:
            from membership.notifications.outbox import deliver_pending
            counts = deliver_pending(db.session, now=AS_OF + timedelta(minutes=1), batch_size=500)
            rows = counts["sent"]
        seconds = time.perf_counter() - started
        usage = resource.getrusage(resource.RUSAGE_SELF)
        db.session.remove()
    return {"seconds": seconds, "cpu": usage.ru_utime + usage.ru_stime - cpu_before, "rows": rows, "counts": counts,
            "peak_kb": usage.ru_maxrss, "start_kb": baseline}


def run_backend(label: str, url: str, members: int, due: int) -> list[dict]:
    mail_dir = tempfile.mkdtemp(prefix="samiti_bench_mail_")
    print(f"== {label}: building {members:,} members, {due:,} due today ...", flush=True)
    # Every step, the build too, runs in its own process: a child's ru_maxrss starts at its
    # parent's size at fork (Linux keeps it across exec), so the parent stays small.
    out = subprocess.run([sys.executable, __file__, "--build", "--url", url, "--members", str(members),
                          "--due", str(due)], capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"{label} build failed:\n{out.stdout}\n{out.stderr}")
    built = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"   built in {built['seconds']:.1f} s", flush=True)
    results = []
    for name in ("queue", "deliver", "rerun"):
        out = subprocess.run([sys.executable, __file__, "--step", name, "--url", url, "--mail-dir", mail_dir],
                             capture_output=True, text=True, cwd=ROOT)
        if out.returncode != 0:
            raise SystemExit(f"{label} {name} failed:\n{out.stdout}\n{out.stderr}")
        result = json.loads(out.stdout.strip().splitlines()[-1])
        result["step"] = name
        results.append(result)
        print(f"   {name}: {result['seconds']:.2f} s ({result['cpu']:.2f} s CPU), {result['rows']:,} rows", flush=True)
    files = sum(1 for _ in Path(mail_dir).rglob("*.eml"))
    results.append({"step": "eml files", "rows": files})
    return results


def table(label: str, results: list[dict], due: int) -> None:
    print(f"\n{label}")
    print(f"{'step':<28}{'rows':>8}{'seconds':>10}{'CPU s':>8}{'per second':>12}{'peak MB':>10}"
          f"{'above start MB':>16}")
    total = cpu = 0.0
    for r in results:
        if "seconds" not in r:
            print(f"{r['step']:<28}{r['rows']:>8,}")
            continue
        rate = r["rows"] / r["seconds"] if r["seconds"] and r["rows"] else 0
        print(f"{r['step']:<28}{r['rows']:>8,}{r['seconds']:>10.2f}{r['cpu']:>8.2f}{rate:>12,.0f}"
              f"{r['peak_kb'] / 1024:>10.0f}{(r['peak_kb'] - r['start_kb']) / 1024:>16.0f}")
        if r["step"] in ("queue", "deliver"):
            total += r["seconds"]
            cpu += r["cpu"]
    peak = max(r.get("peak_kb", 0) for r in results) / 1024
    verdict = "OK" if total < 10 and peak < 300 else "OVER TARGET"
    print(f"{'queue + deliver':<28}{due:>8,}{total:>10.2f}{cpu:>8.2f}{'':>12}{peak:>10.0f}"
          f"   target < 10 s, < 300 MB: {verdict}")
    print(f"(load average when done: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; CPU s is the step's own "
          f"processor time, what it would take on an idle core, database server time excluded)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=10_000)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--build", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--mail-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        print(json.dumps(step(args.url, args.step, args.mail_dir), default=str))
        return
    if args.build:
        print(json.dumps(build(args.url, args.members, args.due)))
        return
    backends = []
    if args.backend in ("sqlite", "both"):
        backends.append(("SQLite (embedded default)", f"sqlite:///{SQLITE_PATH}"))
    if args.backend in ("postgresql", "both"):
        _ensure_pg_database(PG_URL)
        backends.append(("PostgreSQL", PG_URL))
    reports = [(label, run_backend(label, url, args.members, args.due)) for label, url in backends]
    print(f"\nRenewal reminders: {args.members:,} members, {args.due:,} reach a rule on {DAY:%d %b %Y} "
          f"({ZONE}); file backend")
    for label, results in reports:
        table(label, results, args.due)


def _ensure_pg_database(url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": target.database}).first():
            conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()


if __name__ == "__main__":
    main()
