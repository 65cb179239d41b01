"""`flask demo`: realistic demo data made by the domain functions, walking time forward.

One demo is loaded per module (it takes a second or two) and the read-only checks share it; the
tests that need an empty database come first, since the `app` fixture empties every table after
each test.
"""
from __future__ import annotations

import re
import unicodedata
from collections import defaultdict

import phonenumbers
import pytest
from sqlalchemy import func, select

from membership import create_app
from membership.extensions import db
from membership.members.models import Interaction, Member, Organization
from membership.plans.models import Membership, Payment, Plan
from membership.plans.services import refresh_status
from tests.conftest import NOW, TODAY, _empty_all_tables

DEMO = ["demo", "--members", "40", "--seed", "7", "--today", TODAY.isoformat()]


def _bengali(text: str) -> bool:
    return any("BENGALI" in unicodedata.name(ch, "") for ch in text)


def test_refuses_a_database_with_plans_of_its_own(app, make_plan):
    make_plan(code="IND")
    db.session.commit()
    result = app.test_cli_runner().invoke(args=DEMO)
    assert result.exit_code != 0 and "empty database" in result.output
    assert db.session.scalar(select(func.count()).select_from(Member)) == 0


def test_refuses_a_day_in_the_future(app):
    result = app.test_cli_runner().invoke(args=["demo", "--today", "2999-01-01"])
    assert result.exit_code != 0 and "future" in result.output
    assert db.session.scalar(select(func.count()).select_from(Plan)) == 0


def test_says_what_to_do_on_a_database_without_tables(tmp_path):
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'new.db'}",
                      "SECRET_KEY": "test-secret", "INSTANCE_PATH": str(tmp_path / "instance")})
    with app.app_context():
        result = app.test_cli_runner().invoke(args=DEMO)
        db.engine.dispose()
    assert result.exit_code != 0 and "db upgrade" in result.output


@pytest.fixture(scope="module")
def demo_app(db_url, tmp_path_factory):
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": db_url, "SECRET_KEY": "test-secret",
                      "TIMEZONE": "Asia/Dhaka", "CURRENCY": "BDT", "PHONE_REGION": "BD",
                      "INSTANCE_PATH": str(tmp_path_factory.mktemp("demo-instance")), "MAIL_URL": "memory://"})
    with app.app_context():
        result = app.test_cli_runner().invoke(args=DEMO)
        yield app, result
        db.session.rollback()
        _empty_all_tables()
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def demo(demo_app):
    app, result = demo_app
    assert result.exit_code == 0, result.output
    yield result
    db.session.rollback()


def test_demo_reports_what_it_made(demo):
    assert "Demo data: 40 members" in demo.output
    assert db.session.scalar(select(func.count()).select_from(Member)) == 40
    assert {p.code for p in db.session.scalars(select(Plan))} == {"IND", "STU", "CAL", "LIFE", "CORP"}


def test_history_queues_no_email(demo):
    from membership.notifications.models import OutboxMessage

    # Three years of welcomes and receipts would have gone out at the time, not now.
    assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == 0


def test_events_past_and_upcoming_with_attendance(demo):
    from membership.core.models import Activity
    from membership.events.models import Event, EventRegistration

    events = db.session.scalars(select(Event).order_by(Event.starts_at)).all()
    past = [e for e in events if e.status == "finished"]
    upcoming = [e for e in events if e.status == "published"]
    assert len(past) >= 6 and len(upcoming) == 3 and all(e.starts_at > NOW for e in upcoming)
    assert re.search(r"\d+ events with \d+ registrations", demo.output)
    counts = dict(db.session.execute(select(EventRegistration.status, func.count())
                                     .group_by(EventRegistration.status)).all())
    assert counts.get("attended", 0) > counts.get("no_show", 0) > 0
    assert counts.get("confirmed", 0) > 0  # registered for an upcoming event
    # every registration counted as an activity, at the moment it happened (before the event)
    kinds = dict(db.session.execute(select(Activity.kind, func.count()).where(Activity.kind.like("event_%"))
                                    .group_by(Activity.kind)).all())
    assert kinds["event_registered"] == sum(counts.values())
    assert kinds["event_attended"] == counts["attended"] and kinds["event_no_show"] == counts["no_show"]
    # members-only events took only members who were current on the day they registered
    from membership.events.services import _is_current
    members_only = db.session.scalars(select(EventRegistration).join(Event).where(Event.members_only.is_(True))).all()
    assert members_only
    for registration in members_only:
        assert _is_current(db.session, registration.member, registration.registered_at)
        assert registration.registered_at < registration.event.starts_at
    # no seat over capacity
    assert all(e.capacity is None or e.seats_taken <= e.capacity for e in events)


def test_every_status_is_present(demo):
    statuses = set(db.session.scalars(select(Member.status)))
    assert {"active", "grace", "lapsed", "cancelled", "pending"} <= statuses
    # An early renewal: a current member whose next term starts later.
    upcoming = db.session.scalars(select(Membership).where(Membership.status == "upcoming")).all()
    assert any(t.member is not None and t.member.status == "active" for t in upcoming)
    # Overrides with their reason, still in force on the demo's today.
    overrides = db.session.scalars(select(Membership).where(Membership.override_status.is_not(None))).all()
    assert overrides and all(t.override_reason and t.override_until >= TODAY for t in overrides)
    # A renewal after a lapse: the new term starts well after the old one ended (a visible gap).
    gaps = [t for t in db.session.scalars(select(Membership).where(Membership.renews_id.is_not(None)))
            if t.renews.ends_on and (t.starts_on - t.renews.ends_on).days > t.renews.grace_days]
    assert gaps


def test_cached_statuses_are_what_the_domain_computes(demo):
    for member in db.session.scalars(select(Member)):
        assert not refresh_status(db.session, member, today=TODAY, now=NOW), member


def test_names_in_english_and_bengali(demo):
    names = [f"{m.first_name} {m.last_name}" for m in db.session.scalars(select(Member))]
    bengali = [n for n in names if _bengali(n)]
    assert 5 <= len(bengali) <= 30, bengali
    assert any(re.fullmatch(r"[A-Za-z.' -]+", n) for n in names)


def test_phones_and_emails_are_valid(demo):
    rows = db.session.execute(select(Member.phone, Member.email)).all()
    phones = [p for p, _ in rows if p]
    assert len(phones) >= 30
    for phone in phones:
        number = phonenumbers.parse(phone, None)
        assert phonenumbers.is_valid_number(number) and phone.startswith("+8801"), phone
    emails = [e for _, e in rows if e]
    assert len(emails) == len(set(emails)) >= 30


def test_receipts_are_gap_free_and_in_order_per_year(demo):
    by_year = defaultdict(list)
    for number, received_at in db.session.execute(select(Payment.receipt_number, Payment.received_at)):
        year, seq = re.fullmatch(r"R-(\d{4})-(\d{5})", number).groups()
        assert received_at.year in (int(year), int(year) - 1)  # local year (Dhaka is UTC+6)
        by_year[year].append((int(seq), received_at))
    assert len(by_year) >= 3  # three years of history
    for year, rows in by_year.items():
        rows.sort()
        assert [seq for seq, _ in rows] == list(range(1, len(rows) + 1)), year
        assert [at for _, at in rows] == sorted(at for _, at in rows), year


def test_payments_match_their_terms(demo):
    for term in db.session.scalars(select(Membership).where(Membership.awaiting_payment.is_(False),
                                                            Membership.fee_minor > 0)):
        assert sum(p.amount_minor for p in term.payments) >= term.fee_minor, term


def test_organisations_have_contacts_and_one_primary(demo):
    orgs = db.session.scalars(select(Organization)).all()
    assert len(orgs) >= 2
    for org in orgs:
        assert 2 <= len(org.contacts) <= 5
        assert sum(c.is_primary_contact for c in org.contacts) == 1
        assert db.session.scalar(select(func.count()).select_from(Membership)
                                 .where(Membership.organization_id == org.id)) >= 1
        # Contacts take their status from the organisation's membership.
        assert {c.status for c in org.contacts} == {org.status}


def test_interactions_are_logged_by_staff(demo):
    interactions = db.session.scalars(select(Interaction)).all()
    assert len(interactions) >= 10
    assert all(i.staff_id is not None and i.summary for i in interactions)
    assert {"call", "committee"} & {i.channel for i in interactions}


def test_running_twice_does_not_duplicate(demo_app, demo):
    app = demo_app[0]
    before = db.session.scalar(select(func.count()).select_from(Member))
    payments = db.session.scalar(select(func.count()).select_from(Payment))
    result = app.test_cli_runner().invoke(args=DEMO)
    assert result.exit_code != 0
    assert "already has 40 members" in result.output
    assert db.session.scalar(select(func.count()).select_from(Member)) == before
    assert db.session.scalar(select(func.count()).select_from(Payment)) == payments


def test_same_seed_same_data(demo_app, demo):  # last: it loads the demo again
    app = demo_app[0]

    def fingerprint():
        return db.session.execute(select(Member.member_number, Member.first_name, Member.last_name, Member.email,
                                         Member.status, Member.expires_on).order_by(Member.id)).all()

    first = fingerprint()
    db.session.remove()
    _empty_all_tables()
    result = app.test_cli_runner().invoke(args=DEMO)
    assert result.exit_code == 0, result.output
    assert fingerprint() == first

