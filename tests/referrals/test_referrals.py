"""Referrals: codes (unique, typeable, typos caught), the referrer recorded at join (code field and
?ref= link), the reward applied exactly once, what members and staff see, bad input refused."""
from __future__ import annotations

import html
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from membership.core.models import AuditLog
from membership.core.time import add_months, local_today, utcnow
from membership.extensions import db
from membership.members.models import Member
from membership.plans.models import Payment
from membership.plans.services import PaymentInput, latest_term, pay_term, record_payment, renew
from membership.referrals import services as rf
from membership.referrals.models import ReferralReward
from tests.conftest import login
from tests.portal.helpers import join, join_and_confirm


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


@pytest.fixture
def free_plan(make_plan):
    return make_plan(code="FREE", name="Friend", fee_minor=0, period_months=12)


@pytest.fixture
def paid_plan(make_plan):
    return make_plan(code="STD", name="Standard", fee_minor=150000, period_months=12)


@pytest.fixture
def referrer(make_member, make_term, paid_plan):
    """A current member whose term ends in about five months."""
    member = make_member(first_name="Rahim", email="rahim@example.org")
    today = local_today()
    make_term(member, paid_plan, starts_on=today - timedelta(days=200), today=today)
    db.session.commit()
    return member


def test_codes_are_unique_typeable_and_catch_a_typo():
    codes = {rf.code_for_id(i) for i in range(1, 20001)}
    assert len(codes) == 20000
    assert all(len(c) == 7 and not set(c) & set("015825OILSBZ") for c in codes)
    for i in (1, 2, 999, 123456):
        code = rf.code_for_id(i)
        assert rf.id_for_code(code) == i
        assert rf.id_for_code(rf.normalize_code(code.lower()[:3] + "-" + code[3:])) == i
        for pos in range(7):  # any one character changed is refused, not read as another member
            for ch in rf.CODE_ALPHABET:
                if ch != code[pos]:
                    assert rf.id_for_code(code[:pos] + ch + code[pos + 1:]) is None
    assert rf.id_for_code("ABC") is None and rf.id_for_code("0000000") is None


def test_the_join_form_records_the_referrer_from_the_code_field(client, free_plan, referrer):
    code = rf.code_for_id(referrer.id)
    assert join_and_confirm(client, free_plan, referral_code=code.lower()).status_code == 302
    new = db.session.scalar(select(Member).where(Member.email_normalized == "nusrat@example.org"))
    assert new.referred_by_id == referrer.id
    audit = db.session.scalar(select(AuditLog).where(AuditLog.action == "referral.record"))
    assert audit.member_id == new.id and audit.changes["via"] == "code"


def test_a_referral_link_fills_the_code_in_and_records_the_referrer(client, free_plan, referrer):
    code = rf.code_for_id(referrer.id)
    assert client.get(f"/join/?ref={code}").status_code == 200
    form = text(client.get(f"/join/{free_plan.id}"))
    assert f'value="{code}"' in form
    assert join(client, free_plan, referral_code=code).status_code == 302
    new = db.session.scalar(select(Member).where(Member.email_normalized == "nusrat@example.org"))
    assert new.referred_by_id == referrer.id
    assert db.session.scalar(select(AuditLog).where(AuditLog.action == "referral.record")).changes["via"] == "link"
    # the code is forgotten once used: the next application on this browser starts empty
    assert 'value="' + code + '"' not in text(client.get(f"/join/{free_plan.id}"))


@pytest.mark.parametrize("typed, message", [
    ("K7M", "This referral code is not right"),
    ("ZZZZZZZ", "This referral code is not right"),
])
def test_a_bad_referral_code_is_shown_beside_the_field_and_nothing_is_written(client, free_plan, typed, message):
    before = count(Member)
    response = join(client, free_plan, referral_code=typed)
    assert response.status_code == 422 and message in text(response)
    assert count(Member) == before


def test_a_well_formed_code_of_nobody_is_refused(client, free_plan):
    response = join(client, free_plan, referral_code=rf.code_for_id(424242))
    assert response.status_code == 422 and "No member has the referral code" in text(response)
    assert count(Member) == 0


def _referred_member(make_member, paid_plan, referrer):
    member = make_member(first_name="Nusrat", email="nusrat2@example.org")
    member.referred_by_id = referrer.id
    today = local_today()
    from membership.plans.services import join as join_plan
    term = join_plan(db.session, member, paid_plan, today=today, now=utcnow(), actor=None, notify=False)
    db.session.commit()
    return member, term


def _set_rule(rule):
    rf.set_reward_rule(db.session, rule, actor=None, now=utcnow())
    db.session.commit()


def test_the_month_reward_is_applied_exactly_once_and_lands_on_the_next_term(
        make_member, paid_plan, referrer, staff_user):
    _set_rule("month")
    member, term = _referred_member(make_member, paid_plan, referrer)
    now = utcnow()
    today = local_today(now)
    pay_term(db.session, term, PaymentInput(amount_minor=100000, method="cash", received_at=now),
             today=today, now=now, actor=staff_user)
    db.session.commit()
    # the same payment form again is refused; a second (later) payment is not a first payment
    pay_term(db.session, term, PaymentInput(amount_minor=50000, method="cash", received_at=now),
             today=today, now=now, actor=staff_user)
    db.session.commit()
    assert count(Payment) == 2 + 1  # the referrer's own payment and the two of the new member
    rewards = list(db.session.scalars(select(ReferralReward)))
    assert [(r.referrer_id, r.referred_member_id, r.months, r.status) for r in rewards] == \
        [(referrer.id, member.id, 1, "granted")]
    assert db.session.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == "referral.reward")) == 1

    current = latest_term(db.session, referrer)
    normal_end = current.ends_on + timedelta(days=1)
    new = renew(db.session, current, today=today, now=now, actor=staff_user,
                payment=PaymentInput(amount_minor=150000, method="cash", received_at=now))
    db.session.commit()
    normal = add_months(normal_end, 12) - timedelta(days=1)
    assert new.ends_on == add_months(normal, 1)
    reward = db.session.scalar(select(ReferralReward))
    assert reward.status == "used" and reward.used_on_term_id == new.id
    # the following renewal gets no month: the reward was used once
    again = renew(db.session, new, today=today, now=now, actor=staff_user)
    db.session.commit()
    assert again.ends_on == add_months(new.ends_on + timedelta(days=1), 12) - timedelta(days=1)


def test_the_reward_is_once_even_when_the_payment_is_recorded_twice_by_two_calls(make_member, paid_plan, referrer):
    _set_rule("recognition")
    member, term = _referred_member(make_member, paid_plan, referrer)
    now = utcnow()
    for key in ("form-1", "form-1"):
        try:
            record_payment(db.session, PaymentInput(amount_minor=150000, method="cash", received_at=now,
                                                    idempotency_key=key), actor=None, now=now, membership=term,
                           currency="BDT")
            db.session.commit()
        except Exception:  # the second is refused as already recorded
            db.session.rollback()
    assert count(ReferralReward) == 1
    assert db.session.scalar(select(ReferralReward)).status == "recognised"


def test_no_reward_without_a_rule_and_none_for_members_nobody_referred(make_member, paid_plan, referrer):
    member, term = _referred_member(make_member, paid_plan, referrer)
    now = utcnow()
    pay_term(db.session, term, PaymentInput(amount_minor=150000, method="cash", received_at=now),
             today=local_today(now), now=now, actor=None)
    db.session.commit()
    assert count(ReferralReward) == 0


def test_only_an_admin_sets_the_rule_and_a_bad_rule_is_refused(client, staff_user, admin_user):
    login(client, staff_user)
    assert client.post("/staff/referrals/rule", data={"rule": "month"}).status_code == 403
    client.post("/logout")
    login(client, admin_user)
    page = client.post("/staff/referrals/rule", data={"rule": "two-months"})
    assert page.status_code == 422 and "Not a valid choice" in text(page)
    assert rf.reward_rule(db.session) == "none"
    assert client.post("/staff/referrals/rule", data={"rule": "month"}).status_code == 302
    assert rf.reward_rule(db.session) == "month"
    assert db.session.scalar(select(AuditLog).where(AuditLog.action == "referral.rule")).changes == \
        {"rule": ["none", "month"]}


def test_member_page_portal_and_dashboard_show_the_referrals(client, staff_client, make_member, make_user,
                                                              paid_plan, referrer):
    member, term = _referred_member(make_member, paid_plan, referrer)
    make_member(first_name="Imported", email="imp@example.org").referred_by_id = referrer.id  # as the CSV import does
    db.session.commit()
    code = rf.code_for_id(referrer.id)
    page = text(staff_client.get(f"/staff/members/{referrer.id}"))
    assert code in page and "2 referred, 0 joined" in page
    assert f"/join/?ref={code}" in page
    home = text(staff_client.get("/staff/"))
    assert 'data-figure="referral-rate">' in home
    listing = text(staff_client.get("/staff/referrals/"))
    assert "Nusrat" in listing and "Imported" in listing

    staff_client.post("/logout")
    user = make_user("member", email=referrer.email, name=referrer.full_name, member_id=referrer.id)
    login(client, user)
    portal = text(client.get("/my/"))
    assert code in portal and "You referred 2 people; 0 joined." in portal


def test_referral_rate_counts_referred_joiners_of_the_last_year(app, make_member, referrer):
    today = local_today()
    for i in range(3):
        m = make_member(joined_on=today - timedelta(days=10 + i))
        if i == 0:
            m.referred_by_id = referrer.id
    make_member(joined_on=today - timedelta(days=800)).referred_by_id = referrer.id  # too old
    db.session.commit()
    rate = rf.referral_rate(db.session, today=today)
    # the referrer and three new members joined in the window; one of them was referred
    joined_in_window = db.session.scalar(select(func.count()).select_from(Member).where(
        Member.joined_on > today - timedelta(days=365)))
    assert rate.referred == 1 and rate.joined == joined_in_window and rate.rate == 1 / joined_in_window


def test_staff_record_a_referrer_by_number_or_code_and_bad_input_is_refused(staff_client, make_member, referrer):
    member = make_member()
    db.session.commit()
    bad = staff_client.post(f"/staff/referrals/members/{member.id}/referrer", data={"referrer": "nobody"},
                            follow_redirects=True)
    assert "This referral code is not right" in text(bad)
    self_ref = staff_client.post(f"/staff/referrals/members/{member.id}/referrer",
                                 data={"referrer": member.member_number}, follow_redirects=True)
    assert "cannot refer themselves" in text(self_ref)
    db.session.expire_all()
    assert db.session.get(Member, member.id).referred_by_id is None
    ok = staff_client.post(f"/staff/referrals/members/{member.id}/referrer",
                           data={"referrer": rf.code_for_id(referrer.id)}, follow_redirects=True)
    assert "Recorded: referred by" in text(ok)
    db.session.expire_all()
    assert db.session.get(Member, member.id).referred_by_id == referrer.id



def test_a_referrer_given_by_the_csv_import_is_the_same_referral(app, referrer):
    from membership.members import csvio
    from tests.conftest import NOW, TODAY
    data = (f"first_name,last_name,email,joined_on,referred_by\n"
            f"Imran,Khan,imran@example.org,2026-05-01,{referrer.member_number}\n").encode()
    csvio.import_members(db.session, data, options=csvio.ImportOptions(on_match="skip", create_plans=False,
                                                                       dry_run=False),
                         today=TODAY, now=NOW, actor=None, region="BD", currency="BDT", filename="m.csv")
    db.session.commit()
    imported = db.session.scalar(select(Member).where(Member.email_normalized == "imran@example.org"))
    assert imported.referred_by_id == referrer.id
    refs = rf.member_referrals(db.session, referrer, now=utcnow())
    assert refs.made == 1 and [p.id for p, _joined in refs.people] == [imported.id]
