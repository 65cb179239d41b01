"""Staff home: figures checked against hand counts on a small data set built around the real
local day (the page asks local_today(), so the data is relative to it)."""
from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from sqlalchemy import event

from membership.core.time import local_today, utcnow
from membership.extensions import db
from membership.members.services import add_interaction, save_organization
from membership.plans.services import PaymentInput, cancel, record_payment, refresh_status
from tests.conftest import NOW


@pytest.fixture
def today(app):
    return local_today()


@pytest.fixture
def member_ending(make_member, make_term, make_plan, today):
    """A member whose (free, paid-up) term ends on a given day, status as of today."""
    plan = make_plan(name="Standard", fee_minor=0, grace_days=30)

    def make(ends_on, **kw):
        member = make_member(**kw)
        term = make_term(member, plan, starts_on=today - timedelta(days=200), today=today)
        term.ends_on = ends_on
        refresh_status(db.session, member, today=today, now=NOW)
        db.session.flush()
        return member
    return make


def figure(page: str, status: str) -> int:
    match = re.search(rf'data-status="{status}">([\d,]+)<', page)
    assert match, f"no figure for {status}"
    return int(match.group(1).replace(",", ""))


def section(page: str, table_id: str) -> str:
    match = re.search(rf'<table[^>]*id="{table_id}".*?</table>', page, re.S)
    return match.group(0) if match else ""


@pytest.fixture
def data_set(make_member, make_plan, make_term, member_ending, today):
    """Hand-counted: active 4, grace 1, lapsed 1, pending 1, cancelled 1, none 2; renewals due 3;
    one erased member that must not count anywhere."""
    m = {}
    m["due5"] = member_ending(today + timedelta(days=5), first_name="Due", last_name="Five")
    m["due0"] = member_ending(today, first_name="Due", last_name="Today")
    m["due30"] = member_ending(today + timedelta(days=30), first_name="Due", last_name="Thirty")
    m["later"] = member_ending(today + timedelta(days=31), first_name="Not", last_name="Yet")
    m["grace"] = member_ending(today - timedelta(days=3), first_name="In", last_name="Grace")
    m["lapsed"] = member_ending(today - timedelta(days=60), first_name="Long", last_name="Gone")
    paid_plan = make_plan(name="Paid", fee_minor=5000)
    m["pending"] = make_member(first_name="Waiting", last_name="Payment")
    # Pending, with a term that would end inside the window: not a renewal (not yet a member).
    make_term(m["pending"], paid_plan, starts_on=today - timedelta(days=355), today=today, paid=False)
    m["cancelled"] = make_member(first_name="Gave", last_name="Up")
    term = make_term(m["cancelled"], paid_plan, starts_on=today - timedelta(days=10), today=today)
    cancel(db.session, term, on=today, reason="moved abroad", today=today, now=NOW, actor=None)
    m["none1"] = make_member(first_name="No", last_name="Term")
    m["none2"] = make_member(first_name="Also", last_name="None")
    m["erased"] = member_ending(today + timedelta(days=2), first_name="Erased", last_name="Person")
    m["erased"].erased_at = NOW
    # Joins this month: two (today, the 1st); one the day before the 1st; the erased one is not counted.
    m["none1"].joined_on = today
    m["none2"].joined_on = today.replace(day=1)
    m["lapsed"].joined_on = today.replace(day=1) - timedelta(days=1)
    m["erased"].joined_on = today
    db.session.commit()
    return m


def test_status_figures_match_hand_counts(staff_client, data_set):
    page = staff_client.get("/staff/").get_data(as_text=True)
    assert {s: figure(page, s) for s in ("active", "grace", "pending", "lapsed", "cancelled", "none")} == {
        "active": 4, "grace": 1, "pending": 1, "lapsed": 1, "cancelled": 1, "none": 2}
    assert "(10 in all)" in page
    # Each figure links to the member list filtered by that status.
    assert 'href="/staff/members?status=grace"' in page


def test_status_link_lists_the_counted_members(staff_client, data_set):
    page = staff_client.get("/staff/members?status=active").get_data(as_text=True)
    assert "4 members" in page
    for key in ("due5", "due0", "due30", "later"):
        assert data_set[key].member_number in page


def test_new_members_this_month(staff_client, data_set, today):
    page = staff_client.get("/staff/").get_data(as_text=True)
    assert re.search(r'id="new-this-month">2<', page)
    first = today.replace(day=1)
    link = re.search(r'href="(/staff/members\?[^"]*joined_from=[^"]*)"', page).group(1)
    link = html.unescape(link)
    assert f"joined_from={first.isoformat()}" in link
    listed = staff_client.get(link).get_data(as_text=True)
    assert "2 members" in listed
    assert data_set["none1"].member_number in listed and data_set["none2"].member_number in listed
    assert data_set["lapsed"].member_number not in listed


def test_renewals_due_in_the_next_30_days(staff_client, data_set, today):
    page = staff_client.get("/staff/").get_data(as_text=True)
    assert re.search(r'id="renewals-count">3<', page)
    table = section(page, "renewals")
    # Soonest first, with plan, expiry and days left.
    order = [table.index(data_set[k].full_name) for k in ("due0", "due5", "due30")]
    assert order == sorted(order)
    for key in ("later", "grace", "pending", "erased", "lapsed"):
        assert data_set[key].full_name not in table
    assert "Standard" in table
    assert (today + timedelta(days=5)).strftime("%d %b %Y") in table
    assert re.search(r">\s*5\s*</td>", table) and re.search(r">\s*30\s*</td>", table) and "today" in table
    # The "See all" link lists the same members, sorted by expiry.
    link = html.unescape(re.search(r'href="(/staff/members\?[^"]*expires_from=[^"]*)"', page).group(1))
    assert "sort=expires" in link and "status=active" in link and "status=grace" in link
    listed = staff_client.get(link).get_data(as_text=True)
    assert "3 members" in listed
    positions = [listed.index(data_set[k].member_number) for k in ("due0", "due5", "due30")]
    assert positions == sorted(positions)


def test_renewals_list_shows_the_ten_soonest(staff_client, member_ending, today):
    due = [member_ending(today + timedelta(days=i + 1), last_name=f"Soon{i:02d}") for i in range(12)]
    db.session.commit()
    page = staff_client.get("/staff/").get_data(as_text=True)
    table = section(page, "renewals")
    assert re.search(r'id="renewals-count">12<', page)
    assert all(m.full_name in table for m in due[:10])
    assert due[10].full_name not in table and due[11].full_name not in table
    assert "2 more, sorted by expiry" in page


def test_recent_payments_newest_ten(staff_client, make_member, today):
    members = [make_member(first_name="Payer", last_name=f"N{i:02d}") for i in range(11)]
    payments = []
    for i, m in enumerate(members):
        payments.append(record_payment(
            db.session, PaymentInput(amount_minor=1000 * (i + 1), method="bank_transfer",
                                     received_at=NOW + timedelta(minutes=i)),
            actor=None, now=utcnow(), member=m, currency="BDT"))
    org = save_organization(db.session, {"name": "Acme <Textiles>"}, actor=None, now=NOW)
    payments.append(record_payment(db.session, PaymentInput(amount_minor=250000, method="cheque",
                                                            received_at=NOW + timedelta(hours=1)),
                                   actor=None, now=utcnow(), organization=org, currency="BDT"))
    db.session.commit()
    page = staff_client.get("/staff/").get_data(as_text=True)
    table = section(page, "payments")
    newest = list(reversed(payments))[:10]
    for p in newest:
        assert f'href="/staff/payments/{p.id}/receipt">{p.receipt_number}</a>' in table
    for p in payments[:2]:
        assert p.receipt_number not in table
    # Newest first: the organisation's cheque, then the latest member payment.
    assert table.index(payments[-1].receipt_number) < table.index(payments[-2].receipt_number)
    assert "Acme &lt;Textiles&gt;" in table and "Cheque" in table and "Bank transfer" in table
    assert "2,500.00" in table
    assert members[10].full_name in table


def test_follow_ups_due(staff_client, make_member, today):
    m = make_member(first_name="Follow", last_name="Up")
    when = utcnow() - timedelta(days=1)
    for days, summary in ((-1, "due yesterday"), (0, "due today"), (1, "due tomorrow"), (-31, "too old"),
                          (None, "no follow-up")):
        add_interaction(db.session, m, channel="call", summary=summary, outcome=None,
                        follow_up_on=None if days is None else today + timedelta(days=days),
                        occurred_at=when, actor=None, now=utcnow())
    db.session.commit()
    page = staff_client.get("/staff/").get_data(as_text=True)
    table = section(page, "follow-ups")
    assert "due yesterday" in table and "due today" in table
    assert "due tomorrow" not in table and "too old" not in table and "no follow-up" not in table
    assert re.search(r'id="follow-ups-count">2<', page)
    assert table.index("due yesterday") < table.index("due today")


def test_empty_database(staff_client):
    response = staff_client.get("/staff/")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert figure(page, "active") == 0
    assert "No memberships end in the next 30 days." in page
    assert "No payments recorded yet." in page


def _statements_for(client, url) -> int:
    count = 0

    def on_execute(*args, **kwargs):
        nonlocal count
        count += 1
    # The test shares the request's session: start from nothing cached, as a real request does.
    db.session.commit()
    event.listen(db.engine, "before_cursor_execute", on_execute)
    try:
        assert client.get(url).status_code == 200
    finally:
        event.remove(db.engine, "before_cursor_execute", on_execute)
    return count


def test_query_count_does_not_grow_with_rows(staff_client, member_ending, make_member, today):
    def add(n):
        for i in range(n):
            m = member_ending(today + timedelta(days=i % 20))
            record_payment(db.session, PaymentInput(amount_minor=100, method="cash", received_at=NOW),
                           actor=None, now=utcnow(), member=m, currency="BDT")
            add_interaction(db.session, m, channel="call", summary="call", outcome=None, follow_up_on=today,
                            occurred_at=utcnow() - timedelta(hours=1), actor=None, now=utcnow())
        db.session.commit()
    add(2)
    # Without the daily job's snapshot, the first view of the day computes it (one streamed pass
    # over all terms, see membership.engagement.dashboard) and keeps it; compare later views.
    assert staff_client.get("/staff/").status_code == 200
    small = _statements_for(staff_client, "/staff/")
    add(15)
    assert _statements_for(staff_client, "/staff/") == small
