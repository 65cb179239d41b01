"""Staff Outbox and email template pages, the communications partial, and the unsubscribe page."""
from __future__ import annotations

import html
import re

import pytest
from flask import render_template
from sqlalchemy import func, select

from membership.core.models import Activity, AuditLog
from membership.extensions import db
from membership.members.models import Member
from membership.notifications import emails, outbox, unsubscribe
from membership.notifications.backends import PermanentError
from membership.notifications.models import EmailTemplate, OutboxMessage
from tests.conftest import NOW, login


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def fail(backend_cls, row):
    outbox.deliver_pending(db.session, now=NOW, backend=backend_cls(default=PermanentError("550 5.1.1 no such user")))
    db.session.expire_all()
    return db.session.get(OutboxMessage, row.id)


# ---------------------------------------------------------------- access


@pytest.mark.parametrize("url", ["/staff/outbox", "/staff/email-templates", "/staff/email-templates/welcome"])
def test_visitors_sign_in_and_members_are_refused(client, make_user, url):
    assert client.get(url).status_code == 302
    member_user = make_user("member")
    login(client, member_user)
    assert client.get(url).status_code == 403


# ---------------------------------------------------------------- outbox


def test_outbox_lists_filters_and_searches(staff_client, queue, scripted):
    rows = queue(3)
    failing = queue(1, to_address="zed@example.org", to_name="Zed")[0]
    outbox.deliver_pending(db.session, now=NOW, backend=scripted(
        {"zed@example.org": PermanentError("550 5.1.1 no such user")}))
    page = text(staff_client.get("/staff/outbox"))
    assert all(r.to_address in page for r in rows) and "zed@example.org" in page
    assert "550 5.1.1 no such user" in page

    failed = text(staff_client.get("/staff/outbox?status=failed"))
    assert "zed@example.org" in failed and rows[0].to_address not in failed
    found = text(staff_client.get("/staff/outbox?q=ZED@"))
    assert "zed@example.org" in found and rows[0].to_address not in found
    assert "No emails" in text(staff_client.get("/staff/outbox?q=nobody-at-all"))
    # Bad filters are ignored, never a 500.
    for url in ("/staff/outbox?status=bogus&page=x&member=%00", "/staff/outbox?q=%00%01", "/staff/outbox?page=999"):
        assert staff_client.get(url).status_code == 200
    assert failing.id


def test_outbox_paginates(staff_client, queue):
    queue(55)
    first = staff_client.get("/staff/outbox").get_data(as_text=True)
    second = staff_client.get("/staff/outbox?page=2").get_data(as_text=True)
    assert first.count("/staff/outbox/") - first.count("/staff/outbox/retry") >= 50
    assert "55 emails" in first
    assert second.count('href="/staff/outbox/') == 5


def test_outbox_for_one_member(staff_client, queue, make_member):
    ada = make_member(first_name="Ada", email="ada@example.org")
    db.session.commit()
    queue(member=ada)
    queue(2)
    page = text(staff_client.get(f"/staff/outbox?member={ada.id}"))
    assert "1 email" in page and "ada@example.org" in page and "Emails to" in page


def test_message_page_shows_the_message_as_sent(staff_client, queue, sent):
    row = queue(1, to_name="Tom <b>& Jerry</b>")[0]
    outbox.deliver_pending(db.session, now=NOW)
    response = staff_client.get(f"/staff/outbox/{row.id}")
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert row.message_id in html.unescape(body)
    assert "Message-ID" in body and "From" in body and "Test Association &lt;no-reply@samiti.localhost&gt;" in body
    assert "<b>&" not in body  # names and the HTML source are escaped, never rendered
    assert "&lt;!doctype html&gt;" in body
    assert "You received this email because you have just joined" in html.unescape(body)

    raw = staff_client.get(f"/staff/outbox/{row.id}.eml")
    assert raw.mimetype == "message/rfc822" and "attachment" in raw.headers["Content-Disposition"]
    assert row.message_id.encode() in raw.data

    page = staff_client.get(f"/staff/outbox/{row.id}/html")
    csp = page.headers["Content-Security-Policy"]
    assert csp.startswith("sandbox") and "script-src" not in csp and "default-src 'none'" in csp
    assert page.mimetype == "text/html"
    assert staff_client.get("/staff/outbox/999999").status_code == 404


def test_a_password_reset_email_is_not_readable_by_staff(staff_client, admin_user, sent):
    """Staff must not be able to pick an administrator's reset link out of the Outbox."""
    row = emails.queue_password_reset(db.session, admin_user, reset_link="https://samiti.example/reset/SECRET-TOKEN",
                                      now=NOW)
    db.session.commit()
    outbox.deliver_pending(db.session, now=NOW)
    assert b"SECRET-TOKEN" in sent[0].message.as_bytes()  # the recipient gets it
    page = staff_client.get(f"/staff/outbox/{row.id}").get_data(as_text=True)
    assert "SECRET-TOKEN" not in page and "password-reset link" in page
    assert "Reset your Test Association password" in html.unescape(page)
    assert staff_client.get(f"/staff/outbox/{row.id}.eml").status_code == 403
    assert staff_client.get(f"/staff/outbox/{row.id}/html").status_code == 403


def test_retry_a_failed_message_from_its_page(staff_client, queue, scripted, staff_user, sent):
    row = fail(scripted, queue(1)[0])
    assert row.status == "failed"
    page = text(staff_client.get(f"/staff/outbox/{row.id}"))
    assert "550 5.1.1 no such user" in page and "Retry" in page
    response = staff_client.post(f"/staff/outbox/{row.id}/retry", follow_redirects=True)
    assert "Queued again" in text(response)
    db.session.expire_all()
    msg = db.session.get(OutboxMessage, row.id)
    assert msg.status == "queued" and msg.attempts == 0
    assert db.session.scalar(select(AuditLog).where(AuditLog.action == "outbox.retry")).actor_id == staff_user.id
    # It goes out with the next run.
    assert outbox.deliver_pending(db.session, now=msg.next_attempt_at)["sent"] == 1
    # Retrying a sent message is refused with a message, and changes nothing.
    response = staff_client.post(f"/staff/outbox/{row.id}/retry", follow_redirects=True)
    assert "Only a failed message can be retried" in text(response)
    db.session.expire_all()
    assert db.session.get(OutboxMessage, row.id).status == "sent"


def test_retry_all_failed_and_cancel(staff_client, queue, scripted):
    a, b = queue(2)
    outbox.deliver_pending(db.session, now=NOW, backend=scripted(default=PermanentError("550 no")))
    c = queue(1)[0]
    response = staff_client.post("/staff/outbox/retry-failed", follow_redirects=True)
    assert "Queued again: 2 failed emails" in text(response)
    db.session.expire_all()
    assert {db.session.get(OutboxMessage, i).status for i in (a.id, b.id)} == {"queued"}
    response = staff_client.post(f"/staff/outbox/{c.id}/cancel", follow_redirects=True)
    assert "will not be sent" in text(response)
    db.session.expire_all()
    assert db.session.get(OutboxMessage, c.id).status == "cancelled"


def test_communications_partial_lists_a_members_emails(app, staff_client, queue, make_member):
    ada = make_member(first_name="Ada", email="ada@example.org")
    db.session.commit()
    queue(member=ada)
    queue(member=ada, template_key="password_reset", context={"reset_link": "https://x.example/r",
                                                              "link_expires_in": "1 hour"})
    messages = outbox.member_messages(db.session, ada.id)
    with app.test_request_context():
        out = render_template("staff/member/_communications.html", messages=messages, member=ada)
    assert out.count("/staff/outbox/") >= 2 and "Reset your Test Association password" in out
    assert f"/staff/outbox?member={ada.id}" in out
    with app.test_request_context():
        assert "No emails yet" in render_template("staff/member/_communications.html", messages=[], member=ada)


# ---------------------------------------------------------------- templates


def test_template_list_and_staff_can_read_but_not_edit(staff_client):
    page = text(staff_client.get("/staff/email-templates"))
    for name in ("Welcome", "Payment receipt", "Renewal reminder, 30 days before", "Grace period notice",
                 "Lapsed notice", "Password reset", "Staff digest"):
        assert name in page
    edit = text(staff_client.get("/staff/email-templates/welcome"))
    assert "Only an administrator can change this template" in edit
    assert "Welcome to Test Association, Ada" in edit  # preview with sample data
    assert staff_client.post("/staff/email-templates/welcome",
                             data={"subject": "x", "body_text": "y", "action": "save"}).status_code == 403
    assert staff_client.post("/staff/email-templates/welcome/reset").status_code == 403
    assert staff_client.get("/staff/email-templates/nope").status_code == 404


def test_admin_saves_a_valid_template(admin_client, admin_user):
    data = {"subject": "Hello {{ member.first_name }}", "body_text": "Welcome aboard, {{ member.full_name }}!",
            "body_html": "<p>Welcome aboard, {{ member.full_name }}!</p>", "action": "save"}
    response = admin_client.post("/staff/email-templates/welcome", data=data, follow_redirects=True)
    assert response.status_code == 200 and "Saved the 'Welcome' template" in text(response)
    row = db.session.scalar(select(EmailTemplate).where(EmailTemplate.key == "welcome"))
    assert row.subject == "Hello {{ member.first_name }}" and row.updated_by_id == admin_user.id
    assert "Edited" in text(admin_client.get("/staff/email-templates"))


def test_editing_the_default_language_warns_that_other_languages_read_it_until_they_have_their_own(admin_client):
    """Bengali readers get the English staff edit (the issue's fallback), not the shipped Bengali text:
    the editor says so after saving and on the page, and stops saying it once a Bengali version exists."""
    data = {"subject": "Hello {{ member.first_name }}", "body_text": "New bank account: 123", "action": "save"}
    assert 'id="language-fallback"' not in text(admin_client.get("/staff/email-templates/welcome"))  # shipped text
    saved = text(admin_client.post("/staff/email-templates/welcome", data=data, follow_redirects=True))
    assert "People who read বাংলা get this version too until their own is written" in saved
    assert 'id="language-fallback"' in saved
    bengali = {"subject": "স্বাগতম {{ member.first_name }}", "body_text": "নতুন ব্যাংক হিসাব: ১২৩", "action": "save"}
    admin_client.post("/staff/email-templates/welcome/language/bn", data=bengali)
    assert db.session.scalar(select(func.count()).select_from(EmailTemplate)) == 2
    page = text(admin_client.get("/staff/email-templates/welcome"))
    assert 'id="language-fallback"' not in page
    again = text(admin_client.post("/staff/email-templates/welcome", data=data, follow_redirects=True))
    assert "until their own is written" not in again


@pytest.mark.parametrize("field, value, message", [
    ("body_text", "Hi {{ member.first_name }", "Template syntax error"),
    ("body_text", "{{ ''.__class__.__mro__ }}", "Not allowed in an email template"),
    ("body_html", "<p>{{ member.nickname }}</p>", "Unknown placeholder"),
    ("subject", "", "Enter a subject"),
    ("body_text", "x" * 100_001, "at most 100,000 characters"),
])
def test_admin_gets_a_clear_message_for_a_bad_template_and_nothing_is_saved(admin_client, field, value, message):
    data = {"subject": "Hi", "body_text": "Hello", "body_html": "", "action": "save", field: value}
    response = admin_client.post("/staff/email-templates/welcome", data=data)
    assert response.status_code == 422
    assert message in text(response)
    assert db.session.scalar(select(func.count()).select_from(EmailTemplate)) == 0
    # What was typed is kept.
    if value and len(value) < 100:
        assert value in text(response)


def test_preview_against_a_member_found_by_number_or_email(admin_client, make_member):
    ada = make_member(first_name="রবীন্দ্রনাথ", last_name="ঠাকুর", email="rabi@example.org")
    db.session.commit()
    data = {"subject": "Hi {{ member.first_name }}", "body_text": "Number {{ member.member_number }}",
            "body_html": "", "action": "preview", "preview_member": ada.member_number.lower()}
    page = text(admin_client.post("/staff/email-templates/welcome", data=data))
    assert "Hi রবীন্দ্রনাথ" in page and f"Number {ada.member_number}" in page
    assert "not yet saved" in page
    assert db.session.scalar(select(func.count()).select_from(EmailTemplate)) == 0  # a preview saves nothing
    by_email = text(admin_client.get("/staff/email-templates/welcome?member=RABI@example.org"))
    assert "Welcome to Test Association, রবীন্দ্রনাথ" in by_email
    unknown = text(admin_client.get("/staff/email-templates/welcome?member=M999999"))
    assert "No member has the number or email 'M999999'" in unknown and "Welcome to Test Association, Ada" in unknown
    broken = admin_client.post("/staff/email-templates/welcome", data={**data, "body_text": "{{ oops"})
    assert broken.status_code == 422 and "Template syntax error" in text(broken)
    html_page = admin_client.get(f"/staff/email-templates/welcome/preview.html?member={ada.member_number}")
    assert html_page.headers["Content-Security-Policy"].startswith("sandbox")
    assert "রবীন্দ্রনাথ" in html_page.get_data(as_text=True)


def test_reset_to_default(admin_client, admin_user):
    admin_client.post("/staff/email-templates/welcome", data={"subject": "Custom", "body_text": "Custom body",
                                                              "action": "save"})
    assert db.session.scalar(select(EmailTemplate)) is not None
    response = admin_client.post("/staff/email-templates/welcome/reset", follow_redirects=True)
    assert "back to the shipped default" in text(response)
    assert db.session.scalar(select(EmailTemplate)) is None
    assert "Welcome to Test Association, Ada" in text(response)
    assert db.session.scalar(select(AuditLog).where(AuditLog.action == "email_template.reset")) is not None


# ---------------------------------------------------------------- unsubscribe


def marketing_member(make_member):
    member = make_member(first_name="Ada", email="ada@example.org", marketing_opt_in=True)
    db.session.commit()
    return member


def test_unsubscribe_page_confirms_then_turns_marketing_off(client, make_member):
    member = marketing_member(make_member)
    queued = outbox.enqueue(db.session, template_key="welcome", dedupe_key="news-1", now=NOW, member=member,
                            category="marketing")
    db.session.commit()
    url = unsubscribe.unsubscribe_url(member).replace("http://127.0.0.1:5000", "")
    page = client.get(url)
    assert page.status_code == 200 and "Stop news and announcements?" in text(page)
    db.session.expire_all()
    assert db.session.get(Member, member.id).marketing_opt_in is True  # GET changes nothing
    done = client.post(url)
    assert done.status_code == 200 and "You are unsubscribed" in text(done)
    db.session.expire_all()
    assert db.session.get(Member, member.id).marketing_opt_in is False
    assert db.session.get(OutboxMessage, queued.id).status == "cancelled"
    activity = db.session.scalar(select(Activity).where(Activity.member_id == member.id,
                                                        Activity.kind == "profile_updated"))
    assert activity.detail == {"marketing_opt_in": False, "via": "unsubscribe page"}
    assert db.session.scalar(select(AuditLog).where(AuditLog.action == "member.unsubscribe")).member_id == member.id
    # From now on marketing emails are not queued for this member.
    assert outbox.enqueue(db.session, template_key="welcome", dedupe_key="news-2", now=NOW, member=member,
                          category="marketing") is None
    again = client.get(url)
    assert "already unsubscribed" in text(again)


def test_a_bad_token_is_refused(client, make_member):
    member = marketing_member(make_member)
    token = unsubscribe.unsubscribe_token(member)
    assert client.get(f"/mail/unsubscribe/{token}x").status_code == 404
    assert client.post(f"/mail/unsubscribe/{token[:-2]}").status_code == 404
    db.session.expire_all()
    assert db.session.get(Member, member.id).marketing_opt_in is True


class TestWithCSRF:
    @pytest.fixture
    def app_config(self):
        return {"WTF_CSRF_ENABLED": True}

    def test_one_click_post_needs_no_csrf_token_but_a_plain_post_does(self, client, make_member):
        member = marketing_member(make_member)
        url = unsubscribe.unsubscribe_url(member).replace("http://127.0.0.1:5000", "")
        plain = client.post(url)
        assert plain.status_code == 400
        db.session.expire_all()
        assert db.session.get(Member, member.id).marketing_opt_in is True
        one_click = client.post(url, data={"List-Unsubscribe": "One-Click"})
        assert one_click.status_code == 204
        db.session.expire_all()
        assert db.session.get(Member, member.id).marketing_opt_in is False
        activity = db.session.scalar(select(Activity).where(Activity.kind == "profile_updated"))
        assert activity.detail["via"] == "one-click"

    def test_the_confirm_page_carries_a_csrf_token_that_works(self, client, make_member):
        member = marketing_member(make_member)
        url = unsubscribe.unsubscribe_url(member).replace("http://127.0.0.1:5000", "")
        page = client.get(url).get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        assert client.post(url, data={"csrf_token": token}).status_code == 200
        db.session.expire_all()
        assert db.session.get(Member, member.id).marketing_opt_in is False

    def test_staff_forms_carry_csrf_tokens(self, client, admin_user, queue, scripted):
        page = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"', page)
        csrf = token.group(1) or token.group(2)
        client.post("/login", data={"email": admin_user.email, "password": "correct-horse-battery-42",
                                    "csrf_token": csrf})
        row = fail(scripted, queue(1)[0])
        for url in (f"/staff/outbox/{row.id}", "/staff/email-templates/welcome", "/staff/outbox?status=failed"):
            assert 'name="csrf_token"' in client.get(url).get_data(as_text=True), url
        assert client.post(f"/staff/outbox/{row.id}/retry").status_code == 400  # no token: refused
