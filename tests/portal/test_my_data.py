"""My data: the download (one ZIP with JSON and formula-safe CSV), and account closure: the member
asks, staff confirm or decline, and a confirmed closure erases the personal data while payments,
terms and counts stay correct."""
from __future__ import annotations

import csv
import html
import io
import json
import zipfile
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from membership.accounts.models import User
from membership.core.models import Activity, AuditLog
from membership.core.time import local_today, utcnow
from membership.extensions import db
from membership.members.models import Member
from membership.members.queries import MemberFilter, count_by_status, member_query
from membership.members.services import add_contact, add_interaction, save_organization, update_member, \
    validate_member
from membership.notifications.emails import queue_password_reset
from membership.notifications.models import OutboxMessage
from membership.plans.models import Membership, Payment
from membership.privacy.models import ClosureRequest
from membership.support import services as support
from membership.support.models import HelpMessage, HelpRequest
from tests.conftest import NOW, PASSWORD, login

# Distinctive personal data, so a search of the whole database finds any copy left behind.
FIRST, LAST = "Augusta", "Byron-King"
EMAIL = "augusta.byron@example.org"
PHONE = "+8801712345678"
STREET = "12 Marylebone Lane"
SECRET_NOTE = "prefers calls after six"
INTERACTION_TEXT = "talked about her late husband"
PAYMENT_NOTE = "paid by her cousin Bertram"
HELP_TEXT = "my neighbour Quentin keeps my post"
RESET_LINK = "https://example.org/reset/very-secret-token"
MARKERS = (FIRST, LAST, EMAIL.split("@")[0], "1712345678", STREET, SECRET_NOTE, INTERACTION_TEXT, PAYMENT_NOTE,
           HELP_TEXT, "Quentin", "very-secret-token", "1985-12-10")


@pytest.fixture
def plan(make_plan):
    return make_plan(name="Annual", fee_minor=5000, grace_days=30)


@pytest.fixture
def augusta(app, make_member, make_term, make_user, plan, staff_user):
    """A member with a bit of everything: a past and a current term with payments, an organisation,
    staff notes and an interaction, a help request with a staff reply, emails, profile changes."""
    today = local_today()
    member = make_member(first_name=FIRST, last_name=LAST, email=EMAIL, phone=PHONE, address_line1=STREET,
                         city="London", postcode="NW1 6XE", country="GB", date_of_birth=date(1985, 12, 10),
                         job_title="Analyst", notes=SECRET_NOTE)
    first = make_term(member, plan, starts_on=today - timedelta(days=400), today=today - timedelta(days=400))
    from membership.plans.services import PaymentInput, renew
    second = renew(db.session, first, today=first.ends_on - timedelta(days=3), now=NOW, actor=staff_user,
                   payment=PaymentInput(amount_minor=5000, method="bank_transfer", received_at=NOW,
                                        reference="TRX-991", note=PAYMENT_NOTE))
    org = save_organization(db.session, {"name": "Lovelace Lab"}, actor=staff_user, now=NOW)
    add_contact(db.session, org, member, primary=True, actor=staff_user, now=NOW, today=today)
    add_interaction(db.session, member, channel="call", summary=INTERACTION_TEXT, outcome="Will renew",
                    follow_up_on=None, occurred_at=NOW, actor=staff_user, now=NOW)
    update_member(db.session, member, validate_member({"city": "Cambridge"}, region="BD", today=today, partial=True),
                  actor=staff_user, now=NOW)
    user = make_user("member", email=EMAIL, name=f"{FIRST} {LAST}", member_id=member.id)
    req = support.open_request(db.session, member, subject="About my post", category="complaint", body=HELP_TEXT,
                               now=NOW, actor=user)
    support.staff_reply(db.session, req, body="We will look into it.", now=NOW + timedelta(hours=2),
                        actor=staff_user)
    queue_password_reset(db.session, user, reset_link=RESET_LINK, now=NOW)
    db.session.commit()
    return {"member": member, "user": user, "terms": (first, second), "org": org, "request": req}


@pytest.fixture
def bob(make_member, make_user, make_term, plan):
    member = make_member(first_name="Bob", last_name="Other", email="bob@example.org")
    make_term(member, plan, starts_on=local_today() - timedelta(days=10), today=local_today())
    support.open_request(db.session, member, subject="Bob asks", category="question", body="Bob's words",
                         now=NOW, actor=None)
    user = make_user("member", email="bob@example.org", member_id=member.id)
    db.session.commit()
    return {"member": member, "user": user}


def as_user(client, user, password=PASSWORD):
    client.post("/logout")
    assert login(client, user, password).status_code == 302


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def download(client) -> zipfile.ZipFile:
    response = client.post("/my/data/export")
    assert response.status_code == 200 and response.mimetype == "application/zip"
    assert "attachment;" in response.headers["Content-Disposition"]
    assert response.headers["Cache-Control"] == "no-store"
    return zipfile.ZipFile(io.BytesIO(response.data))


def read_csv(archive, name) -> list[dict[str, str]]:
    raw = archive.read(name).decode("utf-8")
    assert raw.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(raw[1:])))


# ---------------------------------------------------------------- download


def test_the_download_holds_everything_about_me_and_nothing_about_others(client, augusta, bob):
    as_user(client, augusta["user"])
    page = text(client.get("/my/data"))
    assert "Download my data" in page
    archive = download(client)
    names = set(archive.namelist())
    assert {"README.txt", "data.json", "member.csv", "terms.csv", "payments.csv", "activities.csv",
            "interactions.csv", "emails.csv", "help_requests.csv", "help_messages.csv", "audit.csv",
            "login.csv", "closure_requests.csv"} <= names
    data = json.loads(archive.read("data.json"))
    member = data["member"][0]
    assert (member["first_name"], member["email"], member["phone"], member["city"]) == (FIRST, EMAIL, PHONE,
                                                                                         "Cambridge")
    assert member["notes"] == SECRET_NOTE and member["organization"] == "Lovelace Lab"
    assert member["date_of_birth"] == "1985-12-10"
    assert data["login"][0]["email"] == EMAIL and "password_hash" not in json.dumps(data["login"])
    assert len(data["terms"]) == 2 and {t["plan"] for t in data["terms"]} == {"Annual"}
    receipts = {p["receipt_number"]: p for p in data["payments"]}
    assert len(receipts) == 2 and all(p["amount_minor"] == 5000 for p in receipts.values())
    assert any(p["reference"] == "TRX-991" and p["note"] == PAYMENT_NOTE for p in receipts.values())
    assert [i["summary"] for i in data["interactions"]] == [INTERACTION_TEXT]
    assert "Sam Staff" not in json.dumps(data["interactions"])  # the staff member's name is theirs
    kinds = {a["kind"] for a in data["activities"]}
    assert {"joined", "renewed", "payment", "interaction", "help_request"} <= kinds
    assert [r["subject"] for r in data["help_requests"]] == ["About my post"]
    assert [(m["from"], m["body"]) for m in data["help_messages"]] == [("you", HELP_TEXT),
                                                                       ("staff", "We will look into it.")]
    templates = {e["template_key"] for e in data["emails"]}
    assert {"welcome", "help_reply", "password_reset"} <= templates
    reset = next(e for e in data["emails"] if e["template_key"] == "password_reset")
    assert "very-secret-token" not in json.dumps(data) and reset["body"].startswith("[not included")
    actions = {(a["action"], a["by"]) for a in data["audit"]}
    assert ("member.update", "staff") in actions and ("help_request.open", "you") in actions
    assert all(a["ip"] is None for a in data["audit"] if a["by"] != "you")

    everything = b"".join(archive.read(n) for n in names).decode("utf-8", "replace")
    for other in ("Bob", "bob@example.org", "Bob's words", "Bob asks", "staff@example.org"):
        assert other not in everything
    # the CSV files hold the same rows as the JSON
    assert read_csv(archive, "member.csv")[0]["email"] == EMAIL
    assert len(read_csv(archive, "payments.csv")) == 2
    assert "payments.csv (2 rows)" in archive.read("README.txt").decode()


def test_csv_cells_cannot_run_as_formulas(client, make_member, make_user, make_plan, make_term):
    member = make_member(first_name="=HYPERLINK(\"http://evil.example\",\"x\")", last_name="+1+1", city="-2+3",
                         job_title="@SUM(A1)")
    user = make_user("member", email=member.email, member_id=member.id)
    support.open_request(db.session, member, subject="=cmd|' /C calc'!A0", category="other",
                         body="-5 degrees and\n=still a formula?", now=NOW, actor=user)
    db.session.commit()
    as_user(client, user)
    archive = download(client)
    row = read_csv(archive, "member.csv")[0]
    assert row["first_name"] == "'=HYPERLINK(\"http://evil.example\",\"x\")"
    assert row["last_name"] == "'+1+1" and row["city"] == "'-2+3" and row["job_title"] == "'@SUM(A1)"
    assert read_csv(archive, "help_requests.csv")[0]["subject"] == "'=cmd|' /C calc'!A0"
    assert read_csv(archive, "help_messages.csv")[0]["body"] == "'-5 degrees and\n=still a formula?"
    for name in archive.namelist():
        if name.endswith(".csv"):
            for cells in csv.reader(io.StringIO(archive.read(name).decode("utf-8")[1:])):
                for cell in cells:
                    assert not cell or cell[0] not in "=+-@\t\r", (name, cell)
    # the JSON keeps the values exactly
    assert json.loads(archive.read("data.json"))["member"][0]["last_name"] == "+1+1"


def test_the_download_is_a_post_and_is_audited(client, augusta):
    as_user(client, augusta["user"])
    assert client.get("/my/data/export").status_code == 405
    download(client)
    row = db.session.scalar(select(AuditLog).where(AuditLog.action == "member.data_export"))
    assert row.member_id == augusta["member"].id and row.actor_id == augusta["user"].id


def test_staff_and_visitors_have_no_my_data(client, staff_user):
    assert client.post("/my/data/export").status_code == 302
    login(client, staff_user)
    assert client.post("/my/data/export").status_code == 403
    assert client.get("/my/data").status_code == 403


# ---------------------------------------------------------------- asking for closure


def closures() -> list[ClosureRequest]:
    return db.session.scalars(select(ClosureRequest).order_by(ClosureRequest.id)).all()


def test_asking_for_closure_needs_the_confirm_step(client, augusta):
    as_user(client, augusta["user"])
    page = text(client.get("/my/data/close"))
    assert "download a copy of your data" in page and augusta["member"].member_number in page
    response = client.post("/my/data/close", data={"reason": "Moving abroad"})
    assert response.status_code == 422
    assert "Tick the box to confirm" in text(response) and "Moving abroad" in text(response)
    assert closures() == []

    response = client.post("/my/data/close", data={"reason": "Moving abroad", "confirm": "y",
                                                    "member_id": 999, "status": "confirmed"})
    assert response.status_code == 302
    [closure] = closures()
    assert (closure.member_id, closure.status, closure.reason) == (augusta["member"].id, "pending", "Moving abroad")
    assert db.session.scalar(select(AuditLog.summary).where(AuditLog.action == "closure.request")) \
        == f"Asked for the account to be closed (request #{closure.id})"
    page = text(client.get("/my/data"))
    assert "You asked for your account to be closed" in page and "Ask to close my account" not in page

    again = client.post("/my/data/close", data={"confirm": "y"}, follow_redirects=True)
    assert "You already asked" in text(again) and len(closures()) == 1
    # nothing erased yet: the member can still use the portal
    assert augusta["member"].erased_at is None and client.get("/my/help").status_code == 200


def test_the_member_can_withdraw_and_ask_again(client, augusta):
    as_user(client, augusta["user"])
    client.post("/my/data/close", data={"confirm": "y"})
    response = client.post("/my/data/close/withdraw", follow_redirects=True)
    assert "Withdrawn: your account stays open." in text(response)
    assert [c.status for c in closures()] == ["withdrawn"]
    assert client.post("/my/data/close", data={"confirm": "y"}).status_code == 302
    assert [c.status for c in closures()] == ["withdrawn", "pending"]


def test_a_reason_with_forbidden_characters_is_refused(client, augusta):
    as_user(client, augusta["user"])
    response = client.post("/my/data/close", data={"confirm": "y", "reason": "bad\x00byte"})
    assert response.status_code == 422 and "not allowed" in text(response)
    assert closures() == []


# ---------------------------------------------------------------- staff decide


@pytest.fixture
def pending(client, augusta):
    as_user(client, augusta["user"])
    assert client.post("/my/data/close", data={"confirm": "y", "reason": "Moving abroad"}).status_code == 302
    return closures()[0]


def test_staff_decline_with_a_note_that_is_emailed(client, augusta, pending, staff_user):
    as_user(client, staff_user)
    queue = text(client.get("/staff/closures"))
    assert f"{FIRST} {LAST}" in queue and "Moving abroad" in queue
    response = client.post(f"/staff/closures/{pending.id}/decline", data={"note": ""})
    assert response.status_code == 422 and "Say why" in text(response)
    assert client.post(f"/staff/closures/{pending.id}/decline",
                       data={"note": "Your event booking is unpaid; call us first."}).status_code == 302
    db.session.refresh(pending)
    assert (pending.status, pending.decided_by_id, pending.pending_member_id) == ("declined", staff_user.id, None)
    email = db.session.scalar(select(OutboxMessage).where(OutboxMessage.template_key == "closure_declined"))
    assert email.to_address == EMAIL and "Your event booking is unpaid; call us first." in email.body_text
    assert augusta["member"].erased_at is None and augusta["member"].first_name == FIRST
    as_user(client, augusta["user"])
    page = text(client.get("/my/data"))
    assert "declined" in page and "Your event booking is unpaid" in page and "Ask to close my account" in page


def test_confirmation_needs_the_tick(client, pending, staff_user):
    as_user(client, staff_user)
    response = client.post(f"/staff/closures/{pending.id}/confirm", data={})
    assert response.status_code == 422 and "Tick the box to confirm the erasure." in text(response)
    db.session.refresh(pending)
    assert pending.status == "pending"


def _all_text_in_the_database(skip: dict[str, set[int]]) -> str:
    """Every value of every row of every table, as one string (rows in `skip` left out)."""
    parts = []
    for table in db.metadata.sorted_tables:
        for row in db.session.execute(select(table)).mappings():
            if table.name in skip and row.get("id") in skip[table.name]:
                continue
            parts.extend(str(v) for v in row.values() if v is not None)
    return "\n".join(parts)


def test_confirmed_closure_erases_personal_data_and_keeps_the_books(client, app, augusta, bob, pending,
                                                                      staff_user):
    member, user = augusta["member"], augusta["user"]
    first, second = augusta["terms"]
    number = member.member_number
    receipts_before = db.session.execute(select(Payment.receipt_number, Payment.amount_minor, Payment.currency,
                                                Payment.method, Payment.reference)
                                         .where(Payment.member_id == member.id).order_by(Payment.id)).all()
    activities_before = db.session.scalar(select(func.count()).select_from(Activity)
                                          .where(Activity.member_id == member.id))
    member_client = app.test_client()
    login(member_client, user)
    assert member_client.get("/my/data").status_code == 200

    as_user(client, staff_user)
    page = text(client.get(f"/staff/closures/{pending.id}"))
    assert "Cancelled from today" in page and "2 payment(s)" in page and number in page
    response = client.post(f"/staff/closures/{pending.id}/confirm", data={"confirm": "y"}, follow_redirects=True)
    assert f"Account closed: member {number} erased." in text(response)

    db.session.expire_all()
    member = db.session.get(Member, member.id)
    # the record reads "Erased member" and holds no contact data
    assert member.full_name == "Erased member" and member.member_number == number
    for name in ("email", "email_normalized", "phone", "address_line1", "city", "postcode", "country",
                 "date_of_birth", "notes", "job_title", "organization_id"):
        assert getattr(member, name) is None, name
    assert member.search_text == "" and member.erased_at is not None and not member.directory_opt_in
    # gone from the member list, search and counts
    assert member.id not in [m.id for m in db.session.scalars(member_query(MemberFilter()))]
    assert db.session.scalars(member_query(MemberFilter(q=number))).all() == []
    assert sum(count_by_status(db.session).values()) == 1  # Bob
    assert "Erased member" not in text(client.get("/staff/members"))
    # the login is closed: sessions end, signing in fails, the address is free again
    user = db.session.get(User, user.id)
    assert not user.is_active_flag and user.password_hash is None
    assert user.email == user.email_normalized == f"erased-user-{user.id}@erased.invalid"
    assert member_client.get("/my/data").status_code == 302
    assert login(app.test_client(), EMAIL).status_code == 401
    # the books stay right: payments with numbers and amounts; the current term cancelled from today
    receipts_after = db.session.execute(select(Payment.receipt_number, Payment.amount_minor, Payment.currency,
                                               Payment.method, Payment.reference)
                                        .where(Payment.member_id == member.id).order_by(Payment.id)).all()
    assert receipts_after == receipts_before and len(receipts_after) == 2
    assert db.session.scalar(select(Payment.note).where(Payment.reference == "TRX-991")) is None
    first, second = db.session.get(Membership, first.id), db.session.get(Membership, second.id)
    assert first.cancelled_on is None  # a past term stays as it was
    assert second.cancelled_on == local_today() and second.cancel_reason == "Account closed at the member's request"
    assert member.status == "cancelled"
    assert db.session.scalar(select(func.count()).select_from(Activity).where(Activity.member_id == member.id)) \
        >= activities_before
    # help requests: counts and dates kept, text gone
    req = db.session.get(HelpRequest, augusta["request"].id)
    assert req.status == "closed" and req.staff_reply_count == 1 and req.first_response_at is not None
    assert HELP_TEXT not in req.subject and all(HELP_TEXT not in m.body for m in req.messages)
    # emails to the member scrubbed; queued ones cancelled
    emails = db.session.scalars(select(OutboxMessage).where(OutboxMessage.member_id == member.id)).all()
    assert emails and all(e.to_address == "erased@erased.invalid" and e.body_text == "[erased]" for e in emails)
    assert all(e.status != "queued" for e in emails)
    # the erasure is audited without the erased data
    erase = db.session.scalar(select(AuditLog).where(AuditLog.action == "member.erase"))
    assert erase.member_id == member.id and erase.actor_id == staff_user.id
    assert erase.changes["emails_scrubbed"] == len(emails) and erase.changes["terms_cancelled"] == 1
    assert "email" in erase.changes["cleared"]
    update = db.session.scalar(select(AuditLog).where(AuditLog.action == "member.update"))
    assert update.changes == {"city": "[erased]"}  # which field changed stays, the values do not
    # the member is told, at the address they had (the one row that keeps it, to deliver it)
    confirmation = db.session.scalar(select(OutboxMessage).where(OutboxMessage.template_key == "closure_confirmed"))
    assert confirmation.to_address == EMAIL and confirmation.member_id is None
    assert FIRST not in confirmation.body_text

    # nothing personal is left anywhere in the database
    leftovers = _all_text_in_the_database({"outbox_message": {confirmation.id}})
    for marker in MARKERS:
        assert marker not in leftovers, marker
    # Bob is untouched
    bob_member = db.session.get(Member, bob["member"].id)
    assert bob_member.full_name == "Bob Other" and bob_member.email == "bob@example.org"
    assert db.session.scalar(select(HelpMessage.body).join(HelpRequest).where(HelpRequest.member_id == bob_member.id)) \
        == "Bob's words"
    # the staff member page still opens (payments link to it) and shows the erasure
    assert "Erased member" in text(client.get(f"/staff/members/{member.id}"))


def test_erasure_deletes_the_file_backends_copies_of_the_members_emails(client, app, augusta, bob, pending,
                                                                       staff_user, tmp_path):
    from membership.notifications import outbox
    app.config["MAIL_URL"] = f"file://{tmp_path}/mail"
    for who in (augusta, bob):
        outbox.enqueue(db.session, template_key="welcome", dedupe_key=f"test-welcome:{who['member'].id}",
                       now=utcnow(), member=who["member"])
    db.session.commit()
    outbox.deliver_pending(db.session, now=utcnow())
    files = {p.name: p.read_text() for p in (tmp_path / "mail").rglob("*.eml")}
    assert any(EMAIL in body for body in files.values()) and any("bob" in body.lower() for body in files.values())

    as_user(client, staff_user)
    assert client.post(f"/staff/closures/{pending.id}/confirm", data={"confirm": "y"}).status_code == 302
    left = [p.read_text() for p in (tmp_path / "mail").rglob("*.eml")]
    assert left and not any(EMAIL in body or FIRST in body for body in left)  # Bob's email stays


def test_a_second_confirmation_erases_nothing_twice(client, pending, staff_user):
    as_user(client, staff_user)
    client.post(f"/staff/closures/{pending.id}/confirm", data={"confirm": "y"})
    response = client.post(f"/staff/closures/{pending.id}/confirm", data={"confirm": "y"}, follow_redirects=True)
    assert "no longer pending" in text(response)
    assert db.session.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == "member.erase")) == 1
    assert client.post(f"/staff/closures/{pending.id}/decline", data={"note": "x"},
                       follow_redirects=True).status_code == 200
    db.session.refresh(pending)
    assert pending.status == "confirmed"


def test_a_withdrawn_request_cannot_be_confirmed(client, augusta, pending, staff_user):
    client.post("/my/data/close/withdraw")
    as_user(client, staff_user)
    response = client.post(f"/staff/closures/{pending.id}/confirm", data={"confirm": "y"}, follow_redirects=True)
    assert "no longer pending" in text(response)
    assert db.session.get(Member, augusta["member"].id).erased_at is None


def test_the_closure_queue_lists_pending_oldest_first(client, make_member, make_user, staff_user):
    from membership.privacy.erasure import request_closure

    now = utcnow()
    a, b = make_member(first_name="Older"), make_member(first_name="Newer")
    request_closure(db.session, b, reason=None, now=now, actor=None)
    request_closure(db.session, a, reason=None, now=now - timedelta(days=3), actor=None)
    db.session.commit()
    login(client, staff_user)
    page = text(client.get("/staff/closures"))
    assert page.index("Older") < page.index("Newer")
    assert 'id="closure-count-pending">2<' in page
    confirmed = text(client.get("/staff/closures?status=confirmed"))
    assert "No closure requests with the status “Confirmed (erased)”." in confirmed
    assert client.get("/staff/closures?status=bogus&page=x").status_code == 200
    assert client.get("/staff/closures/999").status_code == 404


def test_erasure_without_a_login_or_address_and_with_a_status_override(app, make_member, make_plan, make_term,
                                                                         staff_user):
    from membership.plans.services import set_override
    from membership.privacy.erasure import confirm_closure, erase_member, request_closure
    from membership.core.errors import Conflict

    today = local_today()
    member = make_member(first_name="Nolan", email=None, phone="+8801912345678")
    term = make_term(member, make_plan(fee_minor=0), starts_on=today - timedelta(days=20), today=today)
    set_override(db.session, term, status="active", until=None, reason="board decision", today=today, now=NOW,
                 actor=staff_user)
    closure = request_closure(db.session, member, reason=None, now=NOW, actor=staff_user)
    report = confirm_closure(db.session, closure, now=utcnow(), today=today, actor=staff_user)
    db.session.commit()
    assert not report.login_closed and report.terms_cancelled == 1
    term = db.session.get(Membership, term.id)
    # the override would have kept an erased member "active" in term reports: it goes with the cancellation
    assert term.override_status is None and term.cancelled_on == today
    assert db.session.get(Member, member.id).status == "cancelled"
    assert db.session.scalar(select(OutboxMessage).where(OutboxMessage.template_key == "closure_confirmed")) is None
    with pytest.raises(Conflict):
        erase_member(db.session, db.session.get(Member, member.id), now=NOW, today=today, actor=staff_user)
