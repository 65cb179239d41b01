"""The engagement settings: defaults, saving, validation, and their effect on the job."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from membership.core.errors import ValidationError
from membership.engagement.settings import DEFAULT_BANDS, DEFAULT_WEIGHTS, get_settings, save_settings
from membership.extensions import db

NOW = datetime(2026, 6, 15, tzinfo=timezone.utc)


def test_defaults(app):
    s = get_settings(db.session)
    assert s.half_life_days == 90 and s.weights == DEFAULT_WEIGHTS and s.bands == DEFAULT_BANDS
    assert s.weights["event_attended"] == 10 and s.weights["email_opened"] == 1 and s.weights["status_changed"] == 0


def test_save_and_read_back(app, admin_user):
    save_settings(db.session, {"weights": {"event_attended": 12, "logged_in": "0.5"}, "half_life_days": "180",
                               "bands": {"highly_engaged": 50}}, actor=admin_user, now=NOW)
    db.session.commit()
    s = get_settings(db.session)
    assert s.weights["event_attended"] == 12 and s.weights["logged_in"] == 0.5 and s.weights["renewed"] == 8
    assert s.half_life_days == 180 and s.bands["highly_engaged"] == 50 and s.bands["engaged"] == 15


@pytest.mark.parametrize("values,field", [
    ({"weights": {"event_attended": -1}}, "weights.event_attended"),
    ({"weights": {"dancing": 1}}, "weights.dancing"),
    ({"weights": {"logged_in": "lots"}}, "weights.logged_in"),
    ({"half_life_days": 0}, "half_life_days"),
    ({"half_life_days": 3651}, "half_life_days"),
    ({"half_life_days": "nan"}, "half_life_days"),
    ({"bands": {"engaged": 50}}, "bands.engaged"),
])
def test_validation_names_the_field(app, values, field):
    with pytest.raises(ValidationError) as e:
        save_settings(db.session, values, actor=None, now=NOW)
    assert e.value.field == field
    db.session.rollback()
    assert get_settings(db.session).half_life_days == 90


def test_the_admin_page_edits_the_settings(admin_client):
    page = admin_client.get("/staff/admin/engagement")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'name="weights.event_attended"' in html and 'value="90.0"' in html
    assert "transparent default model" in html

    bad = admin_client.post("/staff/admin/engagement", data={"half_life_days": "0", "weights.event_attended": "12"})
    assert bad.status_code == 422
    html = bad.get_data(as_text=True)
    assert "The half-life is between 1 and 3650 days." in html and 'value="0"' in html
    assert get_settings(db.session).half_life_days == 90

    ok = admin_client.post("/staff/admin/engagement", data={"half_life_days": "120", "weights.event_attended": "12",
                                                            "bands.drifting": "2"})
    assert ok.status_code == 302
    s = get_settings(db.session)
    assert s.half_life_days == 120 and s.weights["event_attended"] == 12 and s.bands["drifting"] == 2


def test_staff_cannot_change_the_settings(staff_client):
    assert staff_client.get("/staff/admin/engagement").status_code in (302, 403)
    assert staff_client.post("/staff/admin/engagement", data={"half_life_days": "5"}).status_code in (302, 403)
    assert get_settings(db.session).half_life_days == 90
