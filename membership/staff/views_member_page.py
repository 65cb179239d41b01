"""The member page (the 360-degree view) and the actions started from it: join, renew (with a change
of plan), record a payment, approve, cancel, override the status, add an interaction.

Each action parses its form, calls one service of membership.plans or membership.members, commits
once, flashes what happened and goes back to the member page. A DomainError rolls the session
back and shows its message beside the field it names (422) or above the form (409).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _, ngettext
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload
from wtforms.fields.choices import SelectChoice

from membership.notifications.outbox import member_messages
from membership.core import time as clock
from membership.core.errors import AlreadyRenewed, Conflict, DomainError
from membership.core.models import Activity, AuditLog
from membership.engagement import queries as engagement
from membership.events.queries import member_registrations
from membership.extensions import db
from membership.members import services as members
from membership.members.models import Interaction, Member
from membership.plans import services as plans
from membership.signup import services as signup
from membership.plans.catalog import describe_period, format_minor, offered_plans
from membership.plans.models import Membership, Payment, Plan
from membership.plans.status import STATUS_LABELS, grace_ends_on, history_with_gaps, holder_status, status_on
from membership.staff import bp
from membership.staff.forms_member_page import (
    CHANNEL_LABELS, METHOD_LABELS, OVERRIDE_LABELS, SOURCE_LABELS, CancelForm, InteractionForm, JoinForm,
    OverrideForm, PaymentForm, RenewForm, put_error, to_id)
from membership.staff.forms_engagement import AlertActionForm, TagForm
from membership.web import format_day, get_or_404, money

RECENT_PAYMENTS = 20
RECENT_INTERACTIONS = 20
RECENT_AUDIT = 50
RECENT_ACTIVITIES = 20
RECENT_EVENTS = 10
AUDIT_PER_PAGE = 50


def _actor():
    return current_user._get_current_object()


def _clock():
    now = clock.utcnow()
    return now, clock.local_today(now)


def _member_url(member: Member, anchor: str | None = None) -> str:
    return url_for("staff.member", member_id=member.id, _anchor=anchor)


def _term_of(member: Member, term_id: int) -> Membership:
    """The member's own term, or 404 (a term id of another member is not found here)."""
    term = db.session.get(Membership, term_id)
    if term is None or term.member_id != member.id:
        abort(404)
    return term


def _payment_with_key(key: str | None) -> Payment | None:
    if not key:
        return None
    return db.session.scalar(select(Payment).where(Payment.idempotency_key == key))


# ---------------------------------------------------------------- words for the page


def _dates_key(starts: date, ends: date | None) -> str:
    return f"{starts.isoformat()}/{ends.isoformat() if ends else ''}"


def _dates_text(starts: date, ends: date | None) -> str:
    if ends:
        return _("%(start)s to %(end)s", start=format_day(starts), end=format_day(ends))
    return _("%(start)s, lifetime", start=format_day(starts))


def days_left(n: int) -> str:
    if n <= 0:
        return _("last day")
    return ngettext("%(num)s day left", "%(num)s days left", n)


def term_span(term) -> str:
    return _dates_text(term.starts_on, term.ends_on)


def status_line(hs, today: date, due: dict[int, int]) -> str:
    """The holder's status in plain words, e.g. "Active until 30 Jun 2027 — 197 days left"."""
    term = hs.term
    if term is None:
        return _("No membership yet.")
    via = _(" through %(org)s", org=term.organization.name) if term.organization_id else ""
    if term.override_status and (term.override_until is None or today <= term.override_until):
        until = _("until %(day)s", day=format_day(term.override_until)) if term.override_until \
            else _("until further notice")
        return _("%(status)s%(via)s: set by staff %(until)s (%(reason)s)", status=STATUS_LABELS.get(hs.status, hs.status),
                 via=via, until=until, reason=term.override_reason)
    status = hs.status
    if status == "active":
        if hs.expires_on is None:
            return _("Active%(via)s: lifetime membership since %(day)s", via=via, day=format_day(term.starts_on))
        return _("Active%(via)s until %(day)s — %(left)s", via=via, day=format_day(hs.expires_on),
                 left=days_left((hs.expires_on - today).days))
    if status == "grace":
        grace_end = grace_ends_on(term)
        return _("In grace period%(via)s: ended %(ended)s, grace ends %(grace_end)s — %(left)s to renew", via=via,
                 ended=format_day(term.ends_on), grace_end=format_day(grace_end),
                 left=days_left((grace_end - today).days))
    if status == "lapsed":
        return _("Lapsed since %(day)s%(via)s (the term ended %(ended)s)",
                 day=format_day(grace_ends_on(term) + timedelta(days=1)), via=via, ended=format_day(term.ends_on))
    if status == "cancelled":
        return _("Cancelled%(via)s from %(day)s: %(reason)s", via=via, day=format_day(term.cancelled_on),
                 reason=term.cancel_reason)
    if status == "pending":
        what = f"{term.plan.name}, {term_span(term)}"
        if term.awaiting_payment and term.awaiting_approval:
            return _("Pending payment and approval (%(what)s)", what=what)
        if term.awaiting_payment:
            return _("Pending payment: %(amount)s due (%(what)s)",
                     amount=money(due.get(term.id, term.fee_minor), term.currency), what=what)
        if term.awaiting_approval:
            return _("Pending approval (%(what)s)", what=what)
        wait = (term.starts_on - today).days
        return ngettext("Starts on %(day)s — in %(num)s day (%(what)s)", "Starts on %(day)s — in %(num)s days (%(what)s)",
                        wait, day=format_day(term.starts_on), what=what)
    return STATUS_LABELS.get(status, status)


def status_notes(own_terms, governing, today: date, due: dict[int, int]) -> list[str]:
    """What else staff should know: a renewal that starts later, or one that waits for payment."""
    notes = []
    for term in own_terms:
        if term is governing or term.cancelled_on is not None:
            continue
        status = status_on(term, today)
        if status == "upcoming":
            notes.append(_("Renewed: the next term (%(plan)s) runs %(span)s.", plan=term.plan.name, span=term_span(term)))
        elif status == "pending" and term.starts_on >= (governing.starts_on if governing else today):
            values = {"span": term_span(term), "plan": term.plan.name,
                      "amount": money(due.get(term.id, term.fee_minor), term.currency)}
            if term.awaiting_payment and term.awaiting_approval:
                notes.append(_("The term %(span)s (%(plan)s) waits for payment of %(amount)s and approval.", **values))
            elif term.awaiting_payment:
                notes.append(_("The term %(span)s (%(plan)s) waits for payment of %(amount)s.", **values))
            elif term.awaiting_approval:
                notes.append(_("The term %(span)s (%(plan)s) waits for approval.", **values))
            else:
                notes.append(_("The term %(span)s (%(plan)s) waits for .", **values))
    return notes


@dataclass
class Row:
    """A line of the term history: a term with what can be done to it, or a gap."""
    starts_on: date
    ends_on: date | None
    term: Membership | None = None
    status: str = ""
    payments: list = field(default_factory=list)
    due: int = 0
    actions: tuple = ()
    ongoing: bool = False

    @property
    def is_gap(self) -> bool:
        return self.term is None

    @property
    def days(self) -> int | None:
        return None if self.ends_on is None else (self.ends_on - self.starts_on).days + 1


def term_actions(term: Membership, status: str, *, key_ids: set[int]) -> tuple[str, ...]:
    """What staff may do to a term from its row (the services check again)."""
    acts = []
    if term.cancelled_on is None:
        if term.awaiting_payment:
            acts.append("pay")
        if term.awaiting_approval:
            acts.append("approve")
        if status in ("active", "grace", "upcoming", "pending"):
            acts.append("cancel")
    if term.override_status:
        acts.append("clear_override")
    elif term.id in key_ids:
        acts.append("override")
    return tuple(acts)


def history(own_terms, today: date, payments_by_term: dict, due: dict[int, int], key_ids: set[int]) -> list[Row]:
    """Terms newest first with the gaps between them, and the gap since the last term for a member
    whose membership ended and was not renewed."""
    rows = []
    for h in history_with_gaps(own_terms):
        if h.is_gap:
            rows.append(Row(h.starts_on, h.ends_on))
            continue
        status = status_on(h.term, today)
        # shown as "Renewed" (not "Lapsed") when a later term continued it without a gap
        rows.append(Row(h.starts_on, h.ends_on, h.term, h.status(today), payments_by_term.get(h.term.id, []),
                        due.get(h.term.id, 0), term_actions(h.term, status, key_ids=key_ids)))
    own = holder_status(own_terms, today)
    if own.status in ("lapsed", "cancelled") and own.term is not None:
        term = own.term
        last = term.ends_on if own.status == "lapsed" else term.cancelled_on - timedelta(days=1)
        if last is not None and last < today and not any(t.starts_on > last for t in own_terms):
            rows.append(Row(last + timedelta(days=1), today, ongoing=True))
    rows.reverse()
    return rows


def _due_by_term(terms) -> dict[int, int]:
    """What is still to pay on each term waiting for payment (fee minus what was received)."""
    waiting = [t for t in terms if t.awaiting_payment]
    if not waiting:
        return {}
    paid = dict(db.session.execute(
        select(Payment.membership_id, func.sum(Payment.amount_minor))
        .where(Payment.membership_id.in_([t.id for t in waiting])).group_by(Payment.membership_id)).all())
    return {t.id: max(0, t.fee_minor - int(paid.get(t.id) or 0)) for t in waiting}


def can_join(own_terms, today: date) -> bool:
    """A fresh membership is possible when no term is current, coming or waiting (plans.services.join
    refuses it otherwise)."""
    return not any(status_on(t, today) in ("active", "grace", "upcoming", "pending") for t in own_terms)


def _renewable(term: Membership | None, today: date) -> bool:
    if term is None:
        return False
    try:
        plans.renewal_start(term, term.plan, today)
    except DomainError:
        return False
    return True


def render_member_page(member: Member, *, interaction_form: InteractionForm | None = None,
                       status: int = 200, error: str | None = None, alert_form=None):
    """The member page: about ten small indexed queries (each list limited), whatever the size of
    the database."""
    now, today = _clock()
    terms = plans.effective_terms(db.session, member)
    own_terms = [t for t in terms if t.member_id == member.id]
    hs = holder_status(terms, today)
    due = _due_by_term(own_terms)

    payments = db.session.scalars(
        select(Payment).where(Payment.member_id == member.id)
        .options(joinedload(Payment.membership), joinedload(Payment.recorded_by))
        .order_by(Payment.received_at.desc(), Payment.id.desc()).limit(RECENT_PAYMENTS + 1)).all()
    more_payments = len(payments) > RECENT_PAYMENTS
    payments = payments[:RECENT_PAYMENTS]
    # The receipts of each term, for the history rows (a member has a handful of terms).
    term_ids = [t.id for t in own_terms]
    payments_by_term: dict[int, list] = {}
    if term_ids:
        for p in db.session.scalars(select(Payment).where(Payment.membership_id.in_(term_ids))
                                    .order_by(Payment.received_at, Payment.id)):
            payments_by_term.setdefault(p.membership_id, []).append(p)

    latest = own_terms[-1] if own_terms else None
    governing_own = hs.term if hs.term is not None and hs.term.member_id == member.id else None
    key_terms = [t for t in (governing_own, latest) if t is not None]
    rows = history(own_terms, today, payments_by_term, due, {t.id for t in key_terms})

    n_interactions = db.session.scalar(select(func.count()).select_from(Interaction)
                                       .where(Interaction.member_id == member.id))
    show_all = request.args.get("interactions") == "all"
    interactions = db.session.scalars(
        select(Interaction).where(Interaction.member_id == member.id).options(joinedload(Interaction.staff))
        .order_by(Interaction.occurred_at.desc(), Interaction.id.desc())
        .limit(None if show_all else RECENT_INTERACTIONS)).all()
    audit = db.session.scalars(select(AuditLog).where(AuditLog.member_id == member.id)
                               .order_by(AuditLog.at.desc(), AuditLog.id.desc()).limit(RECENT_AUDIT + 1)).all()
    activities = db.session.scalars(select(Activity).where(Activity.member_id == member.id)
                                    .order_by(Activity.occurred_at.desc(), Activity.id.desc())
                                    .limit(RECENT_ACTIVITIES)).all()

    if interaction_form is None:
        interaction_form = InteractionForm(formdata=None, occurred_at=now.replace(second=0, microsecond=0))
    # engagement (issue 6): scores read from the scoring job's tables, tags, the open risk alert
    score = engagement.member_engagement(db.session, member.id)
    if alert_form is None:
        alert_form = AlertActionForm(formdata=None, alert_id=score.alert.id if score.alert else "")

    # The header's buttons act on the term that decides the status (or the latest one).
    cancel_term = governing_own if governing_own is not None and "cancel" in term_actions(
        governing_own, status_on(governing_own, today), key_ids=set()) else None
    override_term = governing_own or latest
    return render_template(
        "staff/member/page.html", member=member, hs=hs, today=today,
        status_text=status_line(hs, today, due),
        notes=status_notes(own_terms, governing_own, today, due),
        rows=rows, latest=latest, can_renew=_renewable(latest, today), can_join=can_join(own_terms, today),
        pending_term=latest if latest is not None and status_on(latest, today) == "pending" else None,
        cancel_term=cancel_term, override_term=override_term,
        phone=members.format_phone(member.phone),
        payments=payments, more_payments=more_payments,
        interactions=interactions, n_interactions=n_interactions, show_all_interactions=show_all,
        interaction_form=interaction_form,
        audit=audit[:RECENT_AUDIT], more_audit=len(audit) > RECENT_AUDIT, activities=activities,
        method_labels=METHOD_LABELS, channel_labels=CHANNEL_LABELS, source_labels=SOURCE_LABELS,
        override_labels=OVERRIDE_LABELS, error=error,
        messages=member_messages(db.session, member.id),
        event_registrations=member_registrations(db.session, member.id, limit=RECENT_EVENTS),
        score=score, alert_form=alert_form, tag_form=TagForm(formdata=None),
        tags=engagement.member_tags(db.session, member.id), engagement_labels=engagement.ENGAGEMENT_LABELS,
        risk_labels=engagement.RISK_LABELS, kind_labels=engagement.KIND_LABELS,
    ), status


@bp.get("/members/<int:member_id>")
def member(member_id: int):
    return render_member_page(get_or_404(Member, member_id))


@bp.get("/members/<int:member_id>/audit")
def member_audit(member_id: int):
    """The member's whole audit trail, newest first, a page at a time."""
    member = get_or_404(Member, member_id)
    page_no = to_id(request.args.get("page")) or 1
    page = db.paginate(select(AuditLog).where(AuditLog.member_id == member.id)
                       .order_by(AuditLog.at.desc(), AuditLog.id.desc()),
                       page=page_no, per_page=AUDIT_PER_PAGE, error_out=False)
    return render_template("staff/member/audit.html", member=member, page=page)


# ---------------------------------------------------------------- interactions


@bp.post("/members/<int:member_id>/interactions")
def add_interaction(member_id: int):
    member = get_or_404(Member, member_id)
    form = InteractionForm()
    if not form.validate_on_submit():
        return render_member_page(member, interaction_form=form, status=422)
    now, _today = _clock()
    try:
        row = members.add_interaction(
            db.session, member, channel=form.channel.data, summary=form.summary.data,
            outcome=form.outcome.data, follow_up_on=form.follow_up_on.data, occurred_at=form.occurred_at.data,
            actor=_actor(), now=now)
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        put_error(form, e, {"occurred_on": "occurred_at"})
        return render_member_page(member, interaction_form=form, status=e.status_code)
    follow = _("; follow up on %(day)s", day=format_day(row.follow_up_on)) if row.follow_up_on else ""
    flash(_("Interaction added: %(channel)s on %(day)s%(follow)s.", channel=str(CHANNEL_LABELS[row.channel]).lower(),
            day=format_day(row.occurred_at), follow=follow),
          "success")
    return redirect(_member_url(member, "interactions"))


# ---------------------------------------------------------------- join and renew


def _plan_choice(plan: Plan, starts: date | None = None, ends: date | None = None) -> SelectChoice:
    """An option of the plan select; on the renewal form it carries the new term's dates for the
    script that shows them as soon as another plan is chosen."""
    label = f"{plan.name} — {money(plan.fee_minor, plan.currency)}, {str(describe_period(plan)).lower()}"
    attrs = {"data-fee": format_minor(plan.fee_minor)}
    if starts is not None:
        attrs["data-dates"] = _dates_key(starts, ends)
        attrs["data-dates-text"] = _dates_text(starts, ends)
    return SelectChoice(plan.id, label, attrs)


def renewal_options(term: Membership, today: date) -> dict[int, tuple[Plan, date, date | None]]:
    """Every plan the term may be renewed on, with the new term's dates (the current plan, or
    another one: a change of plan at renewal)."""
    options = {}
    for plan in offered_plans(db.session, organizational=False):
        try:
            starts, ends = plans.term_dates(plan, plans.renewal_start(term, plan, today))
        except DomainError:
            continue
        options[plan.id] = (plan, starts, ends)
    return options


def _render_renew(member, term, form, options, status=200):
    chosen = options.get(form.plan.data)
    return render_template("staff/member/renew.html", member=member, term=term, form=form,
                           chosen=chosen, dates_text=_dates_text(*chosen[1:]) if chosen else None,
                           term_status=status_on(term, clock.local_today())), status


def _renewed_message(new: Membership, old: Membership, key: str | None) -> str:
    text = _("Renewed: new term %(dates)s", dates=_dates_text(new.starts_on, new.ends_on))
    if new.plan_id != old.plan_id:
        text += _(" on %(plan)s (was %(old)s)", plan=new.plan.name, old=old.plan.name)
    payment = _payment_with_key(key)
    if payment is not None:
        text += _(", receipt %(number)s", number=payment.receipt_number)
    if new.awaiting_payment:
        due = _due_by_term([new]).get(new.id, new.fee_minor)
        text += _("; %(amount)s still to pay", amount=money(due, new.currency))
    return text + "."


def _payment_for(form, plan: Plan | None, today: date, now):
    """(payment or None, ok). No payment for a free plan or when staff chose "record it later"."""
    if not form.wants_payment() or (plan is not None and plan.fee_minor == 0):
        return None, True
    payment = form.payment_input(today=today, now=now)
    return payment, payment is not None


@bp.route("/members/<int:member_id>/renew", methods=["GET", "POST"])
def renew_member(member_id: int):
    member = get_or_404(Member, member_id)
    now, today = _clock()
    latest = plans.latest_term(db.session, member)
    if latest is None:
        flash(_("%(full_name)s has no membership to renew yet: record a new membership instead.", full_name=member.full_name), "info")
        return redirect(url_for("staff.join_member", member_id=member.id))
    form = RenewForm()

    if request.method == "GET":
        try:
            plans.renewal_start(latest, latest.plan, today)
        except DomainError as e:
            flash(_("This membership cannot be renewed now: %(message)s", message=e.message), "warning")
            return redirect(_member_url(member))
        options = renewal_options(latest, today)
        form.plan.choices = [_plan_choice(p, s, e) for p, s, e in options.values()]
        if latest.plan_id in options:
            form.plan.data = latest.plan_id
        else:
            form.plan.choices.insert(0, SelectChoice("", _("Choose a plan (%(name)s is no longer offered)", name=latest.plan.name)))
        form.term_id.data = str(latest.id)
        chosen = options.get(form.plan.data)
        if chosen:
            form.amount.data = format_minor(chosen[0].fee_minor)
            form.shown_dates.data = _dates_key(chosen[1], chosen[2])
        form.received_on.data = today
        return _render_renew(member, latest, form, options)

    term_id = to_id(form.term_id.data)
    term = db.session.get(Membership, term_id) if term_id else None
    stale = term is None or term.member_id != member.id
    if stale:
        term = latest
        form.term_id.data = str(latest.id)
    options = renewal_options(term, today)
    form.plan.choices = [_plan_choice(p, s, e) for p, s, e in options.values()]
    ok = form.validate() and not stale
    if stale:
        form.form_errors.append(_('This form was out of date; check the term and the dates and submit again.'))
    plan = db.session.get(Plan, form.plan.data) if form.plan.data else None
    if plan is None and not form.plan.errors:
        form.plan.errors = [*form.plan.errors, _('Choose a plan.')]
        ok = False
    payment, paid_ok = _payment_for(form, plan, today, now)
    ok = ok and paid_ok
    if not ok:
        return _render_renew(member, term, form, options, 422)

    # The dates shown must be the dates recorded: if another plan was chosen without JavaScript
    # (or the day changed since the form was shown), show the new dates and ask again.
    renewed_already = db.session.scalar(select(Membership.id).where(Membership.renews_id == term.id))
    if plan.id in options and form.shown_dates.data and not renewed_already:
        expected = _dates_key(options[plan.id][1], options[plan.id][2])
        if form.shown_dates.data != expected:
            form.shown_dates.data = expected
            form.form_errors.append(_("The new term on %(plan)s runs %(dates)s. Check the dates and submit again "
                                      "to confirm.", plan=plan.name, dates=_dates_text(*options[plan.id][1:])))
            return _render_renew(member, term, form, options, 409)

    try:
        new = plans.renew(db.session, term, today=today, now=now, actor=_actor(), plan=plan, payment=payment,
                          source="renewal")
        db.session.commit()
    except AlreadyRenewed as e:
        # A double submit, or a colleague was quicker: nothing more is written; say what exists.
        db.session.rollback()
        flash(_("%(message)s Nothing more was recorded.", message=e.message), "warning")
        return redirect(_member_url(member))
    except DomainError as e:
        db.session.rollback()
        put_error(form, e)
        return _render_renew(member, term, form, options, e.status_code)
    flash(_renewed_message(new, term, payment.idempotency_key if payment else None), "success")
    return redirect(_member_url(member))


def _join_dates(plan: Plan | None, starts_on: date | None) -> str | None:
    if plan is None or starts_on is None:
        return None
    try:
        return _dates_text(*plans.term_dates(plan, starts_on))
    except DomainError:
        return None


@bp.route("/members/<int:member_id>/join", methods=["GET", "POST"])
def join_member(member_id: int):
    """A first (or fresh) membership for someone with no term: plan, start date, payment now or later."""
    member = get_or_404(Member, member_id)
    now, today = _clock()
    offered = {p.id: p for p in offered_plans(db.session, organizational=False)}
    form = JoinForm()
    form.plan.choices = [_plan_choice(p) for p in offered.values()]

    def render(status=200):
        plan = offered.get(form.plan.data)
        return render_template("staff/member/join.html", member=member, form=form,
                               dates_text=_join_dates(plan, form.starts_on.data)), status

    if request.method == "GET":
        if not can_join(plans.terms_of(db.session, member), today):
            flash(_("This member's membership is current or waiting: renew it from the member page."), "info")
            return redirect(_member_url(member))
        form.plan.data = member.plan_id if member.plan_id in offered else next(iter(offered), None)
        form.starts_on.data = today
        form.received_on.data = today
        if form.plan.data:
            form.amount.data = format_minor(offered[form.plan.data].fee_minor)
        return render()

    ok = form.validate()
    plan = db.session.get(Plan, form.plan.data) if form.plan.data else None
    if plan is None and not form.plan.errors:
        form.plan.errors = [*form.plan.errors, _('Choose a plan.')]
        ok = False
    if form.preview.data:
        return render(200 if ok else 422)
    payment, paid_ok = _payment_for(form, plan, today, now)
    if not (ok and paid_ok):
        return render(422)
    try:
        term = plans.join(db.session, member, plan, today=today, now=now, actor=_actor(),
                          starts_on=form.starts_on.data, payment=payment, source="staff")
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        done = _payment_with_key(form.token.data)
        if isinstance(e, Conflict) and done is not None:
            flash(_("This membership was already recorded (receipt %(receipt_number)s). Nothing more was recorded.", receipt_number=done.receipt_number),
                  "warning")
            return redirect(_member_url(member))
        put_error(form, e, {"starts_on": "starts_on"})
        return render(e.status_code)
    text = _("Membership recorded: %(plan)s, %(dates)s", plan=plan.name, dates=_dates_text(term.starts_on, term.ends_on))
    receipt = _payment_with_key(payment.idempotency_key) if payment else None
    if receipt is not None:
        text += _(", receipt %(number)s", number=receipt.receipt_number)
    if term.awaiting_payment:
        text += _("; waiting for payment of %(amount)s",
                  amount=money(_due_by_term([term]).get(term.id, term.fee_minor), term.currency))
    flash(text + ".", "success")
    return redirect(_member_url(member))


# ---------------------------------------------------------------- actions on one term


def _render_action(template: str, member, term, form, status=200, **extra):
    return render_template(f"staff/member/{template}", member=member, term=term, form=form,
                           term_status=status_on(term, clock.local_today()), term_text=term_span(term),
                           **extra), status


@bp.route("/members/<int:member_id>/terms/<int:term_id>/pay", methods=["GET", "POST"])
def pay_term(member_id: int, term_id: int):
    """Record the payment of a term that waits for it."""
    member = get_or_404(Member, member_id)
    term = _term_of(member, term_id)
    now, today = _clock()
    form = PaymentForm()
    due = _due_by_term([term]).get(term.id, 0)
    if request.method == "GET":
        if not term.awaiting_payment:
            flash(_("The term %(term)s is already paid.", term=term_span(term)), "info")
            return redirect(_member_url(member))
        form.amount.data = format_minor(due)
        form.received_on.data = today
        return _render_action("pay.html", member, term, form, due=due)

    done = _payment_with_key(form.token.data)
    if done is not None:
        flash(_("This payment was already recorded (receipt %(receipt_number)s). Nothing more was recorded.", receipt_number=done.receipt_number),
              "warning")
        return redirect(_member_url(member))
    valid = form.validate()
    payment = form.payment_input(today=today, now=now)  # also when another field failed: all errors at once
    if not valid or payment is None:
        return _render_action("pay.html", member, term, form, 422, due=due)
    if not term.awaiting_payment:
        form.form_errors.append(_("The term %(term)s is already paid.", term=term_span(term)))
        return _render_action("pay.html", member, term, form, 409, due=due)
    try:
        row = plans.pay_term(db.session, term, payment, today=today, now=now, actor=_actor())
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        if isinstance(e, Conflict) and _payment_with_key(form.token.data) is not None:
            flash(_("%(message)s Nothing more was recorded.", message=e.message), "warning")
            return redirect(_member_url(member))
        put_error(form, e)
        return _render_action("pay.html", member, term, form, e.status_code, due=due)
    text = _("Payment recorded: %(amount)s, receipt %(number)s", amount=money(row.amount_minor, row.currency),
             number=row.receipt_number)
    if term.awaiting_payment:
        text += _("; %(amount)s still to pay", amount=money(_due_by_term([term]).get(term.id, 0), term.currency))
    else:
        text += _(". The term %(term)s is paid; status: %(status)s", term=term_span(term),
                  status=STATUS_LABELS.get(term.status, term.status))
    flash(text + ".", "success")
    return redirect(_member_url(member))


@bp.post("/members/<int:member_id>/terms/<int:term_id>/approve")
def approve_term(member_id: int, term_id: int):
    member = get_or_404(Member, member_id)
    term = _term_of(member, term_id)
    now, today = _clock()
    try:
        # the same path as the applications queue: the applicant is told (what to pay, or welcome)
        signup.approve_application(db.session, term, actor=_actor(), now=now, today=today)
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        return render_member_page(member, status=e.status_code, error=e.message)
    flash(_("Approved: %(name)s, %(term)s; status: %(status)s.", name=term.plan.name, term=term_span(term), status=STATUS_LABELS.get(term.status, term.status)),
          "success")
    return redirect(_member_url(member))


@bp.route("/members/<int:member_id>/terms/<int:term_id>/cancel", methods=["GET", "POST"])
def cancel_term(member_id: int, term_id: int):
    member = get_or_404(Member, member_id)
    term = _term_of(member, term_id)
    now, today = _clock()
    form = CancelForm()
    if request.method == "GET":
        if term.cancelled_on is not None:
            flash(_("This term was already cancelled on %(cancelled_on)s.", cancelled_on=format_day(term.cancelled_on)), "info")
            return redirect(_member_url(member))
        day = max(today, term.starts_on) if term.starts_on > today else today
        form.cancelled_on.data = min(day, term.ends_on) if term.ends_on else day
        return _render_action("cancel.html", member, term, form)
    if not form.validate():
        return _render_action("cancel.html", member, term, form, 422)
    try:
        plans.cancel(db.session, term, on=form.cancelled_on.data, reason=form.reason.data, today=today, now=now,
                     actor=_actor())
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        put_error(form, e, {"on": "cancelled_on"})
        return _render_action("cancel.html", member, term, form, e.status_code)
    flash(_("Cancelled: the term %(term)s from %(cancelled_on)s. Status now: %(status)s.", term=term_span(term), cancelled_on=format_day(term.cancelled_on), status=STATUS_LABELS.get(member.status, member.status)), "success")
    return redirect(_member_url(member))


@bp.route("/members/<int:member_id>/terms/<int:term_id>/override", methods=["GET", "POST"])
def override_term(member_id: int, term_id: int):
    member = get_or_404(Member, member_id)
    term = _term_of(member, term_id)
    now, today = _clock()
    form = OverrideForm()
    if request.method == "GET":
        if term.override_status:
            form.status.data = term.override_status
            form.until.data = term.override_until
            form.duration.data = "until" if term.override_until else "forever"
            form.reason.data = term.override_reason
        return _render_action("override.html", member, term, form)
    if not form.validate():
        return _render_action("override.html", member, term, form, 422)
    try:
        plans.set_override(db.session, term, status=form.status.data, until=form.until_date,
                           reason=form.reason.data, today=today, now=now, actor=_actor())
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        put_error(form, e)
        return _render_action("override.html", member, term, form, e.status_code)
    until = _("until %(day)s", day=format_day(term.override_until)) if term.override_until \
        else _("until further notice")
    flash(_("Status set to %(status)s %(until)s.", status=OVERRIDE_LABELS[term.override_status], until=until), "success")
    return redirect(_member_url(member))


@bp.post("/members/<int:member_id>/terms/<int:term_id>/override/clear")
def clear_override(member_id: int, term_id: int):
    member = get_or_404(Member, member_id)
    term = _term_of(member, term_id)
    now, today = _clock()
    if not term.override_status:
        return render_member_page(member, status=409, error=_('This term has no status override to remove.'))
    try:
        plans.clear_override(db.session, term, today=today, now=now, actor=_actor())
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        return render_member_page(member, status=e.status_code, error=e.message)
    flash(_("Override removed: status now %(status)s.", status=STATUS_LABELS.get(member.status, member.status)), "success")
    return redirect(_member_url(member))
