"""Turn the public CDNOW purchase history into `history import` CSV files (issue 10).

CDNOW_master.txt (23,570 people who first bought from the CDNOW music shop in the first quarter of
1997, and their 69,659 purchases up to June 1998; Fader & Hardie's well-known data set) ships inside
the PyPI package `lifetimes`. It is not a dependency of Samiti: fetch the wheel once, unzip the file,
convert:

    pip download --no-deps lifetimes -d /tmp/cdnow
    unzip -o /tmp/cdnow/Lifetimes-*.whl 'lifetimes/datasets/CDNOW_master.txt' -d /tmp/cdnow
    python benchmarks/cdnow_to_history.py /tmp/cdnow/lifetimes/datasets/CDNOW_master.txt /tmp/cdnow/history

Writes members.csv (external_id = the customer id, joined_on = the first purchase) and
activities.csv (one `payment` per purchase row, amount = its dollar value, detail = how many CDs).
There are no terms: churn is "no purchase for N days" (CHURN_INACTIVE_DAYS). Same-day purchases
by one person are separate rows of the file and stay separate activities (the import keeps them).
"""
from __future__ import annotations

import argparse
import csv
from datetime import date
from pathlib import Path


def convert(source: Path, out: Path) -> tuple[int, int]:
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    first: dict[str, date] = {}
    with open(source, encoding="ascii") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) != 4 or not parts[1].isdigit():  # the header line
                continue
            cid, day, cds, value = parts
            d = date(int(day[:4]), int(day[4:6]), int(day[6:]))
            rows.append((cid, d, int(cds), value))
            if cid not in first or d < first[cid]:
                first[cid] = d
    with open(out / "members.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["external_id", "first_name", "last_name", "email", "joined_on"])
        for cid in sorted(first):
            w.writerow([f"cdnow-{cid}", "Customer", cid, "", first[cid].isoformat()])
    with open(out / "activities.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["external_id", "occurred_at", "kind", "amount", "detail"])
        for cid, d, cds, value in rows:
            w.writerow([f"cdnow-{cid}", d.isoformat(), "payment", value, f"{cds} CD{'s' if cds != 1 else ''}"])
    return len(first), len(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", type=Path, help="CDNOW_master.txt")
    ap.add_argument("out", type=Path, help="folder for members.csv and activities.csv")
    args = ap.parse_args()
    members, purchases = convert(args.source, args.out)
    print(f"{members:,} members, {purchases:,} purchases written to {args.out}")


if __name__ == "__main__":
    main()
