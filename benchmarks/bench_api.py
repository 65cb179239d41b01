"""Time the JSON API on a large database: list pages (first and deep, by `after`), search, one
member, payments for accounting, and recording a touchpoint.

    python benchmarks/generate.py --database-url sqlite:///benchmarks/out/bench.db          # once
    python benchmarks/bench_api.py --database-url sqlite:///benchmarks/out/bench.db \\
        --database-url postgresql+psycopg://postgres@127.0.0.1/samiti_bench_pages

Each request goes through the Flask test client with a bearer token (authentication, scope check,
validation, queries, JSON), `--requests` times with random input after a warm-up. Keyset pagination
means a page deep in the list costs what the first one does. Prints p50 and p95 in milliseconds;
the target is p95 < 100 ms. The POST writes activities into the benchmark database.
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bench_pages import LOGIN, database_url, make_login, name_fragments, pct  # noqa: E402
from membership import create_app  # noqa: E402
from membership.accounts import services as accounts  # noqa: E402
from membership.api import tokens  # noqa: E402
from membership.extensions import db  # noqa: E402
from membership.members.models import Member  # noqa: E402
from membership.plans.models import Payment  # noqa: E402

TARGET_MS = 100


def timed(client, method: str, path: str, headers: dict, json=None) -> float:
    started = time.perf_counter()
    response = client.open(path, method=method, headers=headers, json=json)
    elapsed = time.perf_counter() - started
    if response.status_code >= 300:
        raise SystemExit(f"{method} {path} answered {response.status_code}: {response.get_data(as_text=True)[:300]}")
    return elapsed


def bench(url: str, *, requests: int, warmup: int, seed: int) -> tuple[int, dict[str, list[float]]]:
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "INSTANCE_PATH": tempfile.mkdtemp(prefix="samiti-bench-"),
                      "SECRET_KEY": "benchmark", "RATELIMIT_ENABLED": False, "MAIL_URL": "memory://"})
    rng = random.Random(seed)
    with app.app_context():
        members = db.session.scalar(select(func.count()).select_from(Member))
        if not members:
            raise SystemExit(f"{url} has no members: run benchmarks/generate.py first.")
        max_id = db.session.scalar(select(func.max(Member.id)))
        max_payment = db.session.scalar(select(func.max(Payment.id))) or 1
        make_login()
        owner = accounts.get_user_by_email(db.session, LOGIN[0])
        _, secret = tokens.create_token(db.session, name="benchmark", scopes=("read", "write"), owner=owner,
                                        actor=None, now=datetime.now(timezone.utc))
        db.session.commit()
        fragments = name_fragments(rng, requests + warmup)
        db.session.remove()
        db.engine.dispose()
    headers = {"Authorization": f"Bearer {secret}"}
    client = app.test_client()
    series: dict[str, list[float]] = {name: [] for name in (
        "GET /members?limit=100", "GET /members?limit=100&after=<random>", "GET /members?q=<fragment>",
        "GET /members/<id>", "GET /payments?limit=100&after=<random>", "POST /activities")}
    at = (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat()
    for i in range(requests + warmup):
        member_id = rng.randint(1, max_id)
        cases = [
            ("GET /members?limit=100", "GET", "/api/v1/members?limit=100", None),
            ("GET /members?limit=100&after=<random>", "GET", f"/api/v1/members?limit=100&after={member_id}", None),
            ("GET /members?q=<fragment>", "GET", "/api/v1/members?" + urlencode({"q": fragments[i]}), None),
            ("GET /members/<id>", "GET", f"/api/v1/members/{member_id}", None),
            ("GET /payments?limit=100&after=<random>", "GET",
             f"/api/v1/payments?limit=100&after={rng.randint(0, max_payment)}", None),
            ("POST /activities", "POST", "/api/v1/activities",
             {"member_id": member_id, "kind": "website_visit", "occurred_at": at, "url": "/benchmark"}),
        ]
        for name, method, path, body in cases:
            if name == "GET /members/<id>" or name == "POST /activities":
                with app.app_context():
                    if db.session.get(Member, member_id) is None or db.session.get(Member, member_id).erased_at:
                        db.session.remove()
                        continue
                    db.session.remove()
            took = timed(client, method, path, headers, body)
            if i >= warmup:
                series[name].append(took)
    return members, series


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", type=database_url, action="append", dest="urls",
                        help="a database made by generate.py (repeat for several; default benchmarks/out/bench.db)")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    urls = args.urls or [f"sqlite:///{ROOT / 'benchmarks' / 'out' / 'bench.db'}"]
    header = f"{'database':<11} {'members':>8}  {'request':<40} {'p50 ms':>7} {'p95 ms':>7}"
    lines = []
    for url in urls:
        members, results = bench(url, requests=args.requests, warmup=args.warmup, seed=args.seed)
        for name, values in results.items():
            over = " !" if pct(values, 95) > TARGET_MS else ""
            lines.append(f"{make_url(url).get_backend_name():<11} {members:>8,}  {name:<40} "
                         f"{pct(values, 50):>7.1f} {pct(values, 95):>7.1f}{over}")
    print(f"{args.requests} requests each after {args.warmup} warm-up; target p95 < {TARGET_MS} ms (! marks a miss)")
    print(header)
    print("-" * len(header))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
