"""Auto-renewal by card (issue 12.3): the notice N days before, the charge on the day that renews the
term through the ordinary renew + record_payment, exactly once; stop; declines and timeouts; the
ordinary reminders after a decline; the pages; the race on PostgreSQL; the Bengali notice.

The jobs are driven as the scheduler runs them (`run_job(..., now=...)`), with a fake provider
registered through payments.registry.register_adapter."""
from __future__ import annotations

import threading
from datetime import date, datetime, timedelta, timezone

import pytest
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from sqlalchemy import func, select

from membership.core.models import AuditLog
from membership.core.time import add_months
from membership.extensions import db
from membership.notifications.models import OutboxMessage
from membership.payments import registry
from membership.payments.autorenew import MAX_FAILURES, charge_due
from membership.payments.autorenew_models import AutoRenewalCharge
from membership.payments.base import ChargeResult, ProviderError
from membership.payments.models import SavedCard
from membership.plans.models import Membership, Payment
from membership.plans.services import PaymentInput, cancel, renew
from membership.scheduler import run_job
from tests.conftest import NOW, login
from tests.scheduler.conftest import at

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]
ENDS = date(2027, 1, 10)     # the term's last day: the charge day
FEE = 150000                 # BDT 1,500.00


# ---------------------------------------------------------------- the fake provider and fixtures


class FakeProvider:
    """Records every charge; `mode` says what the next charges do: "paid", "decline" or "timeout"."""
    name = "fake"
    supports_saved_cards = True

    def __init__(self):
        self.calls: list[dict] = []
        self.mode = "paid"
        self.paid_keys: dict[str, str] = {}

    def charge_saved(self, *, customer_ref, payment_method_ref, amount_minor, currency, description, idempotency_key):
        self.calls.append({"customer_ref": customer_ref, "payment_method_ref": payment_method_ref,
                           "amount_minor": amount_minor, "currency": currency, "key": idempotency_key})
        if self.mode == "timeout":
            raise ProviderError("timed out talking to the provider")
        if self.mode == "decline":
            return ChargeResult(status="failed", payment_ref=None, failure_message="Your card was declined.")
        # like Stripe: the same idempotency key answers with the first outcome
        ref = self.paid_keys.setdefault(idempotency_key, f"pi_{len(self.paid_keys) + 1}")
        return ChargeResult(status="paid", payment_ref=ref)

    @property
    def money_taken(self) -> int:
        return len(self.paid_keys)


@pytest.fixture
def fake():
    provider = FakeProvider()
    registry.register_adapter("fake", lambda settings: provider)
    yield provider
    registry.unregister_adapter("fake")


def _catalogue_with_this_part(tmp_dir):
    """The shipped Bengali catalogue plus parts/autorenew.po, compiled (the lead's rebuild does the
    same to the shared one), so the Bengali notice can be checked before the merge."""
    base = ROOT / "membership" / "translations"
    with open(base / "bn" / "LC_MESSAGES" / "messages.po", "rb") as f:
        catalog = read_po(f, locale="bn")
    with open(base / "parts" / "autorenew.po", "rb") as f:
        part = read_po(f, locale="bn")
    for message in part:
        if message.id and message.string:
            catalog[message.id] = message
    out = tmp_dir / "bn" / "LC_MESSAGES"
    out.mkdir(parents=True)
    with open(out / "messages.mo", "wb") as f:
        write_mo(f, catalog)
    return str(tmp_dir)


@pytest.fixture(scope="module")
def translations(tmp_path_factory):
    return _catalogue_with_this_part(tmp_path_factory.mktemp("translations"))


@pytest.fixture
def app_config(translations):
    return {"BABEL_TRANSLATION_DIRECTORIES": translations, "AUTO_RENEW_NOTICE_DAYS": 7}


@pytest.fixture
def plan(make_plan):
    return make_plan(fee_minor=FEE, grace_days=30, name="Annual")


@pytest.fixture
def opted_in(app, make_member, make_term, plan):
    """A member whose paid 12-month term ends on ENDS, with a saved card at the fake provider."""
    def make(**member_kw):
        member = make_member(**member_kw)
        starts = add_months(ENDS + timedelta(days=1), -12)
        term = make_term(member, plan, starts_on=starts, today=starts)
        assert term.ends_on == ENDS
        card = SavedCard(member_id=member.id, provider="fake", customer_ref=f"cus_{member.id}",
                         payment_method_ref=f"pm_{member.id}", label="Visa ending 4242", created_at=NOW)
        db.session.add(card)
        db.session.commit()
        return member, term, card
    return make


def notices(day: date, force=False):
    outcome = run_job("autorenew-notices", now=at(day, 9), force=force)
    assert outcome.status in ("ok", "skipped"), outcome
    return outcome


def charges(day: date, force=False):
    outcome = run_job("autorenew-charges", now=at(day, 10), force=force)
    assert outcome.status in ("ok", "skipped"), outcome
    return outcome


def mail(template_key: str, member=None) -> list[OutboxMessage]:
    db.session.expire_all()
    query = select(OutboxMessage).where(OutboxMessage.template_key == template_key).order_by(OutboxMessage.id)
    if member is not None:
        query = query.where(OutboxMessage.member_id == member.id)
    return list(db.session.scalars(query))


def terms_of(member) -> list[Membership]:
    db.session.expire_all()
    return list(db.session.scalars(select(Membership).where(Membership.member_id == member.id)
                                   .order_by(Membership.starts_on)))


# ---------------------------------------------------------------- notice


def test_the_notice_goes_once_seven_days_before_the_charge(app, fake, opted_in):
    member, term, card = opted_in()
    notices(ENDS - timedelta(days=8))
    assert mail("autorenew_notice") == []              # 8 days before: not yet
    notices(ENDS - timedelta(days=7))
    [msg] = mail("autorenew_notice")
    assert msg.to_address == member.email
    assert "10 January 2027" in msg.body_text           # the charge day
    assert "৳" in msg.body_text or "BDT" in msg.body_text
    assert "1,500.00" in msg.body_text
    assert "Visa ending 4242" in msg.body_text
    assert "http://" in msg.body_text and "/my/" in msg.body_text   # the way to stop it
    assert "Stop automatic renewal" in (msg.body_html or "")
    notices(ENDS - timedelta(days=7), force=True)      # a rerun the same day
    notices(ENDS - timedelta(days=6))                  # and the next days
    notices(ENDS - timedelta(days=1))
    assert len(mail("autorenew_notice")) == 1
    assert fake.calls == []                            # a notice charges nothing


def test_a_missed_notice_day_is_caught_up_but_not_on_the_charge_day(app, fake, opted_in):
    opted_in()
    notices(ENDS)                                       # the scheduler was down all week
    assert mail("autorenew_notice") == []
    notices(ENDS - timedelta(days=3))
    assert len(mail("autorenew_notice")) == 1


# ---------------------------------------------------------------- the charge


def test_the_charge_on_the_last_day_renews_the_term_with_a_payment_and_a_receipt(app, fake, opted_in):
    member, term, card = opted_in()
    charges(ENDS - timedelta(days=1))
    assert fake.calls == []                             # not before the day
    outcome = charges(ENDS)
    assert outcome.counts["paid"] == 1
    [call] = fake.calls
    assert call == {"customer_ref": card.customer_ref, "payment_method_ref": card.payment_method_ref,
                    "amount_minor": FEE, "currency": "BDT", "key": f"samiti-autorenew-{card.id}-{term.id}-1"}
    old, new = terms_of(member)
    assert new.renews_id == old.id and new.starts_on == ENDS + timedelta(days=1)
    assert new.source == "autorenew" and not new.awaiting_payment
    payment = db.session.scalar(select(Payment).where(Payment.membership_id == new.id))
    assert (payment.amount_minor, payment.method, payment.reference) == (FEE, "online", "fake:pi_1")
    [receipt] = [m for m in mail("payment_receipt", member) if m.source_id == payment.id]
    assert payment.receipt_number in receipt.body_text
    row = db.session.scalar(select(AutoRenewalCharge))
    assert (row.status, row.payment_id, row.new_term_id) == ("paid", payment.id, new.id)


def test_rerunning_the_charge_job_charges_nothing_more(app, fake, opted_in):
    member, term, card = opted_in()
    charges(ENDS)
    charges(ENDS, force=True)
    charges(ENDS + timedelta(days=1))
    charges(ENDS + timedelta(days=2), force=True)
    assert len(fake.calls) == 1
    assert len(terms_of(member)) == 2
    assert db.session.scalar(select(func.count()).select_from(Payment)
                             .where(Payment.member_id == member.id, Payment.method == "online")) == 1
    # the new term's own notice and charge come a year later
    notices(add_months(ENDS, 12) - timedelta(days=7))
    assert len(mail("autorenew_notice")) == 1


def test_stop_in_the_portal_means_no_notice_and_no_charge(app, fake, opted_in, client, make_user):
    member, term, card = opted_in()
    user = make_user("member", email=member.email, member_id=member.id)
    assert login(client, user).status_code == 302
    page = client.get("/my/").get_data(as_text=True)
    assert "Automatic renewal: on, with Visa ending 4242, next charge of" in page
    assert "1,500.00" in page
    response = client.post("/my/autorenew/stop")
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(SavedCard, card.id).revoked_at is not None
    [confirm] = mail("autorenew_stopped", member)
    assert "Visa ending 4242" in confirm.body_text
    audit = db.session.scalar(select(AuditLog).where(AuditLog.action == "autorenew.stop"))
    assert audit.actor_id == user.id and audit.member_id == member.id
    after = client.get("/my/").get_data(as_text=True)
    assert "Automatic renewal is stopped" in after         # the flash
    assert 'id="autorenew"' not in after and "next charge of" not in after
    notices(ENDS - timedelta(days=7))
    charges(ENDS)
    assert mail("autorenew_notice") == [] and fake.calls == []
    assert len(terms_of(member)) == 1
    assert client.post("/my/autorenew/stop").status_code == 302   # again: harmless
    assert len(mail("autorenew_stopped", member)) == 1


def test_stop_needs_a_member_login(app, fake, opted_in, client):
    member, term, card = opted_in()
    response = client.post("/my/autorenew/stop")
    assert response.status_code in (302, 401)
    db.session.expire_all()
    assert db.session.get(SavedCard, card.id).revoked_at is None


def test_staff_see_it_on_the_member_page_and_can_stop_it_audited(app, fake, opted_in, staff_client, staff_user):
    member, term, card = opted_in()
    page = staff_client.get(f"/staff/members/{member.id}").get_data(as_text=True)
    assert 'id="autorenew"' in page and "Visa ending 4242" in page and "next charge of" in page
    response = staff_client.post(f"/staff/members/{member.id}/autorenew/stop")
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(SavedCard, card.id).revoked_at is not None
    audit = db.session.scalar(select(AuditLog).where(AuditLog.action == "autorenew.stop"))
    assert audit.actor_id == staff_user.id and "staff" in audit.summary
    assert len(mail("autorenew_stopped", member)) == 1
    assert staff_client.post("/staff/members/999999/autorenew/stop").status_code == 404
    charges(ENDS)
    assert fake.calls == []


def test_a_member_cannot_use_the_staff_stop(app, fake, opted_in, client, make_user):
    member, term, card = opted_in()
    other, _t, other_card = opted_in()
    user = make_user("member", email=member.email, member_id=member.id)
    login(client, user)
    assert client.post(f"/staff/members/{other.id}/autorenew/stop").status_code == 403
    db.session.expire_all()
    assert db.session.get(SavedCard, other_card.id).revoked_at is None


# ---------------------------------------------------------------- declines and timeouts


def test_a_decline_is_emailed_and_the_ordinary_reminder_still_goes(app, fake, opted_in):
    from membership.notifications.models import ReminderRule

    for offset, key in ((0, "renewal_due_today"), (14, "grace_notice")):
        db.session.add(ReminderRule(name=f"rule {offset}", offset_days=offset, plan_id=None, template_key=key,
                                    is_active=True, effective_from=date(2020, 1, 1), created_at=NOW))
    member, term, card = opted_in()
    fake.mode = "decline"
    assert charges(ENDS).counts["declined"] == 1
    [declined] = mail("autorenew_declined", member)
    assert "declined" in declined.body_text and "/my/renew" in declined.body_text
    assert "again tomorrow" in declined.body_text
    row = db.session.scalar(select(AutoRenewalCharge))
    assert (row.status, row.failures, row.failure_message) == ("declined", 1, "Your card was declined.")
    assert len(terms_of(member)) == 1                   # not renewed
    # the ordinary reminders run as if there were no card
    run_job("renewal-reminders", now=at(ENDS, 11))
    assert [m.template_key for m in mail("renewal_due_today", member)] == ["renewal_due_today"]
    # not again the same day
    charges(ENDS, force=True)
    assert len(fake.calls) == 1


def test_declines_are_retried_once_a_day_and_stop_after_three(app, fake, opted_in, client, make_user):
    member, term, card = opted_in()
    fake.mode = "decline"
    for n in range(6):
        charges(ENDS + timedelta(days=n))
        charges(ENDS + timedelta(days=n), force=True)
    assert len(fake.calls) == MAX_FAILURES == 3
    assert [c["key"][-2:] for c in fake.calls] == ["-1", "-2", "-3"]
    row = db.session.scalar(select(AutoRenewalCharge))
    assert (row.status, row.failures) == ("gave_up", 3)
    emails = mail("autorenew_declined", member)
    assert len(emails) == 3 and "will not try the card again" in emails[-1].body_text
    user = make_user("member", email=member.email, member_id=member.id)
    login(client, user)
    page = client.get("/my/").get_data(as_text=True)
    assert "declined three times" in page and "next charge of" not in page


def test_a_decline_then_a_success_the_next_day(app, fake, opted_in):
    member, term, card = opted_in()
    fake.mode = "decline"
    charges(ENDS)
    fake.mode = "paid"
    assert charges(ENDS + timedelta(days=1)).counts["paid"] == 1
    old, new = terms_of(member)
    assert new.starts_on == ENDS + timedelta(days=1)    # renewed from the day after the end: no day lost


def test_a_timeout_is_not_a_charge_and_is_retried_on_the_next_run_with_the_same_key(app, fake, opted_in):
    member, term, card = opted_in()
    fake.mode = "timeout"
    assert charges(ENDS).counts["provider_errors"] == 1
    row = db.session.scalar(select(AutoRenewalCharge))
    assert (row.status, row.failures) == ("error", 0) and "timed out" in row.failure_message
    assert mail("autorenew_declined") == [] and len(terms_of(member)) == 1
    fake.mode = "paid"
    assert charges(ENDS, force=True).counts["paid"] == 1    # the next run, the same day
    assert fake.calls[0]["key"] == fake.calls[1]["key"]
    assert len(terms_of(member)) == 2


# ---------------------------------------------------------------- who is not charged


def test_lifetime_cancelled_retired_plan_and_renewed_by_hand_are_not_charged(app, fake, opted_in, make_member, make_term,
                                                                 make_plan):
    _m1, term1, _c1 = opted_in()
    cancel(db.session, term1, on=ENDS - timedelta(days=30), reason="moved abroad", today=ENDS - timedelta(days=30),
           now=NOW, actor=None)
    m2, term2, _c2 = opted_in()
    renew(db.session, term2, today=ENDS - timedelta(days=3), now=NOW, actor=None,
          payment=PaymentInput(amount_minor=FEE, method="cash", received_at=NOW))
    lifetime = make_plan(fee_minor=FEE, period_kind="lifetime", name="Life")
    m3 = make_member()
    make_term(m3, lifetime, starts_on=date(2026, 1, 1), today=date(2026, 1, 1))
    db.session.add(SavedCard(member_id=m3.id, provider="fake", customer_ref="c", payment_method_ref="p",
                             label="Visa", created_at=NOW))
    retired = make_plan(fee_minor=FEE, grace_days=30, name="Old plan")
    m4 = make_member()
    make_term(m4, retired, starts_on=add_months(ENDS + timedelta(days=1), -12),
              today=add_months(ENDS + timedelta(days=1), -12))
    retired.is_active = False                          # no longer offered: renew() would refuse it
    db.session.add(SavedCard(member_id=m4.id, provider="fake", customer_ref="c4", payment_method_ref="p4",
                             label="Visa", created_at=NOW))
    db.session.commit()
    notices(ENDS - timedelta(days=7))
    charges(ENDS)
    charges(ENDS + timedelta(days=1))
    assert fake.calls == [] and mail("autorenew_notice") == []
    assert len(terms_of(m2)) == 2                      # the hand renewal only


def test_a_lapsed_term_is_not_charged(app, fake, opted_in):
    member, term, card = opted_in()
    charges(ENDS + timedelta(days=31))                  # grace (30 days) is over
    assert fake.calls == []


def test_no_charge_when_the_provider_is_not_configured(app, opted_in):
    member, term, card = opted_in()                     # no fake registered
    assert charges(ENDS).counts["no_provider"] == 1
    assert db.session.scalar(select(func.count()).select_from(AutoRenewalCharge)) == 0


# ---------------------------------------------------------------- Bengali


def test_a_bengali_member_gets_the_notice_in_bengali(app, fake, opted_in):
    member, term, card = opted_in(language="bn", first_name="Rina")
    notices(ENDS - timedelta(days=7))
    [msg] = mail("autorenew_notice")
    assert msg.subject.startswith("আপনার")
    assert "স্বয়ংক্রিয়" in msg.subject
    assert "Visa ending 4242" in msg.body_text          # the card's label, as the provider wrote it
    assert "১,৫০০" in msg.body_text                     # the amount in Bengali digits
    assert "জানুয়ারি" in msg.body_text                   # the date in Bengali
    assert "Dear" not in msg.body_text


# ---------------------------------------------------------------- the race (PostgreSQL)


def test_two_schedulers_at_once_charge_once(app, fake, opted_in):
    from sqlalchemy.orm import Session

    from membership.core.settings import current_settings
    from tests.conftest import require_postgres

    engine = require_postgres("two processes charging the same saved card at the same moment")
    members = [opted_in()[0] for _ in range(3)]
    settings = current_settings()
    n = 4
    start = threading.Barrier(n, timeout=30)
    errors: list[BaseException] = []
    now = datetime(2027, 1, 10, 4, 0, tzinfo=timezone.utc)

    def run(i: int) -> None:
        try:
            with app.app_context(), Session(engine) as session:
                start.wait()
                charge_due(session, settings=settings, now=now, today=ENDS, checkpoint=session.commit)
                session.commit()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len(fake.calls) == 3 and fake.money_taken == 3
    for member in members:
        assert len(terms_of(member)) == 2
    assert db.session.scalar(select(func.count()).select_from(Payment).where(Payment.method == "online")) == 3


def test_renewed_by_hand_while_the_card_was_being_charged_keeps_the_money_on_record(app, fake, opted_in):
    """Staff renew the term by hand at the very moment the card is charged: the money is recorded
    against the member (no term) for staff to refund or apply, and nothing is renewed twice."""
    member, term, card = opted_in()
    charge = fake.charge_saved

    def charge_while_staff_renew(**kw):
        renew(db.session, db.session.get(Membership, term.id), today=ENDS, now=at(ENDS, 10), actor=None,
              payment=PaymentInput(amount_minor=FEE, method="cash", received_at=at(ENDS, 10)))
        return charge(**kw)

    fake.charge_saved = charge_while_staff_renew
    assert charges(ENDS).counts["unapplied"] == 1
    assert len(terms_of(member)) == 2                   # the hand renewal only
    row = db.session.scalar(select(AutoRenewalCharge))
    assert row.status == "unapplied" and "not renewed" in row.failure_message
    payment = db.session.get(Payment, row.payment_id)
    assert (payment.method, payment.reference, payment.membership_id) == ("online", "fake:pi_1", None)
    assert db.session.scalar(select(AuditLog).where(AuditLog.action == "autorenew.unapplied")) is not None
    charges(ENDS, force=True)
    assert len(fake.calls) == 1


def test_the_notice_days_come_from_the_setting(app, fake, opted_in, monkeypatch):
    from flask import Flask

    from membership.config import load_config
    from membership.core.settings import Settings

    monkeypatch.setenv("AUTO_RENEW_NOTICE_DAYS", "3")
    bare = Flask("probe")
    load_config(bare, {"INSTANCE_PATH": str(app.config["INSTANCE_PATH"])})
    assert Settings.from_config(bare.config).auto_renew_notice_days == 3
    assert Settings().auto_renew_notice_days == 7
    opted_in()
    app.config["AUTO_RENEW_NOTICE_DAYS"] = 3
    notices(ENDS - timedelta(days=7))
    notices(ENDS - timedelta(days=4))
    assert mail("autorenew_notice") == []
    notices(ENDS - timedelta(days=3))
    assert len(mail("autorenew_notice")) == 1
