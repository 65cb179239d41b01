"""The outbox: enqueue in the caller's transaction with a unique key; claim, send, mark; retry with
back-off; crash recovery; two dispatchers never send one row twice."""
from __future__ import annotations

import threading
from datetime import timedelta
from email import message_from_bytes
from email.policy import default as default_policy

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from membership.core.errors import Conflict, ValidationError
from membership.core.models import AuditLog
from membership.extensions import db
from membership.members.models import Member
from membership.notifications import emails, outbox, unsubscribe
from membership.notifications.backends import ConnectionProblem, PermanentError, TemporaryError
from membership.notifications.models import OutboxMessage
from tests.conftest import NOW


def rows():
    db.session.expire_all()
    return db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()


def count_rows() -> int:
    return db.session.scalar(select(func.count()).select_from(OutboxMessage))


# ---------------------------------------------------------------- enqueue


def test_enqueue_renders_and_writes_one_row_in_the_callers_transaction(app, make_member):
    member = make_member(first_name="Ada", last_name="Lovelace", email="ada@example.org")
    row = outbox.enqueue(db.session, template_key="welcome", dedupe_key="welcome:member:1", now=NOW, member=member)
    assert row is not None and row.status == "queued" and row.attempts == 0
    assert row.to_address == "ada@example.org" and row.to_name == "Ada Lovelace"
    assert row.subject == "Welcome to Test Association, Ada"
    assert "Dear Ada," in row.body_text and member.member_number in row.body_text
    assert "You received this email because you have just joined Test Association." in row.body_text
    assert row.body_html.startswith("<!doctype html>") and "Dear Ada," in row.body_html
    assert row.message_id.startswith("<") and row.message_id.endswith("@samiti.localhost>")
    assert row.next_attempt_at == NOW and row.member_id == member.id
    db.session.rollback()  # the email belongs to the caller's transaction: gone with it
    assert count_rows() == 0


def test_same_dedupe_key_twice_gives_one_row_and_the_transaction_stays_usable(app, make_member):
    member = make_member()
    first = outbox.enqueue(db.session, template_key="welcome", dedupe_key="k-1", now=NOW, member=member)
    second = outbox.enqueue(db.session, template_key="welcome", dedupe_key="k-1", now=NOW, member=member)
    assert first is not None and second is None
    # The caller goes on writing in the same transaction and commits it.
    other = make_member(first_name="Grace")
    db.session.commit()
    assert count_rows() == 1
    assert db.session.get(Member, other.id) is not None
    # And in a later transaction too.
    assert outbox.enqueue(db.session, template_key="welcome", dedupe_key="k-1", now=NOW, member=member) is None
    db.session.commit()
    assert count_rows() == 1


def test_enqueue_many_inserts_in_bulk_and_skips_keys_that_exist(app, make_member):
    ada = make_member(first_name="Ada", email="ada@example.org")
    bo = make_member(first_name="Bo", email="bo@example.org")
    outbox.enqueue(db.session, template_key="welcome", dedupe_key="bulk-ada", now=NOW, member=ada)
    prepared = [outbox.prepare(db.session, template_key="welcome", dedupe_key=f"bulk-{m.first_name.lower()}",
                               now=NOW, member=m, check_existing=False) for m in (ada, bo)]
    assert prepared[0]["dedupe_key"] == "bulk-ada" and "Dear Bo," in prepared[1]["body_text"]
    # checked: the existing key is not even rendered
    assert outbox.prepare(db.session, template_key="welcome", dedupe_key="bulk-ada", now=NOW, member=ada) is None

    assert outbox.enqueue_many(db.session, prepared) == {"bulk-bo"}
    assert outbox.enqueue_many(db.session, prepared) == set()
    assert outbox.enqueue_many(db.session, []) == set()
    db.session.commit()
    assert [(r.dedupe_key, r.to_address, r.status) for r in rows()] == [
        ("bulk-ada", "ada@example.org", "queued"), ("bulk-bo", "bo@example.org", "queued")]


def test_a_concurrent_enqueue_of_the_same_key_waits_and_adds_nothing(app, make_member):
    """Transaction A queued the key but has not committed; B queues the same key meanwhile.
    B gets None after A commits, its transaction still works, and there is one row."""
    member = make_member()
    db.session.commit()
    assert outbox.enqueue(db.session, template_key="welcome", dedupe_key="race", now=NOW, member=member) is not None
    result = {}

    def other_transaction():
        with app.app_context():
            session = sessionmaker(bind=db.engine)()
            try:
                m = session.get(Member, member.id)
                result["dup"] = outbox.enqueue(session, template_key="welcome", dedupe_key="race", now=NOW, member=m)
                result["other"] = outbox.enqueue(session, template_key="welcome", dedupe_key="race-2", now=NOW,
                                                 member=m)
                session.commit()
            except Exception as exc:  # pragma: no cover - reported below
                result["error"] = exc
            finally:
                session.close()

    thread = threading.Thread(target=other_transaction)
    thread.start()
    thread.join(0.3)
    assert thread.is_alive(), "B should wait for A's uncommitted row"
    db.session.commit()
    thread.join(10)
    assert not thread.is_alive()
    assert "error" not in result, result.get("error")
    assert result["dup"] is None and result["other"] is not None
    assert sorted(r.dedupe_key for r in rows()) == ["race", "race-2"]


def test_no_address_means_no_email(app, make_member):
    member = make_member(email=None)
    assert outbox.enqueue(db.session, template_key="welcome", dedupe_key="x", now=NOW, member=member) is None
    assert count_rows() == 0


def test_a_bad_address_is_refused(app):
    with pytest.raises(ValidationError):
        outbox.enqueue(db.session, template_key="welcome", dedupe_key="x", now=NOW,
                       to_address="ada@example.org\r\nBcc: x@evil.example", to_name="Ada")
    with pytest.raises(ValueError):
        outbox.enqueue(db.session, template_key="no_such_template", dedupe_key="y", now=NOW, to_address="a@b.org")


def test_marketing_email_honours_the_members_choice(app, make_member):
    out = make_member(marketing_opt_in=False)
    assert outbox.enqueue(db.session, template_key="welcome", dedupe_key="m-1", now=NOW, member=out,
                          category="marketing") is None
    bouncing = make_member(marketing_opt_in=True)
    bouncing.email_bouncing = True
    assert outbox.enqueue(db.session, template_key="welcome", dedupe_key="m-2", now=NOW, member=bouncing,
                          category="marketing") is None
    keen = make_member(marketing_opt_in=True)
    row = outbox.enqueue(db.session, template_key="welcome", dedupe_key="m-3", now=NOW, member=keen,
                         category="marketing")
    assert row is not None
    link = unsubscribe.unsubscribe_url(keen)
    assert row.headers["List-Unsubscribe"] == f"<{link}>"
    assert row.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert f"Unsubscribe: {link}" in row.body_text and link in row.body_html
    assert "You received this email because" not in row.body_text
    # The service emails of the opted-out member still go.
    assert outbox.enqueue(db.session, template_key="welcome", dedupe_key="s-1", now=NOW, member=out) is not None


# ---------------------------------------------------------------- delivery


def test_deliver_sends_each_queued_message_once_and_marks_it_sent(app, queue, sent):
    queue(3)
    counts = outbox.deliver_pending(db.session, now=NOW)
    assert counts["claimed"] == 3 and counts["sent"] == 3
    assert [r.status for r in rows()] == ["sent"] * 3
    assert all(r.sent_at is not None and r.claimed_by is None for r in rows())
    assert sorted(item.recipients[0] for item in sent) == sorted(r.to_address for r in rows())
    first = message_from_bytes(sent[0].message.as_bytes(), policy=default_policy)
    assert first["From"] == "Test Association <no-reply@samiti.localhost>"  # the association by default
    assert first["Message-ID"] == rows()[0].message_id
    assert first.get_body(("plain",)).get_content().startswith("Dear Reader")
    assert first.get_body(("html",)) is not None
    # A second run finds nothing to do.
    assert outbox.deliver_pending(db.session, now=NOW + timedelta(minutes=1))["claimed"] == 0
    assert len(sent) == 3


def test_future_messages_wait_and_limit_caps_a_run(app, queue, sent):
    queue(5)
    later = queue(1, now=NOW + timedelta(hours=1))[0]
    counts = outbox.deliver_pending(db.session, now=NOW, limit=3, batch_size=2)
    assert counts["sent"] == 3
    counts = outbox.deliver_pending(db.session, now=NOW)
    assert counts["sent"] == 2
    assert db.session.get(OutboxMessage, later.id).status == "queued"
    assert outbox.deliver_pending(db.session, now=NOW + timedelta(hours=1))["sent"] == 1


def test_two_dispatchers_in_two_threads_never_send_the_same_row(app, queue, scripted):
    """Each thread has its own session; both hold claimed batches at the same moment (a barrier
    in the backend makes sure), and every message goes out exactly once."""
    queue(60)
    barrier = threading.Barrier(2, timeout=20)
    waited = set()

    def gate(item):
        me = threading.get_ident()
        if me not in waited:
            waited.add(me)
            barrier.wait()  # both dispatchers are now mid-batch
        return None

    backend = scripted(default=gate)
    results, errors = [], []

    def dispatcher(name):
        try:
            with app.app_context():
                factory = sessionmaker(bind=db.engine)
                results.append(outbox.deliver_pending(factory, now=NOW, batch_size=5, worker_id=name,
                                                      backend=backend))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=dispatcher, args=(f"worker-{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    keys = [item.key for item in backend.delivered]
    assert len(keys) == 60 and len(set(keys)) == 60
    assert sum(r["sent"] for r in results) == 60
    assert all(r["sent"] > 0 for r in results), results  # both took part
    assert {r.status for r in rows()} == {"sent"}


def test_a_message_left_sending_by_a_crash_is_delivered_once_by_the_next_run(app, queue, sent):
    queue(3)
    # A dispatcher claims two messages and dies before sending them.
    claimed = outbox.claim(db.session, now=NOW, worker_id="crashed", size=2)
    db.session.commit()
    assert len(claimed) == 2
    # A run soon after leaves them alone: the claim may be a slow, live dispatcher's.
    counts = outbox.deliver_pending(db.session, now=NOW + timedelta(minutes=1))
    assert counts["sent"] == 1 and counts["taken_back"] == 0
    assert sorted(r.status for r in rows()) == ["sending", "sending", "sent"]
    # After the claim timeout (10 minutes) the next run takes them back and sends them.
    counts = outbox.deliver_pending(db.session, now=NOW + timedelta(minutes=11))
    assert counts["taken_back"] == 2 and counts["sent"] == 2
    assert [r.status for r in rows()] == ["sent"] * 3
    assert sorted(item.key for item in sent) == sorted(str(r.id) for r in rows())
    assert outbox.deliver_pending(db.session, now=NOW + timedelta(minutes=30))["claimed"] == 0
    assert len(sent) == 3


def test_a_finished_send_does_not_overwrite_a_row_taken_back_meanwhile(app, queue):
    row = queue(1)[0]
    [item] = outbox.claim(db.session, now=NOW, worker_id="slow", size=1)
    db.session.commit()
    assert outbox.take_back_stale(db.session, now=NOW + timedelta(minutes=11)) == 1
    db.session.commit()
    outbox._finish(db.session, item, "slow", "sent", at=NOW + timedelta(minutes=12))
    assert db.session.get(OutboxMessage, row.id).status == "queued"


def test_temporary_errors_back_off_then_fail_after_the_limit(app, queue, scripted):
    app.config["MAIL_MAX_ATTEMPTS"] = 3
    row = queue(1)[0]
    backend = scripted(default=TemporaryError("451 4.3.0 try later", code=451))
    now = NOW
    waits = []
    for attempt in (1, 2):
        counts = outbox.deliver_pending(db.session, now=now, backend=backend)
        assert counts["retried"] == 1
        msg = db.session.get(OutboxMessage, row.id)
        db.session.refresh(msg)
        assert msg.status == "queued" and msg.attempts == attempt
        assert "451 4.3.0 try later" in msg.last_error
        waits.append(msg.next_attempt_at - now)
        # Not due before its time.
        assert outbox.deliver_pending(db.session, now=msg.next_attempt_at - timedelta(seconds=5),
                                      backend=backend)["claimed"] == 0
        now = msg.next_attempt_at
    # Doubling back-off from the moment of the failure (a run's clock moves on from its `now`).
    assert 60 <= waits[0].total_seconds() < 70 and 120 <= waits[1].total_seconds() < 130
    counts = outbox.deliver_pending(db.session, now=now, backend=backend)
    assert counts["failed"] == 1
    msg = db.session.get(OutboxMessage, row.id)
    db.session.refresh(msg)
    assert msg.status == "failed" and msg.attempts == 3
    assert msg.last_error.startswith("Gave up after 3 attempts")
    assert backend.delivered == []


def test_backoff_is_capped():
    from flask import Flask
    app = Flask("x")
    app.config.update(MAIL_RETRY_BASE=60, MAIL_RETRY_MAX=3600)
    with app.app_context():
        assert outbox.backoff(1) == timedelta(minutes=1)
        assert outbox.backoff(3) == timedelta(minutes=4)
        assert outbox.backoff(30) == timedelta(hours=1)


def test_a_refused_recipient_fails_at_once_marks_bouncing_and_the_others_go(app, make_member, queue, scripted):
    bad = make_member(email="nobody@example.org")
    good = make_member(email="ada@example.org")
    db.session.commit()
    queue(member=bad)
    queue(member=good)
    queue(2)
    backend = scripted({"nobody@example.org": PermanentError("550 5.1.1 no such user", code=550,
                                                             recipient_refused=True)})
    counts = outbox.deliver_pending(db.session, now=NOW, backend=backend)
    assert counts == {**counts, "sent": 3, "failed": 1, "bounced": 1}
    db.session.expire_all()
    failed = db.session.scalar(select(OutboxMessage).where(OutboxMessage.to_address == "nobody@example.org"))
    assert failed.status == "failed" and failed.attempts == 1 and "550 5.1.1" in failed.last_error
    assert db.session.get(Member, bad.id).email_bouncing is True
    assert db.session.get(Member, good.id).email_bouncing is False
    assert len(backend.delivered) == 3


def test_a_5xx_that_is_not_about_the_recipient_fails_without_marking_bouncing(app, make_member, queue, scripted):
    member = make_member(email="big@example.org")
    db.session.commit()
    queue(member=member)
    backend = scripted({"big@example.org": PermanentError("552 message too large", code=552)})
    assert outbox.deliver_pending(db.session, now=NOW, backend=backend)["failed"] == 1
    assert db.session.get(Member, member.id).email_bouncing is False


def test_an_unreachable_server_stops_the_run_and_keeps_the_rest_for_later(app, queue, scripted):
    queue(4)
    down = scripted({"open": ConnectionProblem("could not connect: connection refused")})
    counts = outbox.deliver_pending(db.session, now=NOW, backend=down, batch_size=10)
    assert counts["retried"] == 1 and counts["released"] == 3 and counts["sent"] == 0
    assert down.opens == 1  # no connection attempt per message
    tried, *rest = rows()
    assert tried.attempts == 1 and tried.status == "queued"
    assert all(r.status == "queued" and r.attempts == 0 and r.last_error.startswith("Not tried") for r in rest)
    assert {r.next_attempt_at for r in rows()} == {tried.next_attempt_at}
    up = scripted()
    counts = outbox.deliver_pending(db.session, now=tried.next_attempt_at, backend=up)
    assert counts["sent"] == 4 and len({i.key for i in up.delivered}) == 4


def test_a_dropped_connection_gets_one_new_connection(app, queue, scripted):
    rows_ = queue(4)
    drop = rows_[1].to_address
    backend = scripted({drop: ConnectionProblem("the SMTP server closed the connection")})
    counts = outbox.deliver_pending(db.session, now=NOW, backend=backend)
    assert counts["sent"] == 3 and counts["retried"] == 1
    assert backend.opens == 2
    assert db.session.get(OutboxMessage, rows_[1].id).status == "queued"


def test_an_unexpected_error_is_kept_and_retried(app, queue, scripted):
    row = queue(1)[0]
    backend = scripted(default=RuntimeError("boom"))
    assert outbox.deliver_pending(db.session, now=NOW, backend=backend)["retried"] == 1
    msg = db.session.get(OutboxMessage, row.id)
    assert msg.status == "queued" and "RuntimeError: boom" in msg.last_error


def test_the_message_id_is_the_same_on_a_retry(app, queue, scripted, sent):
    row = queue(1)[0]
    first = scripted(default=TemporaryError("421 busy"))
    outbox.deliver_pending(db.session, now=NOW, backend=first)
    msg = db.session.get(OutboxMessage, row.id)
    outbox.deliver_pending(db.session, now=msg.next_attempt_at)
    assert sent[0].message["Message-ID"] == row.message_id


# ---------------------------------------------------------------- header injection


def test_a_name_with_a_line_break_cannot_add_headers(app, queue, sent):
    row = outbox.enqueue(db.session, template_key="welcome", dedupe_key="inject", now=NOW,
                         to_address="ada@example.org", to_name="Ada\r\nBcc: x@evil.example")
    db.session.commit()
    assert "\r" not in row.to_name and "\n" not in row.to_name
    outbox.deliver_pending(db.session, now=NOW)
    raw = sent[0].message.as_bytes()
    parsed = message_from_bytes(raw, policy=default_policy)
    assert parsed["Bcc"] is None
    assert b"\nBcc:" not in raw and b"\rBcc:" not in raw
    assert parsed["To"].addresses[0].addr_spec == "ada@example.org"
    assert sent[0].recipients == ["ada@example.org"]
    # The subject is rendered from the name too ("Welcome to ..., Ada Bcc: ..."): still one header line.
    assert "\n" not in str(parsed["Subject"])


# ---------------------------------------------------------------- staff actions and helpers


def test_retry_puts_a_failed_message_back_and_refuses_others(app, queue, scripted, staff_user):
    row = queue(1)[0]
    outbox.deliver_pending(db.session, now=NOW, backend=scripted(default=PermanentError("550 no")))
    msg = db.session.get(OutboxMessage, row.id)
    db.session.refresh(msg)
    assert msg.status == "failed"
    outbox.retry(db.session, msg, now=NOW + timedelta(hours=1), actor=staff_user)
    db.session.commit()
    assert msg.status == "queued" and msg.attempts == 0 and msg.next_attempt_at == NOW + timedelta(hours=1)
    assert db.session.scalar(select(AuditLog).where(AuditLog.action == "outbox.retry")).actor_id == staff_user.id
    with pytest.raises(Conflict):
        outbox.retry(db.session, msg, now=NOW, actor=staff_user)


def test_cancel_stops_a_queued_message(app, queue, sent, staff_user):
    row = queue(1)[0]
    outbox.cancel(db.session, row, now=NOW, actor=staff_user)
    db.session.commit()
    assert outbox.deliver_pending(db.session, now=NOW)["claimed"] == 0
    assert db.session.get(OutboxMessage, row.id).status == "cancelled" and sent == []


def test_file_backend_writes_eml_files_under_the_instance_folder(app, queue):
    from pathlib import Path
    app.config["MAIL_URL"] = "file://"
    row = queue(1)[0]
    assert outbox.deliver_pending(db.session, now=NOW)["sent"] == 1
    path = Path(app.instance_path) / "mail" / "2026-06-15" / f"{row.id}.eml"
    parsed = message_from_bytes(path.read_bytes(), policy=default_policy)
    assert parsed["Message-ID"] == row.message_id and parsed["To"].addresses[0].addr_spec == row.to_address
    assert not list(path.parent.glob(".*.tmp"))


def test_receipt_and_welcome_helpers_queue_once(app, make_member, make_plan, make_term):
    from membership.plans.models import Payment

    member = make_member(first_name="Rabindranath", email="rabi@example.org")
    plan = make_plan(fee_minor=5000, name="Annual")
    make_term(member, plan, starts_on=NOW.date(), notify=False)
    payment = db.session.scalar(select(Payment).where(Payment.member_id == member.id))
    receipt = emails.queue_receipt(db.session, payment, now=NOW)
    assert receipt is not None and payment.receipt_number in receipt.subject
    assert "BDT" in receipt.body_text and "Annual" in receipt.body_text
    assert emails.queue_receipt(db.session, payment, now=NOW) is None
    assert emails.queue_welcome(db.session, member, now=NOW) is not None
    assert emails.queue_welcome(db.session, member, now=NOW) is None
    db.session.commit()
    assert count_rows() == 2


def test_retry_goes_to_the_members_corrected_address(app, make_member, queue, scripted, staff_user):
    member = make_member(email="ada@exmaple.org")
    db.session.commit()
    row = queue(member=member)[0]
    outbox.deliver_pending(db.session, now=NOW, backend=scripted(
        default=PermanentError("550 no such domain", recipient_refused=True)))
    db.session.expire_all()
    member = db.session.get(Member, member.id)
    assert member.email_bouncing
    member.email = "ada@example.org"  # staff fix the typo
    db.session.commit()
    msg = db.session.get(OutboxMessage, row.id)
    assert outbox.retry(db.session, msg, now=NOW, actor=staff_user) == "ada@example.org"
    db.session.commit()
    assert msg.to_address == "ada@example.org" and msg.status == "queued"


def test_a_new_run_of_the_same_worker_does_not_take_its_predecessors_claims(app, queue, sent):
    """A scheduler passes a stable holder id; rows a previous run of it left "sending" (a crash a
    minute ago) wait for the claim timeout like any other, they are not mistaken for new claims."""
    queue(2)
    [left] = outbox.claim(db.session, now=NOW, worker_id="scheduler-1", size=1)
    db.session.commit()
    counts = outbox.deliver_pending(db.session, now=NOW + timedelta(minutes=1), worker_id="scheduler-1")
    assert counts["sent"] == 1 and [item.key for item in sent] != [str(left.id)]
    assert db.session.get(OutboxMessage, left.id).status == "sending"


def test_join_renew_and_payment_queue_welcome_and_receipts_in_the_same_transaction(app, make_member, make_plan,
                                                                                    make_term):
    from datetime import date

    from membership.plans.models import Payment
    from membership.plans.services import PaymentInput, renew

    member = make_member(first_name="Kazi", email="kazi@example.org")
    plan = make_plan(fee_minor=5000, name="Annual")
    term = make_term(member, plan, starts_on=date(2025, 7, 1))
    keys = sorted(db.session.scalars(select(OutboxMessage.dedupe_key)).all())
    first = db.session.scalar(select(Payment).where(Payment.member_id == member.id))
    assert keys == sorted([f"welcome:member:{member.id}", f"receipt:payment:{first.id}"])
    renew(db.session, term, today=date(2026, 6, 1), now=NOW, actor=None,
          payment=PaymentInput(amount_minor=5000, method="cash", received_at=NOW))
    assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == 3
    db.session.rollback()  # the emails go with the change that caused them
    assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == 0
