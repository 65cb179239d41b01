"""Helpers of the campaign tests: members of every kind a campaign meets, and a campaign factory."""
from __future__ import annotations

import pytest

from membership.campaigns import services
from membership.extensions import db
from tests.conftest import NOW

EN = services.VersionText("News for {{ member.first_name }}", "Hello {{ member.first_name }},\nOur news.\n",
                          '<p>Hello {{ member.first_name }}</p><p><a href="http://127.0.0.1:5000/events/">Events</a> '
                          '<a href="http://127.0.0.1:5000/my/">Portal</a></p>')
BN = services.VersionText("খবর {{ member.first_name }}", "প্রিয় {{ member.first_name }},\nআমাদের খবর।\n", "")


@pytest.fixture
def audience(make_member):
    """One member per audience case, by name: current members who opted in (en, bn), a current
    member who did not opt in, one who unsubscribed through a link, a bouncing one, one without an
    address, an erased one, and a lapsed member who opted in."""
    from membership.notifications.unsubscribe import unsubscribe

    def current(**kw):
        member = make_member(**kw)
        member.status = "active"
        return member

    people = {
        "opted_in": current(first_name="Optin", marketing_opt_in=True),
        "opted_in_bn": current(first_name="Bangla", marketing_opt_in=True, language="bn"),
        "no_opt_in": current(first_name="Nooptin", marketing_opt_in=False),
        "unsubscribed": current(first_name="Unsub", marketing_opt_in=True),
        "bouncing": current(first_name="Bounce", marketing_opt_in=True),
        "no_email": current(first_name="Noemail", email=None, marketing_opt_in=True),
        "erased": current(first_name="Erased", marketing_opt_in=True),
        "lapsed": make_member(first_name="Lapsed", marketing_opt_in=True),
    }
    people["lapsed"].status = "lapsed"
    people["bouncing"].email_bouncing = True
    unsubscribe(db.session, people["unsubscribed"], now=NOW, via="test")
    from membership.privacy.erasure import erase_member
    from tests.conftest import TODAY
    erase_member(db.session, people["erased"], now=NOW, today=TODAY, actor=None)
    db.session.commit()
    return people


@pytest.fixture
def make_campaign(app, staff_user):
    def make(*, kind="marketing", filters=None, name="June news", en=EN, bn=None):
        versions = {"en": en}
        if bn is not None:
            versions["bn"] = bn
        campaign = services.save_campaign(db.session, None, name=name, kind=kind, filters=filters or {},
                                          versions=versions, actor=staff_user, now=NOW)
        db.session.commit()
        return campaign
    return make
