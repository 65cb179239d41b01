"""The member directory: only listed current members, only what each chose to show, searchable by
name and shown organisation, paginated, never public."""
from __future__ import annotations

import html
from datetime import timedelta

import pytest
from sqlalchemy import select

from membership.core.models import Activity, AuditLog
from membership.core.time import local_today
from membership.extensions import db
from membership.members.services import add_contact, save_organization
from membership.plans.services import cancel
from tests.conftest import NOW, login


@pytest.fixture
def plan(make_plan):
    return make_plan(name="Standard", fee_minor=0, grace_days=30)


@pytest.fixture
def make_current(make_member, make_term, plan):
    """A member with a current (active) term, listed unless told otherwise."""
    def make(listed=True, **kw):
        member = make_member(directory_opt_in=listed, **kw)
        make_term(member, plan, starts_on=local_today() - timedelta(days=30), today=local_today())
        return member
    return make


@pytest.fixture
def viewer(make_current, make_user):
    member = make_current(first_name="Vera", last_name="Viewer", listed=False)
    user = make_user("member", email=member.email, member_id=member.id)
    db.session.commit()
    return member, user


@pytest.fixture
def viewer_client(client, viewer):
    assert login(client, viewer[1]).status_code == 302
    return client


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def test_only_listed_current_members_appear(viewer_client, make_current, make_member, make_term, make_plan, plan):
    make_current(first_name="Listed", last_name="Active")
    make_current(first_name="Not", last_name="Listed", listed=False)
    lapsed = make_member(first_name="Listed", last_name="Lapsed", directory_opt_in=True)
    make_term(lapsed, plan, starts_on=local_today() - timedelta(days=800), today=local_today())
    pending_plan_member = make_member(first_name="Listed", last_name="Pending", directory_opt_in=True)
    make_term(pending_plan_member, make_plan(fee_minor=5000), starts_on=local_today(), today=local_today(), paid=False)
    cancelled = make_current(first_name="Listed", last_name="Cancelled")
    cancel(db.session, cancelled_term(cancelled), on=local_today(), reason="left", today=local_today(), now=NOW,
           actor=None)
    erased = make_current(first_name="Listed", last_name="Erased")
    erased.erased_at = NOW
    db.session.commit()
    assert lapsed.status == "lapsed" and pending_plan_member.status == "pending"

    page = text(viewer_client.get("/my/directory"))
    assert "Listed Active" in page
    for hidden in ("Not Listed", "Listed Lapsed", "Listed Pending", "Listed Cancelled", "Listed Erased"):
        assert hidden not in page
    assert "1 member" in page


def cancelled_term(member):
    from membership.plans.services import latest_term
    return latest_term(db.session, member)


def test_each_member_shows_only_what_they_chose(viewer_client, make_current, staff_user):
    org = save_organization(db.session, {"name": "Dhaka Traders"}, actor=None, now=NOW)
    sharer = make_current(first_name="Sharer", last_name="One", email="sharer@example.org", phone="+8801712345678",
                          city="Sylhet", job_title="Treasurer")
    add_contact(db.session, org, sharer, primary=True, actor=None, now=NOW, today=local_today())
    sharer.directory_show_email = sharer.directory_show_organization = True
    private = make_current(first_name="Private", last_name="Two", email="private@example.org",
                           phone="+8801812345678", city="Khulna", job_title="Chair")
    add_contact(db.session, org, private, primary=False, actor=None, now=NOW, today=local_today())
    db.session.commit()

    page = text(viewer_client.get("/my/directory"))
    assert "Sharer One" in page and "Private Two" in page
    assert "sharer@example.org" in page and "Treasurer, Dhaka Traders" in page
    assert "Sylhet" not in page and "1712" not in page  # city and phone not chosen
    for secret in ("private@example.org", "Khulna", "1812", "Chair"):
        assert secret not in page
    assert page.count("Dhaka Traders") == 1


def test_phone_and_city_when_chosen(viewer_client, make_current):
    m = make_current(first_name="Phoebe", phone="+8801712345678", city="Sylhet")
    m.directory_show_phone = m.directory_show_city = True
    db.session.commit()
    page = text(viewer_client.get("/my/directory"))
    assert "+880 1712-345678" in page and 'href="tel:+8801712345678"' in page and "Sylhet" in page


def test_search_by_name_and_shown_organisation_only(viewer_client, make_current):
    org = save_organization(db.session, {"name": "Chittagong Weavers"}, actor=None, now=NOW)
    shows = make_current(first_name="Karim", last_name="Uddin", email="karim@example.org")
    hides = make_current(first_name="Salma", last_name="Begum", email="salma@example.org")
    for m in (shows, hides):
        add_contact(db.session, org, m, primary=m is shows, actor=None, now=NOW, today=local_today())
    shows.directory_show_organization = True
    make_current(first_name="রবীন্দ্রনাথ", last_name="ঠাকুর")
    db.session.commit()

    def names(q):
        return text(viewer_client.get("/my/directory", query_string={"q": q}))

    assert "Karim Uddin" in names("karim") and "Salma Begum" not in names("karim")
    assert "Salma Begum" in names("BEGUM")
    weavers = names("weavers")
    assert "Karim Uddin" in weavers and "Salma Begum" not in weavers  # Salma hides her organisation
    # Hidden fields are not searchable: an email finds nobody (nobody can test whether an address is a member's).
    assert "Salma Begum" not in names("salma@example.org") and "0 members" in names("salma@example.org")
    assert "রবীন্দ্রনাথ" in names("ঠাকুর")
    assert "Karim Uddin" in names("karim uddin") and "Karim Uddin" not in names("karim begum")
    for odd in ("%", "_", "\\", "a\x00b", "x" * 500):
        assert viewer_client.get("/my/directory", query_string={"q": odd}).status_code == 200


def test_the_directory_paginates(viewer_client, make_current):
    for i in range(30):
        make_current(first_name=f"Person{i:02d}", last_name=f"Zed{i:02d}")
    db.session.commit()
    first = text(viewer_client.get("/my/directory"))
    second = text(viewer_client.get("/my/directory?page=2"))
    assert "30 members" in first
    assert first.count("directory-card") == 24 and second.count("directory-card") == 6
    assert "Zed00" in first and "Zed29" in second and "Zed29" not in first
    assert viewer_client.get("/my/directory?page=99").status_code == 200


def test_never_public_and_not_for_staff(client, staff_user):
    response = client.get("/my/directory")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    assert client.get("/my/directory/settings").status_code == 302
    login(client, staff_user)
    assert client.get("/my/directory").status_code == 403


def test_members_who_are_not_current_cannot_browse(client, make_member, make_user, make_current):
    make_current(first_name="Listed", last_name="Person")
    applicant = make_member(first_name="New")
    user = make_user("member", email=applicant.email, member_id=applicant.id)
    db.session.commit()
    login(client, user)
    response = client.get("/my/directory")
    assert response.status_code == 403
    page = text(response)
    assert "open to current members" in page and "Listed Person" not in page
    assert client.get("/my/directory/settings").status_code == 200  # they may still set their choices


def test_settings_save_each_choice_and_are_recorded(viewer_client, viewer):
    member, user = viewer
    page = text(viewer_client.get("/my/directory/settings"))
    assert "List me in the member directory" in page and "never the public" in page
    response = viewer_client.post("/my/directory/settings", data={
        "directory_opt_in": "y", "directory_show_email": "y",
        # not form fields: ignored
        "member_id": 999, "status": "active", "role": "admin", "first_name": "Hacked", "directory_show_nothing": "y"})
    assert response.status_code == 302
    db.session.refresh(member)
    assert member.directory_opt_in and member.directory_show_email
    assert not (member.directory_show_phone or member.directory_show_city or member.directory_show_organization)
    assert member.first_name == "Vera" and user.role == "member"
    audit = db.session.scalar(select(AuditLog).where(AuditLog.action == "member.directory"))
    assert audit.member_id == member.id
    assert audit.changes == {"directory_opt_in": [False, True], "directory_show_email": [False, True]}
    activity = db.session.scalar(select(Activity).where(Activity.kind == "profile_updated"))
    assert activity.detail == {"fields": ["directory_opt_in", "directory_show_email"]}
    assert "Other members see your name, email" in text(viewer_client.get("/my/directory/settings"))
    # listed now: the member finds themself, marked as such
    assert "Vera Viewer" in text(viewer_client.get("/my/directory"))

    viewer_client.post("/my/directory/settings", data={})
    db.session.refresh(member)
    assert not member.directory_opt_in and not member.directory_show_email
    assert "You are not listed" in text(viewer_client.get("/my/directory/settings"))


def test_saving_without_a_change_writes_nothing(viewer_client, viewer):
    viewer_client.post("/my/directory/settings", data={})
    assert db.session.scalar(select(AuditLog).where(AuditLog.action == "member.directory")) is None
