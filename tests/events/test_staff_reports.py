"""Staff reports: one event and a period, against a hand-made scenario; the CSV export."""
from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from sqlalchemy import select

from membership.core.models import AuditLog
from membership.core.time import local_today, to_local, utcnow
from membership.events import services as events
from membership.extensions import db
from tests.events.test_staff_events import section, text_of


@pytest.fixture
def scenario(make_event, make_member, make_term, make_plan):
    """Capacity 3: two current members (price 100.00) and a guest (200.00) hold the seats, a fourth
    person waits, a fifth cancelled. Two checked in, one no-show. 100.00 + 50.00 received.
    Feedback: 4 (would recommend) and 5 (would not)."""
    plan = make_plan(name="Standard", code="STD", fee_minor=50000)
    start = utcnow() + timedelta(hours=2)
    event = make_event(title="Science fair", starts_at=start, capacity=3, member_price_minor=10000,
                       non_member_price_minor=20000)

    def member(first):
        m = make_member(first_name=first)
        day = local_today() - timedelta(days=30)
        make_term(m, plan, starts_on=day, today=day)
        return m

    now = utcnow()
    quitter = events.register_member(db.session, event, member("Quinn"), now=now, actor=None)
    events.cancel_registration(db.session, quitter, now=now, actor=None, by="staff")
    a = events.register_member(db.session, event, member("Asha"), now=now, actor=None)
    b = events.register_member(db.session, event, member("Babu"), now=now, actor=None)
    g = events.register_guest(db.session, event, name="Gopal Guest", email="gopal@example.org", now=now,
                              actor=None, source="staff", confirmed_email=True)
    w = events.register_member(db.session, event, member("Wahid"), now=now, actor=None)
    assert (a.status, b.status, g.status, w.status) == ("confirmed", "confirmed", "confirmed", "waitlisted")
    events.record_registration_payment(db.session, a, amount_minor=10000, method="cash", received_at=now,
                                       reference=None, now=now, actor=None)
    events.record_registration_payment(db.session, g, amount_minor=5000, method="cash", received_at=now,
                                       reference=None, now=now, actor=None)
    events.check_in(db.session, a, now=start, actor=None)
    events.check_in(db.session, g, now=start, actor=None)
    events.finish_event(db.session, event, now=start + timedelta(hours=3))
    events.submit_feedback(db.session, a, rating=4, would_recommend=True, comment="Great", now=start + timedelta(hours=4))
    events.submit_feedback(db.session, g, rating=5, would_recommend=False, comment=None, now=start + timedelta(hours=4))
    db.session.commit()
    return event


def test_event_report_figures_match_the_scenario(staff_client, scenario):
    report = events.event_report(db.session, scenario)
    assert (report.registrations, report.confirmed, report.waitlisted, report.cancelled) == (4, 3, 1, 1)
    assert (report.attended, report.no_shows) == (2, 1)
    assert report.revenue_minor == 15000

    figures = section(staff_client.get(f"/staff/events/{scenario.id}/report"), "figures")
    assert "Registrations 4" in figures
    assert "Waitlist 1" in figures
    assert "Attended 2" in figures and "No-shows 1" in figures
    assert "Attendance rate 67%" in figures and "No-show rate 33%" in figures
    assert "150.00" in figures
    assert "Members / non-members 67% / 33%" in figures
    assert "4.5 / 5 (2 answers)" in figures
    assert "Would recommend 50%" in figures
    assert "Great" in text_of(staff_client.get(f"/staff/events/{scenario.id}/report"))


def period_args(event):
    day = to_local(event.starts_at).date()
    return f"from={(day - timedelta(days=1)).isoformat()}&to={day.isoformat()}"


def test_period_report(staff_client, scenario, make_event):
    make_event(title="Draft idea", status="draft", starts_at=scenario.starts_at + timedelta(hours=1))
    make_event(title="Next year's fair", starts_at=scenario.starts_at + timedelta(days=400))
    db.session.commit()
    response = staff_client.get(f"/staff/events/reports?{period_args(scenario)}")
    assert response.status_code == 200
    text = text_of(response)
    assert "Science fair" in text and "Draft idea" not in text and "Next year" not in text
    body = response.get_data(as_text=True)
    assert 'data-total="events">1<' in body
    assert 'data-total="registrations">4<' in body
    assert 'data-total="attendance_rate">67%<' in body
    assert 'data-total="no_show_rate">33%<' in body
    assert 'data-total="feedback">4.5 / 5<' in body


def test_period_defaults_to_the_last_twelve_months_and_bad_dates_are_reported(staff_client):
    text = text_of(staff_client.get("/staff/events/reports"))
    today = local_today()
    assert today.strftime("%d %b %Y") in text
    response = staff_client.get("/staff/events/reports?from=2026-13-01&to=yesterday")
    assert response.status_code == 200 and "use a date like" in text_of(response)
    response = staff_client.get("/staff/events/reports?from=2026-06-01&to=2026-01-01")
    assert "swapped" in text_of(response)


def test_csv_export_is_formula_safe_utf8_with_bom_and_audited(staff_client, scenario):
    scenario.title = "=HYPERLINK(\"http://evil.example\")"
    db.session.commit()
    response = staff_client.get(f"/staff/events/reports.csv?{period_args(scenario)}")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    raw = response.data
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    header, row = rows[0], rows[1]
    assert len(rows) == 2
    record = dict(zip(header, row))
    assert record["title"].startswith("'=")
    assert record["registrations"] == "4" and record["attended"] == "2" and record["no_shows"] == "1"
    assert record["revenue"] == "150.00"
    assert record["attendance_rate"] == "0.667" and record["member_share"] == "0.667"
    assert record["feedback_average"] == "4.50"
    audit = db.session.scalars(select(AuditLog).where(AuditLog.action == "event.report_export")).one()
    assert audit.changes["count"] == 1
