"""SMTP over TLS against a real server (aiosmtpd on 127.0.0.1 with a certificate made for the
test by the openssl command): STARTTLS and implicit TLS (smtps) deliver with the certificate and
the host name checked, and a certificate the client does not trust delivers nothing and keeps the
message for a retry, with the reason."""
from __future__ import annotations

import shutil
import ssl
import subprocess
from contextlib import contextmanager
from email import message_from_bytes

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from membership.extensions import db
from membership.notifications import outbox
from membership.notifications.models import OutboxMessage
from tests.conftest import NOW
from tests.notifications.test_smtp_faults import free_port

REAL_DEFAULT_CONTEXT = ssl.create_default_context


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for "localhost": (cert path, key path)."""
    if shutil.which("openssl") is None:
        pytest.skip("NEEDS the openssl command to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
                   check=True, capture_output=True)
    return cert, key


class Handler:
    def __init__(self):
        self.received: list[tuple[str, bool]] = []  # (Message-ID, over TLS)

    async def handle_DATA(self, server, session, envelope):
        over_tls = server.transport.get_extra_info("ssl_object") is not None
        self.received.append((message_from_bytes(envelope.content)["Message-ID"], over_tls))
        return "250 2.0.0 Accepted"


def server_context(certificate) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*map(str, certificate))
    return context


@pytest.fixture
def trust(monkeypatch, certificate):
    """The client trusts the test certificate, as it would a real one (verification stays on)."""
    monkeypatch.setattr(ssl, "create_default_context",
                        lambda *a, **kw: REAL_DEFAULT_CONTEXT(cafile=str(certificate[0])))


def queue_one(make_member) -> OutboxMessage:
    member = make_member(email="tls@example.org")
    message = outbox.enqueue(db.session, template_key="welcome", dedupe_key="tls-test", now=NOW, member=member)
    db.session.commit()
    return message


def status_of(message_id: int) -> OutboxMessage:
    db.session.expire_all()
    return db.session.scalar(select(OutboxMessage).where(OutboxMessage.id == message_id))


@contextmanager
def tls_server(certificate, *, implicit: bool = False):
    """A running aiosmtpd on 127.0.0.1 with the test certificate: STARTTLS required, or TLS from the
    first byte (smtps) with `implicit`. Yields (handler, port)."""
    handler, port = Handler(), free_port()
    tls = {"ssl_context": server_context(certificate)} if implicit else {
        "tls_context": server_context(certificate), "require_starttls": True}
    controller = Controller(handler, hostname="127.0.0.1", port=port, **tls)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def deliver(app, make_member, mail_url: str) -> tuple[OutboxMessage, dict]:
    app.config["MAIL_URL"] = mail_url
    message = queue_one(make_member)
    counts = outbox.deliver_pending(db.session, now=NOW)
    return status_of(message.id), counts


def test_starttls_delivers_over_tls(app, make_member, certificate, trust):
    with tls_server(certificate) as (handler, port):
        row, counts = deliver(app, make_member, f"smtp://localhost:{port}?starttls=1&timeout=5")
    assert counts["sent"] == 1 and row.status == "sent"
    assert handler.received == [(row.message_id, True)]


def test_without_starttls_a_server_that_requires_it_gets_nothing(app, make_member, certificate):
    with tls_server(certificate) as (handler, port):
        row, _ = deliver(app, make_member, f"smtp://localhost:{port}?timeout=5")
    assert handler.received == [] and row.status != "sent" and row.last_error


def test_smtps_delivers_over_implicit_tls(app, make_member, certificate, trust):
    with tls_server(certificate, implicit=True) as (handler, port):
        row, counts = deliver(app, make_member, f"smtps://localhost:{port}?timeout=5")
    assert counts["sent"] == 1
    assert handler.received == [(row.message_id, True)]


def test_a_certificate_the_client_does_not_trust_sends_nothing_and_keeps_the_message(app, make_member,
                                                                                     certificate):
    with tls_server(certificate) as (handler, port):
        row, counts = deliver(app, make_member, f"smtp://localhost:{port}?starttls=1&timeout=5")
    assert handler.received == [] and counts["sent"] == 0
    assert row.status == "queued" and "certificate" in row.last_error.lower()
