"""Time the survey invitations and the results page at scale, on SQLite and/or PostgreSQL.

    .venv/bin/python benchmarks/bench_surveys.py                                   # SQLite, 20,000 members
    .venv/bin/python benchmarks/bench_surveys.py --members 100000 \\
        --database-url postgresql+psycopg://postgres@127.0.0.1/samiti_bench_surveys

It builds a fresh schema (create_all on an empty database: the SQLite file is replaced; a
PostgreSQL database is emptied), inserts current members in bulk, then times:
  1. send_invitations to every current member (render + one outbox row each, in one transaction);
  2. one answer per member inserted in bulk (five questions: NPS, rating, single and multiple
     choice, free text), then the staff results page (GET /staff/surveys/<id>/results) `--requests`
     times through the Flask test client signed in as staff (p50 / p95);
  3. a "who answered" page (detractors) and the CSV export of every response.
Prints a table of seconds / milliseconds. Targets (our own, in the spirit of issue 11's): invitations
to 10,000 members under 10 s, results page p95 under 200 ms at 100,000 answers.
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, text  # noqa: E402

from membership import create_app  # noqa: E402
from membership.extensions import db  # noqa: E402

NOW = datetime.now(timezone.utc).replace(microsecond=0)
PASSWORD = "bench-password-for-staff-42"


def build(url: str, members: int, seed: int):
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench", "MAIL_URL": "memory://",
                      "INSTANCE_PATH": tempfile.mkdtemp(prefix="samiti-bench-"), "WTF_CSRF_ENABLED": False,
                      "RATELIMIT_ENABLED": False})
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            with db.engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
        else:
            db.drop_all()
        db.create_all()
        from membership.accounts import services as accounts
        from membership.members.models import Member
        rng = random.Random(seed)
        today = date.today()
        rows = []
        for i in range(1, members + 1):
            rows.append({"id": i, "member_number": f"M{i:07d}", "first_name": rng.choice(["Ada", "Rahim", "নুসরাত"]),
                         "last_name": f"Member{i}", "email": f"m{i}@example.org", "email_normalized": f"m{i}@example.org",
                         "joined_on": today - timedelta(days=rng.randint(0, 3000)), "language": "en",
                         "marketing_opt_in": True, "directory_opt_in": False, "directory_show_organization": False,
                         "directory_show_city": False, "directory_show_email": False, "directory_show_phone": False,
                         "email_bouncing": False, "is_primary_contact": False, "search_text": f"m{i}",
                         "status": "active", "expires_on": today + timedelta(days=200),
                         "created_at": NOW, "updated_at": NOW})
            if len(rows) == 5000:
                db.session.execute(insert(Member), rows)
                rows = []
        if rows:
            db.session.execute(insert(Member), rows)
        accounts.create_user(db.session, email="bench-staff@example.org", name="Bench", role="staff",
                             password=PASSWORD, actor=None, now=NOW)
        db.session.commit()
        if db.engine.dialect.name == "postgresql":
            db.session.execute(text("SELECT setval(pg_get_serial_sequence('member', 'id'), :n)"), {"n": members})
            db.session.commit()
    return app


def bench(url: str, members: int, requests: int, seed: int) -> list[tuple[str, str]]:
    from membership.surveys import services as sv
    from membership.surveys.models import SurveyAnswer, SurveyResponse
    out: list[tuple[str, str]] = []
    t = time.perf_counter()
    app = build(url, members, seed)
    out.append((f"build {members:,} members", f"{time.perf_counter() - t:.1f} s"))
    with app.app_context():
        today = date.today()
        survey = sv.create_survey(db.session, sv.SurveyData(title="Annual survey", intro=None,
                                                            opens_on=today - timedelta(days=1), closes_on=None),
                                  actor=None, now=NOW)
        for kind, prompt, options in (("nps", "Recommend?", None), ("rating", "Satisfied?", None),
                                      ("single", "Heard of us", ["A friend", "The web", "An event"]),
                                      ("multiple", "Uses", ["Events", "Directory", "Newsletter"]),
                                      ("text", "Anything else?", None)):
            sv.add_question(db.session, survey, sv.QuestionData(kind=kind, prompt=prompt, required=False,
                                                                options=options), actor=None, now=NOW)
        sv.publish(db.session, survey, actor=None, now=NOW)
        db.session.commit()
        survey_id = survey.id
        questions = [(q.id, q.kind) for q in survey.questions]

        t = time.perf_counter()
        queued = sv.send_invitations(db.session, survey, segment_id=None, actor=None, now=NOW, today=today)
        db.session.commit()
        out.append((f"queue {queued:,} invitations", f"{time.perf_counter() - t:.1f} s"))

        rng = random.Random(seed)
        t = time.perf_counter()
        for start in range(1, members + 1, 5000):
            ids = range(start, min(start + 5000, members + 1))
            db.session.execute(insert(SurveyResponse), [
                {"id": i, "survey_id": survey_id, "member_id": i, "context_key": "", "channel": "link",
                 "submitted_at": NOW, "updated_at": NOW} for i in ids])
            answers = []
            for i in ids:
                for qid, kind in questions:
                    row = {"response_id": i, "question_id": qid, "number": None, "text": None, "choices": None}
                    if kind == "nps":
                        row["number"] = rng.choice([10, 9, 9, 8, 7, 6, 3, 10])
                    elif kind == "rating":
                        row["number"] = rng.randint(1, 5)
                    elif kind == "single":
                        row["text"] = rng.choice(["A friend", "The web", "An event"])
                    elif kind == "multiple":
                        row["choices"] = rng.sample(["Events", "Directory", "Newsletter"], rng.randint(1, 3))
                    elif rng.random() < 0.3:
                        row["text"] = f"Comment {i}"
                    else:
                        continue
                    answers.append(row)
            db.session.execute(insert(SurveyAnswer), answers)
        db.session.commit()
        out.append((f"insert {members:,} responses (bulk)", f"{time.perf_counter() - t:.1f} s"))

        client = app.test_client()
        assert client.post("/login", data={"email": "bench-staff@example.org", "password": PASSWORD}).status_code == 302

        def timed(path: str, n: int) -> tuple[float, float]:
            client.get(path)  # warm-up
            times = []
            for _ in range(n):
                t0 = time.perf_counter()
                response = client.get(path)
                times.append((time.perf_counter() - t0) * 1000)
                assert response.status_code == 200, (path, response.status_code)
            times.sort()
            return statistics.median(times), times[max(0, int(len(times) * 0.95) - 1)]

        p50, p95 = timed(f"/staff/surveys/{survey_id}/results", requests)
        out.append(("results page", f"p50 {p50:.0f} ms · p95 {p95:.0f} ms"))
        nps_id = questions[0][0]
        p50, p95 = timed(f"/staff/surveys/{survey_id}/respondents?question={nps_id}&value=detractors", requests)
        out.append(("who answered: detractors (page 1)", f"p50 {p50:.0f} ms · p95 {p95:.0f} ms"))
        p50, p95 = timed(f"/staff/surveys/{survey_id}/respondents?question={questions[3][0]}&value=Directory",
                         requests)
        out.append(("who answered: a multiple-choice option", f"p50 {p50:.0f} ms · p95 {p95:.0f} ms"))
        t = time.perf_counter()
        size = len(client.get(f"/staff/surveys/{survey_id}/export.csv").data)
        out.append((f"CSV export ({size / 1e6:.1f} MB)", f"{time.perf_counter() - t:.1f} s"))
        db.session.remove()
        db.engine.dispose()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", action="append",
                        help="SQLAlchemy URL (repeatable); default: a SQLite file in the temp directory")
    parser.add_argument("--members", type=int, default=20000)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    urls = args.database_url or [f"sqlite:///{Path(tempfile.gettempdir()) / 'samiti_bench_surveys.db'}"]
    for url in urls:
        print(f"\n{url.split('@')[-1]}  ({args.members:,} members)")
        for label, value in bench(url, args.members, args.requests, args.seed):
            print(f"  {label:<42} {value}")


if __name__ == "__main__":
    main()
