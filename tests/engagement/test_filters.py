"""Member list filters of issue 6 (engagement, risk, last activity, tags, segment) against hand
counts, in the list, its count and the CSV export. The names are those the dashboard links with."""
from __future__ import annotations

import csv
import html
import io
import re
from datetime import datetime, timezone
from urllib.parse import unquote

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


# ---------------------------------------------------------------- the dashboard's history filters


@pytest.mark.parametrize("query, field, message", [
    ("was=current:2026-13-45", "Status on a day", "Use a status and a date like current:2026-01-31."),
    ("was=sleeping:2026-01-01", "Status on a day", "Use a status and a date like current:2026-01-31."),
    ("was=current:9999-12-31", "Status on a day", "Use a status and a date like current:2026-01-31."),
    ("outcome=vanished", "Term outcome", "Not a valid choice."),
    ("current_years=99", "Current after years", "Use a number of years from 1 to 10."),
    ("attended_to=9999-12-31", "Attended an event to", "Use a date between the years 1000 and 2999."),
    ("active_before=0001-01-01", "Last active before", "Use a date between the years 1000 and 2999."),
])
def test_a_bad_history_filter_is_reported_not_a_500(staff_client, crowd, query, field, message):
    response = staff_client.get(f"/staff/members?{query}")
    assert response.status_code == 200
    page = html.unescape(response.get_data(as_text=True))
    assert f"{field}: {message}" in page
    assert re.search(r'id="member-total">6 members<', page)  # left out: the whole list
    assert staff_client.get(f"/staff/members/export?{query}").status_code in (200, 400)


def test_history_filters_are_named_kept_and_removable(staff_client, crowd):
    query = ("was=current:2025-06-30&was=former:2026-06-30&outcome=lapsed&ended_from=2025-01-01"
             "&ended_to=2025-12-31&current_years=2&attended_from=2026-01-01&tag=board")
    page = html.unescape(staff_client.get(f"/staff/members?{query}").get_data(as_text=True))
    chips = re.search(r'id="history-filters"[^>]*>(.*?)</ul>', page, re.S).group(1)
    assert "Current (active or in grace) on 30 Jun 2025" in chips
    assert "Lapsed or cancelled on 30 Jun 2026" in chips
    assert "Had a term that ended between 01 Jan 2025 and 31 Dec 2025 and lapsed" in chips
    assert "Current 2 years after joining" in chips
    assert "Attended an event that started on or after 01 Jan 2026" in chips
    # kept when the form is submitted again (hidden fields) and in the segment saved from the list
    form = re.search(r'<form class="[^"]*member-filters".*?</form>', page, re.S).group(0)
    for hidden in ('name="was" value="current:2025-06-30"', 'name="was" value="former:2026-06-30"',
                   'name="outcome" value="lapsed"', 'name="ended_from" value="2025-01-01"',
                   'name="current_years" value="2"', 'name="attended_from" value="2026-01-01"'):
        assert hidden in form, hidden
    save = re.search(r'<form[^>]*action="([^"]*)"[^>]*id="save-segment"', page).group(1)
    assert "outcome=lapsed" in save and "current_years=2" in save and "was=former:2026-06-30" in unquote(save)
    # each chip removes its own filter and keeps the others
    removes = {unquote(url): label for url, label in re.findall(r'href="([^"]*)" aria-label="Remove: ([^"]*)"', chips)}
    without_outcome = next(url for url, label in removes.items() if label.startswith("Had a term"))
    assert "outcome=" not in without_outcome and "&ended_from=" not in without_outcome
    assert "was=current:2025-06-30" in without_outcome and "tag=board" in without_outcome
    without_first = next(url for url, label in removes.items() if label.startswith("Current (active"))
    assert "was=former:2026-06-30" in without_first and "current:2025-06-30" not in without_first
