"""Time the staff member search page and the member page on a large database, next to the floor:
the bare SQL behind each page, run on the same connection pool.

    python benchmarks/generate.py --database-url sqlite:///benchmarks/out/bench.db          # once
    python benchmarks/bench_pages.py --database-url sqlite:///benchmarks/out/bench.db \\
        --database-url postgresql+psycopg://postgres@127.0.0.1/samiti_bench_pages

Each page is requested through the Flask test client signed in as a staff user (the whole
request: login check, queries, template), `--requests` times with random input, after a warm-up.
The floor of the search is its SELECT of one page of rows plus the COUNT (what db.paginate runs);
the floor of the member page is the SELECTs it needs (member, terms, payments, interactions,
audit trail, activities). Prints p50 and p95 in milliseconds; the target is p95 < 100 ms.
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from werkzeug.datastructures import MultiDict  # noqa: E402

from membership import create_app  # noqa: E402
from membership.accounts import services as accounts  # noqa: E402
from membership.core.models import Activity, AuditLog  # noqa: E402
from membership.core.time import utcnow  # noqa: E402
from membership.extensions import db  # noqa: E402
from membership.members.models import Interaction, Member  # noqa: E402
from membership.members.queries import MemberFilter, member_query  # noqa: E402
from membership.plans.models import Membership, Payment  # noqa: E402

TARGET_MS = 100
LOGIN = ("bench-login@example.com", "bench-pages-password-2026")


@dataclass
class Series:
    """Timings of one page and of its floor."""
    backend: str
    name: str
    page: list[float] = field(default_factory=list)
    floor: list[float] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))] * 1000


def make_login() -> None:
    """A staff user for the benchmark, with a known password."""
    user = accounts.get_user_by_email(db.session, LOGIN[0])
    if user is None:
        accounts.create_user(db.session, email=LOGIN[0], name="Benchmark", role="staff", password=LOGIN[1],
                             actor=None, now=utcnow())
    elif accounts.authenticate(db.session, *LOGIN) is None:
        accounts.set_password(db.session, user, LOGIN[1], actor=None, now=utcnow())
    db.session.commit()


def sign_in(app):
    """A test client signed in as the benchmark's staff user."""
    client = app.test_client()
    response = client.post("/login", data={"email": LOGIN[0], "password": LOGIN[1]})
    assert response.status_code == 302, response.status_code
    return client


def name_fragments(rng: random.Random, n: int) -> list[str]:
    """What staff type: the first 3-6 letters of a first or last name (English or Bengali), or of both."""
    max_id = db.session.scalar(select(func.max(Member.id)))
    fragments = []
    while len(fragments) < n:
        member = db.session.get(Member, rng.randint(1, max_id))
        if member is None:
            continue
        roll = rng.random()
        if roll < 0.45:
            text = member.last_name[:rng.randint(3, 6)]
        elif roll < 0.85:
            text = member.first_name.replace("Md. ", "")[:rng.randint(3, 6)]
        else:
            text = f"{member.first_name.replace('Md. ', '')} {member.last_name[:3]}"
        if len(text.strip()) >= 3:
            fragments.append(text.strip())
    db.session.rollback()
    return fragments


def search_floor(app, engine, args: dict, per_page: int) -> tuple[float, int]:
    """The SELECT of one page and the COUNT, as db.paginate runs them, on a pooled connection."""
    with app.app_context():  # the search condition depends on the database (FTS5 or pg_trgm)
        stmt = member_query(MemberFilter.from_args(MultiDict(args)))
    started = time.perf_counter()
    with engine.connect() as conn:
        conn.execute(stmt.limit(per_page)).all()
        total = conn.execute(select(func.count()).select_from(stmt.order_by(None).subquery())).scalar_one()
    return time.perf_counter() - started, total


def member_floor(engine, member_id: int) -> float:
    """The SELECTs of the member page: the member, its terms (and its organisation's), the recent
    payments and those of its terms, the interactions (count and recent), audit trail, activities."""
    started = time.perf_counter()
    with engine.connect() as conn:
        member = conn.execute(select(Member).where(Member.id == member_id)).one()
        terms = conn.execute(select(Membership).where(Membership.member_id == member_id)
                             .order_by(Membership.starts_on, Membership.id)).all()
        if member.organization_id:
            conn.execute(select(Membership).where(Membership.organization_id == member.organization_id)).all()
        conn.execute(select(Payment).where(Payment.member_id == member_id)
                     .order_by(Payment.received_at.desc(), Payment.id.desc()).limit(11)).all()
        if terms:
            conn.execute(select(Payment).where(Payment.membership_id.in_([t.id for t in terms]))
                         .order_by(Payment.received_at, Payment.id)).all()
        conn.execute(select(func.count()).select_from(Interaction).where(Interaction.member_id == member_id)).one()
        conn.execute(select(Interaction).where(Interaction.member_id == member_id)
                     .order_by(Interaction.occurred_at.desc(), Interaction.id.desc()).limit(10)).all()
        conn.execute(select(AuditLog).where(AuditLog.member_id == member_id)
                     .order_by(AuditLog.at.desc(), AuditLog.id.desc()).limit(11)).all()
        conn.execute(select(Activity).where(Activity.member_id == member_id)
                     .order_by(Activity.occurred_at.desc(), Activity.id.desc()).limit(20)).all()
    return time.perf_counter() - started


def timed_get(client, path: str) -> float:
    started = time.perf_counter()
    response = client.get(path)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise SystemExit(f"GET {path} answered {response.status_code}: is the page written yet?")
    return elapsed


def bench(url: str, *, requests: int, warmup: int, seed: int) -> tuple[int, list[Series]]:
    backend = make_url(url).get_backend_name()
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "INSTANCE_PATH": tempfile.mkdtemp(prefix="samiti-bench-"),
                      "SECRET_KEY": "benchmark", "WTF_CSRF_ENABLED": False, "RATELIMIT_ENABLED": False})
    rng = random.Random(seed)
    with app.app_context():
        members = db.session.scalar(select(func.count()).select_from(Member))
        if not members:
            raise SystemExit(f"{url} has no members: run benchmarks/generate.py first.")
        max_id = db.session.scalar(select(func.max(Member.id)))
        per_page = app.config["MEMBERS_PER_PAGE"]
        make_login()
        fragments = name_fragments(rng, requests + warmup)
        engine = db.engine
        db.session.remove()
    # Requests run outside any app context: each then gets its own, and its own session, as in
    # production (inside one, the test client would reuse it and its session's identity map).
    client = sign_in(app)
    search = Series(backend, "search ?q=<name fragment>")
    search_status = Series(backend, "search ?q=<fragment>&status=active")
    grace = Series(backend, "list ?status=grace&sort=expires")
    page = Series(backend, "member page /staff/members/<id>")
    for i in range(requests + warmup):
        q = fragments[i]
        cases = [
            (search, {"q": q}),
            (search_status, {"q": q, "status": "active"}),
            (grace, {"status": "grace", "sort": "expires", "page": str(rng.randint(1, 3))}),
        ]
        for series, args in cases:
            path = "/staff/members?" + urlencode(args)
            took = timed_get(client, path)
            floor, total = search_floor(app, engine, {k: v for k, v in args.items() if k != "page"}, per_page)
            if i >= warmup:
                series.page.append(took)
                series.floor.append(floor)
                series.rows.append(total)
        member_id = rng.randint(1, max_id)
        took = timed_get(client, f"/staff/members/{member_id}")
        floor = member_floor(engine, member_id)
        if i >= warmup:
            page.page.append(took)
            page.floor.append(floor)
    engine.dispose()
    return members, [search, search_status, grace, page]


def database_url(value: str) -> str:
    """A relative SQLite path is relative to the current folder (the app would read it relative
    to its instance folder)."""
    prefix = "sqlite:///"
    if value.startswith(prefix) and not value[len(prefix):].startswith("/"):
        return prefix + str(Path(value[len(prefix):]).resolve())
    return value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", type=database_url, action="append", dest="urls",
                        help="a database made by generate.py (repeat for several; default benchmarks/out/bench.db)")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    urls = args.urls or [f"sqlite:///{ROOT / 'benchmarks' / 'out' / 'bench.db'}"]

    header = (f"{'database':<11} {'members':>8}  {'page':<36} {'p50 ms':>7} {'p95 ms':>7}   "
              f"{'floor p50':>9} {'floor p95':>9}  {'rows p50':>8}")
    lines = []
    for url in urls:
        members, results = bench(url, requests=args.requests, warmup=args.warmup, seed=args.seed)
        for s in results:
            over = " !" if pct(s.page, 95) > TARGET_MS else ""
            rows = f"{statistics.median(s.rows):>8,.0f}" if s.rows else f"{'':>8}"
            lines.append(f"{s.backend:<11} {members:>8,}  {s.name:<36} {pct(s.page, 50):>7.1f} "
                         f"{pct(s.page, 95):>7.1f}   {pct(s.floor, 50):>9.1f} {pct(s.floor, 95):>9.1f}  {rows}{over}")
    print(f"{args.requests} requests per page after {args.warmup} warm-up; target p95 < {TARGET_MS} ms "
          "(! marks a miss)")
    print(header)
    print("-" * len(header))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
