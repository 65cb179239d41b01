"""Renewal reminders: the rules staff keep, and the sweep that queues what is due.

A rule says "send template T when a term's end is `offset_days` away" (negative: before the end,
0: on the last day, positive: after it). The sweep is computed from state, not from "the job
fired at 08:00", so a missed day is caught up and a second run sends nothing twice:

  due      the rule's day (ends_on + offset) has been reached as of `now` (the association's
           local date), is on or after the rule's `effective_from` (a rule added today does not
           back-fill last month's terms), and is at most REMINDER_CATCH_UP_DAYS old;
  term     the holder's latest term: no successor renews it and no later term of the same
           holder exists (a member who renewed gets no "please renew"), not cancelled, not
           pending payment or approval, with a recipient who has an email that is not bouncing;
  latest   among the rules due for a term only the latest (largest offset) is sent, and nothing
           is sent when that rule or a later one was already sent for the term: reminders that
           were overtaken while the scheduler was down are skipped, not sent late.

Each message is queued through the outbox with the dedupe key
``reminder:{rule.id}:{term.id}:{term.ends_on}``: the unique key makes a second run, a crash and
re-run or a second scheduler harmless, and because the key holds the term and its end date a
renewal (a new term) or a changed end date re-arms the rules.

Organisation terms are sent to the organisation's primary contact (falling back to the
organisation's own email address when it has no primary contact with a usable email).

Why a catch-up horizon of 7 days (config REMINDER_CATCH_UP_DAYS): long enough to cover a
scheduler that was down over a long weekend or a week's holiday, and no shorter than the
smallest gap between the default rules (7 days before -> on the day), so a missed reminder is
still sent until the next rule takes over; short enough that a newly imported member whose
term ended last month, or a database restored from an old backup, does not get mail about
dates long past.
"""
from __future__ import annotations

from flask_babel import gettext as _

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Callable, Iterable

from sqlalchemy import and_, func, or_, select, text, true
from sqlalchemy.orm import Session, selectinload

from membership.core.errors import ValidationError
from membership.core.services import record_audit
from membership.members.models import Member, Organization
from membership.notifications.models import OutboxMessage, ReminderRule
from membership.plans.models import Membership, Plan
from membership.plans.status import status_on

DEFAULT_CATCH_UP_DAYS = 7
OFFSET_LIMIT = 365

# (offset_days, template key, name). Template keys are the outbox's shipped templates.
DEFAULT_RULES: tuple[tuple[int, str, str], ...] = (
    (-30, "renewal_reminder_30", "30 days before the end"),
    (-7, "renewal_reminder_7", "7 days before the end"),
    (0, "renewal_due_today", "On the last day"),
    (14, "grace_notice", "14 days after the end (grace period)"),
)

# Cached term statuses worth looking at (lets the (status, ends_on) index do the work); the
# status of each candidate is then recomputed for `today`, so a stale cache cannot send mail.
_CANDIDATE_STATUSES = ("upcoming", "active", "grace", "lapsed")
GRACE_TEMPLATE = "grace_notice"
_KEY_CHUNK = 500


def dedupe_key(rule_id: int, term_id: int, ends_on: date) -> str:
    return f"reminder:{rule_id}:{term_id}:{ends_on.isoformat()}"


def describe_offset(offset: int) -> str:
    """'30 days before the end', 'on the last day', '1 day after the end'."""
    if offset == 0:
        return "on the last day"
    n = abs(offset)
    unit = "day" if n == 1 else "days"
    return f"{n} {unit} {'before' if offset < 0 else 'after'} the end"


# ---------------------------------------------------------------- rules


def ensure_default_rules(session: Session, today: date) -> list[ReminderRule]:
    """Create the default rules (30 and 7 days before the end, on the day, 14 days after) when
    there are no rules at all. Idempotent and safe when two processes start at once; the rules
    are effective from `today`, so a fresh install does not back-fill past offsets. Returns the
    rules it created (empty when rules existed). Flushes; the caller commits."""
    if session.get_bind().dialect.name == "postgresql":
        # Two processes starting together must not both see "no rules": serialise on a lock
        # (SQLite already serialises writers: every transaction begins IMMEDIATE).
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext('samiti.reminder_rule.defaults'))"))
    if session.scalar(select(func.count()).select_from(ReminderRule)):
        return []
    from membership.core.time import utcnow

    created = []
    for offset, key, name in DEFAULT_RULES:
        rule = ReminderRule(name=name, offset_days=offset, plan_id=None, template_key=key, is_active=True,
                            effective_from=today, created_at=utcnow())
        session.add(rule)
        created.append(rule)
    session.flush()
    return created


@dataclass
class RuleInput:
    name: str
    offset_days: int | None
    plan_id: int | None
    template_key: str
    is_active: bool
    effective_from: date | None


def known_template_keys() -> list[str] | None:
    """The outbox's template keys, or None when the templating module is not there (then any
    well-formed key is accepted)."""
    try:
        from membership.notifications import templating
    except ImportError:
        return None
    templates = getattr(templating, "TEMPLATES", None)
    return sorted(templates) if templates is not None else None


def template_choices() -> list[tuple[str, str]] | None:
    """(key, label) for the rule form: the renewal templates first, then the others."""
    try:
        from membership.notifications import templating
    except ImportError:
        return None
    templates = getattr(templating, "TEMPLATES", None)
    if templates is None:
        return None
    def order(item):
        key, info = item
        return (not any(word in key for word in ("renewal", "grace", "lapsed")), key)
    return [(key, f"{getattr(info, 'name', key)} ({key})") for key, info in sorted(templates.items(), key=order)]


def validate_rule(session: Session, data: RuleInput, *, template_keys: Iterable[str] | None) -> RuleInput:
    """Check a rule's fields; raises ValidationError naming the field."""
    name = (data.name or "").strip()
    if not name:
        raise ValidationError(_("Give the rule a name staff will recognise."), field="name")
    if len(name) > 120:
        raise ValidationError(_("Keep the name under 120 characters."), field="name")
    if data.offset_days is None:
        raise ValidationError(_("Give the number of days (negative: before the end)."), field="offset_days")
    if not -OFFSET_LIMIT <= data.offset_days <= OFFSET_LIMIT:
        raise ValidationError(_("The offset must be between -%(limit)s and %(limit)s days.", limit=OFFSET_LIMIT),
                              field="offset_days")
    if data.plan_id is not None and session.get(Plan, data.plan_id) is None:
        raise ValidationError(_("Choose a plan from the list."), field="plan_id")
    key = (data.template_key or "").strip()
    if not key:
        raise ValidationError(_("Choose the email template to send."), field="template_key")
    keys = list(template_keys) if template_keys is not None else None
    if keys is not None and key not in keys:
        raise ValidationError(_("There is no email template '%(key)s'.", key=key), field="template_key")
    if keys is None and (len(key) > 64 or not all(c.isalnum() or c in "_-." for c in key)):
        raise ValidationError(_("A template key is letters, digits, '_', '-' or '.'."), field="template_key")
    if data.effective_from is None:
        raise ValidationError(_("Give the date from which the rule applies."), field="effective_from")
    return RuleInput(name, data.offset_days, data.plan_id, key, bool(data.is_active), data.effective_from)


def _rule_summary(rule: ReminderRule) -> dict:
    return {"name": rule.name, "offset_days": rule.offset_days, "plan_id": rule.plan_id,
            "template_key": rule.template_key, "is_active": rule.is_active,
            "effective_from": rule.effective_from}


def create_rule(session: Session, data: RuleInput, *, actor, now: datetime, today: date,
                template_keys: Iterable[str] | None) -> ReminderRule:
    """Add a rule. Raises ValidationError. Flushes; the caller commits.

    An effective date in the past is allowed, but the sweep never reaches back further than the
    catch-up horizon, so a new rule cannot mail everyone who passed its offset last year."""
    data = validate_rule(session, data, template_keys=template_keys)
    rule = ReminderRule(name=data.name, offset_days=data.offset_days, plan_id=data.plan_id,
                        template_key=data.template_key, is_active=data.is_active,
                        effective_from=data.effective_from, created_at=now)
    session.add(rule)
    session.flush()
    record_audit(session, actor=actor, action="reminder_rule.create", entity=rule, now=now,
                 summary=f"Reminder rule '{rule.name}' ({describe_offset(rule.offset_days)}, "
                         f"template {rule.template_key}) added", changes=_rule_summary(rule))
    return rule


def update_rule(session: Session, rule: ReminderRule, data: RuleInput, *, actor, now: datetime, today: date,
                template_keys: Iterable[str] | None) -> list[str]:
    """Change a rule; returns what changed (field names). Moving a rule's offset or plan makes it,
    in effect, a new rule: its effective date moves to today (if earlier), so the change does not
    back-fill terms that passed the new offset before today. Raises ValidationError."""
    data = validate_rule(session, data, template_keys=template_keys)
    before = _rule_summary(rule)
    if (data.offset_days != rule.offset_days or data.plan_id != rule.plan_id) and data.effective_from < today:
        data.effective_from = today
    rule.name, rule.offset_days, rule.plan_id = data.name, data.offset_days, data.plan_id
    rule.template_key, rule.is_active, rule.effective_from = data.template_key, data.is_active, data.effective_from
    after = _rule_summary(rule)
    changed = [k for k in after if after[k] != before[k]]
    if changed:
        record_audit(session, actor=actor, action="reminder_rule.update", entity=rule, now=now,
                     summary=f"Reminder rule '{rule.name}' changed: {', '.join(changed)}",
                     changes={k: [before[k], after[k]] for k in changed})
    session.flush()
    return changed


def set_rule_active(session: Session, rule: ReminderRule, active: bool, *, actor, now: datetime,
                    today: date) -> None:
    """Deactivate or reactivate a rule (rules are never deleted: sent reminders name them).
    Reactivating moves the effective date to today, so the pause is not back-filled."""
    if rule.is_active == active:
        return
    rule.is_active = active
    if active and rule.effective_from < today:
        rule.effective_from = today
    record_audit(session, actor=actor, action="reminder_rule." + ("activate" if active else "deactivate"),
                 entity=rule, now=now, summary=f"Reminder rule '{rule.name}' {'re' if active else 'de'}activated")
    session.flush()


# ---------------------------------------------------------------- the sweep


@dataclass(frozen=True)
class _Rule:
    """What the sweep needs of a rule, copied once (the caller may commit between batches, which
    would expire ORM rows and reload them)."""
    id: int
    name: str
    offset_days: int
    plan_id: int | None
    template_key: str
    effective_from: date
    is_active: bool

    @property
    def rank(self) -> tuple:
        # Latest offset wins; on a tie, a plan's own rule beats an all-plans rule.
        return (self.offset_days, self.plan_id is not None, self.id)

    def applies_to(self, term: Membership) -> bool:
        return self.plan_id is None or self.plan_id == term.plan_id


@dataclass(frozen=True)
class _Window:
    rule: _Rule
    first_end: date  # terms ending in [first_end, last_end] have the rule's day in range
    last_end: date

    def covers(self, term: Membership) -> bool:
        return self.first_end <= term.ends_on <= self.last_end and self.rule.applies_to(term)


def _windows(rules: list[_Rule], today: date, horizon: int) -> list[_Window]:
    windows = []
    for rule in rules:
        if not rule.is_active:
            continue
        earliest_day = max(rule.effective_from, today - timedelta(days=horizon))
        if earliest_day > today:
            continue
        offset = timedelta(days=rule.offset_days)
        windows.append(_Window(rule, earliest_day - offset, today - offset))
    return windows


def _existing_keys(session: Session, keys: list[str]) -> set[str]:
    found: set[str] = set()
    for i in range(0, len(keys), _KEY_CHUNK):
        chunk = keys[i:i + _KEY_CHUNK]
        found.update(session.scalars(select(OutboxMessage.dedupe_key).where(OutboxMessage.dedupe_key.in_(chunk))))
    return found


def _superseded(session: Session, batch: list[Membership]) -> set[int]:
    """Ids of terms in `batch` that a renewal or a later term of the same holder supersedes
    (cancelled terms do not count)."""
    member_ids = {t.member_id for t in batch if t.member_id}
    org_ids = {t.organization_id for t in batch if t.organization_id}
    conds = []
    if member_ids:
        conds.append(Membership.member_id.in_(member_ids))
    if org_ids:
        conds.append(Membership.organization_id.in_(org_ids))
    rows = session.execute(
        select(Membership.id, Membership.member_id, Membership.organization_id, Membership.starts_on,
               Membership.renews_id)
        .where(or_(*conds), Membership.cancelled_on.is_(None))).all()
    renewed = {r.renews_id for r in rows if r.renews_id is not None}
    latest: dict[tuple, tuple] = {}
    for r in rows:
        holder = ("m", r.member_id) if r.member_id else ("o", r.organization_id)
        latest[holder] = max(latest.get(holder, (date.min, 0)), (r.starts_on, r.id))
    out = set()
    for t in batch:
        holder = ("m", t.member_id) if t.member_id else ("o", t.organization_id)
        if t.id in renewed or latest.get(holder, (date.min, 0)) > (t.starts_on, t.id):
            out.add(t.id)
    return out


def _recipient(term: Membership) -> tuple[Member | None, str | None, str, str | None]:
    """(member, address, name, why-not) for a term's reminder."""
    def usable(m: Member | None) -> str | None:
        if m is None or m.erased_at is not None or not m.email:
            return "no_email"
        if m.email_bouncing:
            return "bouncing"
        return None

    if term.member_id:
        problem = usable(term.member)
        return term.member, term.member.email, term.member.full_name, problem
    org: Organization = term.organization
    contact = org.primary_contact
    problem = usable(contact)
    if problem is None:
        return contact, contact.email, contact.full_name, None
    if org.email:
        return None, org.email, org.name, None
    return None, None, org.name, problem


def _long_date(day: date) -> str:
    from membership.core.formats import long_date
    return long_date(day)


def _reason(term: Membership, today: date, association: str) -> str:
    """Completes the outbox footer's "You received this email because ..." (in the language in force)."""
    from flask_babel import gettext as _

    values = {"plan": term.plan.name, "association": association, "day": _long_date(term.ends_on)}
    if term.organization_id:
        if term.ends_on >= today:
            return _("you are the contact for %(organisation)s, whose %(plan)s membership of %(association)s ends "
                     "on %(day)s.", organisation=term.organization.name, **values)
        return _("you are the contact for %(organisation)s, whose %(plan)s membership of %(association)s ended "
                 "on %(day)s.", organisation=term.organization.name, **values)
    if term.ends_on >= today:
        return _("your %(plan)s membership of %(association)s ends on %(day)s.", **values)
    return _("your %(plan)s membership of %(association)s ended on %(day)s.", **values)


def _context(term: Membership, rule: _Rule) -> dict:
    # The outbox turns the term into plan_name, expiry_date, days_left, grace_end_date...
    return {"term": term, "reminder_rule": rule.name, "reminder_offset_days": rule.offset_days,
            "organization_name": term.organization.name if term.organization_id else ""}


def queue_due(session: Session, *, now: datetime, today: date | None = None, horizon_days: int | None = None,
              batch_size: int = 500, on_batch: Callable[[], None] | None = None,
              on_queued: Callable[[int], None] | None = None, association: str | None = None) -> dict[str, int]:
    """Queue every renewal reminder that is due as of `now` and not yet sent (see the module
    docstring for the rules). `today` defaults to the association's local date of `now`.

    Reads terms in batches by id through the (status, ends_on) index, one ends_on range per
    rule; bounded memory. Adds outbox rows and flushes; the caller commits. `on_batch` is called
    after each batch (the scheduler commits there and renews its lease, so a crash keeps what was
    queued); `on_queued(n)` after each queued message (tests use it to crash mid-batch).
    Returns counts: terms_checked, queued, already_sent, overtaken, renewed, not_current,
    no_email, bouncing, duplicate.
    """
    from flask import current_app

    from membership.core.time import local_today
    from membership.core.i18n import in_language, language_of
    from membership.notifications import outbox

    if today is None:
        today = local_today(now)
    if horizon_days is None:
        horizon_days = int(current_app.config.get("REMINDER_CATCH_UP_DAYS", DEFAULT_CATCH_UP_DAYS))
    if association is None:
        association = current_app.config.get("ASSOCIATION_NAME", "the association")
    counts = dict.fromkeys(("terms_checked", "queued", "already_sent", "overtaken", "renewed", "not_current",
                            "no_email", "bouncing", "duplicate"), 0)

    all_rules = [_Rule(r.id, r.name, r.offset_days, r.plan_id, r.template_key, r.effective_from, r.is_active)
                 for r in session.scalars(select(ReminderRule).order_by(ReminderRule.id))]
    windows = _windows(all_rules, today, horizon_days)
    if not windows:
        return counts

    in_range = or_(*[and_(Membership.ends_on.between(w.first_end, w.last_end),
                          (Membership.plan_id == w.rule.plan_id) if w.rule.plan_id else true())
                     for w in windows])
    queued_total = 0
    last_id = 0
    while True:
        batch = session.scalars(
            select(Membership)
            .where(Membership.status.in_(_CANDIDATE_STATUSES), in_range, Membership.id > last_id)
            .order_by(Membership.id).limit(batch_size)
            .options(selectinload(Membership.member),
                     selectinload(Membership.organization).selectinload(Organization.contacts))).all()
        if not batch:
            break
        last_id = batch[-1].id
        superseded = _superseded(session, batch)
        candidates: list[tuple[Membership, _Rule, list[_Rule], list[_Rule]]] = []
        wanted_keys: list[str] = []
        for term in batch:
            counts["terms_checked"] += 1
            status = status_on(term, today)
            if status in ("cancelled", "pending", "upcoming"):
                counts["not_current"] += 1
                continue
            if term.id in superseded:
                counts["renewed"] += 1
                continue
            due = [w.rule for w in windows if w.covers(term)]
            if status != "grace":
                # the grace notice ("you still count as a member until ...") only while that is
                # true: a plan with less grace than the rule's offset has no grace left to tell of
                due = [r for r in due if r.template_key != GRACE_TEMPLATE]
            if not due:
                continue
            chosen = max(due, key=lambda r: r.rank)
            # Sent already if this rule, or any rule at a later-or-equal offset (active or not,
            # due or not), was queued for this term and end date.
            blocking = [r for r in all_rules if r.applies_to(term) and r.offset_days >= chosen.offset_days]
            candidates.append((term, chosen, due, blocking))
            wanted_keys += [dedupe_key(r.id, term.id, term.ends_on) for r in {*blocking, *due}]
        existing = _existing_keys(session, wanted_keys)
        prepared: list[tuple[dict, Membership, _Rule, list[_Rule]]] = []
        for term, chosen, due, blocking in candidates:
            if any(dedupe_key(r.id, term.id, term.ends_on) in existing for r in blocking):
                counts["already_sent"] += 1
                continue
            member, address, name, problem = _recipient(term)
            if problem:
                counts[problem] += 1
                continue
            # existence was checked above for the whole batch; a row another process inserts
            # meanwhile is skipped by the INSERT itself (ON CONFLICT DO NOTHING)
            language = language_of(member=member)
            with in_language(language):
                values = outbox.prepare(
                    session, template_key=chosen.template_key,
                    dedupe_key=dedupe_key(chosen.id, term.id, term.ends_on), now=now, member=member,
                    to_address=address, to_name=name, context=_context(term, chosen), category="service",
                    reason=_reason(term, today, association), source=term, check_existing=False, language=language)
            if values is not None:
                prepared.append((values, term, chosen, due))
        inserted = outbox.enqueue_many(session, [values for values, *_ in prepared])
        for values, term, chosen, due in prepared:
            if values["dedupe_key"] not in inserted:
                counts["duplicate"] += 1
                continue
            counts["queued"] += 1
            # the earlier rules it overtook are skipped for good, not sent late
            counts["overtaken"] += sum(1 for r in due if r is not chosen
                                       and dedupe_key(r.id, term.id, term.ends_on) not in existing)
            queued_total += 1
            if on_queued:
                on_queued(queued_total)
        session.flush()
        if on_batch:
            on_batch()
    return counts
