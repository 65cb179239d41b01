"""Make a large Samiti database for the benchmarks, fast.

    python benchmarks/generate.py --database-url sqlite:///benchmarks/out/bench.db --members 100000
    python benchmarks/generate.py --database-url postgresql+psycopg://postgres@127.0.0.1/samiti_bench_pages --reset

The schema comes from the migrations (`flask db upgrade`). The rows are inserted in bulk with
SQLAlchemy core in batches, one transaction per batch, with explicit ids so nothing is read back.
The domain's rules are not bypassed where they matter: term dates come from
plans.services.term_dates, each term's cached status from plans.status.status_on, the member's
cached status, plan, term start and expiry from plans.status.holder_status, and search_text from
members.services.build_search_text. Receipt numbers are gap-free per (local) year in the order the
money came in, and the counters are set so that the app carries on from them.

What it makes (for 100,000 members): members over eight years, on five plans, some renewed many
times (on time, in grace, or late with a gap), some lapsed, cancelled or pending; organisations
with 2-5 contacts; one payment per paid term; interactions for about a third of the members; and
the activities and audit rows the app would have written (joined, renewed, payment...).
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import click  # noqa: E402
from sqlalchemy import func, insert, select, text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from membership import create_app  # noqa: E402
from membership.accounts.models import User  # noqa: E402
from membership.accounts.services import normalize_email  # noqa: E402
from membership.core.models import Activity, AuditLog, Counter  # noqa: E402
from membership.core.time import add_months, local_today  # noqa: E402
from membership.demo import (CANCEL_REASONS, GENERAL_NOTES, HINDU_FEMALE, HINDU_LAST,  # noqa: E402
                             HINDU_MALE, INTERNATIONAL, MUSLIM_FEMALE, MUSLIM_LAST, MUSLIM_LAST_FEMALE,
                             MUSLIM_MALE, ORGANISATIONS, _ascii)
from membership.extensions import db  # noqa: E402
from membership.members.models import Interaction, Member, Organization  # noqa: E402
from membership.members.services import build_search_text, search_key  # noqa: E402
from membership.plans.models import Membership, Payment, Plan  # noqa: E402
from membership.plans.services import term_dates  # noqa: E402
from membership.plans.status import holder_status, status_on  # noqa: E402

YEARS = 8
METHODS = (["cash", "bank_transfer", "online", "card", "cheque"], [30, 25, 25, 10, 10])
CITIES = [("Dhanmondi", "Dhaka", "1209"), ("Mirpur", "Dhaka", "1216"), ("Agrabad", "Chattogram", "4100"),
          ("Zindabazar", "Sylhet", "3100"), ("Shaheb Bazar", "Rajshahi", "6100"), ("Sonadanga", "Khulna", "9100")]


@dataclass(slots=True)
class Term:
    """A term being generated; quacks like plans.status.TermLike."""
    id: int
    plan: Plan
    starts_on: date
    ends_on: date | None
    grace_days: int
    created_at: datetime
    renews_id: int | None = None
    source: str = "staff"
    awaiting_payment: bool = False
    awaiting_approval: bool = False
    cancelled_on: date | None = None
    cancel_reason: str | None = None
    override_status: str | None = None
    override_until: date | None = None
    paid_at: datetime | None = None


class Generator:
    def __init__(self, engine, *, members: int, seed: int, today: date, zone: str, currency: str,
                 batch: int, history: bool):
        self.engine = engine
        self.n = members
        self.rng = random.Random(seed)
        self.today = today
        self.zone = ZoneInfo(zone)
        self.currency = currency
        self.batch = batch
        self.history = history
        self.horizon = add_months(today, -12 * YEARS)
        self.ids = {"member": 0, "membership": 0, "payment": 0, "interaction": 0, "activity": 0, "audit": 0}
        self.payments: list[tuple] = []  # (received_at, member_id, org_id, term_id, amount, method, staff)
        self.counts = {k: 0 for k in ("members", "organizations", "terms", "payments", "interactions",
                                      "activities", "audit")}
        self.rows: dict[str, list[dict]] = {}
        self.reset_rows()

    def reset_rows(self) -> None:
        self.rows = {"organization": [], "member": [], "membership": [], "interaction": [], "activity": [],
                     "audit": []}

    def next_id(self, name: str) -> int:
        self.ids[name] += 1
        return self.ids[name]

    def moment(self, day: date) -> datetime:
        local = datetime(day.year, day.month, day.day, tzinfo=self.zone) + timedelta(
            seconds=self.rng.randint(9 * 3600, 17 * 3600))
        return local.astimezone(timezone.utc)

    # ------------------------------------------------------------ set-up

    def setup(self) -> None:
        now = datetime.combine(self.horizon - timedelta(days=30), datetime.min.time(), tzinfo=timezone.utc)
        c = self.currency
        common = {"currency": c, "created_at": now}
        common.update(period_start_month=None, period_start_day=None, rollover_month=None, rollover_day=None,
                      needs_approval=False, is_organizational=False, max_contacts=None)
        self.ind = Plan(code="IND", name="Individual (annual)", fee_minor=200000, period_kind="rolling",
                        period_months=12, grace_days=30, sort_order=1, **common)
        self.stu = Plan(code="STU", name="Student (12 months)", fee_minor=50000, period_kind="rolling",
                        period_months=12, grace_days=30, sort_order=2, **{**common, "needs_approval": True})
        self.cal = Plan(code="CAL", name="Calendar year", fee_minor=180000, period_kind="fixed", period_months=12,
                        grace_days=45, sort_order=3, **{**common, "period_start_month": 1, "period_start_day": 1,
                                                        "rollover_month": 10, "rollover_day": 1})
        self.life = Plan(code="LIFE", name="Lifetime", fee_minor=2500000, period_kind="lifetime",
                         period_months=12, grace_days=0, sort_order=4, **common)
        self.corp = Plan(code="CORP", name="Corporate (up to 5 contacts)", fee_minor=5000000,
                         period_kind="rolling", period_months=12, grace_days=60, sort_order=5,
                         **{**common, "is_organizational": True, "max_contacts": 5})
        staff = [User(email=f"bench-staff{i}@example.com", email_normalized=f"bench-staff{i}@example.com",
                      name=name, role="staff", created_at=now)
                 for i, name in enumerate(["Nasrin Akter", "Tanvir Hossain", "Farhana Rahman"], 1)]
        # Its own session that keeps the loaded values after commit: the plans are read all along
        # (term_dates), and a read must not hold SQLite's write lock against the bulk inserts.
        with Session(self.engine, expire_on_commit=False) as session:
            session.add_all([self.ind, self.stu, self.cal, self.life, self.corp, *staff])
            session.commit()
        self.staff_ids = [u.id for u in staff]

    # ------------------------------------------------------------ people

    def identity(self, number: int) -> dict:
        rng = self.rng
        female = rng.random() < 0.5
        if rng.random() < 0.1:
            first_en, last_en = rng.choice(INTERNATIONAL)
            first, last = first_en, last_en
        else:
            if rng.random() < 0.15:
                f, l = rng.choice(HINDU_FEMALE if female else HINDU_MALE), rng.choice(HINDU_LAST)
            else:
                f = rng.choice(MUSLIM_FEMALE if female else MUSLIM_MALE)
                l = rng.choice(MUSLIM_LAST + MUSLIM_LAST_FEMALE if female else MUSLIM_LAST)
            first_en, last_en = f[1], l[1]
            first, last = (f[0], l[0]) if rng.random() < 0.35 else (f[1], l[1])
        email = f"{_ascii(first_en)}.{_ascii(last_en)}.{number}@example.org" if rng.random() < 0.95 else None
        phone = f"+8801{rng.choice('3456789')}{rng.randrange(10 ** 8):08d}" if rng.random() < 0.9 else None
        return {"first_name": first, "last_name": last, "email": email, "phone": phone}

    def member_row(self, member_id: int, joined: date, created: datetime, **extra) -> dict:
        ident = self.identity(member_id)
        number = f"M{member_id:06d}"
        area, city, postcode = self.rng.choice(CITIES)
        row = {
            "id": member_id, "member_number": number, **ident,
            "email_normalized": normalize_email(ident["email"]) if ident["email"] else None,
            "address_line1": f"House {self.rng.randint(1, 120)}, Road {self.rng.randint(1, 32)}",
            "address_line2": area, "city": city, "postcode": postcode, "country": "BD",
            "date_of_birth": None, "organization_id": None, "is_primary_contact": False, "job_title": None,
            "joined_on": joined, "language": "en", "marketing_opt_in": self.rng.random() < 0.5,
            "directory_opt_in": False, "email_bouncing": False, "notes": None,
            "status": "none", "plan_id": None, "term_starts_on": None, "expires_on": None,
            "created_at": created, "updated_at": created, "erased_at": None,
        }
        row.update(extra)
        full = f"{row['first_name']} {row['last_name']}".strip()
        row["search_text"] = build_search_text(SimpleNamespace(
            first_name=row["first_name"], last_name=row["last_name"], full_name=full, email=row["email"],
            member_number=number, phone=row["phone"]))
        return row

    # ------------------------------------------------------------ terms

    def term_chain(self, plan: Plan, join_day: date, *, organisational: bool = False) -> list[Term]:
        """Terms from `join_day` to today: renewed on time, in grace, late with a gap, or not at all."""
        rng, today = self.rng, self.today
        terms: list[Term] = []
        day, start = join_day, join_day
        while True:
            starts, ends = term_dates(plan, start)
            term = Term(self.next_id("membership"), plan, starts, ends, plan.grace_days, self.moment(day),
                        renews_id=terms[-1].id if terms else None,
                        source="renewal" if terms else ("join" if rng.random() < 0.3 else "staff"))
            terms.append(term)
            if plan.fee_minor:
                term.paid_at = term.created_at
            if ends is None or len(terms) >= 15:
                break
            roll = rng.random()
            if roll < 0.70:
                day = ends - timedelta(days=rng.randint(0, 30))
            elif roll < 0.80:
                day = ends + timedelta(days=rng.randint(1, max(1, plan.grace_days - 1)))
            elif roll < 0.86:
                day = ends + timedelta(days=plan.grace_days + rng.randint(10, 400))
            else:
                break
            day = max(day, terms[-1].created_at.date())
            if day > today:
                break
            start = ends + timedelta(days=1) if day <= ends + timedelta(days=plan.grace_days) else day
            if not organisational and plan is self.stu and rng.random() < 0.3:
                plan = self.ind  # graduated
        last = terms[-1]
        if last.starts_on <= today and rng.random() < 0.02:
            end = min(last.ends_on or today, today)
            last.cancelled_on = last.starts_on + timedelta(days=rng.randint(0, max(0, (end - last.starts_on).days)))
            last.cancel_reason = rng.choice(CANCEL_REASONS)
        elif (today - last.created_at.date()).days < 30 and rng.random() < 0.3:
            last.awaiting_payment, last.paid_at = True, None
        return terms

    def add_terms(self, terms: list[Term], *, member_id: int | None, org_id: int | None) -> None:
        rng = self.rng
        for t in terms:
            staff = rng.choice(self.staff_ids)
            self.rows["membership"].append({
                "id": t.id, "member_id": member_id, "organization_id": org_id, "plan_id": t.plan.id,
                "starts_on": t.starts_on, "ends_on": t.ends_on, "grace_days": t.grace_days,
                "fee_minor": t.plan.fee_minor, "currency": self.currency, "source": t.source,
                "renews_id": t.renews_id, "awaiting_payment": t.awaiting_payment, "awaiting_approval": False,
                "paid_on": t.paid_at.astimezone(self.zone).date() if t.paid_at else None,
                "approved_at": t.created_at, "cancelled_on": t.cancelled_on, "cancel_reason": t.cancel_reason,
                "override_status": None, "override_until": None, "override_reason": None,
                "status": status_on(t, self.today), "created_at": t.created_at, "created_by_id": staff})
            if t.paid_at:
                method = rng.choices(*METHODS)[0]
                self.payments.append((t.paid_at, member_id, org_id, t.id, t.plan.fee_minor, method, staff))
            if member_id and self.history:
                kind = "renewed" if t.renews_id else "joined"
                self.activity(member_id, kind, t.created_at, "membership", t.id,
                              {"plan": t.plan.code, "starts_on": t.starts_on.isoformat(),
                               "ends_on": t.ends_on.isoformat() if t.ends_on else None})
                self.audit(staff, f"membership.{'renew' if t.renews_id else 'join'}", "membership", t.id,
                           member_id, t.created_at, f"{'Renewed' if t.renews_id else 'Joined'} {t.plan.name}: "
                           f"{t.starts_on} to {t.ends_on or 'lifetime'}")
        self.counts["terms"] += len(terms)

    def activity(self, member_id, kind, at, source_type, source_id, detail) -> None:
        self.rows["activity"].append({"id": self.next_id("activity"), "member_id": member_id, "kind": kind,
                                      "occurred_at": at, "source_type": source_type, "source_id": source_id,
                                      "detail": detail})

    def audit(self, actor_id, action, entity_type, entity_id, member_id, at, summary) -> None:
        self.rows["audit"].append({"id": self.next_id("audit"), "at": at, "actor_id": actor_id, "action": action,
                                   "entity_type": entity_type, "entity_id": entity_id, "member_id": member_id,
                                   "summary": summary, "changes": None, "ip": None})

    def cache_status(self, row: dict, terms: list[Term]) -> None:
        hs = holder_status(terms, self.today)
        row["status"] = hs.status
        row["plan_id"] = hs.term.plan.id if hs.term else None
        row["term_starts_on"] = hs.term.starts_on if hs.term else None
        row["expires_on"] = hs.expires_on

    def interactions(self, member_id: int, joined: date) -> None:
        rng = self.rng
        for _ in range(rng.choices([0, 1, 2, 3], [65, 20, 10, 5])[0]):
            day = joined + timedelta(days=rng.randint(0, max(0, (self.today - joined).days)))
            at = self.moment(day)
            channel, summary, outcome = rng.choice(GENERAL_NOTES)
            iid = self.next_id("interaction")
            self.rows["interaction"].append({
                "id": iid, "member_id": member_id, "staff_id": rng.choice(self.staff_ids), "channel": channel,
                "summary": summary, "outcome": outcome, "follow_up_on": None, "occurred_at": at, "created_at": at})
            if self.history:
                self.activity(member_id, "interaction", at, "interaction", iid, {"channel": channel})

    # ------------------------------------------------------------ the loop

    def person(self) -> None:
        rng = self.rng
        member_id = self.next_id("member")
        joined = self.horizon + timedelta(days=rng.randint(0, (self.today - self.horizon).days))
        created = self.moment(joined)
        row = self.member_row(member_id, joined, created)
        plan = rng.choices([self.ind, self.cal, self.stu, self.life], [58, 25, 14, 3])[0]
        terms = [] if rng.random() < 0.01 else self.term_chain(plan, joined)
        self.cache_status(row, terms)
        self.rows["member"].append(row)
        if self.history:
            self.audit(rng.choice(self.staff_ids), "member.create", "member", member_id, member_id, created,
                       f"Created member {row['member_number']} {row['first_name']} {row['last_name']}")
        self.add_terms(terms, member_id=member_id, org_id=None)
        self.interactions(member_id, joined)

    def organisation(self, org_id: int) -> int:
        rng = self.rng
        base, slug, address = ORGANISATIONS[org_id % len(ORGANISATIONS)]
        name = f"{base} {org_id}"
        joined = self.horizon + timedelta(days=rng.randint(0, (self.today - self.horizon).days - 1))
        created = self.moment(joined)
        terms = self.term_chain(self.corp, joined, organisational=True)
        hs = holder_status(terms, self.today)
        self.rows["organization"].append({
            "id": org_id, "name": name, "name_normalized": search_key(name), "email": f"info@{slug}{org_id}.example.com",
            "phone": None, "website": None, "address": address, "notes": None, "status": hs.status,
            "plan_id": hs.term.plan.id if hs.term else None, "expires_on": hs.expires_on,
            "created_at": created, "updated_at": created})
        self.add_terms(terms, member_id=None, org_id=org_id)
        contacts = rng.randint(2, 5)
        for i in range(contacts):
            member_id = self.next_id("member")
            row = self.member_row(member_id, joined, created, organization_id=org_id, is_primary_contact=i == 0,
                                  job_title="Managing Director" if i == 0 else "Officer")
            self.cache_status(row, terms)  # contacts take the organisation's status
            self.rows["member"].append(row)
            self.interactions(member_id, joined)
        return contacts

    def flush(self, conn) -> None:
        tables = [("organization", Organization), ("member", Member), ("membership", Membership),
                  ("interaction", Interaction), ("activity", Activity), ("audit", AuditLog)]
        for key, model in tables:
            rows = self.rows[key]
            if rows:
                conn.execute(insert(model.__table__), rows)
        self.counts["members"] += len(self.rows["member"])
        self.counts["organizations"] += len(self.rows["organization"])
        self.counts["interactions"] += len(self.rows["interaction"])
        self.counts["activities"] += len(self.rows["activity"])
        self.counts["audit"] += len(self.rows["audit"])
        self.reset_rows()

    def run(self, progress) -> None:
        self.setup()
        engine = self.engine
        n_orgs = self.n // 250
        org_id = 0
        made = 0
        with click.progressbar(length=self.n, label=f"Generating {self.n:,} members", file=progress) as bar:
            while made < self.n:
                with engine.begin() as conn:
                    start = made
                    while made < self.n and made - start < self.batch:
                        if org_id < n_orgs and self.rng.random() < n_orgs * 3.5 / self.n and self.n - made > 5:
                            org_id += 1
                            made += self.organisation(org_id)
                        else:
                            self.person()
                            made += 1
                    self.flush(conn)
                bar.update(made - start)
        self.write_payments(engine, progress)
        self.finish(engine)

    def write_payments(self, engine, progress) -> None:
        """Receipt numbers in the order the money came in, gap-free per local year."""
        self.payments.sort(key=lambda p: p[0])
        per_year: dict[int, int] = {}
        with click.progressbar(length=len(self.payments), label="Writing payments with receipts",
                               file=progress) as bar:
            for i in range(0, len(self.payments), 20000):
                chunk = self.payments[i:i + 20000]
                rows, activities, audits = [], [], []
                for received_at, member_id, org_id, term_id, amount, method, staff in chunk:
                    year = received_at.astimezone(self.zone).year
                    per_year[year] = per_year.get(year, 0) + 1
                    pid = self.next_id("payment")
                    receipt = f"R-{year}-{per_year[year]:05d}"
                    rows.append({"id": pid, "member_id": member_id, "organization_id": org_id,
                                 "membership_id": term_id, "amount_minor": amount, "currency": self.currency,
                                 "method": method, "reference": None, "note": None, "received_at": received_at,
                                 "recorded_by_id": staff, "receipt_number": receipt, "idempotency_key": None,
                                 "created_at": received_at})
                    if member_id and self.history:
                        activities.append({"id": self.next_id("activity"), "member_id": member_id, "kind": "payment",
                                           "occurred_at": received_at, "source_type": "payment", "source_id": pid,
                                           "detail": {"amount_minor": amount, "currency": self.currency,
                                                      "receipt": receipt}})
                        audits.append({"id": self.next_id("audit"), "at": received_at, "actor_id": staff,
                                       "action": "payment.record", "entity_type": "payment", "entity_id": pid,
                                       "member_id": member_id, "summary": f"Payment {receipt}: {amount} "
                                       f"{self.currency} by {method}", "changes": None, "ip": None})
                with engine.begin() as conn:
                    conn.execute(insert(Payment.__table__), rows)
                    if activities:
                        conn.execute(insert(Activity.__table__), activities)
                        conn.execute(insert(AuditLog.__table__), audits)
                self.counts["activities"] += len(activities)
                self.counts["audit"] += len(audits)
                bar.update(len(chunk))
        self.counts["payments"] = len(self.payments)
        self.receipts_per_year = per_year
        self.payments = []

    def finish(self, engine) -> None:
        with engine.begin() as conn:
            counters = [{"name": "member", "value": self.ids["member"]}] + [
                {"name": f"receipt:{year}", "value": n} for year, n in self.receipts_per_year.items()]
            conn.execute(insert(Counter.__table__), counters)
            if conn.dialect.name == "postgresql":
                # Explicit ids were inserted: move each id sequence past them.
                for table in ("member", "organization", "membership", "payment", "interaction", "activity",
                              "audit_log", "plan", "user"):
                    conn.execute(text(f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), "
                                      f"coalesce((SELECT max(id) FROM \"{table}\"), 0) + 1, false)"))
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
            else:
                conn.exec_driver_sql("ANALYZE")


def reset_database(url: str) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            for suffix in ("", "-wal", "-shm"):
                Path(parsed.database + suffix).unlink(missing_ok=True)
        return
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def generate(url: str, *, members: int = 100_000, seed: int = 1, today: date | None = None, reset: bool = False,
             history: bool = True, batch: int = 5000, progress=None) -> dict:
    """Build the schema (migrations) and fill it; returns what was made. Refuses a database that
    already has members unless `reset` (which drops everything in it first)."""
    from flask_migrate import upgrade
    from sqlalchemy.engine import make_url

    if reset:
        reset_database(url)
    if make_url(url).get_backend_name() == "sqlite" and make_url(url).database:
        Path(make_url(url).database).parent.mkdir(parents=True, exist_ok=True)
    instance = tempfile.mkdtemp(prefix="samiti-bench-")
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "INSTANCE_PATH": instance, "SECRET_KEY": "benchmark"})
    with app.app_context():
        upgrade()
        if db.session.scalar(select(func.count()).select_from(Member)):
            raise SystemExit("The database already has members; use --reset to start it afresh.")
        db.session.commit()
        gen = Generator(db.engine, members=members, seed=seed, today=today or local_today(),
                        zone=app.config["TIMEZONE"], currency=app.config["CURRENCY"], batch=batch, history=history)
        started = time.perf_counter()
        gen.run(progress)
        gen.counts["seconds"] = round(time.perf_counter() - started, 1)
        statuses = dict(db.session.execute(select(Member.status, func.count()).group_by(Member.status)).all())
        db.session.remove()
        db.engine.dispose()
    gen.counts["statuses"] = statuses
    return gen.counts


def database_url(value: str) -> str:
    """A relative SQLite path is relative to the current folder (the app would read it relative
    to its instance folder)."""
    prefix = "sqlite:///"
    if value.startswith(prefix) and not value[len(prefix):].startswith("/"):
        return prefix + str(Path(value[len(prefix):]).resolve())
    return value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", type=database_url, default=os.environ.get("DATABASE_URL")
                        or f"sqlite:///{ROOT / 'benchmarks' / 'out' / 'bench.db'}",
                        help="SQLite file or PostgreSQL database (default: benchmarks/out/bench.db)")
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--today", type=date.fromisoformat, help="YYYY-MM-DD (default: today)")
    parser.add_argument("--reset", action="store_true", help="drop everything in the database first")
    parser.add_argument("--no-history", action="store_true", help="skip the activity and audit rows")
    parser.add_argument("--batch", type=int, default=5000, help="members per transaction")
    args = parser.parse_args(argv)
    counts = generate(args.database_url, members=args.members, seed=args.seed, today=args.today, reset=args.reset,
                      history=not args.no_history, batch=args.batch, progress=sys.stderr)
    statuses = counts.pop("statuses")
    seconds = counts.pop("seconds")
    print(", ".join(f"{k} {v:,}" for k, v in counts.items()) + f" in {seconds} s")
    print("statuses: " + ", ".join(f"{k} {v:,}" for k, v in sorted(statuses.items())))


if __name__ == "__main__":
    main()
