"""Make the example history for `flask --app wsgi history import examples/history --create-plans`.

    python examples/history/make_example.py [--members 80] [--seed 7] [--out examples/history]

Deterministic (a fixed seed). Each member's interest in the association is drawn per term (and
drifts from one term to the next); it sets how often they show up during the term and how likely
they are to renew at its end. So the activity known before a term ends predicts the renewal, and
a back-test such as

    flask --app wsgi churn backtest --as-of 2025-06-01 --horizon-days 365

finds a clearly better-than-chance AUC, while the answer is not written anywhere in the files.
"""
from __future__ import annotations

import argparse
import csv
import random
from datetime import date, datetime, time, timedelta
from pathlib import Path

END = date(2026, 5, 31)  # the last day of the history
KINDS = (["event_attended", "event_registered", "logged_in", "email_opened", "email_clicked", "interaction",
          "feedback_given", "profile_updated"], [20, 15, 25, 20, 6, 6, 4, 4])
FIRST = ["Ayesha", "Rahim", "Nusrat", "Tanvir", "Farhana", "Imran", "Sadia", "Kamal", "Ruma", "Jamil", "Priya",
         "Arif", "Mitu", "Sohel", "Lina", "Babul"]
LAST = ["Ahmed", "Hossain", "Rahman", "Chowdhury", "Islam", "Das", "Khan", "Sarkar", "Roy", "Begum"]


def add_year(d: date) -> date:
    try:
        return d.replace(year=d.year + 1)
    except ValueError:
        return d.replace(year=d.year + 1, day=28)


def generate(members: int = 80, seed: int = 7, end: date = END):
    """(members rows, memberships rows, activities rows) as lists of dicts."""
    rng = random.Random(seed)
    m_rows, t_rows, a_rows = [], [], []
    for i in range(members):
        ext = f"H{i + 1:04d}"
        joined = date(2020, 1, 1) + timedelta(days=rng.randrange(0, 3 * 365))
        first, last = rng.choice(FIRST), rng.choice(LAST)
        m_rows.append({"external_id": ext, "first_name": first, "last_name": last,
                       "email": "" if rng.random() < 0.15 else f"{first.lower()}.{last.lower()}.{i + 1}@example.org",
                       "joined_on": joined.isoformat()})
        plan = "student" if rng.random() < 0.2 else "standard"
        amount = "500.00" if plan == "student" else "1500.00"
        interest = rng.random()
        start = joined
        renewal = False
        while start <= end:
            ends = add_year(start) - timedelta(days=1)
            late = renewal and rng.random() < 0.35 * (1 - interest)
            paid = start + timedelta(days=rng.randrange(3, 25)) if late else start - timedelta(days=rng.randrange(0, 20) if renewal else 0)
            t_rows.append({"external_id": ext, "plan_code": plan, "starts_on": start.isoformat(),
                           "ends_on": ends.isoformat(), "paid_on": min(paid, end).isoformat(), "amount": amount})
            day = start
            while day <= min(ends, end):  # a month at a time: show up with a chance set by interest
                for _ in range(3):
                    if rng.random() < interest * 0.9:
                        kind = rng.choices(*KINDS)[0]
                        moment = datetime.combine(day + timedelta(days=rng.randrange(0, 28)), time(rng.randrange(8, 21), rng.randrange(60)))
                        if moment.date() <= end:
                            a_rows.append({"external_id": ext, "occurred_at": moment.strftime("%Y-%m-%d %H:%M"),
                                           "kind": kind, "amount": "", "detail": ""})
                day += timedelta(days=30)
            if rng.random() < 1 / (1 + 2.718 ** (-12 * (interest - 0.35))):  # renews
                start, renewal = ends + timedelta(days=1), True
            elif rng.random() < 0.25:  # comes back after a gap
                start, renewal = ends + timedelta(days=rng.randrange(120, 400)), False
            else:
                break
            interest = min(1.0, max(0.0, 0.6 * interest + 0.4 * rng.random()))
    a_rows.sort(key=lambda r: (r["occurred_at"], r["external_id"]))
    return m_rows, t_rows, a_rows


def write(directory: Path, members: int = 80, seed: int = 7, end: date = END) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    m_rows, t_rows, a_rows = generate(members, seed, end)
    for name, rows, cols in (
            ("members.csv", m_rows, ["external_id", "first_name", "last_name", "email", "joined_on"]),
            ("memberships.csv", t_rows, ["external_id", "plan_code", "starts_on", "ends_on", "paid_on", "amount"]),
            ("activities.csv", a_rows, ["external_id", "occurred_at", "kind", "amount", "detail"])):
        with open(directory / name, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=cols, lineterminator="\n")
            w.writeheader()
            w.writerows(rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=80)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args()
    write(args.out, args.members, args.seed)
    print(f"Wrote {args.out}/members.csv, memberships.csv, activities.csv")
