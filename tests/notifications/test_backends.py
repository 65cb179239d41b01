"""Message building (parts, Message-ID, no header injection) and backends chosen from MAIL_URL."""
from __future__ import annotations

import base64
from datetime import datetime, timezone
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

import pytest

from membership.notifications import backends
from membership.notifications.backends import (
    FileBackend, HeaderInjection, MemoryBackend, Outgoing, SMTPBackend, backend_from_url, build_message, get_backend)

WHEN = datetime(2026, 6, 15, 9, 0, tzinfo=timezone.utc)


def build(**kw):
    values = {"mail_from": "Test Association <office@example.org>", "to_address": "ada@example.org",
              "to_name": "Ada Lovelace", "subject": "Hello", "body_text": "Plain body\n",
              "body_html": "<p>HTML body</p>", "message_id": "<abc123@example.org>", "when": WHEN}
    values.update(kw)
    return build_message(**values)


def reparse(msg):
    return message_from_bytes(msg.as_bytes(), policy=default_policy)


def test_message_has_text_and_html_alternatives_and_a_stable_message_id():
    msg = reparse(build())
    assert msg["From"].addresses[0].addr_spec == "office@example.org"
    assert msg["From"].addresses[0].display_name == "Test Association"
    assert msg["To"].addresses[0].display_name == "Ada Lovelace"
    assert msg["Message-ID"] == "<abc123@example.org>"
    assert msg.get_content_type() == "multipart/alternative"
    assert msg.get_body(("plain",)).get_content() == "Plain body\n"
    assert msg.get_body(("html",)).get_content().strip() == "<p>HTML body</p>"
    assert msg["Date"] == "Mon, 15 Jun 2026 09:00:00 +0000"
    again = reparse(build())
    assert again["Message-ID"] == msg["Message-ID"]


def test_text_only_message_and_attachments():
    data = b"%PDF-1.4 receipt"
    msg = reparse(build(body_html=None, attachments=[
        {"filename": "receipt.pdf", "content_type": "application/pdf", "data_b64": base64.b64encode(data).decode()}]))
    assert msg.get_content_type() == "multipart/mixed"
    [attachment] = list(msg.iter_attachments())
    assert attachment.get_filename() == "receipt.pdf" and attachment.get_content() == data
    assert msg.get_body(("plain",)).get_content() == "Plain body\n"


@pytest.mark.parametrize("name", ["Ada\r\nBcc: x@evil.example", "Ada\nBcc: x@evil.example", "Ada\rBcc: x@evil.example",
                                  "Ada\x00\x0bBcc: x@evil.example", "Ada\u2028Bcc: x@evil.example"])
def test_line_breaks_in_names_and_subjects_cannot_add_headers(name):
    msg = build(to_name=name, subject=f"Welcome {name}", mail_from="Samiti <office@example.org>")
    raw = msg.as_bytes()
    parsed = reparse(msg)
    assert parsed["Bcc"] is None
    assert b"\nBcc:" not in raw and b"\rBcc:" not in raw
    assert [a.addr_spec for a in parsed["To"].addresses] == ["ada@example.org"]
    assert "Bcc: x@evil.example" in parsed["Subject"]  # kept as harmless text on one line


@pytest.mark.parametrize("address", ["ada@example.org\r\nBcc: x@evil.example", "ada@example.org\n",
                                     "ada@exa\x00mple.org"])
def test_an_address_with_control_characters_is_refused(address):
    with pytest.raises(HeaderInjection):
        build(to_address=address)


@pytest.mark.parametrize("address", ["not-an-address", "a@b", "<a@b.org>", "a@b.org, c@d.org", ""])
def test_an_invalid_address_is_refused(address):
    with pytest.raises(ValueError):
        build(to_address=address)


def test_mail_from_with_a_line_break_is_refused():
    with pytest.raises(HeaderInjection):
        build(mail_from="Samiti <office@example.org>\r\nBcc: x@evil.example")


def test_only_known_extra_headers_are_added():
    msg = reparse(build(headers={"List-Unsubscribe": "<https://example.org/u/1>", "Bcc": "x@evil.example",
                                 "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}))
    assert msg["List-Unsubscribe"] == "<https://example.org/u/1>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["Bcc"] is None


def test_non_ascii_names_are_encoded():
    msg = build(to_name="রবীন্দ্রনাথ ঠাকুর", subject="স্বাগতম")
    raw = msg.as_bytes()
    raw.decode("ascii")  # headers are encoded words, the body quoted-printable or base64
    # RFC 2047 decoding (the policy=default parser adds a space between adjacent encoded words).
    from email.header import decode_header, make_header
    parsed = message_from_bytes(raw)
    assert str(make_header(decode_header(parsed["To"]))) == "রবীন্দ্রনাথ ঠাকুর <ada@example.org>"
    assert str(make_header(decode_header(parsed["Subject"]))) == "স্বাগতম"


def test_mail_url_parsing(tmp_path):
    default = backend_from_url("file://", instance_path=str(tmp_path))
    assert isinstance(default, FileBackend) and default.root == tmp_path / "mail"
    custom = backend_from_url(f"file://{tmp_path}/spool", instance_path="/nowhere")
    assert custom.root == tmp_path / "spool"
    smtp = backend_from_url("smtp://user%40example.org:p%40ss%3Aword@mail.example.org:587?starttls=1&timeout=5",
                            instance_path="")
    assert isinstance(smtp, SMTPBackend)
    assert (smtp.host, smtp.port, smtp.username, smtp.password) == ("mail.example.org", 587, "user@example.org",
                                                                     "p@ss:word")
    assert smtp.starttls and not smtp.implicit_tls and smtp.timeout == 5
    tls = backend_from_url("smtps://mail.example.org", instance_path="")
    assert tls.implicit_tls and tls.port == 465 and tls.timeout == 10 and tls.username is None
    plain = backend_from_url("smtp://127.0.0.1", instance_path="")
    assert plain.port == 25 and not plain.starttls
    for bad in ("ftp://x", "smtp://", "smtp://host?timeout=soon", "smtp://host:port"):
        with pytest.raises(ValueError):
            backend_from_url(bad, instance_path="")


def test_get_backend_follows_the_apps_mail_url(app):
    assert isinstance(get_backend(), MemoryBackend)  # tests/conftest.py: MAIL_URL memory://
    app.config["MAIL_URL"] = "file://"
    backend = get_backend()
    assert isinstance(backend, FileBackend) and backend.root == Path(app.instance_path) / "mail"


def test_file_backend_writes_one_file_per_message_by_day(tmp_path):
    backend = FileBackend(tmp_path)
    backend.send(Outgoing(key="7", message=build(), sender="office@example.org", recipients=["ada@example.org"],
                          when=WHEN))
    path = tmp_path / "2026-06-15" / "7.eml"
    assert reparse(build())["Message-ID"] == message_from_bytes(path.read_bytes(), policy=default_policy)["Message-ID"]
    assert [p.name for p in path.parent.iterdir()] == ["7.eml"]


def test_file_backend_reports_a_disk_problem_as_temporary(tmp_path):
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("x")
    with pytest.raises(backends.TemporaryError):
        FileBackend(blocker).send(Outgoing(key="1", message=build(), sender="a@b.org", recipients=["c@d.org"],
                                           when=WHEN))


def test_an_address_with_a_non_ascii_local_part_gets_utf8_headers():
    msg = build(to_address="রবি@example.org", to_name="রবি ঠাকুর")
    raw = msg.as_bytes()
    assert "To: রবি ঠাকুর <রবি@example.org>".encode() in raw
    from email import message_from_string
    parsed = message_from_string(raw.decode("utf-8"), policy=default_policy)
    assert parsed["To"].addresses[0].addr_spec == "রবি@example.org"
    assert parsed.get_body(("plain",)).get_content().strip() == "Plain body"
    with pytest.raises(HeaderInjection):
        build(to_address="রবি@example.org\r\nBcc: x@evil.example")
    injected = build(to_address="রবি@example.org", to_name="Ada\r\nBcc: x@evil.example").as_bytes()
    assert b"\nBcc:" not in injected


def test_an_international_domain_is_sent_in_its_ascii_form():
    parsed = reparse(build(to_address="ada@bücher.example"))
    assert parsed["To"].addresses[0].addr_spec == "ada@xn--bcher-kva.example"
