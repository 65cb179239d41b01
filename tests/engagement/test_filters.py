"""Member list filters of issue 6 (engagement, risk, last activity, tags, segment) against hand
counts, in the list, its count and the CSV export. The names are those the dashboard links with."""
from __future__ import annotations

import csv
import html
import io
import re
from datetime import datetime, timezone

import pytest

from membership.engagement.models import CurrentScore, Segment
from membership.extensions import db
from membership.members.models import MemberTag
from tests.conftest import NOW, TODAY


def at(y, m, d, h=0):
    return datetime(y, m, d, h, tzinfo=timezone.utc)


@pytest.fixture
def crowd(make_member):
    """Five members (first names A..E) with hand-set scores and tags; F is never scored."""
    rows = [  # name, engagement band, risk band, last activity (UTC), tags
        ("Anna", "highly_engaged", "low", at(2026, 6, 10), ["board", "speaker"]),
        ("Bela", "engaged", "medium", at(2026, 3, 1), ["board"]),
        ("Cleo", "drifting", "high", at(2025, 12, 31, 20), ["volunteer"]),  # 1 Jan 02:00 in Dhaka
        ("Dara", "dormant", "high", None, []),
        ("Emil", "dormant", None, at(2024, 1, 1), ["board", "volunteer"]),
    ]
    people = {}
    for name, band, risk, last, tags in rows:
        m = make_member(first_name=name, last_name="Crowd")
        db.session.add(CurrentScore(member_id=m.id, scored_on=TODAY, engagement=1.0, engagement_band=band,
                                    churn_risk=None if risk is None else 0.5, risk_band=risk, last_activity_at=last))
        for t in tags:
            db.session.add(MemberTag(member_id=m.id, tag=t))
        people[name] = m
    people["Fynn"] = make_member(first_name="Fynn", last_name="Crowd")
    db.session.commit()
    return people


def listed(client, query) -> tuple[list[str], str]:
    response = client.get("/staff/members?" + query)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    names = sorted(html.unescape(n).split()[0] for n in
                   re.findall(r'class="member-link[^"]*" href="[^"]*">([^<]*)</a>', page))
    total = re.search(r'id="member-total">([^<]*)<', page).group(1)
    return names, total


def exported(client, query) -> list[str]:
    response = client.get("/staff/members/export?" + query)
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    return sorted(r["first_name"] for r in rows)


CASES = [
    ("engagement=dormant", ["Dara", "Emil"]),
    ("engagement=dormant&engagement=drifting", ["Cleo", "Dara", "Emil"]),
    ("risk=high", ["Cleo", "Dara"]),
    ("risk=high&risk=medium", ["Bela", "Cleo", "Dara"]),
    ("active_before=2026-01-01", ["Dara", "Emil", "Fynn"]),   # Cleo's 31 Dec 20:00 UTC is 1 Jan in Dhaka
    ("active_before=2026-01-02", ["Cleo", "Dara", "Emil", "Fynn"]),
    ("active_after=2026-01-01", ["Anna", "Bela", "Cleo"]),
    ("active_after=2026-03-01&active_before=2026-06-01", ["Bela"]),
    ("tag=board", ["Anna", "Bela", "Emil"]),
    ("tag=board&tag=volunteer", ["Emil"]),
    ("tag=Board&tag=SPEAKER", ["Anna"]),
    ("tag=nobody", []),
    ("engagement=dormant&tag=volunteer", ["Emil"]),
    ("risk=high&active_before=2026-01-01", ["Dara"]),
    ("engagement=engaged&engagement=highly_engaged&risk=low", ["Anna"]),
    ("engagement=bogus", ["Anna", "Bela", "Cleo", "Dara", "Emil", "Fynn"]),  # an unknown band is ignored
]


@pytest.mark.parametrize("query, expected", CASES)
def test_each_filter_in_the_list_its_count_and_the_export(staff_client, crowd, query, expected):
    names, total = listed(staff_client, query)
    assert names == expected
    assert total == f"{len(expected)} member{'' if len(expected) == 1 else 's'}"
    assert exported(staff_client, query) == expected


def test_a_bad_date_is_reported_not_a_500(staff_client, crowd):
    response = staff_client.get("/staff/members?active_before=2026-13-45")
    assert response.status_code == 200
    assert "Last active before: Use a date like 2026-01-31." in html.unescape(response.get_data(as_text=True))


def test_filters_are_kept_in_the_form_and_links(staff_client, crowd):
    page = staff_client.get("/staff/members?engagement=dormant&risk=high&tag=board&active_after=2020-01-01"
                            ).get_data(as_text=True)
    assert 'id="f-engagement-dormant" checked' in page and 'id="f-risk-high" checked' in page
    assert 'name="active_after"' in page and 'value="2020-01-01"' in page
    assert "engagement=dormant" in page.split("Export CSV")[0].rsplit("href=", 1)[1]


def test_a_segment_filter_combines_with_the_others(staff_client, crowd):
    seg = Segment(name="Board", filters={"tag": ["board"], "sort": "name"}, created_at=NOW)
    db.session.add(seg)
    db.session.commit()
    assert listed(staff_client, f"segment={seg.id}")[0] == ["Anna", "Bela", "Emil"]
    assert listed(staff_client, f"segment={seg.id}&engagement=dormant")[0] == ["Emil"]
    assert exported(staff_client, f"segment={seg.id}") == ["Anna", "Bela", "Emil"]
    response = staff_client.get("/staff/members?segment=999")
    assert response.status_code == 200
    assert "This saved segment does not exist" in html.unescape(response.get_data(as_text=True))
    assert staff_client.get("/staff/members?segment=99999999999999").status_code == 200


def test_the_score_filters_use_one_join(app, crowd):
    from werkzeug.datastructures import MultiDict
    from membership.members.queries import MemberFilter, member_query
    f = MemberFilter.from_args(MultiDict([("engagement", "dormant"), ("risk", "high"),
                                          ("active_before", "2026-01-01")]))
    sql = str(member_query(f))
    assert sql.count("JOIN current_score") == 1 and "current_score.member_id = member.id" in sql
