"""Time the member CSV import and export at 100,000 members, on SQLite and PostgreSQL.

    /work/venv/bin/python benchmarks/bench_csv.py                 # both backends, 100,000 rows
    /work/venv/bin/python benchmarks/bench_csv.py --rows 20000 --backend sqlite

It generates a CSV of N members (names in English and Bengali, phones, addresses, some
organisation contacts, half with a member number and half without, terms of every status on
rolling, fixed-period, lifetime and organisational plans), then for each backend:
  1. builds an empty database (SQLite file; PostgreSQL database samiti_bench, created if missing),
  2. checks the file as the web preview does (dry run),
  3. imports it (one transaction),
  4. exports every member to a file,
and prints seconds and peak memory for each step. Every step runs in a fresh Python process, so
its peak resident memory (ru_maxrss) is its own; "above start" is the peak minus the memory of
the process after loading the app, i.e. what the step itself needed.
Targets (issue 2): export under 10 s, import under 60 s, in bounded memory.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SQLITE_PATH = Path(tempfile.gettempdir()) / "samiti_bench_csv.db"
PG_URL = os.environ.get("BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1/samiti_bench")
TODAY = date(2026, 6, 15)
NOW = datetime(2026, 6, 15, 9, 0, tzinfo=timezone.utc)

FIRST = ["Ada", "Grace", "Alan", "Mary", "John", "Fatima", "Rahim", "Karim", "Nusrat", "Tahmina", "Omar",
         "Ayesha", "রবীন্দ্রনাথ", "কাজী", "সুফিয়া", "জসীম", "বেগম", "হুমায়ূন", "সেলিনা", "শামসুর"]
LAST = ["Lovelace", "Hopper", "Turing", "Seacole", "Smith", "Rahman", "Hossain", "Ahmed", "Islam", "Chowdhury",
        "ঠাকুর", "নজরুল", "কামাল", "উদ্দীন", "রোকেয়া", "আহমেদ", "হোসেন", "রহমান", "=Formula", "+Plus"]
CITIES = ["Dhaka", "Chattogram", "Khulna", "Rajshahi", "Sylhet", "ঢাকা", "London", "Kolkata"]


def generate(path: Path, rows: int, seed: int = 7) -> None:
    """A members CSV as staff would bring it from another system (or from an earlier export)."""
    from membership.members.csvio import COLUMNS, neutralise

    rnd = random.Random(seed)
    orgs = [f"Organisation {n:03d}" for n in range(max(1, rows // 500))]
    with open(path, "w", newline="", encoding="utf-8-sig") as fh:
        writer = csv.writer(fh, lineterminator="\r\n")
        writer.writerow(COLUMNS)
        for i in range(rows):
            joined = date(2015, 1, 1) + timedelta(days=rnd.randrange(4000))
            org = rnd.choice(orgs) if rnd.random() < 0.02 else ""
            row = {
                "member_number": f"M{i + 1:06d}" if i % 2 == 0 else "",
                "first_name": rnd.choice(FIRST), "last_name": rnd.choice(LAST), "email": f"member{i}@example.org",
                "phone": f"01{rnd.choice('3456789')}{rnd.randrange(10 ** 8):08d}" if rnd.random() < 0.8 else "",
                "address_line1": f"{rnd.randrange(1, 200)} Road {rnd.randrange(1, 50)}",
                "address_line2": "", "city": rnd.choice(CITIES), "postcode": f"{rnd.randrange(1000, 9999)}",
                "country": "BD", "date_of_birth": (date(1950, 1, 1) + timedelta(days=rnd.randrange(20000))).isoformat(),
                "organization": org, "primary_contact": "no", "job_title": "Manager" if org else "",
                "joined_on": joined.isoformat(), "referred_by": "", "language": rnd.choice(["en", "bn"]),
                "marketing_opt_in": rnd.choice(["yes", "no"]), "directory_opt_in": rnd.choice(["yes", "no"]),
                "external_id": f"EXT-{i}" if rnd.random() < 0.3 else "",
                "notes": "Prefers phone calls.\nMet at the AGM." if rnd.random() < 0.05 else "",
            }
            kind = rnd.random()
            if org and kind < 0.9:
                row.update(plan_code="CORP", term_starts_on="2026-01-01", term_ends_on="2026-12-31",
                           term_status="active")
            elif kind < 0.9:
                plan = rnd.choice(["STD", "STD", "STD", "FY", "LIFE"])
                starts = max(joined, date(2023, 1, 1)) + timedelta(days=rnd.randrange(400))
                status = rnd.choice(["", "", "", "pending", "cancelled"])
                ends = ""
                if plan == "STD" and rnd.random() < 0.5:
                    ends = (starts.replace(year=starts.year + 1) - timedelta(days=1)).isoformat() \
                        if not (starts.month == 2 and starts.day == 29) else ""
                row.update(plan_code=plan, term_starts_on=starts.isoformat(), term_ends_on=ends, term_status=status)
            writer.writerow([neutralise(row.get(c, "")) for c in COLUMNS])


def make_app(url: str):
    from membership import create_app

    return create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench", "TIMEZONE": "Asia/Dhaka",
                       "CURRENCY": "BDT", "PHONE_REGION": "BD",
                       "INSTANCE_PATH": str(Path(tempfile.gettempdir()) / "samiti_bench_instance")})


def fresh_database(url: str) -> None:
    """An empty schema with the plans the file names."""
    from sqlalchemy import create_engine, text

    if url.startswith("sqlite"):
        for suffix in ("", "-wal", "-shm"):
            Path(str(SQLITE_PATH) + suffix).unlink(missing_ok=True)
    else:
        base, name = url.rsplit("/", 1)
        admin = create_engine(base + "/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            if not conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}):
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
    from membership.extensions import db
    from membership.plans.models import Plan

    app = make_app(url)
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            with db.engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
        db.create_all()
        for code, kind, extra in (("STD", "rolling", {"fee_minor": 150000}),
                                  ("FY", "fixed", {"period_start_month": 1, "period_start_day": 1}),
                                  ("LIFE", "lifetime", {}), ("CORP", "rolling", {"is_organizational": True})):
            db.session.add(Plan(code=code, name=code, currency="BDT", period_kind=kind, period_months=12,
                                grace_days=30, created_at=NOW, **{"fee_minor": 0, **extra}))
        db.session.commit()
        db.engine.dispose()


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def server_cpu(pid: int | None) -> float:
    """CPU seconds used so far by a PostgreSQL backend on this machine (0 when not readable)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def phase(name: str, url: str, csv_path: Path, out_path: Path) -> dict:
    """One step in this process; returns its figures."""
    from membership.extensions import db
    from membership.members import csvio

    app = make_app(url)
    with app.app_context():
        backend_pid = db.session.execute(db.text("SELECT pg_backend_pid()")).scalar() \
            if db.engine.dialect.name == "postgresql" else None
        db.session.rollback()
        server_started = server_cpu(backend_pid)
        start_mb = maxrss_mb()
        started, cpu_started = time.perf_counter(), time.process_time()
        if name in ("check", "import"):
            report = csvio.import_members(
                db.session, csv_path, options=csvio.ImportOptions(dry_run=name == "check"), today=TODAY, now=NOW,
                actor=None, region="BD", currency="BDT", filename=csv_path.name)
            if name == "import":
                db.session.commit()
            else:
                db.session.rollback()
            detail = f"{report.new:,} new, {report.error_rows:,} errors, {report.terms:,} terms"
        else:
            with open(out_path, "wb") as out:
                n = csvio.export_members(db.session, out, today=TODAY)
            db.session.rollback()
            detail = f"{n:,} members, {out_path.stat().st_size / 1e6:.1f} MB"
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        server = server_cpu(backend_pid) - server_started
        db.engine.dispose()
    peak = maxrss_mb()
    return {"seconds": seconds, "cpu": cpu, "server_cpu": server, "peak_mb": peak, "step_mb": peak - start_mb,
            "detail": detail}


def run_child(name: str, url: str, csv_path: Path, out_path: Path) -> dict:
    result = subprocess.run([sys.executable, __file__, "--phase", name, "--url", url, "--csv", str(csv_path),
                             "--out", str(out_path)], capture_output=True, text=True, cwd=ROOT)
    if result.returncode:
        sys.stderr.write(result.stderr)
        raise SystemExit(f"{name} on {url} failed")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--csv", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(phase(args.phase, args.url, Path(args.csv), Path(args.out))))
        return

    work = Path(tempfile.mkdtemp(prefix="samiti-bench-csv-"))
    csv_path = work / "members.csv"
    started = time.perf_counter()
    generate(csv_path, args.rows)
    print(f"Generated {args.rows:,} rows ({csv_path.stat().st_size / 1e6:.1f} MB) in "
          f"{time.perf_counter() - started:.1f} s: {csv_path}")
    backends = {"sqlite": f"sqlite:///{SQLITE_PATH}", "postgresql": PG_URL}
    if args.backend != "both":
        backends = {args.backend: backends[args.backend]}
    results = []
    for backend, url in backends.items():
        fresh_database(url)
        for name in ("check", "import", "export"):
            r = run_child(name, url, csv_path, work / f"export-{backend}.csv")
            results.append((backend, name, r))
            print(f"  {backend:<10} {name:<7} {r['seconds']:7.1f} s   peak {r['peak_mb']:6.0f} MB   {r['detail']}",
                  flush=True)
    print()
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    print(f"{args.rows:,} members             seconds   CPU s: Python + PG server   peak RSS MB   above start MB"
          "   target")
    targets = {"check": "", "import": "< 60 s", "export": "< 10 s"}
    for backend, name, r in results:
        label = {"check": "check (preview)", "import": "import", "export": "export"}[name]
        server = f"{r['server_cpu']:5.1f}" if backend == "postgresql" else "    -"
        print(f"{backend:<10} {label:<16} {r['seconds']:7.1f}   {r['cpu']:13.1f} + {server}          "
              f"{r['peak_mb']:11.0f}   {r['step_mb']:14.0f}   {targets[name]}")


if __name__ == "__main__":
    main()
