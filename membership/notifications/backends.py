"""Building email messages and handing them to a transport: files, SMTP or memory.

The backend is chosen by MAIL_URL:

    file://                      .eml files under <instance>/mail/<date>/<id>.eml (the default)
    file:///var/spool/samiti     .eml files under that folder
    smtp://user:pass@host:587?starttls=1&timeout=10    SMTP, optionally upgraded with STARTTLS
    smtps://user:pass@host:465?timeout=10               SMTP over implicit TLS
    memory://                    a list on the app (tests): app.extensions["samiti_mail"]

A backend is used as open() / send(...) many times / close(). Its errors say what the
dispatcher should do: TemporaryError (retry later), ConnectionProblem (a temporary error
after which the connection is gone), PermanentError (give up; `recipient_refused` when the
server refused the address itself, which marks the member's address as bouncing).
"""
from __future__ import annotations

import functools
import re
import smtplib
import socket
import ssl
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime
from email import quoprimime
from email.header import Header
from email.message import Message
from email.policy import Compat32
from email.mime.application import MIMEApplication
from email.mime.base import MIMEBase
from email.utils import format_datetime, formataddr, parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from flask import Flask, current_app

# Control characters (C0, DEL, C1) and the Unicode line/paragraph separators.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ADDRESS = re.compile(r"^[^@\s<>(),;:\"\[\]\\]+@[^@\s<>(),;:\"\[\]\\]+\.[^@\s<>(),;:\"\[\]\\]+$")

# Extra headers a queued message may carry; anything else in OutboxMessage.headers is ignored.
ALLOWED_HEADERS = {"List-Unsubscribe", "List-Unsubscribe-Post", "Auto-Submitted", "Reply-To", "Precedence",
                   "X-Samiti-Template"}


class MailError(Exception):
    """A failed send. `code` is the SMTP reply code when there is one."""

    def __init__(self, message: str, *, code: int | None = None):
        super().__init__(message)
        self.code = code


class TemporaryError(MailError):
    """Try again later (4xx replies, timeouts, refused or dropped connections)."""


class ConnectionProblem(TemporaryError):
    """A temporary error after which the connection is unusable (it was refused, timed out or dropped)."""


class PermanentError(MailError):
    """Do not try again (5xx replies). `recipient_refused`: the server said the address does not work."""

    def __init__(self, message: str, *, code: int | None = None, recipient_refused: bool = False):
        super().__init__(message, code=code)
        self.recipient_refused = recipient_refused


class HeaderInjection(ValueError):
    """A header value with a line break or control character (refused, never sent)."""


# ---------------------------------------------------------------- building messages


def clean_header_text(value: str | None) -> str:
    """A display name or subject made safe: control characters and line breaks become spaces,
    runs of spaces shrink to one. A name like "Ada\\r\\nBcc: x@evil" stays text in one header."""
    return " ".join(_CONTROL.sub(" ", value or "").split())


def check_address(address: str | None) -> str:
    """An email address fit for a header and an SMTP envelope, or HeaderInjection / ValueError."""
    if _CONTROL.search(address or ""):
        raise HeaderInjection("an email address may not contain line breaks or control characters")
    address = (address or "").strip()
    if not _ADDRESS.match(address) or len(address) > 254:
        raise ValueError(f"not a valid email address: {address!r}")
    return address


def _address(name: str | None, addr: str) -> str:
    """A To/From header value: the display name RFC 2047-encoded when it is not ASCII, quoted when
    it has special characters; an internationalised domain in its ASCII (IDNA) form."""
    addr = check_address(addr)
    local, _, domain = addr.rpartition("@")
    if not domain.isascii():
        domain = domain.encode("idna").decode("ascii")
    return formataddr((clean_header_text(name), f"{local}@{domain}"), charset="utf-8")


def _header_text(value: str) -> str | Header:
    value = clean_header_text(value)
    return value if value.isascii() else Header(value, "utf-8")


class _Policy(Compat32):
    """compat32 with a fast path for the common short ASCII header, and a refusal of any header
    value with a bare line break (newer Pythons refuse these too; 3.11.7 does not)."""

    def _fold(self, name, value, sanitize):
        if isinstance(value, str):
            if "\r" in value or ("\n" in value and not all(line[:1] in (" ", "\t")
                                                           for line in value.splitlines()[1:])):
                raise HeaderInjection(f"the {name} header contains a line break")
            if value.isascii() and "\n" not in value and len(name) + len(value) + 2 <= 78:
                return f"{name}: {value}{self.linesep}"
        return super()._fold(name, value, sanitize)


POLICY = _Policy()


def _text_part(text: str, subtype: str) -> Message:
    """A text part: 7bit for plain ASCII with short lines, else UTF-8 quoted-printable (readable,
    and safe for any line length). Written directly rather than through MIMEText, whose
    charset and parameter handling cost more than the rest of the message together."""
    part = Message(policy=POLICY)
    if text.isascii() and all(len(line) <= 990 for line in text.splitlines()):
        part["Content-Type"] = f'text/{subtype}; charset="us-ascii"'
        part["Content-Transfer-Encoding"] = "7bit"
        part.set_payload(text)
    else:
        part["Content-Type"] = f'text/{subtype}; charset="utf-8"'
        part["Content-Transfer-Encoding"] = "quoted-printable"
        part.set_payload(quoprimime.body_encode(text.encode("utf-8").decode("latin-1")))
    return part


def _multipart(subtype: str, parts: list[Message]) -> Message:
    # A random boundary of our own: the generator's default one costs a regex compile per message.
    msg = Message(policy=POLICY)
    msg["Content-Type"] = f'multipart/{subtype}; boundary="=_samiti_{uuid.uuid4().hex}"'
    msg.set_payload(list(parts))
    return msg


@functools.lru_cache(maxsize=16)
def parse_from(value: str) -> tuple[str, str]:
    """("Samiti", "no-reply@example.org") from MAIL_FROM such as "Samiti <no-reply@example.org>"."""
    if _CONTROL.search(value or ""):
        raise HeaderInjection("MAIL_FROM may not contain line breaks or control characters")
    name, addr = parseaddr(value or "")
    return clean_header_text(name), check_address(addr)


@functools.lru_cache(maxsize=16)
def _from_header(mail_from: str) -> str:
    return _address(*parse_from(mail_from))


@dataclass
class Outgoing:
    """One message ready for a backend: the built message and its SMTP envelope."""

    key: str  # the outbox row id: names the .eml file
    message: Message
    sender: str
    recipients: list[str]
    when: datetime


def build_message(*, mail_from: str, to_address: str, to_name: str | None, subject: str, body_text: str,
                  body_html: str | None = None, message_id: str | None = None, when: datetime | None = None,
                  headers: dict[str, Any] | None = None, attachments: list[dict[str, Any]] | None = None
                  ) -> Message:
    """An RFC 5322 message with a text part, an optional HTML alternative and attachments.

    Built with the standard library's MIME classes (email.mime): about four times faster than
    EmailMessage, whose header parsing dominated a 10,000-message run. The safety EmailMessage
    gives (no line breaks in headers) is ours to keep: every name, subject and header value goes
    through clean_header_text, and addresses through check_address (HeaderInjection/ValueError).
    Attachments: [{filename, content_type, data_b64}].
    """
    import base64

    if not check_address(to_address).split("@")[0].isascii() or not parse_from(mail_from)[1].isascii():
        return _build_international(mail_from=mail_from, to_address=to_address, to_name=to_name, subject=subject,
                                    body_text=body_text, body_html=body_html, message_id=message_id, when=when,
                                    headers=headers, attachments=attachments)
    from_header = _from_header(mail_from)
    body: Message = _text_part(body_text or "", "plain")
    if body_html:
        body = _multipart("alternative", [body, _text_part(body_html, "html")])
    if attachments:
        body = _multipart("mixed", [body])
        for item in attachments:
            filename = clean_header_text(item.get("filename")) or "attachment"
            maintype, _, subtype = (item.get("content_type") or "application/octet-stream").partition("/")
            data = base64.b64decode(item.get("data_b64") or "")
            part = MIMEApplication(data, subtype or "octet-stream", policy=POLICY) if maintype == "application" \
                else _binary_part(data, maintype, subtype or "octet-stream")
            part.add_header("Content-Disposition", "attachment", filename=filename)
            body.attach(part)
    msg = body
    msg["MIME-Version"] = "1.0"
    top = [("From", from_header), ("To", _address(to_name, to_address)),
           ("Subject", _header_text(subject))]
    if when is not None:
        top.append(("Date", format_datetime(when)))
    if message_id:
        if _CONTROL.search(message_id) or not (message_id.startswith("<") and message_id.endswith(">")):
            raise HeaderInjection("bad Message-ID")
        top.append(("Message-ID", message_id))
    for name, value in (headers or {}).items():
        if name in ALLOWED_HEADERS and value:
            top.append((name, _header_text(str(value))))
    for name, value in top:
        msg[name] = value
    return msg


def _build_international(*, mail_from: str, to_address: str, to_name: str | None, subject: str, body_text: str,
                         body_html: str | None, message_id: str | None, when: datetime | None,
                         headers: dict[str, Any] | None, attachments: list[dict[str, Any]] | None) -> Message:
    """The rare message to an address whose local part is not ASCII (e.g. রবি@example.org): it
    needs UTF-8 headers (RFC 6532) and an SMTP server with SMTPUTF8, which smtplib asks for by
    itself (and refuses clearly without). EmailMessage with the SMTPUTF8 policy does this."""
    import base64
    from email.headerregistry import Address
    from email.message import EmailMessage
    from email.policy import SMTPUTF8

    def address(name, addr):
        local, _, domain = check_address(addr).rpartition("@")
        return Address(display_name=clean_header_text(name), username=local, domain=domain)

    msg = EmailMessage(policy=SMTPUTF8)
    msg["From"] = address(*parse_from(mail_from))
    msg["To"] = address(to_name, to_address)
    msg["Subject"] = clean_header_text(subject)
    if when is not None:
        msg["Date"] = format_datetime(when)
    if message_id:
        if _CONTROL.search(message_id) or not (message_id.startswith("<") and message_id.endswith(">")):
            raise HeaderInjection("bad Message-ID")
        msg["Message-ID"] = message_id
    for name, value in (headers or {}).items():
        if name in ALLOWED_HEADERS and value:
            msg[name] = clean_header_text(str(value))
    msg.set_content(body_text or "", subtype="plain", charset="utf-8")
    if body_html:
        msg.add_alternative(body_html, subtype="html", charset="utf-8")
    for item in attachments or []:
        maintype, _, subtype = (item.get("content_type") or "application/octet-stream").partition("/")
        msg.add_attachment(base64.b64decode(item.get("data_b64") or ""), maintype=maintype,
                           subtype=subtype or "octet-stream",
                           filename=clean_header_text(item.get("filename")) or "attachment")
    return msg


def _binary_part(data: bytes, maintype: str, subtype: str) -> MIMEBase:
    from email import encoders

    part = MIMEBase(maintype, subtype, policy=POLICY)
    part.set_payload(data)
    encoders.encode_base64(part)
    return part


# ---------------------------------------------------------------- backends


class Backend:
    """open() before sending, close() after; send() raises the MailError subclasses above."""

    name = "backend"
    # True when sending the same message twice does no harm (the dispatcher may then mark
    # messages sent in groups rather than one by one).
    idempotent = False

    def open(self) -> None:  # pragma: no cover - trivial
        pass

    def send(self, item: Outgoing) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - trivial
        pass

    def describe(self) -> str:
        return self.name

    def forget(self, keys: list[str]) -> int:
        """Delete the copies this backend keeps of the messages with these keys (an erasure);
        returns how many it deleted. Most backends keep none."""
        return 0


class FileBackend(Backend):
    """Writes each message to <root>/<YYYY-MM-DD>/<id>.eml."""

    name = "file"
    idempotent = True  # a second send rewrites the same <id>.eml

    def __init__(self, root: Path):
        self.root = Path(root)
        self._made: set[Path] = set()

    def send(self, item: Outgoing) -> None:
        folder = self.root / item.when.strftime("%Y-%m-%d")
        try:
            if folder not in self._made:
                folder.mkdir(parents=True, exist_ok=True)
                self._made.add(folder)
            # Written in place (a rename per message doubled the cost): a crash mid-write leaves the
            # row "sending", and its re-send after the claim timeout rewrites the whole file.
            (folder / f"{item.key}.eml").write_bytes(item.message.as_bytes())
        except OSError as exc:  # a full or read-only disk: try again later
            raise TemporaryError(f"could not write {folder}: {exc}") from exc

    def describe(self) -> str:
        return f"files in {self.root}"

    def forget(self, keys: list[str]) -> int:
        deleted = 0
        if not keys or not self.root.is_dir():
            return 0
        wanted = {f"{key}.eml" for key in keys}
        for folder in self.root.iterdir():
            if not folder.is_dir():
                continue
            for name in wanted:
                try:
                    (folder / name).unlink()
                    deleted += 1
                except FileNotFoundError:
                    pass
        return deleted


class MemoryBackend(Backend):
    """Keeps sent messages in a list (tests and previews)."""

    name = "memory"

    def __init__(self, store: list[Outgoing]):
        self.store = store
        self._lock = threading.Lock()

    def send(self, item: Outgoing) -> None:
        with self._lock:
            self.store.append(item)


class SMTPBackend(Backend):
    """One SMTP connection per open()/close(), reused for every message of a batch."""

    name = "smtp"

    def __init__(self, host: str, port: int, *, username: str | None = None, password: str | None = None,
                 starttls: bool = False, implicit_tls: bool = False, timeout: float = 10.0,
                 local_hostname: str | None = None):
        self.host, self.port = host, port
        self.username, self.password = username, password
        self.starttls, self.implicit_tls = starttls, implicit_tls
        self.timeout = timeout
        self.local_hostname = local_hostname
        self.conn: smtplib.SMTP | None = None

    def describe(self) -> str:
        scheme = "smtps" if self.implicit_tls else "smtp"
        return f"{scheme}://{self.host}:{self.port}" + (" with STARTTLS" if self.starttls else "")

    def open(self) -> None:
        if self.conn is not None:
            return
        try:
            if self.implicit_tls:
                conn = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout,
                                        local_hostname=self.local_hostname, context=ssl.create_default_context())
            else:
                conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout, local_hostname=self.local_hostname)
            try:
                conn.ehlo_or_helo_if_needed()
                if self.starttls:
                    conn.starttls(context=ssl.create_default_context())
                    conn.ehlo()
                if self.username:
                    conn.login(self.username, self.password or "")
            except BaseException:
                _close_quietly(conn)
                raise
        except smtplib.SMTPAuthenticationError as exc:
            raise ConnectionProblem(f"the SMTP server refused the login: {_reply(exc)}", code=exc.smtp_code) from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise ConnectionProblem(f"the SMTP server does not support this: {exc}") from exc
        except smtplib.SMTPResponseException as exc:
            raise ConnectionProblem(f"the SMTP server refused the connection: {_reply(exc)}",
                                    code=exc.smtp_code) from exc
        except (smtplib.SMTPException, OSError) as exc:  # refused, timed out, TLS failure, dropped
            raise ConnectionProblem(f"could not connect to {self.describe()}: {_describe(exc)}") from exc
        self.conn = conn

    def send(self, item: Outgoing) -> None:
        if self.conn is None:
            self.open()
        conn = self.conn
        try:
            refused = conn.send_message(item.message, from_addr=item.sender, to_addrs=item.recipients)
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            reply = f"{code} {_text(text)}"
            if 500 <= code < 600:
                raise PermanentError(f"the server refused the address: {reply}", code=code,
                                     recipient_refused=True) from exc
            self._after_reply(code)
            raise TemporaryError(f"the server deferred the address: {reply}", code=code) from exc
        except smtplib.SMTPServerDisconnected as exc:
            self._drop()
            raise ConnectionProblem(f"the SMTP server closed the connection: {exc}") from exc
        except smtplib.SMTPResponseException as exc:  # sender refused, data error, other replies
            if 500 <= exc.smtp_code < 600:
                raise PermanentError(f"the server rejected the message: {_reply(exc)}", code=exc.smtp_code) from exc
            self._after_reply(exc.smtp_code)
            raise TemporaryError(f"the server deferred the message: {_reply(exc)}", code=exc.smtp_code) from exc
        except smtplib.SMTPNotSupportedError as exc:  # e.g. an internationalised address, no SMTPUTF8
            raise PermanentError(f"the SMTP server cannot take this message: {exc}") from exc
        except (smtplib.SMTPException, OSError) as exc:  # timeouts, resets
            self._drop()
            raise ConnectionProblem(f"sending failed: {_describe(exc)}") from exc
        if refused:  # only with several recipients; we send one per message
            code, text = next(iter(refused.values()))
            raise PermanentError(f"the server refused the address: {code} {_text(text)}", code=code,
                                 recipient_refused=True)

    def _after_reply(self, code: int) -> None:
        if code == 421:  # "service not available, closing channel": smtplib has closed it
            self._drop()
            raise ConnectionProblem("the SMTP server is closing the connection (421)", code=code)

    def _drop(self) -> None:
        if self.conn is not None:
            _close_quietly(self.conn)
        self.conn = None

    def close(self) -> None:
        if self.conn is None:
            return
        try:
            self.conn.quit()
        except (smtplib.SMTPException, OSError):
            pass
        self._drop()


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _reply(exc: smtplib.SMTPResponseException) -> str:
    return f"{exc.smtp_code} {_text(exc.smtp_error)}"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "no answer (timed out)"
    return str(exc) or type(exc).__name__


def _close_quietly(conn: smtplib.SMTP) -> None:
    try:
        conn.close()
    except OSError:
        pass


# ---------------------------------------------------------------- configuration


def memory_store(app: Flask | None = None) -> list[Outgoing]:
    """The list the memory:// backend appends to (one per app)."""
    app = app or current_app._get_current_object()
    return app.extensions.setdefault("samiti_mail", [])


def backend_from_url(url: str, *, instance_path: str) -> Backend:
    """The backend described by a MAIL_URL (see the module docstring). ValueError for a bad URL."""
    url = (url or "file://").strip()
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    if scheme == "file":
        path = unquote(parts.path or "")
        return FileBackend(Path(path) if path not in ("", "/") else Path(instance_path) / "mail")
    if scheme in ("smtp", "smtps"):
        if not parts.hostname:
            raise ValueError("MAIL_URL: an SMTP URL needs a host, e.g. smtp://mail.example.org:587?starttls=1")
        implicit = scheme == "smtps"
        try:
            port = parts.port or (465 if implicit else 25)
            timeout = float(query.get("timeout", 10))
        except ValueError as exc:
            raise ValueError(f"MAIL_URL: {exc}") from exc
        return SMTPBackend(parts.hostname, port, username=unquote(parts.username) if parts.username else None,
                           password=unquote(parts.password) if parts.password else None,
                           starttls=query.get("starttls", "0").lower() in ("1", "true", "yes"),
                           implicit_tls=implicit, timeout=timeout)
    raise ValueError(f"MAIL_URL: unknown scheme {scheme!r} (use file://, smtp://, smtps:// or memory://)")


def get_backend(app: Flask | None = None) -> Backend:
    """The backend configured for `app` (MAIL_URL)."""
    app = app or current_app._get_current_object()
    url = app.config.get("MAIL_URL") or "file://"
    if url.strip().lower().startswith("memory:"):
        return MemoryBackend(memory_store(app))
    return backend_from_url(url, instance_path=app.instance_path)
