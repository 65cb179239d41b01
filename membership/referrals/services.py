"""Referrals: codes, recording the referrer at join, the reward rule and its one-time application.

Who referred whom is `Member.referred_by_id` (the CSV import's "referred_by" column writes the same
field), so referrals made through the join form, by staff or by an import are counted alike.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session, aliased

from membership.core.db import conflict_insert
from membership.core.errors import ValidationError
from membership.core.services import record_audit
from membership.core.time import add_months
from membership.members.models import Member
from membership.referrals.models import REWARD_RULES, ReferralReward

# No 0/O, 1/I/L, 5/S, 8/B, 2/Z: a code read aloud or copied from paper is typed right.
CODE_ALPHABET = "34679ACDEFGHJKMNPQRTUVWXY"
CODE_LENGTH = 6
SETTING_KEY = "referrals.reward_rule"
RULE_LABELS = {"none": _l("No reward"),
               "month": _l("One month added to the referrer's next term when the new member's first payment "
                           "is recorded"),
               "recognition": _l("Recognition: count the referrals that paid, shown to the referrer and staff")}
RATE_WINDOW_DAYS = 365


# ---------------------------------------------------------------- codes
#
# A member's code is their id through a fixed bijection of [0, 25**6) (an affine map with a
# multiplier prime to 25), written in 6 letters/digits of CODE_ALPHABET, plus a check character:
# unique by construction, stable, nothing stored, and a mistyped character is caught by the check.

_SPACE = len(CODE_ALPHABET) ** CODE_LENGTH
_MULTIPLIER = 7_777_777  # not a multiple of 5: invertible modulo 25**6
_OFFSET = 98_765_432
_INVERSE = pow(_MULTIPLIER, -1, _SPACE)
_WEIGHTS = (1, 2, 3, 4, 6, 7)  # each prime to 25: one wrong character always changes the check


def _check_char(body: str) -> str:
    total = sum(w * CODE_ALPHABET.index(ch) for w, ch in zip(_WEIGHTS, body))
    return CODE_ALPHABET[total % len(CODE_ALPHABET)]


def code_for_id(member_id: int) -> str:
    n = (member_id * _MULTIPLIER + _OFFSET) % _SPACE
    body = ""
    for _i in range(CODE_LENGTH):
        n, digit = divmod(n, len(CODE_ALPHABET))
        body = CODE_ALPHABET[digit] + body
    return body + _check_char(body)


def code_for(session: Session, member: Member, *, now: datetime | None = None) -> str:
    """The member's referral code (7 characters, e.g. K7M4QXH)."""
    return code_for_id(member.id)


def normalize_code(raw: str | None) -> str:
    """What people type: any case, with spaces or dashes ("k7m-4qxh")."""
    return "".join(ch for ch in (raw or "").upper() if ch not in " -_.\t")


def id_for_code(code: str) -> int | None:
    """The member id a well-formed code names, or None (wrong length, characters or check)."""
    if len(code) != CODE_LENGTH + 1 or any(ch not in CODE_ALPHABET for ch in code):
        return None
    body, check = code[:-1], code[-1]
    if _check_char(body) != check:
        return None
    n = 0
    for ch in body:
        n = n * len(CODE_ALPHABET) + CODE_ALPHABET.index(ch)
    return ((n - _OFFSET) * _INVERSE) % _SPACE


def referral_link(code: str) -> str:
    from membership.notifications import templating
    return templating.link(f"/join/?ref={code}")


def referrer_by_code(session: Session, raw: str | None, *, field: str = "referral_code") -> Member | None:
    """The member whose code was typed (None for an empty field); ValidationError when the code is
    malformed or mistyped (the check character) or names no member."""
    code = normalize_code(raw)
    if not code:
        return None
    member_id = id_for_code(code)
    if member_id is None:
        raise ValidationError(_("This referral code is not right: a code has %(n)s letters and digits, like "
                                "K7M4QXH. Check it, or leave the field empty.", n=CODE_LENGTH + 1), field=field)
    member = session.get(Member, member_id)
    if member is None or member.erased_at is not None:
        raise ValidationError(_("No member has the referral code %(code)s. Check it, or leave the field empty.",
                                code=code), field=field)
    return member


def record_referral(session: Session, member: Member, referrer: Member | None, *, actor, now: datetime,
                    via: str) -> bool:
    """Record that `referrer` referred `member` (at join: via "code" or "link"; by staff: "staff").
    A member never refers themselves, and an existing referrer is kept. Returns True when recorded."""
    if referrer is None or referrer.id == member.id or member.referred_by_id is not None:
        return False
    member.referred_by_id = referrer.id
    record_audit(session, actor=actor, action="referral.record", entity=member, now=now, member_id=member.id,
                 summary=f"Referred by {referrer.member_number} {referrer.full_name} (via {via})",
                 changes={"referred_by": referrer.member_number, "via": via})
    return True


# ---------------------------------------------------------------- the reward rule


def reward_rule(session: Session) -> str:
    from membership.engagement.models import Setting
    row = session.get(Setting, SETTING_KEY)
    value = row.value if row is not None else None
    return value if value in REWARD_RULES else "none"


def set_reward_rule(session: Session, rule: str, *, actor, now: datetime) -> None:
    from membership.engagement.models import Setting
    if rule not in REWARD_RULES:
        raise ValidationError(_("Choose one of the reward rules."), field="rule")
    old = reward_rule(session)
    row = session.get(Setting, SETTING_KEY)
    if row is None:
        row = Setting(key=SETTING_KEY, value=rule, updated_at=now, updated_by_id=getattr(actor, "id", None))
        session.add(row)
    else:
        row.value = rule
        row.updated_at = now
        row.updated_by_id = getattr(actor, "id", None)
    if old != rule:
        record_audit(session, actor=actor, action="referral.rule", entity=None, now=now,
                     summary=f"Referral reward rule: {old} -> {rule}", changes={"rule": [old, rule]})


def on_payment(session: Session, member: Member, payment, *, actor, now: datetime) -> ReferralReward | None:
    """Called by plans.services.record_payment: when the referred `member`'s first payment is
    recorded and a reward rule is set, grant the referrer's reward once. The unique row per
    referred member makes "once" hold for a second payment, a retried form and two requests at
    the same moment (INSERT ... ON CONFLICT DO NOTHING: the second inserts nothing)."""
    if member.referred_by_id is None:
        return None
    rule = reward_rule(session)
    if rule == "none":
        return None
    from membership.plans.models import Payment
    earlier = session.scalar(select(func.count()).select_from(Payment).where(
        Payment.member_id == member.id, Payment.id != payment.id)) or 0
    if earlier:
        return None
    months = 1 if rule == "month" else 0
    status = "granted" if rule == "month" else "recognised"
    dialect_insert = conflict_insert(session.get_bind().dialect.name)
    new_id = session.execute(
        dialect_insert(ReferralReward).values(
            referred_member_id=member.id, referrer_id=member.referred_by_id, rule=rule, months=months,
            status=status, payment_id=payment.id, granted_at=now,
            detail={"receipt": payment.receipt_number})
        .on_conflict_do_nothing(index_elements=["referred_member_id"]).returning(ReferralReward.id)).scalar()
    if new_id is None:
        return None
    reward = session.get(ReferralReward, new_id)
    referrer = session.get(Member, member.referred_by_id)
    what = _("one month added to the next term") if months else _("recognition")
    record_audit(session, actor=actor, action="referral.reward", entity=reward, now=now,
                 member_id=member.referred_by_id,
                 summary=f"Referral reward for {referrer.member_number if referrer else '?'}: {what} "
                         f"({member.member_number} {member.full_name} paid, receipt {payment.receipt_number})",
                 changes={"rule": rule, "months": months, "referred": member.member_number})
    if months:
        _apply_to_future_term(session, reward, now=now)
    return reward


def _apply_to_future_term(session: Session, reward: ReferralReward, *, now: datetime) -> None:
    """A referrer who renewed ahead already has their next term: the month goes on it now."""
    from membership.core.time import local_today
    from membership.plans.models import Membership
    today = local_today(now)
    term = session.scalar(select(Membership).where(
        Membership.member_id == reward.referrer_id, Membership.starts_on > today,
        Membership.ends_on.is_not(None)).order_by(Membership.starts_on.desc(), Membership.id.desc()).limit(1))
    if term is not None:
        _use(session, reward, term, now=now)


def apply_pending_rewards(session: Session, term, *, actor, now: datetime) -> int:
    """Called by plans.services.renew for the term it creates: add the months of the holder's
    granted rewards to it (each reward used once). Returns the months added."""
    if term.member_id is None or term.ends_on is None:
        return 0
    rewards = list(session.scalars(select(ReferralReward).where(
        ReferralReward.referrer_id == term.member_id, ReferralReward.status == "granted",
        ReferralReward.months > 0).order_by(ReferralReward.id).with_for_update()))
    added = 0
    for reward in rewards:
        added += _use(session, reward, term, now=now)
    return added


def _use(session: Session, reward: ReferralReward, term, *, now: datetime) -> int:
    old_end = term.ends_on
    term.ends_on = add_months(term.ends_on, reward.months)
    reward.status = "used"
    reward.used_on_term_id = term.id
    reward.used_at = now
    record_audit(session, actor=None, action="referral.reward_used", entity=term, now=now,
                 member_id=term.member_id,
                 summary=f"Referral reward: term extended by {reward.months} month(s), "
                         f"{old_end.isoformat()} -> {term.ends_on.isoformat()}",
                 changes={"ends_on": [old_end, term.ends_on], "reward_id": reward.id})
    return reward.months


# ---------------------------------------------------------------- what members and staff see


def _joined_condition(member_alias=Member):
    """A referred person "joined" once they hold a term that is paid (free plans are paid at once)."""
    from membership.plans.models import Membership
    return exists().where(Membership.member_id == member_alias.id, Membership.paid_on.is_not(None),
                          Membership.awaiting_approval.is_(False))


@dataclass
class MemberReferrals:
    code: str
    link: str
    made: int
    joined: int
    rewards: int  # rewards granted (months or recognition)
    months_pending: int
    months_used: int
    people: list[tuple[Member, bool]]  # the latest referred people, joined or not


def member_referrals(session: Session, member: Member, *, now: datetime, limit: int = 10) -> MemberReferrals:
    code = code_for(session, member, now=now)
    joined_expr = _joined_condition()
    made = session.scalar(select(func.count()).select_from(Member).where(
        Member.referred_by_id == member.id, Member.erased_at.is_(None))) or 0
    joined = session.scalar(select(func.count()).select_from(Member).where(
        Member.referred_by_id == member.id, Member.erased_at.is_(None), joined_expr)) or 0
    people = [(m, bool(j)) for m, j in session.execute(
        select(Member, joined_expr.label("joined")).where(Member.referred_by_id == member.id,
                                                          Member.erased_at.is_(None))
        .order_by(Member.joined_on.desc(), Member.id.desc()).limit(limit)).all()]
    rows = session.execute(select(ReferralReward.status, func.count(), func.coalesce(func.sum(ReferralReward.months), 0))
                           .where(ReferralReward.referrer_id == member.id).group_by(ReferralReward.status)).all()
    by_status = {s: (int(n), int(m)) for s, n, m in rows}
    return MemberReferrals(code=code, link=referral_link(code), made=made, joined=joined,
                           rewards=sum(n for n, _m in by_status.values()),
                           months_pending=by_status.get("granted", (0, 0))[1],
                           months_used=by_status.get("used", (0, 0))[1], people=people)


@dataclass
class ReferralRate:
    joined: int
    referred: int
    since: date

    @property
    def rate(self) -> float | None:
        return self.referred / self.joined if self.joined else None


def referral_rate(session: Session, *, today: date, days: int = RATE_WINDOW_DAYS) -> ReferralRate:
    """Of the members who joined in the last `days` days, how many were referred by a member."""
    since = today - timedelta(days=days)
    base = (Member.joined_on > since, Member.joined_on <= today, Member.erased_at.is_(None))
    joined, referred = session.execute(select(
        func.count(), func.count(Member.referred_by_id)).select_from(Member).where(*base)).one()
    return ReferralRate(joined=int(joined or 0), referred=int(referred or 0), since=since)


def referrals_query(*, since: date | None = None):
    """Every referred member (with their referrer), newest first: the staff list."""
    from sqlalchemy.orm import joinedload
    stmt = (select(Member).options(joinedload(Member.referred_by))
            .where(Member.referred_by_id.is_not(None), Member.erased_at.is_(None)))
    if since is not None:
        stmt = stmt.where(Member.joined_on > since)
    return stmt.order_by(Member.joined_on.desc(), Member.id.desc())


def joined_ids(session: Session, member_ids: list[int]) -> set[int]:
    """Which of these members hold a paid term ("joined")."""
    if not member_ids:
        return set()
    return set(session.scalars(select(Member.id).where(Member.id.in_(member_ids), _joined_condition())))


def top_referrers(session: Session, *, limit: int = 10) -> list[tuple[Member, int, int]]:
    """Members who referred the most people, with how many of them joined."""
    referred = aliased(Member)
    joined_expr = _joined_condition(referred)
    rows = session.execute(
        select(Member, func.count(referred.id), func.count(referred.id).filter(joined_expr))
        .join(referred, referred.referred_by_id == Member.id)
        .where(referred.erased_at.is_(None))
        .group_by(Member.id).order_by(func.count(referred.id).desc(), Member.id).limit(limit)).all()
    return [(m, int(n), int(j)) for m, n, j in rows]


def staff_set_referrer(session: Session, member: Member, raw: str | None, *, actor, now: datetime) -> Member | None:
    """Staff type a referral code or a member number for a member who has no referrer yet."""
    text = (raw or "").strip()
    if not text:
        raise ValidationError(_("Type the referrer's referral code or member number."), field="referrer")
    if member.referred_by_id is not None:
        raise ValidationError(_("This member's referrer is already recorded."), field="referrer")
    referrer = session.scalar(select(Member).where(Member.member_number == text[:32]))
    if referrer is None:
        referrer = referrer_by_code(session, text, field="referrer")
    if referrer is None or referrer.erased_at is not None:
        raise ValidationError(_("No member has this code or number."), field="referrer")
    if referrer.id == member.id:
        raise ValidationError(_("A member cannot refer themselves."), field="referrer")
    record_referral(session, member, referrer, actor=actor, now=now, via="staff")
    return referrer
