"""The staff dashboard: every figure against hand counts on a small data set, each figure's link
against the member list it opens, the series and cohorts of a hand-made history, the daily cache,
access and the Content-Security-Policy.

The page asks local_today(), so the page tests build their data relative to it; the series and
cohort tests call the computation with a fixed `today`."""
from __future__ import annotations

import html
import json
import re
from datetime import date, datetime, time, timedelta, timezone

import pytest
from sqlalchemy import select

from membership.core.time import add_months, local_today, utcnow
from membership.engagement import dashboard
from membership.engagement.models import CurrentScore, Setting
from membership.events.models import Event, EventRegistration
from membership.extensions import db
from membership.plans.models import Membership
from membership.plans.services import refresh_status
from membership.support.models import HelpRequest
from tests.conftest import NOW, login


# ---------------------------------------------------------------- helpers


def add_term(member, plan, starts_on, ends_on, *, cancelled_on=None, renews=None):
    """A paid term inserted directly, so a history can be any shape (renewed, lapsed, rejoined)."""
    term = Membership(member_id=member.id, plan_id=plan.id, starts_on=starts_on, ends_on=ends_on,
                      grace_days=plan.grace_days, fee_minor=0, currency="BDT", source="staff",
                      cancelled_on=cancelled_on, renews_id=renews.id if renews else None,
                      paid_on=starts_on, status="active", created_at=NOW)
    db.session.add(term)
    db.session.flush()
    return term


def score(member, engagement, band, risk_band=None, risk=None):
    db.session.add(CurrentScore(member_id=member.id, scored_on=local_today(), engagement=engagement,
                                engagement_band=band, churn_risk=risk, risk_band=risk_band))


def figure(page: str, name: str) -> str:
    match = re.search(rf'data-figure="{name}">([^<]*)<', page)
    assert match, f"no figure {name}"
    return match.group(1)


def link(page: str, anchor_id: str) -> str:
    match = re.search(rf'<a[^>]*id="{anchor_id}"[^>]*href="([^"]*)"', page)
    assert match, f"no link {anchor_id}"
    return html.unescape(match.group(1))


def list_total(client, url: str) -> int:
    page = client.get(url).get_data(as_text=True)
    match = re.search(r'id="member-total">([\d,]+) members?<', page)
    assert match, url
    return int(match.group(1).replace(",", ""))


# ---------------------------------------------------------------- the hand-counted data set


@pytest.fixture
def today(app):
    return local_today()


@pytest.fixture
def data_set(make_member, make_plan, today):
    """Members (P, Q: 30 days of grace), today D, a year ago Y:

    A   [D-400, D-35] renewed by [D-34, D+330]      current at Y and today   score 10 engaged, low risk
    B   [D-500, D-100], not renewed: lapsed           current at Y only        score 2 dormant
    C   [D-380, D-10], in grace                       current at Y and today   score 5 drifting, high
    Dd  [D-300, D+65]                                 current today            score 40 highly engaged
    G   joined today, [D, D+364]                      new this month
    H   [D-340, D+25] (plan Q): due to renew          current today            score 7 drifting, high
    K   [D-700, D-336] renewed by [D-335, D+30] (Q)   current at Y and today   score 20 engaged, medium
    L   [D-900, D-536], lapsed long ago
    N   no term
    X   erased, current, scored high: counted nowhere

    Hand counts: current 6 (A C Dd G H K); new this month 1 (G); due in 30 days 2 (H K);
    terms ended in the last 12 months: A, K renewed, B lapsed, C in grace (left out): 2 of 3;
    current a year ago 4 (A B C K), still current 3; event: A and H attended one in the last
    12 months (B too, but is not current; Dd's was 13 months ago): 2 of 6; scored 6, median
    (7 + 10) / 2 = 8.5; high risk 2 (C H); open help requests 2.
    """
    d = today
    P = make_plan(name="Standard", code="STD", grace_days=30)
    Q = make_plan(name="Family", code="FAM", grace_days=30)
    m = {}

    def member(key, joined_on, **kw):
        m[key] = make_member(first_name=key, last_name=f"Member{key}", joined_on=joined_on, **kw)
        return m[key]

    first = add_term(member("A", d - timedelta(400)), P, d - timedelta(400), d - timedelta(35))
    add_term(m["A"], P, d - timedelta(34), d + timedelta(330), renews=first)
    add_term(member("B", d - timedelta(500)), P, d - timedelta(500), d - timedelta(100))
    add_term(member("C", d - timedelta(380)), P, d - timedelta(380), d - timedelta(10))
    add_term(member("Dd", d - timedelta(300)), P, d - timedelta(300), d + timedelta(65))
    add_term(member("G", d), P, d, d + timedelta(364))
    add_term(member("H", d - timedelta(340)), Q, d - timedelta(340), d + timedelta(25))
    first = add_term(member("K", d - timedelta(700)), Q, d - timedelta(700), d - timedelta(336))
    add_term(m["K"], Q, d - timedelta(335), d + timedelta(30), renews=first)
    add_term(member("L", d - timedelta(900)), P, d - timedelta(900), d - timedelta(536))
    member("N", d - timedelta(800))
    add_term(member("X", d - timedelta(400)), P, d - timedelta(400), d + timedelta(20))
    for member_ in m.values():
        refresh_status(db.session, member_, today=d, now=NOW)
    m["X"].erased_at = NOW

    for key, value, band, risk_band in (("A", 10, "engaged", "low"), ("B", 2, "dormant", None),
                                        ("C", 5, "drifting", "high"), ("Dd", 40, "highly_engaged", None),
                                        ("H", 7, "drifting", "high"), ("K", 20, "engaged", "medium"),
                                        ("X", 100, "highly_engaged", "high")):
        score(m[key], value, band, risk_band, 0.5 if risk_band else None)

    def event(days_ago, regs):
        starts = datetime.combine(d - timedelta(days_ago), time(18), tzinfo=timezone.utc)
        e = Event(title=f"Event {days_ago}", starts_at=starts, ends_at=starts + timedelta(hours=2), currency="BDT",
                  status="finished", created_at=NOW, updated_at=NOW)
        db.session.add(e)
        db.session.flush()
        for key, status in regs:
            db.session.add(EventRegistration(event_id=e.id, member_id=m[key].id, person_key=f"member:{m[key].id}",
                                             status=status, currency="BDT", registered_at=starts - timedelta(days=3)))
    event(30, [("A", "attended"), ("H", "attended"), ("C", "no_show"), ("B", "attended"), ("G", "confirmed")])
    event(60, [("A", "attended")])
    event(400, [("Dd", "attended")])

    now = utcnow()
    for key, status in (("A", "open"), ("C", "answered"), ("H", "resolved")):
        db.session.add(HelpRequest(member_id=m[key].id, subject="Help", category="question", status=status,
                                   created_at=now - timedelta(days=2), updated_at=now - timedelta(days=1),
                                   resolved_at=now if status == "resolved" else None))
    db.session.commit()
    return m


# ---------------------------------------------------------------- figures and links


def test_figures_match_hand_counts(staff_client, data_set):
    page = staff_client.get("/staff/").get_data(as_text=True)
    assert figure(page, "current") == "6"
    assert figure(page, "new") == "1"
    assert figure(page, "due") == "2"
    assert figure(page, "renewal") == "67%" and "(2 of 3 terms)" in page
    assert figure(page, "churn") == "33%" and "(1 lapsed)" in page
    assert figure(page, "retention") == "75%" and "(3 of 4)" in page
    assert figure(page, "participation") == "33%" and "(2 of 6 current)" in page
    assert figure(page, "engagement") == "8.5" and "(6 scored)" in page
    assert figure(page, "at-risk") == "2"
    assert figure(page, "help") == "2"
    # the definitions are on the page
    assert "lapsed terms ÷ terms that came due = 1 − renewal rate" in page
    assert "renewed by the end of their grace period" in page


def listed_names(client, url: str) -> set[str]:
    page = client.get(url).get_data(as_text=True)
    return set(re.findall(r'class="member-link fw-semibold"[^>]*>(\w+) Member\w+<', page))


def test_each_figure_links_to_exactly_the_members_it_counts(staff_client, data_set, today):
    page = staff_client.get("/staff/").get_data(as_text=True)
    expected = {
        "fig-current": {"A", "C", "Dd", "G", "H", "K"},
        "fig-new": {"G"},
        "fig-due": {"H", "K"},
        "fig-renewal": {"A", "K"},               # their terms that ended were renewed (2 of 3)
        "fig-churn": {"B"},                      # the 1 lapsed (C is in grace: not counted yet)
        "fig-retention": {"A", "C", "K"},        # current a year ago and today (3 of 4)
        "fig-participation": {"A", "H"},         # current and attended (2 of 6)
        "fig-engagement": {"A", "B", "C", "Dd", "H", "K"},  # the scored (X is erased)
        "fig-risk": {"C", "H"},
    }
    for anchor, names in expected.items():
        url = link(page, anchor)
        assert listed_names(staff_client, url) == names, (anchor, url)
        assert list_total(staff_client, url) == len(names), anchor
    # the denominators: terms that came due (renewed or lapsed) and members current a year ago
    denominators = re.search(r'id="figure-denominators">(.*?)</p>', page, re.S).group(1)
    due_url, base_url, _current_url = (html.unescape(u) for u in re.findall(r'href="([^"]*)"', denominators))
    assert listed_names(staff_client, due_url) == {"A", "B", "K"}
    assert listed_names(staff_client, base_url) == {"A", "B", "C", "K"}
    # the median is the middle of the scored members sorted by engagement
    by_engagement = staff_client.get(link(page, "fig-engagement")).get_data(as_text=True)
    order = re.findall(r'class="member-link fw-semibold"[^>]*>(\w+) Member', by_engagement)
    assert order == ["Dd", "K", "A", "H", "C", "B"]
    # the list says in words what the dashboard filtered by, and keeps it when filtered further
    listed = staff_client.get(link(page, "fig-churn")).get_data(as_text=True)
    assert "Had a term that ended between" in listed and "and lapsed" in listed
    assert 'name="outcome" value="lapsed"' in listed
    # open help requests: the help queue of unresolved requests
    queue = staff_client.get(link(page, "fig-help")).get_data(as_text=True)
    assert re.search(r'id="help-total">2 shown', queue)


def test_every_number_in_the_tables_opens_a_list_of_that_many_members(staff_client, data_set):
    """Members by status at each month end, renewals and lapses per month, the cohorts' shares:
    each cell links to the member list, whose total is the cell's count."""
    page = staff_client.get("/staff/").get_data(as_text=True)
    checked = 0
    for table_id in ("table-status", "table-renewals"):
        table = re.search(rf'<table[^>]*id="{table_id}".*?</table>', page, re.S).group(0)
        cells = re.findall(r'<a href="([^"]*)">([\d,]+)</a>', table)
        assert len(cells) >= 48, table_id  # two or three figures for each of 24 months
        for url, n in cells:
            if n != "0" or checked % 7 == 0:  # every non-zero cell and a sample of the zeros
                assert list_total(staff_client, html.unescape(url)) == int(n.replace(",", "")), url
            checked += 1
    data = json.loads(html.unescape(re.search(r"data-charts='([^']*)'", page).group(1)))
    # the charts open the same lists as the tables
    assert data["links"]["status"][0][-1].endswith(f"was=active:{local_today().isoformat()}")
    assert len(data["links"]["renewals"][1]) == len(data["months"])


def test_engagement_and_risk_tables_link_to_their_bands(staff_client, data_set, make_plan):
    page = staff_client.get("/staff/").get_data(as_text=True)
    bands = dict(re.findall(r'data-band="(\w+)">(\d+)<', page))
    assert bands == {"highly_engaged": "1", "engaged": "2", "drifting": "2", "dormant": "1"}
    for band, n in bands.items():
        assert list_total(staff_client, f"/staff/members?engagement={band}") == int(n)
    table = re.search(r'<table[^>]*id="table-risk".*?</table>', page, re.S).group(0)
    rows = {name: cells for name, cells in
            re.findall(r"<tr><td>(\w+)</td>(.*?)</tr>", table, re.S)}
    assert set(rows) == {"Standard", "Family"}
    std_cells = re.findall(r'href="([^"]*)">(\d+)</a>', rows["Standard"])
    fam_cells = re.findall(r'href="([^"]*)">(\d+)</a>', rows["Family"])
    assert [n for _u, n in std_cells] == ["1", "0", "1"]  # high, medium, low
    assert [n for _u, n in fam_cells] == ["1", "1", "0"]
    for url, n in std_cells + fam_cells:
        assert list_total(staff_client, html.unescape(url)) == int(n)


def test_live_and_snapshot_functions(app, data_set, today):
    live = dashboard.live_figures(db.session, today, dashboard.score_figures(db.session))
    assert (live.current, live.new_this_month, live.due_to_renew, live.scored, live.at_risk) == (6, 1, 2, 6, 2)
    assert live.median_engagement == 8.5
    # the erased member is left out of the status counts
    assert live.by_status == {"active": 5, "grace": 1, "lapsed": 2, "none": 1}
    snap = dashboard.compute_snapshot(db.session, today)
    assert snap["renewal"]["renewed"] == 2 and snap["renewal"]["lapsed"] == 1 and snap["renewal"]["due"] == 3
    assert snap["retention"] == {"since": add_months(today, -12).isoformat(), "base": 4, "retained": 3,
                                 "rate": 0.75}
    assert snap["participation"] == {"members": 6, "attended": 2}
    # today: active A Dd G H K, grace C, lapsed or cancelled B L (N never had a term, X is erased)
    assert [snap["status_series"][k][-1] for k in ("active", "grace", "former")] == [5, 1, 2]


def test_a_member_who_rejoined_after_a_lapse_counts_as_a_lapse(app, make_member, make_plan, today):
    """Renewed means a next term by the day after the grace period; a later return is a new
    start, and the lapse stays in the renewal figures (but not in the lapsed list: the page says
    the link lists the members who lapsed and are still out)."""
    plan = make_plan(grace_days=30)
    member = make_member(joined_on=today - timedelta(300))
    add_term(member, plan, today - timedelta(300), today - timedelta(150))
    add_term(member, plan, today - timedelta(100), today + timedelta(265))
    db.session.commit()
    snap = dashboard.compute_snapshot(db.session, today)
    assert snap["renewal"]["renewed"] == 0 and snap["renewal"]["lapsed"] == 1


# ---------------------------------------------------------------- series and cohorts


def test_series_of_a_hand_made_history(app, make_member, make_plan):
    today = date(2026, 6, 15)
    plan = make_plan(grace_days=30)
    x = make_member(joined_on=date(2025, 1, 1))
    first = add_term(x, plan, date(2025, 1, 1), date(2025, 12, 31))
    add_term(x, plan, date(2026, 1, 1), date(2026, 12, 31), renews=first)
    y = make_member(joined_on=date(2025, 3, 1))
    add_term(y, plan, date(2025, 3, 1), date(2025, 8, 31))
    z = make_member(joined_on=date(2024, 10, 1))  # cancelled on 2025-02-10: out from that day
    add_term(z, plan, date(2024, 10, 1), date(2025, 9, 30), cancelled_on=date(2025, 2, 10))
    db.session.commit()

    snap = dashboard.compute_snapshot(db.session, today)
    months = snap["months"]
    assert len(months) == 24
    assert months[0] == "2024-07-31" and months[-2] == "2026-05-31" and months[-1] == "2026-06-15"
    at = {m: i for i, m in enumerate(months)}

    def status(day):
        i = at[day]
        return tuple(snap["status_series"][k][i] for k in ("active", "grace", "former"))
    assert status("2024-09-30") == (0, 0, 0)
    assert status("2024-12-31") == (1, 0, 0)        # z
    assert status("2025-01-31") == (2, 0, 0)        # z, x
    assert status("2025-02-28") == (1, 0, 1)        # z cancelled
    assert status("2025-03-31") == (2, 0, 1)        # x, y
    assert status("2025-08-31") == (2, 0, 1)        # y's last day
    assert status("2025-09-30") == (1, 1, 1)        # y in grace (to 30 September)
    assert status("2025-10-31") == (1, 0, 2)        # y lapsed
    assert status("2025-12-31") == (1, 0, 2)
    assert status("2026-01-31") == (1, 0, 2)        # x renewed
    assert status("2026-06-15") == (1, 0, 2)
    renewed = {m: n for m, n in zip(months, snap["renewed"]) if n}
    lapsed = {m: n for m, n in zip(months, snap["lapsed"]) if n}
    # by the month the term ended; z's cancellation is not a renewal decision
    assert renewed == {"2025-12-31": 1}
    assert lapsed == {"2025-08-31": 1}


def test_cohort_table(app, make_member, make_plan):
    today = date(2026, 6, 15)
    plan = make_plan(grace_days=30)
    a = make_member(joined_on=date(2023, 8, 10))
    first = add_term(a, plan, date(2023, 8, 10), date(2024, 8, 9))
    add_term(a, plan, date(2024, 8, 10), date(2025, 8, 9), renews=first)  # in grace on 10 Aug 2025
    b = make_member(joined_on=date(2023, 9, 1))
    add_term(b, plan, date(2023, 9, 1), date(2024, 6, 30))               # lapsed before 1 Sep 2024
    c = make_member(joined_on=date(2025, 2, 1))
    add_term(c, plan, date(2025, 2, 1), date(2026, 1, 31))               # in grace on 1 Feb 2026
    make_member(joined_on=date(2025, 5, 5))                                # no term
    make_member(joined_on=date(2023, 6, 30))                               # before the 12 quarters
    db.session.commit()

    cohorts = {c["quarter"]: c for c in dashboard.compute_snapshot(db.session, today)["cohorts"]}
    assert list(cohorts) == [f"{y} Q{q}" for y, q in
                             [(2023, 3), (2023, 4)] + [(y, q) for y in (2024, 2025) for q in (1, 2, 3, 4)]
                             + [(2026, 1), (2026, 2)]]
    assert cohorts["2023 Q3"]["joined"] == 2
    assert cohorts["2023 Q3"]["shares"] == [0.5, 0.5, None]     # 3 years: not until 30 Sep 2026
    assert cohorts["2025 Q1"]["joined"] == 1 and cohorts["2025 Q1"]["shares"] == [1.0, None, None]
    assert cohorts["2025 Q2"]["joined"] == 1 and cohorts["2025 Q2"]["shares"] == [None, None, None]
    assert cohorts["2024 Q1"]["joined"] == 0 and cohorts["2024 Q1"]["shares"] == [None, None, None]


def test_cohort_table_on_the_page_links_to_the_quarter(staff_client, make_member, today):
    joined = today - timedelta(days=2)
    make_member(joined_on=joined)
    make_member(joined_on=joined)
    db.session.commit()
    page = staff_client.get("/staff/").get_data(as_text=True)
    table = re.search(r'<table[^>]*id="cohorts".*?</table>', page, re.S).group(0)
    quarter = dashboard.quarter_label(dashboard.quarter_start(joined))
    row = re.search(rf'<tr data-quarter="{quarter}">.*?</tr>', table, re.S).group(0)
    url, n = re.search(r'href="([^"]*)">(\d+)</a>', row).groups()
    assert n == "2" and list_total(staff_client, html.unescape(url)) == 2
    assert len(re.findall(r"<tr data-quarter=", table)) == 12


# ---------------------------------------------------------------- the cache


@pytest.fixture
def counted(monkeypatch):
    calls = []
    real = dashboard.compute_snapshot

    def counting(session, today, **kw):
        calls.append(today)
        return real(session, today, **kw)
    monkeypatch.setattr(dashboard, "compute_snapshot", counting)
    return calls


def test_without_the_job_the_first_view_computes_once_and_writes_nothing(staff_client, counted, today):
    assert staff_client.get("/staff/").status_code == 200
    assert staff_client.get("/staff/").status_code == 200
    assert counted == [today]   # kept in the app's memory for the day
    # a GET writes nothing (tests/test_security.py): only the job stores the snapshot
    assert db.session.scalars(select(Setting.key)).all() == []


def test_the_daily_job_refreshes_for_a_new_day(app, counted, today):
    from membership.scheduler import Daily, get_job, run_job
    job = get_job("dashboard-refresh")
    assert job.schedule == Daily(time(2, 45))
    db.session.add(Setting(key=f"dashboard:{(today - timedelta(days=30)).isoformat()}", value={}, updated_at=NOW))
    db.session.commit()
    tomorrow = today + timedelta(days=1)
    when = datetime.combine(tomorrow, time(12), tzinfo=timezone.utc)
    run_job("dashboard-refresh", now=when)
    keys = db.session.scalars(select(Setting.key).where(Setting.key.like("dashboard:%"))).all()
    assert len(counted) == 1
    snap_day = counted[0]
    # the month-old one is pruned
    assert sorted(keys) == [f"dashboard:{snap_day.isoformat()}", f"dashboard:{snap_day.isoformat()}:scores"]
    assert dashboard.cached_snapshot(db.session, snap_day)["as_of"] == snap_day.isoformat()
    assert dashboard.cached_scores(db.session, snap_day, scored_at=None)["scored"] == 0


def test_page_uses_the_snapshot_the_job_stored(staff_client, counted, today, monkeypatch):
    dashboard.refresh_dashboard(db.session, today)
    db.session.commit()
    assert len(counted) == 1
    score_calls = []
    monkeypatch.setattr(dashboard, "score_figures", lambda session: score_calls.append(1))
    assert staff_client.get("/staff/").status_code == 200
    assert len(counted) == 1 and score_calls == []


def test_until_the_mornings_run_the_page_shows_yesterdays_snapshot_and_its_lists(staff_client, counted, today,
                                                                                 make_member, make_plan):
    """Between midnight and the 02:45 dashboard-refresh run nobody waits for a recomputation:
    the page says which day its figures are from, and its links judge outcomes as of that day."""
    plan = make_plan(grace_days=0)
    lapsed = make_member(first_name="Lapsed", last_name="MemberY", joined_on=today - timedelta(days=200))
    # its term ended two days ago: lapsed as of yesterday (no grace), whatever day it is now
    add_term(lapsed, plan, today - timedelta(days=200), today - timedelta(days=2))
    # its grace ended yesterday: lapsed today, still in grace as of yesterday's snapshot
    graced = make_member(first_name="Graced", last_name="MemberG", joined_on=today - timedelta(days=200))
    add_term(graced, make_plan(grace_days=3), today - timedelta(days=200), today - timedelta(days=4))
    db.session.commit()
    yesterday = today - timedelta(days=1)
    dashboard.refresh_dashboard(db.session, yesterday)
    old = today - timedelta(days=dashboard.KEEP_SNAPSHOT_DAYS + 1)
    db.session.add(Setting(key=dashboard.cache_key(old), value={"version": dashboard.SNAPSHOT_VERSION,
                                                                "as_of": old.isoformat()}, updated_at=NOW))
    db.session.commit()
    assert counted == [yesterday]
    page = staff_client.get("/staff/").get_data(as_text=True)
    assert counted == [yesterday]  # nothing recomputed
    assert f"12-month figures as of {yesterday.isoformat()}" in page
    assert figure(page, "churn") == "100%"
    url = link(page, "fig-churn")
    assert f"as_of={yesterday.isoformat()}" in url
    assert listed_names(staff_client, url) == {"Lapsed"}
    assert listed_names(staff_client, url.replace(f"as_of={yesterday.isoformat()}", "")) == {"Lapsed", "Graced"}


def test_score_figures_are_recomputed_after_a_scoring_run(staff_client, make_member, today):
    from membership.notifications.models import JobRun
    member = make_member(joined_on=today - timedelta(days=5))
    score(member, 3.0, "drifting", "high", 0.8)
    db.session.commit()
    page = staff_client.get("/staff/").get_data(as_text=True)
    assert figure(page, "at-risk") == "1"
    # scores change only when the scoring job runs: until it has, the stored figures stand
    db.session.get(CurrentScore, member.id).risk_band = "low"
    db.session.commit()
    assert figure(staff_client.get("/staff/").get_data(as_text=True), "at-risk") == "1"
    finished = utcnow() + timedelta(seconds=1)
    db.session.add(JobRun(job_name="engagement-scoring", holder="test", as_of=finished, started_at=finished,
                          finished_at=finished, status="ok", run_for=today))
    db.session.commit()
    assert figure(staff_client.get("/staff/").get_data(as_text=True), "at-risk") == "0"


# ---------------------------------------------------------------- access, CSP, chart data


def test_page_is_for_staff_only(client, make_user):
    response = client.get("/staff/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    member = make_user("member", email="member-dash@example.org")
    assert login(client, member).status_code == 302
    assert client.get("/staff/").status_code == 403


def test_no_inline_script_and_chart_data_is_escaped_json(staff_client, make_member, make_plan, today):
    plan = make_plan(name="</script><script>alert(1)</script>", grace_days=30)
    member = make_member(joined_on=today - timedelta(10))
    add_term(member, plan, today - timedelta(10), today + timedelta(300))
    refresh_status(db.session, member, today=today, now=NOW)
    score(member, 3.0, "drifting", "high", 0.9)
    db.session.commit()
    response = staff_client.get("/staff/")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    page = response.get_data(as_text=True)
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", page, re.S)
    assert len(scripts) >= 3
    for attrs, body in scripts:
        assert "src=" in attrs and body.strip() == "", attrs
    assert ' style="' not in page and "<style" not in page
    assert '/static/vendor/chartjs/chart.umd.min.js' in page and '/static/dashboard.js' in page
    assert "<script>alert(1)" not in page
    raw = re.search(r"<div id=\"dashboard-data\" hidden data-charts='([^']*)' data-labels='[^']*'></div>", page).group(1)
    assert "<" not in raw and "&" not in raw
    data = json.loads(html.unescape(raw))
    assert data["risk"]["plans"] == ["</script><script>alert(1)</script>"] and data["risk"]["high"] == [1]
    assert len(data["months"]) == 24 and data["engagement"]["counts"] == [0, 0, 1, 0]
    assert set(data["status"]) == {"active", "grace", "former"}
    # the tables behind the charts
    for table_id in ("table-status", "table-renewals", "table-engagement", "table-risk"):
        assert f'id="{table_id}"' in page


def test_static_files_are_served(client):
    for path in ("/static/vendor/chartjs/chart.umd.min.js", "/static/dashboard.js"):
        response = client.get(path)
        assert response.status_code == 200
        response.close()


def test_empty_database(staff_client):
    page = staff_client.get("/staff/").get_data(as_text=True)
    assert figure(page, "current") == "0"
    assert figure(page, "renewal") == "–" and figure(page, "engagement") == "–"
