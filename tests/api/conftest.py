"""API fixtures: tokens of each scope and a small data set (members, a term with its payment, an
event with a registration)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from membership.api import tokens
from membership.extensions import db
from tests.conftest import NOW


@pytest.fixture
def make_token(app, admin_user):
    def make(scopes=("read", "write"), owner=None, **kw):
        token, secret = tokens.create_token(db.session, name=f"test {'+'.join(scopes)}", scopes=scopes,
                                            owner=owner or admin_user, actor=admin_user,
                                            now=datetime.now(timezone.utc), **kw)
        db.session.commit()
        return token, secret
    return make


def bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def rw(make_token):
    return bearer(make_token(("read", "write"))[1])


@pytest.fixture
def ro(make_token):
    return bearer(make_token(("read",))[1])


@pytest.fixture
def wo(make_token):
    return bearer(make_token(("write",))[1])


@pytest.fixture
def api_data(app, make_member, make_plan, make_term):
    """Three members (one with a paid term), a published event with one registration."""
    from membership.events.models import Event, EventRegistration

    plan = make_plan(code="STD", name="Standard", fee_minor=150000)
    a = make_member(first_name="Rahim", last_name="Uddin", email="rahim@example.org", external_id="crm-1")
    b = make_member(first_name="Karim", last_name="Ahmed", email="karim@example.org")
    c = make_member(first_name="সাকিব", last_name="হাসান", email="sakib@example.org")
    term = make_term(a, plan)
    starts = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=10)
    event = Event(title="AGM", starts_at=starts, ends_at=starts + timedelta(hours=2), capacity=50,
                  waitlist_enabled=True, members_only=False, member_price_minor=0, non_member_price_minor=0,
                  currency="BDT", status="published", published_at=NOW, created_at=NOW, updated_at=NOW)
    db.session.add(event)
    db.session.flush()
    reg = EventRegistration(event_id=event.id, member_id=b.id, person_key=f"member:{b.id}", status="confirmed",
                            source="staff", price_minor=0, currency="BDT", registered_at=NOW, confirmed_at=NOW)
    db.session.add(reg)
    event.seats_taken = 1
    db.session.commit()
    return {"plan": plan, "members": [a, b, c], "term": term, "payment": term.payments[0], "event": event,
            "registration": reg}
