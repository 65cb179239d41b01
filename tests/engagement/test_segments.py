"""Saved segments: save from the member list, list with counts, open, export, rename, delete (issue 6)."""
from __future__ import annotations

import html

from sqlalchemy import select

from membership.core.models import AuditLog
from membership.engagement.models import CurrentScore, Segment
from membership.extensions import db
from tests.conftest import TODAY


def page_text(response):
    return html.unescape(response.get_data(as_text=True))


def scored(make_member, band, n):
    for i in range(n):
        m = make_member(first_name=f"{band.title()}{i}")
        db.session.add(CurrentScore(member_id=m.id, scored_on=TODAY, engagement=1.0, engagement_band=band))
    db.session.commit()


def test_save_open_count_rename_delete(staff_client, make_member):
    scored(make_member, "dormant", 3)
    scored(make_member, "engaged", 2)
    list_page = staff_client.get("/staff/members?engagement=dormant").get_data(as_text=True)
    assert 'id="save-segment"' in list_page
    response = staff_client.post("/staff/segments/new?engagement=dormant", data={"name": "  Sleeping  members "})
    assert response.status_code == 302
    seg = db.session.scalar(select(Segment))
    assert seg.name == "Sleeping members" and seg.filters["engagement"] == ["dormant"]
    assert response.headers["Location"].endswith(f"/staff/members?segment={seg.id}")
    opened = page_text(staff_client.get(f"/staff/members?segment={seg.id}"))
    assert "3 members" in opened

    listing = staff_client.get("/staff/segments").get_data(as_text=True)
    assert "Sleeping members" in listing and 'class="text-end segment-count">3<' in listing
    assert f"/staff/members?segment={seg.id}" in listing and f"/staff/members/export?segment={seg.id}" in listing
    # counts follow the members
    scored(make_member, "dormant", 1)
    assert 'class="text-end segment-count">4<' in staff_client.get("/staff/segments").get_data(as_text=True)

    csv_text = staff_client.get(f"/staff/members/export?segment={seg.id}").get_data(as_text=True)
    assert len(csv_text.strip().splitlines()) == 1 + 4

    assert staff_client.post(f"/staff/segments/{seg.id}/rename", data={"name": "Dormant"}).status_code == 302
    db.session.expire_all()
    assert db.session.get(Segment, seg.id).name == "Dormant"
    assert staff_client.post(f"/staff/segments/{seg.id}/delete").status_code == 302
    assert db.session.scalar(select(Segment)) is None
    actions = sorted(db.session.scalars(select(AuditLog.action).where(AuditLog.action.like("segment.%"))))
    assert actions == ["segment.create", "segment.delete", "segment.rename"]


def test_duplicate_names_are_refused_clearly(staff_client, make_member):
    staff_client.post("/staff/segments/new?risk=high", data={"name": "At risk"})
    response = staff_client.post("/staff/segments/new?risk=medium", data={"name": "at RISK"}, follow_redirects=True)
    assert "A segment called “at RISK” exists already: choose another name." in page_text(response)
    assert len(db.session.scalars(select(Segment)).all()) == 1
    staff_client.post("/staff/segments/new?risk=medium", data={"name": "Medium"})
    medium = db.session.scalar(select(Segment).where(Segment.name == "Medium"))
    response = staff_client.post(f"/staff/segments/{medium.id}/rename", data={"name": "At risk"},
                                 follow_redirects=True)
    assert "exists already" in page_text(response)
    db.session.expire_all()
    assert db.session.get(Segment, medium.id).name == "Medium"


def test_an_empty_name_is_refused(staff_client):
    response = staff_client.post("/staff/segments/new?risk=high", data={"name": "   "}, follow_redirects=True)
    assert "Segment not saved" in page_text(response)
    assert db.session.scalar(select(Segment)) is None


def test_unknown_segments_are_404(staff_client):
    assert staff_client.post("/staff/segments/999/rename", data={"name": "x"}).status_code == 404
    assert staff_client.post("/staff/segments/999/delete").status_code == 404


def test_a_segment_of_a_segment(staff_client, make_member):
    scored(make_member, "dormant", 2)
    staff_client.post("/staff/segments/new?engagement=dormant", data={"name": "Dormant"})
    inner = db.session.scalar(select(Segment))
    staff_client.post(f"/staff/segments/new?segment={inner.id}&q=dormant0", data={"name": "One of them"})
    outer = db.session.scalar(select(Segment).where(Segment.name == "One of them"))
    assert "1 member" in page_text(staff_client.get(f"/staff/members?segment={outer.id}"))
