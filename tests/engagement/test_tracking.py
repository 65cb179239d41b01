"""Touchpoints from the web edges: sign-ins once a day, the open pixel, tracked links (issue 6)."""
from __future__ import annotations

import re
from datetime import timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from html import unescape

import pytest
from sqlalchemy import func, select

from membership.core.models import Activity
from membership.engagement import tracking
from membership.extensions import db
from membership.notifications import outbox
from membership.notifications.backends import memory_store
from tests.conftest import NOW, login

BASE = "https://members.example.org"


@pytest.fixture
def app_config():
    return {"BASE_URL": BASE}


def activities(member_id, kind):
    return db.session.scalars(select(Activity).where(Activity.member_id == member_id, Activity.kind == kind)
                              .order_by(Activity.id)).all()


# ---------------------------------------------------------------- sign-in


def test_login_is_recorded_once_per_local_day(app, client, make_member, make_user, monkeypatch):
    member = make_member()
    user = make_user("member", member_id=member.id)
    from membership.auth import views as auth_views
    clock = {"now": NOW}  # 09:00 UTC = 15:00 in Dhaka
    monkeypatch.setattr(auth_views, "utcnow", lambda: clock["now"])
    for _ in range(3):
        assert login(client, user).status_code == 302
        client.post("/logout")
    assert len(activities(member.id, "logged_in")) == 1
    # 18:30 UTC is already the next day in Dhaka (UTC+6): a new day, a new activity.
    clock["now"] = NOW.replace(hour=18, minute=30)
    login(client, user)
    client.post("/logout")
    login(client, user)
    rows = activities(member.id, "logged_in")
    assert len(rows) == 2


def test_a_staff_user_without_member_records_nothing(app, client, staff_user):
    assert login(client, staff_user).status_code == 302
    assert db.session.scalar(select(func.count()).select_from(Activity)) == 0


# ---------------------------------------------------------------- the email as sent


@pytest.fixture
def sent_email(app, make_member):
    """A welcome email to a member, delivered through the memory backend: (row, html part, text part)."""
    member = make_member(first_name="Ada", marketing_opt_in=True)
    store = memory_store(app)
    store.clear()
    row = outbox.enqueue(db.session, template_key="welcome", dedupe_key="t-welcome", now=NOW, member=member,
                         context={"portal_link": BASE + "/my/"})
    db.session.commit()
    outbox.deliver_pending(db.session, now=NOW)
    msg = message_from_bytes(store[-1].message.as_bytes(), policy=default_policy)
    return row, msg.get_body(("html",)).get_content(), msg.get_body(("plain",)).get_content(), member


def test_the_sent_html_has_a_pixel_and_the_stored_body_and_text_part_do_not(app, sent_email):
    row, html, text, _ = sent_email
    assert re.search(rf'<img src="{re.escape(BASE)}/mail/o/[^"]+\.gif" width="1" height="1"', html)
    stored = db.session.get(type(row), row.id)
    assert "/mail/o/" not in stored.body_html and "/mail/c/" not in stored.body_html
    assert "/mail/o/" not in text and "/mail/c/" not in text


def test_site_links_are_wrapped_and_others_and_unsubscribe_are_not(app):
    html = ('<html><body><a href="https://members.example.org/my/renew?x=1&amp;y=2">Renew</a> '
            '<a href="https://elsewhere.example.com/page">Elsewhere</a> '
            '<a href="mailto:office@example.org">Mail us</a> '
            '<a href="https://members.example.org/mail/unsubscribe/abc.def">Unsubscribe</a></body></html>')
    out = tracking.add_tracking(html, 42)
    hrefs = re.findall(r'href="([^"]*)"', out)
    assert hrefs[0].startswith(BASE + "/mail/c/")
    assert tracking.read_click_token(unescape(hrefs[0]).rsplit("/", 1)[1]) == (
        42, "https://members.example.org/my/renew?x=1&y=2")
    assert hrefs[1:] == ["https://elsewhere.example.com/page", "mailto:office@example.org",
                         "https://members.example.org/mail/unsubscribe/abc.def"]
    assert out.index("/mail/o/") < out.index("</body>")


def test_a_marketing_email_keeps_its_unsubscribe_link_untracked(app, make_member):
    from membership.notifications.unsubscribe import unsubscribe_url
    member = make_member(marketing_opt_in=True)
    link = unsubscribe_url(member)
    html = f'<html><body><p>News</p><a href="{link}">Unsubscribe</a></body></html>'
    out = tracking.add_tracking(html, 7)
    assert f'href="{link}"' in out and "/mail/c/" not in out


# ---------------------------------------------------------------- the open pixel


def test_the_pixel_records_one_open_per_message_and_is_always_a_gif(app, client, sent_email):
    row, html, _, member = sent_email
    src = unescape(re.search(r'<img src="([^"]+)"', html).group(1))
    path = src[len(BASE):]
    for _ in range(3):
        response = client.get(path)
        assert response.status_code == 200 and response.mimetype == "image/gif"
        assert response.data.startswith(b"GIF89a")
        assert "no-store" in response.headers["Cache-Control"] and "no-cache" in response.headers["Cache-Control"]
    opened = activities(member.id, "email_opened")
    assert len(opened) == 1 and opened[0].source_id == row.id and opened[0].source_type == "outboxmessage"


@pytest.mark.parametrize("token", ["not-a-token", "x" * 500, "eyJhIjoxfQ.bad", "%00", "..."])
def test_a_bad_pixel_token_still_answers_the_gif_and_records_nothing(app, client, token):
    response = client.get(f"/mail/o/{token}.gif")
    assert response.status_code == 200 and response.mimetype == "image/gif"
    assert db.session.scalar(select(func.count()).select_from(Activity)) == 0


def test_a_pixel_for_a_message_that_no_longer_exists_is_a_gif(app, client):
    response = client.get(f"/mail/o/{tracking.open_token(999999)}.gif")
    assert response.status_code == 200 and response.mimetype == "image/gif"


def test_the_pixel_never_500s_even_when_recording_fails(app, client, sent_email, monkeypatch):
    row = sent_email[0]

    def broken(*a, **kw):
        raise RuntimeError("database away")
    monkeypatch.setattr(tracking, "record_open", broken)
    response = client.get(f"/mail/o/{tracking.open_token(row.id)}.gif")
    assert response.status_code == 200 and response.mimetype == "image/gif"


# ---------------------------------------------------------------- tracked links


def test_a_click_records_and_redirects(app, client, sent_email):
    row, html, _, member = sent_email
    links = [unescape(h) for h in re.findall(r'href="([^"]*/mail/c/[^"]*)"', html)]
    assert links, "the welcome email links to the portal"
    response = client.get(links[0][len(BASE):])
    assert response.status_code == 302
    target = response.headers["Location"]
    assert target.startswith(BASE + "/")
    clicked = activities(member.id, "email_clicked")
    assert len(clicked) == 1 and clicked[0].detail["url"] == target
    # a click proves the email was opened, images blocked or not
    assert len(activities(member.id, "email_opened")) == 1
    client.get(links[0][len(BASE):])
    assert len(activities(member.id, "email_clicked")) == 1  # once per message and link


@pytest.mark.parametrize("target", [
    "https://evil.example.com/phish", "http://evil.example.com", "//evil.example.com/x",
    "https://members.example.org.evil.com/", "javascript:alert(1)", "/relative/path",
    "https://members.example.org@evil.com/", "ftp://members.example.org/",
])
def test_a_click_to_another_host_is_refused_even_when_signed(app, client, sent_email, target):
    token = tracking.click_token(sent_email[0].id, target)
    response = client.get(f"/mail/c/{token}")
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert activities(sent_email[3].id, "email_clicked") == []


@pytest.mark.parametrize("token", ["not-a-token", "eyJtIjoxLCJ1IjoiaHR0cHM6Ly9ldmlsLmNvbSJ9", "a.b.c", "%ff"])
def test_a_bad_click_token_is_404_never_500(app, client, token):
    response = client.get(f"/mail/c/{token}")
    assert response.status_code in (400, 404)


def test_an_open_token_is_not_a_click_token(app, client):
    response = client.get(f"/mail/c/{tracking.open_token(1)}")
    assert response.status_code == 404


def test_a_click_for_an_unknown_message_still_redirects(app, client):
    response = client.get(f"/mail/c/{tracking.click_token(999999, BASE + '/my/')}")
    assert response.status_code == 302 and response.headers["Location"] == BASE + "/my/"


def test_no_tracking_for_an_email_not_to_a_member(app, make_user):
    from membership.notifications.backends import memory_store
    store = memory_store(app)
    store.clear()
    outbox.enqueue(db.session, template_key="welcome", dedupe_key="t-staff", now=NOW, to_address="x@example.org",
                   to_name="X", context={"portal_link": BASE + "/my/"})
    db.session.commit()
    outbox.deliver_pending(db.session, now=NOW + timedelta(seconds=1))
    msg = message_from_bytes(store[-1].message.as_bytes(), policy=default_policy)
    body = msg.get_body(("html",))
    assert body is None or "/mail/o/" not in body.get_content()
