"""SMTP faults against a real SMTP server (aiosmtpd on 127.0.0.1), driven to fail.

Each test queues messages, points MAIL_URL at the server with a 1-second timeout, and runs the
dispatcher: what matters is what the server received (every message once) and what the outbox
says afterwards (sent, queued for a retry, failed).
"""
from __future__ import annotations

import socket
import threading
import time
from datetime import timedelta
from email import message_from_bytes

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from sqlalchemy import select

from membership.extensions import db
from membership.members.models import Member
from membership.notifications import outbox
from membership.notifications.models import OutboxMessage
from tests.conftest import NOW


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Handler:
    """Accepts mail, except as told: RCPT/DATA replies per address, or dropping the connection
    (and optionally going down) when a given message number is about to start."""

    def __init__(self):
        self.received: list[tuple[str, str]] = []  # (recipient, Message-ID)
        self.rcpt_replies: dict[str, str] = {}
        self.data_replies: dict[str, str] = {}
        self.drop_at: int | None = None  # abort the connection at MAIL of message number drop_at (0-based)
        self.go_down_on_drop = False
        self.controller: Controller | None = None
        self.mail_commands = 0
        self.lock = threading.Lock()

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.drop_at is not None and len(self.received) >= self.drop_at:
            self.drop_at = None
            if self.go_down_on_drop and self.controller is not None:
                self.controller.server.close()  # stop listening: the next connection is refused
            server.transport.abort()  # no reply at all: the client sees the connection vanish
            return "250 OK"
        self.mail_commands += 1
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.rcpt_replies.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        reply = self.data_replies.get(envelope.rcpt_tos[0])
        if reply:
            return reply
        msg = message_from_bytes(envelope.content)
        with self.lock:
            self.received.append((envelope.rcpt_tos[0], msg["Message-ID"]))
        return "250 2.0.0 Accepted"


def start_server(handler: Handler, port: int, **kw) -> Controller:
    controller = Controller(handler, hostname="127.0.0.1", port=port, **kw)
    handler.controller = controller
    controller.start()
    return controller


@pytest.fixture
def smtp(app):
    """A running server: yields (handler, port); MAIL_URL points at it with a 1 s timeout."""
    handler, port = Handler(), free_port()
    controller = start_server(handler, port)
    app.config["MAIL_URL"] = f"smtp://127.0.0.1:{port}?timeout=1"
    yield handler, port
    controller.stop()


def outbox_rows():
    db.session.expire_all()
    return db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()


def assert_each_received_once(handler: Handler):
    ids = [mid for _, mid in handler.received]
    assert len(ids) == len(set(ids)), "a message was delivered twice"
    assert sorted(ids) == sorted(r.message_id for r in outbox_rows())
    assert {r.status for r in outbox_rows()} == {"sent"}


def test_all_messages_are_delivered_with_their_message_id(smtp, queue):
    handler, _ = smtp
    queue(5)
    counts = outbox.deliver_pending(db.session, now=NOW)
    assert counts["sent"] == 5
    assert handler.mail_commands == 5
    assert_each_received_once(handler)


def test_server_down_during_a_run_then_back_delivers_everything_once(app, queue):
    """The connection drops after two messages and the server goes down; the sent ones stay
    sent, the rest wait; when the server is back, the next due run delivers the rest, once."""
    handler, port = Handler(), free_port()
    controller = start_server(handler, port)
    app.config["MAIL_URL"] = f"smtp://127.0.0.1:{port}?timeout=1"
    queue(6)
    handler.drop_at, handler.go_down_on_drop = 2, True
    try:
        counts = outbox.deliver_pending(db.session, now=NOW)
    finally:
        controller.stop()
    # The third message met the dropped connection; one new connection was tried for the fourth
    # (refused: the server is down), and the last two were left untouched for later.
    assert (counts["sent"], counts["retried"], counts["released"]) == (2, 2, 2)
    statuses = [r.status for r in outbox_rows()]
    assert statuses[:2] == ["sent", "sent"] and set(statuses[2:]) == {"queued"}
    assert len(handler.received) == 2
    third = outbox_rows()[2]
    assert "closed the connection" in third.last_error or "connect" in third.last_error

    # While it is down, a run changes nothing and hangs on nothing.
    down_run = outbox.deliver_pending(db.session, now=NOW + timedelta(hours=1))
    assert down_run["sent"] == 0 and len(handler.received) == 2

    # Back up (same port): the rest goes out, every message exactly once.
    controller = start_server(handler, port)
    try:
        later = max(r.next_attempt_at for r in outbox_rows())
        counts = outbox.deliver_pending(db.session, now=later)
    finally:
        controller.stop()
    assert counts["sent"] == 4
    assert_each_received_once(handler)


def test_connection_dropped_mid_batch_the_sent_stay_sent_and_the_rest_go_later(smtp, queue):
    handler, _ = smtp
    queue(5)
    handler.drop_at = 2  # the third message's connection vanishes; the server stays up
    counts = outbox.deliver_pending(db.session, now=NOW)
    rows = outbox_rows()
    assert [r.status for r in rows] == ["sent", "sent", "queued", "sent", "sent"]
    assert counts["sent"] == 4 and counts["retried"] == 1
    assert rows[2].attempts == 1 and "closed the connection" in rows[2].last_error
    counts = outbox.deliver_pending(db.session, now=rows[2].next_attempt_at)
    assert counts["sent"] == 1
    assert_each_received_once(handler)


def test_a_server_that_never_answers_times_out_and_the_worker_is_not_hung(app, queue):
    """A listening socket that accepts connections (the kernel completes the handshake) and
    never says a word: the run gives up after the 1 s timeout, keeps every message queued."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    port = silent.getsockname()[1]
    app.config["MAIL_URL"] = f"smtp://127.0.0.1:{port}?timeout=1"
    queue(3)
    started = time.monotonic()
    try:
        counts = outbox.deliver_pending(db.session, now=NOW)
    finally:
        silent.close()
    elapsed = time.monotonic() - started
    assert elapsed < 5, f"the dispatcher took {elapsed:.1f} s"
    assert counts["sent"] == 0 and counts["retried"] == 1 and counts["released"] == 2
    rows = outbox_rows()
    assert {r.status for r in rows} == {"queued"}
    assert "timed out" in rows[0].last_error or "closed" in rows[0].last_error


def test_4xx_is_retried_5xx_fails_and_one_refused_recipient_does_not_block_the_others(smtp, queue, make_member):
    handler, _ = smtp
    gone = make_member(email="gone@example.org")
    busy = make_member(email="busy@example.org")
    db.session.commit()
    queue(1)
    queue(member=gone)
    queue(member=busy)
    queue(1, to_address="spam@example.org", to_name="Spam Trap")
    queue(2)
    handler.rcpt_replies = {"gone@example.org": "550 5.1.1 <gone@example.org>: no such user",
                            "busy@example.org": "451 4.7.1 greylisted, try again later"}
    handler.data_replies = {"spam@example.org": "554 5.7.1 message refused"}
    counts = outbox.deliver_pending(db.session, now=NOW)
    assert counts["sent"] == 3 and counts["failed"] == 2 and counts["retried"] == 1 and counts["bounced"] == 1
    by_address = {r.to_address: r for r in outbox_rows()}
    assert by_address["gone@example.org"].status == "failed"
    assert "550 5.1.1" in by_address["gone@example.org"].last_error
    assert by_address["busy@example.org"].status == "queued"
    assert "451 4.7.1" in by_address["busy@example.org"].last_error
    assert by_address["spam@example.org"].status == "failed"
    assert "554 5.7.1" in by_address["spam@example.org"].last_error
    assert db.session.get(Member, gone.id).email_bouncing is True
    assert db.session.get(Member, busy.id).email_bouncing is False
    assert len(handler.received) == 3  # the three others, in the same run

    # Greylisting over: the retry goes through; the failed ones are not tried again.
    handler.rcpt_replies = {}
    counts = outbox.deliver_pending(db.session, now=by_address["busy@example.org"].next_attempt_at)
    assert counts["sent"] == 1 and counts["claimed"] == 1
    assert ("busy@example.org", by_address["busy@example.org"].message_id) in handler.received


def test_a_421_reply_closes_the_connection_and_is_temporary(smtp, queue):
    handler, _ = smtp
    rows = queue(2)
    handler.rcpt_replies = {rows[0].to_address: "421 4.3.2 shutting down"}
    counts = outbox.deliver_pending(db.session, now=NOW)
    assert counts["retried"] == 1
    first = outbox_rows()[0]
    assert first.status == "queued" and "421" in first.last_error


def test_an_internationalised_address_goes_with_smtputf8_or_fails_clearly(app, queue):
    handler, port = Handler(), free_port()
    controller = start_server(handler, port)  # aiosmtpd's Controller offers SMTPUTF8
    try:
        app.config["MAIL_URL"] = f"smtp://127.0.0.1:{port}?timeout=1"
        row = queue(1, to_address="রবি@example.org", to_name="রবি ঠাকুর")[0]
        assert outbox.deliver_pending(db.session, now=NOW)["sent"] == 1
        assert handler.received == [("রবি@example.org", row.message_id)]
    finally:
        controller.stop()
    plain_handler, port = Handler(), free_port()
    controller = start_server(plain_handler, port, enable_SMTPUTF8=False)
    try:
        app.config["MAIL_URL"] = f"smtp://127.0.0.1:{port}?timeout=1"
        row = queue(1, to_address="নজরুল@example.org")[0]
        other = queue(1)[0]
        counts = outbox.deliver_pending(db.session, now=NOW)
        assert counts["failed"] == 1 and counts["sent"] == 1
        failed = db.session.get(OutboxMessage, row.id)
        db.session.refresh(failed)
        assert failed.status == "failed" and "SMTPUTF8" in failed.last_error
        assert [r for r, _ in plain_handler.received] == [other.to_address]
    finally:
        controller.stop()


class Authenticator:
    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = auth_data.login == b"mailer" and auth_data.password == b"s3cret"
        return AuthResult(success=ok, handled=False)  # handled=False: the server replies 535 itself


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_login_with_the_credentials_from_mail_url(app, queue):
    handler, port = Handler(), free_port()
    controller = start_server(handler, port, authenticator=Authenticator(), auth_required=True,
                              auth_require_tls=False)
    try:
        queue(2)
        app.config["MAIL_URL"] = f"smtp://mailer:wrong@127.0.0.1:{port}?timeout=1"
        counts = outbox.deliver_pending(db.session, now=NOW)
        assert counts["sent"] == 0 and counts["retried"] == 1 and counts["released"] == 1
        assert "refused the login" in outbox_rows()[0].last_error
        app.config["MAIL_URL"] = f"smtp://mailer:s3cret@127.0.0.1:{port}?timeout=1"
        counts = outbox.deliver_pending(db.session, now=NOW + timedelta(hours=1))
        assert counts["sent"] == 2
        assert_each_received_once(handler)
    finally:
        controller.stop()
