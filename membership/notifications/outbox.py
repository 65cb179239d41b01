"""The email outbox: queue a message in the caller's transaction, deliver it later, exactly once.

Writing (any domain code, any edge):

    enqueue(session, *, template_key, dedupe_key, now, member=None, to_address=None, to_name=None,
            context=None, category=None, reason=None, source=None, attachments=None)
        -> OutboxMessage | None

Delivering (the scheduler's "deliver-email" job, every minute):

    deliver_pending(session_or_factory=None, *, now, limit=None, batch_size=None, worker_id=None,
                    backend=None) -> dict[str, int]

Exactly once: the unique `dedupe_key` stops a second enqueue (re-run, restart, second scheduler);
claims (queued -> sending, with claimed_by/claimed_at) stop two dispatchers sending one row; a
claim older than MAIL_CLAIM_TIMEOUT is taken back, so a crash leaves nothing stuck in "sending".
SMTP itself is at-least-once: a connection that drops after the server accepted DATA but
before it said so leads to a resend with the same Message-ID (receivers de-duplicate on it).

Settings (app.config, with defaults): MAIL_URL ("file://"), MAIL_FROM, MAIL_BATCH_SIZE (100),
MAIL_MAX_ATTEMPTS (10), MAIL_RETRY_BASE (60 s: 1, 2, 4... minutes), MAIL_RETRY_MAX (4 h),
MAIL_CLAIM_TIMEOUT (600 s).
"""
from __future__ import annotations

from flask_babel import gettext as _

import logging
import os
import secrets
import socket
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterator

from flask import current_app
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session, make_transient_to_detached

from membership.core.db import conflict_insert
from membership.core.errors import Conflict, ValidationError
from membership.core.services import record_audit
from membership.notifications import templating
from membership.notifications.backends import (
    Backend, ConnectionProblem, MailError, Outgoing, PermanentError, TemporaryError, build_message,
    check_address, clean_header_text, get_backend, parse_from)
from membership.notifications.models import EMAIL_CATEGORIES, OutboxMessage

log = logging.getLogger(__name__)

T = OutboxMessage.__table__

DEFAULTS = {"MAIL_BATCH_SIZE": 100, "MAIL_MAX_ATTEMPTS": 10, "MAIL_RETRY_BASE": 60,
            "MAIL_RETRY_MAX": 4 * 3600, "MAIL_CLAIM_TIMEOUT": 600}


def setting(name: str):
    value = current_app.config.get(name)
    return DEFAULTS[name] if value is None else value


# ---------------------------------------------------------------- enqueue


_INSERTS: dict[str, Any] = {}
_EXISTS = select(T.c.id).where(T.c.dedupe_key == bindparam("key"))


def _insert_statement(dialect: str, returning: str = "id"):
    """INSERT .. ON CONFLICT (dedupe_key) DO NOTHING RETURNING <column>, built once per dialect
    (the values go as parameters, so SQLAlchemy compiles it once, not per email)."""
    stmt = _INSERTS.get((dialect, returning))
    if stmt is None:
        stmt = _INSERTS[dialect, returning] = conflict_insert(dialect)(T).on_conflict_do_nothing(
            index_elements=["dedupe_key"]).returning(T.c[returning])
    return stmt


def _insert_ignoring_duplicate(session: Session, values: dict[str, Any]) -> int | None:
    """Insert the row unless its dedupe key exists: the id of the new row, or None for a duplicate.

    No savepoint, no IntegrityError: the caller's transaction stays usable whatever happens,
    including when another transaction inserts the same key at the same moment (PostgreSQL
    waits for it and then does nothing; SQLite writers are serialised by BEGIN IMMEDIATE).
    """
    dialect = session.get_bind().dialect.name
    if dialect not in ("postgresql", "sqlite"):  # pragma: no cover - other databases are not supported
        from sqlalchemy.exc import IntegrityError
        try:
            with session.begin_nested():
                row = OutboxMessage(**values)
                session.add(row)
            return row.id
        except IntegrityError:
            return None
    return session.execute(_insert_statement(dialect), values).scalar_one_or_none()


def _domain() -> str:
    try:
        return parse_from(current_app.config.get("MAIL_FROM") or "")[1].rpartition("@")[2]
    except ValueError:
        return "samiti.localhost"


def new_message_id() -> str:
    """A Message-ID, made once at enqueue and kept: a retry sends the same one."""
    return f"<{uuid.uuid4().hex}@{_domain()}>"


def enqueue(session: Session, *, template_key: str, dedupe_key: str, now: datetime, member=None,
            to_address: str | None = None, to_name: str | None = None, context: dict[str, Any] | None = None,
            category: str | None = None, reason: str | None = None, source=None,
            attachments: list[dict[str, Any]] | None = None, language: str | None = None) -> OutboxMessage | None:
    """Render template `template_key` and add one OutboxMessage in the caller's transaction.
    Returns the new message, or None (see below). For many messages at once (the reminder sweep),
    `prepare` each and insert them with one `enqueue_many`.

    - `dedupe_key` (unique, up to 200 characters) names the email: e.g. "welcome:member:42",
      "receipt:payment:17", "reminder:rule:3:term:99". Returns None, adds nothing and leaves the
      transaction usable when a message with that key exists (or is being inserted by another
      transaction at the same moment).
    - The recipient is `to_address`/`to_name`, else the member's email and name. Returns None
      when there is no address.
    - `category`: "service" (receipts, reminders: the footer says why it was sent, from `reason`
      or the template's shipped reason; `reason` completes "You received this email because ..."),
      "marketing" (needs a member who opted in and whose address is not bouncing, else None;
      gets a List-Unsubscribe header and an unsubscribe footer), "staff". Default: the
      template's own category.
    - `context`: extra placeholders (plain values). "term" (a Membership) and "payment" (a
      Payment) become plan_name, expiry_date, days_left, grace_end_date..., receipt_number,
      amount...; without a term the member's cached plan and expiry date are used.
    - `source`: the row that caused it (stored as source_type/source_id), e.g. the term.
    - `attachments`: [{"filename", "content_type", "data_b64"}].
    - `language`: the recipient's language; default the member's own (Member.language), for
      someone without a record the page's language, else DEFAULT_LANGUAGE. The subject, the body,
      the dates and amounts in the placeholders and the footer are all in it.
    The message is due at once (next_attempt_at = now). Needs an app context (settings).
    Raises ValueError for an unknown template or category, ValidationError for a bad address;
    TemplateProblem if even the shipped template cannot render with the given context.
    """
    values = prepare(session, template_key=template_key, dedupe_key=dedupe_key, now=now, member=member,
                     to_address=to_address, to_name=to_name, context=context, category=category, reason=reason,
                     source=source, attachments=attachments, language=language)
    if values is None:
        return None
    new_id = _insert_ignoring_duplicate(session, values)
    if new_id is None:
        return None
    # The row as the caller's session object, without reading it back.
    row = OutboxMessage(id=new_id, claimed_by=None, claimed_at=None, last_error=None, sent_at=None, **values)
    make_transient_to_detached(row)
    session.add(row)
    return row


def prepare(session: Session, *, template_key: str, dedupe_key: str, now: datetime, member=None,
            to_address: str | None = None, to_name: str | None = None, context: dict[str, Any] | None = None,
            category: str | None = None, reason: str | None = None, source=None,
            attachments: list[dict[str, Any]] | None = None, check_existing: bool = True,
            template_source: templating.Source | None = None,
            unsubscribe_link: str | None = None, language: str | None = None) -> dict[str, Any] | None:
    """The outbox row `enqueue` would insert, rendered, as a dict of column values; None when
    nothing is to be sent (no address, a marketing email the member does not want, or, with
    `check_existing`, a message with that dedupe key exists). Adds nothing. Same arguments and
    errors as `enqueue`, plus: `template_source` renders this text instead of the template's
    current one (a campaign's own subject and body; the key still names the template's footer
    reason), `unsubscribe_link` replaces the member's plain one (a campaign's, which says which
    campaign the member unsubscribed from)."""
    info = templating.TEMPLATES.get(template_key)
    if info is None:
        raise ValueError(f"unknown email template {template_key!r}")
    category = category or info.category
    if category not in EMAIL_CATEGORIES:
        raise ValueError(f"unknown email category {category!r}")
    if not dedupe_key or len(dedupe_key) > 200:
        raise ValueError("dedupe_key must be 1 to 200 characters")
    address = to_address if to_address is not None else getattr(member, "email", None)
    if not address:
        return None
    try:
        address = check_address(address)
    except ValueError as exc:
        raise ValidationError(_("Cannot email %(address)s: %(problem)s", address=repr(address), problem=str(exc)), field="email") from exc
    name = clean_header_text(to_name if to_name is not None else getattr(member, "full_name", ""))[:200]
    if category == "marketing" and (member is None or not member.marketing_opt_in or member.email_bouncing):
        return None
    # Cheap check first: a re-run finds most keys already there and need not render anything.
    if check_existing and session.execute(_EXISTS, {"key": dedupe_key}).first() is not None:
        return None

    headers: dict[str, str] = {"Auto-Submitted": "auto-generated", "X-Samiti-Template": template_key}
    unsubscribe = ""
    if category == "marketing":
        from membership.notifications.unsubscribe import unsubscribe_url
        unsubscribe = unsubscribe_link or unsubscribe_url(member)
        headers["List-Unsubscribe"] = f"<{unsubscribe}>"
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        headers["Precedence"] = "bulk"
    from membership.core.i18n import in_language, language_of

    language = language or language_of(member=member)
    with in_language(language):
        ctx = templating.build_context(now=now, member=member, to_name=name, to_address=address,
                                       extra=context, unsubscribe_link=unsubscribe)
        rendered, why = templating.render_email(session, template_key, ctx, category=category, reason=reason,
                                                unsubscribe_link=unsubscribe, source=template_source,
                                                language=language)
    values = {
        "dedupe_key": dedupe_key, "template_key": template_key, "category": category,
        "member_id": getattr(member, "id", None), "to_address": address, "to_name": name,
        "subject": rendered.subject[:300], "body_text": rendered.body_text, "body_html": rendered.body_html,
        "reason": why or None, "headers": headers, "attachments": attachments or None,
        "message_id": new_message_id(), "status": "queued", "attempts": 0, "next_attempt_at": now,
        "created_at": now,
        "source_type": type(source).__name__.lower() if source is not None else None,
        "source_id": getattr(source, "id", None),
    }
    return values


def enqueue_many(session: Session, rows: list[dict[str, Any]]) -> set[str]:
    """Insert rows made by `prepare` in the caller's transaction, in multi-row INSERTs, skipping
    any whose dedupe key exists already (or is being inserted by another transaction at the same
    moment: the same ON CONFLICT DO NOTHING as `enqueue`). Returns the dedupe keys inserted.
    Session objects loaded before are not refreshed: the rows are not added to the session."""
    if not rows:
        return set()
    dialect = session.get_bind().dialect.name
    if dialect not in ("postgresql", "sqlite"):  # pragma: no cover - other databases are not supported
        return {values["dedupe_key"] for values in rows if _insert_ignoring_duplicate(session, values)}
    return set(session.execute(_insert_statement(dialect, "dedupe_key"), rows).scalars())


# ---------------------------------------------------------------- staff actions


def retry(session: Session, message: OutboxMessage, *, now: datetime, actor) -> str | None:
    """Put a failed message back in the queue, due now, with a fresh set of attempts.

    When the member's address has changed since (staff corrected a typo that bounced), the
    message goes to the new address; returns that address, else None.
    Raises Conflict if the message is not failed (any more). Adds the audit row; caller commits.
    """
    values: dict[str, Any] = {"status": "queued", "attempts": 0, "next_attempt_at": now, "claimed_by": None,
                              "claimed_at": None}
    new_address = None
    member = message.member
    if member is not None and member.email and member.email != message.to_address:
        new_address = values["to_address"] = check_address(member.email)
    done = session.execute(update(T).where(T.c.id == message.id, T.c.status == "failed").values(**values)).rowcount
    if not done:
        raise Conflict(_("Only a failed message can be retried; this one is no longer failed."))
    record_audit(session, actor=actor, action="outbox.retry", entity=message, now=now, member_id=message.member_id,
                 summary=f"Email '{message.subject}' to {new_address or message.to_address} queued again"
                 + (f" (was {message.to_address})" if new_address else ""))
    session.expire(message)
    return new_address


def retry_failed(session: Session, *, now: datetime, actor, to_address: str | None = None) -> int:
    """Queue every failed message again (optionally only those to addresses containing `to_address`).
    Returns how many. Caller commits."""
    stmt = update(T).where(T.c.status == "failed")
    if to_address:
        stmt = stmt.where(T.c.to_address.ilike(f"%{_like(to_address)}%", escape="\\"))
    count = session.execute(stmt.values(status="queued", attempts=0, next_attempt_at=now, claimed_by=None,
                                        claimed_at=None)).rowcount
    if count:
        record_audit(session, actor=actor, action="outbox.retry_all", entity=None, now=now,
                     summary=f"{count} failed email(s) queued again")
    session.expire_all()
    return count


def cancel(session: Session, message: OutboxMessage, *, now: datetime, actor) -> None:
    """Cancel a queued or failed message so it is never sent. Raises Conflict otherwise. Caller commits."""
    done = session.execute(
        update(T).where(T.c.id == message.id, T.c.status.in_(("queued", "failed")))
        .values(status="cancelled", claimed_by=None, claimed_at=None)
    ).rowcount
    if not done:
        raise Conflict(_("Only a queued or failed message can be cancelled; this one is being sent or was sent."))
    record_audit(session, actor=actor, action="outbox.cancel", entity=message, now=now, member_id=message.member_id,
                 summary=f"Email '{message.subject}' to {message.to_address} cancelled")
    session.expire(message)


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def member_messages(session: Session, member_id: int, *, limit: int = 20) -> list[OutboxMessage]:
    """The latest emails to a member, newest first (for the member page's communications list)."""
    return list(session.scalars(select(OutboxMessage).where(OutboxMessage.member_id == member_id)
                                .order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc()).limit(limit)))


def status_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(T.c.status, func.count()).group_by(T.c.status)).all()
    return {status: n for status, n in rows}


def message_for_display(message: OutboxMessage) -> Any:
    """The message as it was (or will be) sent: the same builder the dispatcher uses."""
    return build_message(mail_from=current_app.config["MAIL_FROM"], to_address=message.to_address,
                         to_name=message.to_name, subject=message.subject, body_text=message.body_text,
                         body_html=message.body_html, message_id=message.message_id,
                         when=message.sent_at or message.created_at, headers=message.headers,
                         attachments=message.attachments)


# ---------------------------------------------------------------- delivery


def backoff(attempts: int) -> timedelta:
    """Wait before the next try after `attempts` failed tries: base, 2*base, 4*base... capped."""
    base, cap = setting("MAIL_RETRY_BASE"), setting("MAIL_RETRY_MAX")
    return timedelta(seconds=min(cap, base * 2 ** max(0, attempts - 1)))


def default_worker_id() -> str:
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass
class _Claimed:
    id: int
    attempts: int
    member_id: int | None
    to_address: str
    to_name: str
    subject: str
    body_text: str
    body_html: str | None
    headers: dict | None
    attachments: list | None
    message_id: str | None


_COLUMNS = [T.c.id, T.c.attempts, T.c.member_id, T.c.to_address, T.c.to_name, T.c.subject, T.c.body_text,
            T.c.body_html, T.c.headers, T.c.attachments, T.c.message_id]


@contextmanager
def _session_scope(session_or_factory) -> Iterator[Session]:
    if session_or_factory is None:
        from membership.extensions import db
        yield db.session
    elif isinstance(session_or_factory, Session) or hasattr(session_or_factory, "registry"):
        yield session_or_factory  # a Session or a scoped_session (db.session)
    else:
        session = session_or_factory()
        try:
            yield session
        finally:
            session.close()


def take_back_stale(session: Session, *, now: datetime) -> int:
    """Put back in the queue rows left in "sending" by a dispatcher that stopped (crash, kill)
    more than MAIL_CLAIM_TIMEOUT ago; a row that used up its attempts this way is failed.
    Returns how many were taken back. Does not commit."""
    stale_before = now - timedelta(seconds=setting("MAIL_CLAIM_TIMEOUT"))
    max_attempts = setting("MAIL_MAX_ATTEMPTS")
    stale = (T.c.status == "sending") & (T.c.claimed_at < stale_before)
    failed = session.execute(update(T).where(stale, T.c.attempts >= max_attempts).values(
        status="failed", claimed_by=None, claimed_at=None,
        last_error="The dispatcher stopped while sending this message, too many times; gave up.")).rowcount
    requeued = session.execute(update(T).where(stale).values(
        status="queued", claimed_by=None, claimed_at=None, next_attempt_at=now,
        last_error="The dispatcher stopped while sending this message; queued again.")).rowcount
    return failed + requeued


def claim(session: Session, *, now: datetime, worker_id: str, size: int) -> list[_Claimed]:
    """Take up to `size` due queued rows for `worker_id` (queued -> sending, attempts + 1).

    PostgreSQL: SELECT .. FOR UPDATE SKIP LOCKED, so concurrent dispatchers take disjoint rows
    without waiting. SQLite: the conditional UPDATE runs under BEGIN IMMEDIATE (one writer at
    a time), and `status = 'queued'` in its WHERE keeps a row from being taken twice.
    Does not commit.
    """
    due = select(T.c.id).where(T.c.status == "queued", T.c.next_attempt_at <= now) \
        .order_by(T.c.next_attempt_at, T.c.id).limit(size)
    claim_values = {"status": "sending", "claimed_by": worker_id, "claimed_at": now, "attempts": T.c.attempts + 1}
    if session.get_bind().dialect.name == "postgresql":
        ids = list(session.scalars(due.with_for_update(skip_locked=True)))
        if not ids:
            return []
        session.execute(update(T).where(T.c.id.in_(ids)).values(**claim_values))
    else:
        session.execute(update(T).where(T.c.status == "queued", T.c.id.in_(due.scalar_subquery()))
                        .values(**claim_values))
    rows = session.execute(select(*_COLUMNS).where(T.c.claimed_by == worker_id, T.c.status == "sending")
                           .order_by(T.c.id)).all()
    return [_Claimed(*row) for row in rows]


def deliver_pending(session_or_factory=None, *, now: datetime, limit: int | None = None,
                    batch_size: int | None = None, worker_id: str | None = None,
                    backend: Backend | None = None) -> dict[str, int]:
    """Send what is due: take back stale claims, then claim, send and mark batch after batch.

    `session_or_factory`: None or a Session (db.session) used with explicit commits, or a
    callable returning a new Session (a sessionmaker), closed at the end. This function owns
    its transactions: it COMMITS on the session after each claim and after each message, so
    call it with no unit of work of your own pending. Messages are sent outside any database
    transaction; each one's outcome is committed on its own, so a crash keeps what was sent.

    Outcomes: sent; temporary failure (4xx, timeouts, refused or dropped connections): queued
    again after a back-off (MAIL_RETRY_BASE doubling, capped at MAIL_RETRY_MAX), failed after
    MAIL_MAX_ATTEMPTS; permanent failure (5xx): failed at once, and a refused recipient marks
    the member's address as bouncing. One refused recipient does not stop the batch. When the
    server cannot be reached (or the connection drops and a new one fails), the run stops and
    the unsent rest of the batch goes back to the queue untouched, due with the failed one.

    `worker_id` names the dispatcher in claimed_by (a random suffix per run is added).
    `now` is the moment of the run (the scheduler's, or a rehearsal's); times written later in
    the run add the time elapsed since. `limit`: most messages per run (None: until nothing is
    due); `batch_size` rows are claimed at a time (memory stays bounded). `backend` overrides
    MAIL_URL (tests, benchmarks). Needs an app context.
    Returns counts: claimed, sent, retried, failed, bounced, released, taken_back.
    """
    # Claims are made under a name of this run's own: a scheduler passes its stable holder id,
    # and rows another run of the same holder left behind must not look like this run's.
    worker_id = f"{(worker_id or default_worker_id())[:88]}/{secrets.token_hex(5)}"
    size = batch_size or setting("MAIL_BATCH_SIZE")
    max_attempts = setting("MAIL_MAX_ATTEMPTS")
    mail_from = current_app.config["MAIL_FROM"]
    sender = parse_from(mail_from)[1]
    started = time.monotonic()

    def clock() -> datetime:
        return now + timedelta(seconds=time.monotonic() - started)

    counts = dict.fromkeys(("claimed", "sent", "retried", "failed", "bounced", "released", "taken_back"), 0)
    backend = backend or get_backend()
    with _session_scope(session_or_factory) as session:
        try:
            counts["taken_back"] = take_back_stale(session, now=now)
            session.commit()
        except Exception:
            session.rollback()
            raise
        is_open = False
        sent_on_connection = 0
        stop = False
        # Mark "sent" per message, or for a backend where sending twice does no harm (a file
        # written again, a list) per group: a crash then re-sends at most a group, harmlessly.
        marks = _SentMarks(session, worker_id, group=100 if getattr(backend, "idempotent", False) else 1)
        try:
            while not stop and (limit is None or counts["claimed"] < limit):
                want = size if limit is None else min(size, limit - counts["claimed"])
                try:
                    batch = claim(session, now=clock(), worker_id=worker_id, size=want)
                    session.commit()
                except Exception:
                    session.rollback()
                    raise
                if not batch:
                    break
                counts["claimed"] += len(batch)
                for index, item in enumerate(batch):
                    at = clock()
                    try:
                        outgoing = Outgoing(key=str(item.id), message=_build(item, mail_from, at), sender=sender,
                                            recipients=[item.to_address], when=at)
                    except ValueError as exc:  # a row that cannot become a valid message
                        _finish(session, item, worker_id, "failed", error=f"Cannot build the message: {exc}")
                        counts["failed"] += 1
                        continue
                    try:
                        if not is_open:
                            backend.open()
                            is_open, sent_on_connection = True, 0
                        backend.send(outgoing)
                    except ConnectionProblem as exc:
                        was_live, is_open, sent_on_connection = sent_on_connection > 0, False, 0
                        backend.close()
                        retry_at = _temporary(session, item, worker_id, exc, clock(), max_attempts, counts)
                        if not was_live:
                            # Not reachable at all: leave the rest for later, untouched.
                            counts["released"] += _release(session, batch[index + 1:], worker_id, retry_at, exc)
                            stop = True
                            break
                        # A live connection dropped: one fresh connection for the rest of the batch.
                        continue
                    except TemporaryError as exc:
                        _temporary(session, item, worker_id, exc, clock(), max_attempts, counts)
                    except PermanentError as exc:
                        _finish(session, item, worker_id, "failed", error=str(exc),
                                bounce_member=item.member_id if exc.recipient_refused else None)
                        counts["failed"] += 1
                        counts["bounced"] += int(exc.recipient_refused and item.member_id is not None)
                    except Exception as exc:  # a bug or an unexpected library error: retry, keep the error
                        log.exception("unexpected error sending outbox message %s", item.id)
                        _temporary(session, item, worker_id, MailError(f"{type(exc).__name__}: {exc}"), clock(),
                                   max_attempts, counts)
                    else:
                        sent_on_connection += 1
                        marks.add(item.id, at)
                        counts["sent"] += 1
                marks.flush()
        finally:
            try:
                marks.flush()
            finally:
                if is_open:
                    backend.close()
    if any(counts[k] for k in ("retried", "failed", "released")):
        log.warning("outbox run %s: %s", worker_id, counts)
    return counts


class _SentMarks:
    """Rows sent but not yet marked: one executemany UPDATE and one commit per group."""

    def __init__(self, session: Session, worker_id: str, group: int):
        self.session, self.group, self.pending = session, group, []
        self.stmt = update(T).where(T.c.id == bindparam("oid"), T.c.status == "sending",
                                    T.c.claimed_by == worker_id).values(
            status="sent", sent_at=bindparam("sat"), claimed_by=None, claimed_at=None, last_error=None)

    def add(self, message_id: int, at: datetime) -> None:
        self.pending.append({"oid": message_id, "sat": at})
        if len(self.pending) >= self.group:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        pending, self.pending = self.pending, []
        try:
            self.session.execute(self.stmt, pending)
            self.session.commit()
        except Exception:
            self.session.rollback()
            raise


def _build(item: _Claimed, mail_from: str, when: datetime):
    body_html = item.body_html
    if body_html and item.member_id is not None:
        # Tracking is added as the message is built for sending, when its id is known: the stored
        # body (shown to staff in the outbox) stays clean, so a staff preview records nothing.
        from membership.engagement.tracking import add_tracking
        body_html = add_tracking(body_html, item.id)
    return build_message(mail_from=mail_from, to_address=item.to_address, to_name=item.to_name,
                         subject=item.subject, body_text=item.body_text, body_html=body_html,
                         message_id=item.message_id, when=when, headers=item.headers,
                         attachments=item.attachments)


def _mine(item: _Claimed, worker_id: str):
    # Only while the claim is still ours: a row taken back from a stalled worker is left alone.
    return (T.c.id == item.id) & (T.c.status == "sending") & (T.c.claimed_by == worker_id)


def _commit(session: Session, stmt, *more) -> int:
    try:
        count = session.execute(stmt).rowcount
        for extra in more:
            session.execute(extra)
        session.commit()
        return count
    except Exception:
        session.rollback()
        raise


def _finish(session: Session, item: _Claimed, worker_id: str, status: str, *, at: datetime | None = None,
            error: str | None = None, bounce_member: int | None = None) -> None:
    values: dict[str, Any] = {"status": status, "claimed_by": None, "claimed_at": None}
    if status == "sent":
        values.update(sent_at=at, last_error=None)
    else:
        values["last_error"] = (error or "")[:2000]
    more = []
    if bounce_member is not None:
        from membership.members.models import Member
        more.append(update(Member).where(Member.id == bounce_member).values(email_bouncing=True))
    if not _commit(session, update(T).where(_mine(item, worker_id)).values(**values), *more):
        log.warning("outbox message %s was taken back from %s before it finished", item.id, worker_id)


def _temporary(session: Session, item: _Claimed, worker_id: str, exc: Exception, at: datetime,
               max_attempts: int, counts: dict[str, int]) -> datetime:
    if item.attempts >= max_attempts:
        _finish(session, item, worker_id, "failed", error=f"Gave up after {item.attempts} attempts: {exc}")
        counts["failed"] += 1
        return at + backoff(item.attempts)
    retry_at = at + backoff(item.attempts)
    _commit(session, update(T).where(_mine(item, worker_id)).values(
        status="queued", claimed_by=None, claimed_at=None, next_attempt_at=retry_at,
        last_error=f"Attempt {item.attempts} failed, will retry: {exc}"[:2000]))
    counts["retried"] += 1
    return retry_at


def _release(session: Session, items: list[_Claimed], worker_id: str, retry_at: datetime, exc: Exception) -> int:
    """Give claimed but untried rows back: the attempt is not counted, they wait with the failed one."""
    if not items:
        return 0
    ids = [i.id for i in items]
    return _commit(session, update(T).where(T.c.id.in_(ids), T.c.status == "sending", T.c.claimed_by == worker_id)
                   .values(status="queued", claimed_by=None, claimed_at=None, attempts=T.c.attempts - 1,
                           next_attempt_at=retry_at, last_error=f"Not tried: {exc}"[:2000]))


def pending_count(session: Session, *, now: datetime) -> int:
    return session.scalar(select(func.count()).select_from(T)
                          .where(T.c.status == "queued", T.c.next_attempt_at <= now)) or 0


__all__ = ["enqueue", "prepare", "enqueue_many", "deliver_pending", "retry", "retry_failed", "cancel", "member_messages", "claim",
           "take_back_stale", "backoff", "status_counts", "message_for_display"]
