"""My membership (status in plain words, what to do next, history, payments and receipts), renewal
and my details. Every page reads the signed-in member's own rows only: ids in URLs and forms are
checked against the member, and a row of someone else is "not found"."""
from __future__ import annotations

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from dataclasses import dataclass, field
from datetime import date

from flask import abort, current_app, flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from membership.core import formats
from membership.core import time as clock
from membership.core.errors import AlreadyRenewed, DomainError, ValidationError
from membership.extensions import db
from membership.members import services as members
from membership.members.models import Member
from membership.notifications.unsubscribe import unsubscribe
from membership.plans import services as plans
from membership.plans.catalog import offered_plans
from membership.plans.models import Membership, Payment, Plan
from membership.plans.status import grace_ends_on, history_with_gaps, holder_status, status_on
from membership.portal import bp
from membership.portal.forms import CONTACT_FIELDS, PROFILE_FIELDS, ProfileForm, RenewForm
from membership.signup import services as signup
from membership.web import format_day, money

PAYMENTS_ON_HOME = 5
PAYMENTS_PER_PAGE = 20
METHOD_WORDS = {"cash": _l("Cash"), "cheque": _l("Cheque"), "bank_transfer": _l("Bank transfer"), "card": _l("Card"),
                "online": _l("Online"), "other": _l("Other")}

# The portal's menu. Areas built elsewhere appear once their page exists (the first endpoint of each
# entry that the app knows).
NAV = (
    (("portal.home",), _l("My membership")),
    (("portal.profile",), _l("My details")),
    (("portal.directory",), _l("Directory")),
    (("portal.help", "portal.help_requests", "portal.help_list"), _l("Help")),
    (("portal.my_data", "portal.data"), _l("My data")),
    (("portal_surveys.portal_list",), _l("Surveys")),
)


@bp.app_context_processor
def _portal_nav():
    def portal_nav():
        links = []
        for endpoints, label in NAV:
            endpoint = next((e for e in endpoints if e in current_app.view_functions), None)
            if endpoint:
                links.append((endpoint, url_for(endpoint), label))
        return links
    return {"portal_nav": portal_nav}


def _clock():
    now = clock.utcnow()
    return now, clock.local_today(now)


def _me() -> Member | None:
    """The signed-in member's record (None for a login without one, or an erased member)."""
    member = current_user.member
    if member is None or member.erased_at is not None:
        return None
    return member


def _member_or_home():
    member = _me()
    if member is None:
        flash(_("Your login is not linked to a membership record. Please contact us."), "warning")
    return member


def _dates(starts: date, ends: date | None) -> str:
    if ends:
        return _("%(start)s to %(end)s", start=format_day(starts), end=format_day(ends))
    return _("from %(start)s, for life", start=format_day(starts))


def days_words(n: int) -> str:
    if n == 0:
        return _("today is the last day")
    return formats.digits(ngettext("%(num)s day left", "%(num)s days left", n))


# ---------------------------------------------------------------- what to tell the member


@dataclass
class Step:
    """One thing the member can do (or wait for) next."""
    kind: str  # renew, pay, wait, contact, done
    text: str
    url: str | None = None
    button: str | None = None
    urgent: bool = False


@dataclass
class Summary:
    status: str
    headline: str
    plan: Plan | None = None
    starts_on: date | None = None
    ends_on: date | None = None  # valid until (the end of the last paid term)
    term_ends_on: date | None = None  # the end of the term that decides the status
    days_left: int | None = None
    via: str | None = None
    steps: list[Step] = field(default_factory=list)
    pay_term: Membership | None = None
    amount_due: int = 0


@dataclass
class Renewal:
    """Whether the member can renew now: the term to renew and the plans on offer (plan, start, end,
    window problem), or the reason why not."""
    term: Membership | None
    options: dict[int, tuple[Plan, date, date | None, str | None]]
    problem: str | None = None

    @property
    def open_options(self):
        return {pid: o for pid, o in self.options.items() if o[3] is None}


def renewal_plans(term: Membership) -> list[Plan]:
    """Plans a member may renew on online: active, for individuals, open for joining online; a plan
    that needs staff approval only when it is already the member's plan (no way round approval)."""
    return [p for p in offered_plans(db.session, organizational=False)
            if p.joinable_online and (not p.needs_approval or p.id == term.plan_id)]


def renewal_for(member: Member, today: date) -> Renewal:
    own = plans.terms_of(db.session, member)
    if not own:
        if member.organization_id:
            return Renewal(None, {}, _("Your membership comes through your organisation: its main contact renews it."))
        return Renewal(None, {}, _("You have no membership to renew yet."))
    term = own[-1]
    if signup.is_declined(term):
        return Renewal(None, {}, _("Your application was declined, so there is no membership to renew. "
                                   "Contact us if you have questions."))
    status = status_on(term, today)
    if status == "cancelled":
        # Ended by staff (or at the member's request): starting again is a conversation, not a button.
        return Renewal(None, {}, _("Your membership was cancelled. Contact us if you would like to join again."))
    if status == "upcoming":
        return Renewal(None, {}, _("You have already renewed: your next term runs %(dates)s.",
                                   dates=_dates(term.starts_on, term.ends_on)))
    try:
        plans.renewal_start(term, term.plan, today)
    except DomainError as e:
        if status == "pending":
            if term.awaiting_approval:
                return Renewal(None, {}, _("Your latest membership term is waiting for approval; you can renew "
                                           "once it is settled."))
            return Renewal(None, {}, _("Your latest membership term is waiting for payment; you can renew once "
                                       "it is settled."))
        return Renewal(None, {}, e.message)
    options = {}
    for plan in renewal_plans(term):
        try:
            starts, ends = plans.term_dates(plan, plans.renewal_start(term, plan, today))
        except DomainError:
            continue
        options[plan.id] = (plan, starts, ends, plans.renewal_window_problem(term, plan, today))
    if not options:
        return Renewal(None, {}, _("None of our plans can be renewed online at the moment. Please contact us."))
    renewal = Renewal(term, options)
    if not renewal.open_options:
        renewal.problem = (options.get(term.plan_id) or next(iter(options.values())))[3]
    return renewal


def summarise(member: Member, today: date) -> Summary:
    """The member's status in plain words and what to do next."""
    terms = plans.effective_terms(db.session, member)
    own = [t for t in terms if t.member_id == member.id]
    hs = holder_status(terms, today)
    term = hs.term
    s = Summary(status=hs.status, headline="")
    if term is not None:
        s.plan = term.plan
        s.starts_on = term.starts_on
        s.ends_on = hs.expires_on if hs.status in ("active", "grace") else term.ends_on
        s.term_ends_on = term.ends_on
        if term.organization_id:
            s.via = term.organization.name
    if s.ends_on is not None and hs.status == "active":
        s.days_left = (s.ends_on - today).days

    status = hs.status
    if status == "none":
        s.headline = _("You have no membership yet.")
    elif status == "active":
        s.headline = _("Your membership is active.") if s.ends_on else _("You are a life member.")
    elif status == "grace":
        s.headline = _("Your membership ended on %(end)s. Renew by %(grace_end)s to keep it without a break.",
                       end=format_day(term.ends_on), grace_end=format_day(grace_ends_on(term)))
    elif status == "lapsed":
        s.headline = _("Your membership ended on %(end)s.", end=format_day(term.ends_on))
    elif status == "cancelled":
        s.headline = (_("Your application was declined.") if signup.is_declined(term)
                      else _("Your membership was cancelled from %(day)s.", day=format_day(term.cancelled_on)))
    elif status == "pending":
        if term.awaiting_approval:
            s.headline = _("Your application is waiting for approval.")
        elif term.awaiting_payment:
            s.headline = _("Your membership is waiting for your payment.")
        else:
            s.headline = _("Your membership starts on %(day)s.", day=format_day(term.starts_on))

    # A term waiting for payment: the application itself, or a renewal made from the portal.
    waiting = [t for t in own if t.cancelled_on is None and (t.awaiting_payment or t.awaiting_approval)]
    for t in waiting:
        if t.awaiting_approval:
            s.steps.append(Step("wait", _("Our staff will look at your application for %(plan)s and email you "
                                          "when they have decided.", plan=t.plan.name)))
        elif t.awaiting_payment:
            due = signup.amount_due(db.session, t)
            s.pay_term, s.amount_due = t, due
            if t.renews_id is not None and t.starts_on > today:
                when = _("Please pay before %(day)s so that your membership continues without a break.",
                         day=format_day(t.starts_on))
            else:
                when = _("It starts as soon as we record your payment.")
            values = {"amount": money(due, t.currency), "plan": t.plan.name, "dates": _dates(t.starts_on, t.ends_on)}
            if t.renews_id is not None:
                text = _("Pay %(amount)s for your renewal (%(plan)s, %(dates)s).", **values)
            else:
                text = _("Pay %(amount)s for your membership (%(plan)s, %(dates)s).", **values)
            s.steps.append(Step("pay", f"{text} {when}", urgent=True))
    if s.via:
        s.steps.append(Step("contact", _("Your membership comes through %(organisation)s; its main contact renews "
                                         "it.", organisation=s.via)))
        return s
    upcoming = [t for t in own if status_on(t, today) == "upcoming"]
    for t in upcoming:
        s.steps.append(Step("done", _("You have renewed: your next term runs %(dates)s.",
                                      dates=_dates(t.starts_on, t.ends_on))))
    if not waiting and not upcoming and status in ("active", "grace", "lapsed", "cancelled"):
        renewal = renewal_for(member, today)
        urgent = status in ("grace", "lapsed") or (s.days_left is not None and s.days_left <= 30)
        if renewal.term is not None and renewal.open_options:
            text = {"grace": _("Renew now to keep your membership without a break."),
                    "lapsed": _("Renew to become a member again.")}.get(status) or _("You can renew now.")
            s.steps.append(Step("renew", text, url_for("portal.renew"), _("Renew my membership"), urgent))
        elif renewal.problem and not (status == "active" and s.ends_on is None):
            s.steps.append(Step("wait", renewal.problem))
    if status == "none" and not waiting:
        s.steps.append(Step("contact", _("Contact us to start a membership.")))
    return s


def history_rows(member: Member, today: date) -> list[dict]:
    """Every term (newest first) with its status in words, what it cost and its receipts, and the
    gaps between terms."""
    own = plans.terms_of(db.session, member)
    payments: dict[int, list[Payment]] = {}
    if own:
        for p in db.session.scalars(select(Payment).where(Payment.membership_id.in_([t.id for t in own]),
                                                          Payment.member_id == member.id)
                                    .order_by(Payment.received_at, Payment.id)):
            payments.setdefault(p.membership_id, []).append(p)
    rows = []
    for h in history_with_gaps(own):
        if h.is_gap:
            rows.append({"gap": True, "starts_on": h.starts_on, "ends_on": h.ends_on})
            continue
        t = h.term
        status = h.status(today)
        label = _("Declined") if signup.is_declined(t) else {
            "pending": _("Waiting for approval") if t.awaiting_approval else _("Waiting for payment"),
            "upcoming": _("Starts later"), "active": _("Active"), "grace": _("Ended, renewal still possible"),
            "lapsed": _("Ended"), "cancelled": _("Cancelled"), "renewed": _("Renewed")}.get(status, status)
        rows.append({"gap": False, "term": t, "status": status, "label": label, "payments": payments.get(t.id, [])})
    rows.reverse()
    return rows


# ---------------------------------------------------------------- pages


@bp.get("/")
def home():
    member = _me()
    now, today = _clock()
    if member is None:
        return render_template("portal/home.html", member=None)
    summary = summarise(member, today)
    recent = db.session.scalars(select(Payment).where(Payment.member_id == member.id)
                                .options(joinedload(Payment.membership))
                                .order_by(Payment.received_at.desc(), Payment.id.desc())
                                .limit(PAYMENTS_ON_HOME + 1)).all()
    return render_template("portal/home.html", member=member, s=summary, today=today,
                           history=history_rows(member, today), payments=recent[:PAYMENTS_ON_HOME],
                           more_payments=len(recent) > PAYMENTS_ON_HOME, methods=METHOD_WORDS,
                           instructions=signup.payment_instructions(), dates=_dates, days_words=days_words)


@bp.get("/payments")
def payments():
    member = _member_or_home()
    if member is None:
        return redirect(url_for("portal.home"))
    page_no = request.args.get("page", "1")
    page_no = int(page_no) if page_no.isdigit() and 0 < len(page_no) < 7 else 1
    page = db.paginate(select(Payment).where(Payment.member_id == member.id)
                       .options(joinedload(Payment.membership))
                       .order_by(Payment.received_at.desc(), Payment.id.desc()),
                       page=page_no, per_page=PAYMENTS_PER_PAGE, error_out=False)
    return render_template("portal/payments.html", member=member, page=page, methods=METHOD_WORDS, dates=_dates)


@bp.get("/payments/<int:payment_id>/receipt")
def receipt(payment_id: int):
    """The member's own receipt, to print or save; ?download=1 gives it as a file."""
    member = _me()
    payment = db.session.get(Payment, payment_id)
    if member is None or payment is None or payment.member_id != member.id:
        abort(404)
    address = [line.strip() for line in (current_app.config.get("ASSOCIATION_ADDRESS") or "").splitlines()
               if line.strip()]
    context = {"payment": payment, "term": payment.membership, "address": address,
               "method": METHOD_WORDS.get(payment.method, payment.method)}
    if request.args.get("download"):
        response = make_response(render_template("portal/receipt_file.html", **context))
        response.headers["Content-Disposition"] = f'attachment; filename="receipt-{payment.receipt_number}.html"'
        return response
    return render_template("portal/receipt.html", **context)


# ---------------------------------------------------------------- renewal


def _render_renew(member, renewal: Renewal, form: RenewForm, status=200, error=None):
    term_status = status_on(renewal.term, clock.local_today()) if renewal.term is not None else None
    return render_template("portal/renew.html", member=member, renewal=renewal, form=form, error=error,
                           term_status=term_status,
                           dates=_dates, dates_key=_dates_key, instructions=signup.payment_instructions()), status


def _dates_key(starts: date, ends: date | None) -> str:
    return f"{starts.isoformat()}/{ends.isoformat() if ends else ''}"


@bp.route("/renew", methods=["GET", "POST"])
def renew():
    """Choose a plan and confirm: plans.services.renew(enforce_window=True), the same rules as staff.
    The new term waits for payment unless the plan is free."""
    member = _member_or_home()
    if member is None:
        return redirect(url_for("portal.home"))
    now, today = _clock()
    form = RenewForm()

    if request.method == "GET":
        renewal = renewal_for(member, today)
        if renewal.term is not None:
            form.term_id.data = str(renewal.term.id)
            opened = renewal.open_options
            form.plan.data = renewal.term.plan_id if renewal.term.plan_id in opened else next(iter(opened), None)
        return _render_renew(member, renewal, form)

    term_id = form.term_id.data or ""
    term = db.session.get(Membership, int(term_id)) if term_id.isdigit() and len(term_id) < 10 else None
    if term is None or term.member_id != member.id:
        abort(404)
    successor = db.session.scalar(select(Membership).where(Membership.renews_id == term.id))
    if successor is not None:
        # A second click of the same form, or a renewal made meanwhile: renew once, say what exists.
        flash(_("Your membership is already renewed: the new term runs %(dates)s.",
                dates=_dates(successor.starts_on, successor.ends_on)), "info")
        return redirect(url_for("portal.home"))
    renewal = renewal_for(member, today)
    if renewal.term is None or renewal.term.id != term.id:
        return _render_renew(member, renewal, form, 409, error=renewal.problem or
                             _("This form was out of date; check the choices below and confirm again."))
    if not form.validate():
        return _render_renew(member, renewal, form, 422)
    option = renewal.options.get(form.plan.data)
    if option is None:
        form.plan.errors = [*form.plan.errors, _("Choose one of the plans shown.")]
        return _render_renew(member, renewal, form, 422)
    plan, starts, ends, _problem = option
    shown = request.form.get(f"shown_{plan.id}")
    if shown and shown != _dates_key(starts, ends):
        return _render_renew(member, renewal, form, 409,
                             error=_("The new term on %(plan)s now runs %(dates)s. Check and confirm again.",
                                     plan=plan.name, dates=_dates(starts, ends)))
    try:
        new = plans.renew(db.session, term, today=today, now=now, actor=current_user._get_current_object(),
                          plan=plan, source="renewal", enforce_window=True)
        db.session.commit()
    except AlreadyRenewed:
        db.session.rollback()
        flash(_("Your membership is already renewed."), "info")
        return redirect(url_for("portal.home"))
    except DomainError as e:
        db.session.rollback()
        return _render_renew(member, renewal_for(member, today), form, e.status_code, error=e.message)
    dates = _dates(new.starts_on, new.ends_on)
    pay_with = request.form.get("pay_with")
    if pay_with and new.awaiting_payment:
        # "Renew and pay online": the term is reserved (committed), then the provider's page.
        from membership.payments.views import go_pay
        flash(_("Your membership is renewed: the new term runs %(dates)s.", dates=dates), "success")
        return go_pay(provider=pay_with, purpose="renewal", member=member, term=new,
                      save_card=request.form.get("save_card") == "y", back=url_for("portal.home"))
    if new.awaiting_payment:
        text = _("Thank you. Your membership is renewed: the new term runs %(dates)s. Please pay %(amount)s; "
                 "how to pay is shown below.", dates=dates,
                 amount=money(signup.amount_due(db.session, new), new.currency))
    else:
        text = _("Thank you. Your membership is renewed: the new term runs %(dates)s.", dates=dates)
    flash(text, "success")
    return redirect(url_for("portal.home"))


# ---------------------------------------------------------------- my details


def _profile_data(member: Member) -> dict:
    data = {name: getattr(member, name) for name in PROFILE_FIELDS}
    data["phone"] = members.format_phone(member.phone)  # "+880 1712-345678": easier to read than E.164
    return data


@bp.route("/profile", methods=["GET", "POST"])
def profile():
    """Contact details, address and preferences. Only the form's own fields are read; every change is
    audited and recorded as the member's activity (members.services.update_member(by_member=True))."""
    member = _member_or_home()
    if member is None:
        return redirect(url_for("portal.home"))
    if request.method == "GET":
        form = ProfileForm(formdata=None, data=_profile_data(member))
        return render_template("portal/profile.html", form=form, member=member)
    form = ProfileForm()
    now, today = _clock()
    shape_ok = form.validate()
    data = form.member_data(PROFILE_FIELDS)
    region = current_app.config["PHONE_REGION"]
    for name in CONTACT_FIELDS + ("language",):
        if form[name].errors:
            continue
        try:
            members.validate_member({name: data[name]}, region=region, today=today, partial=True)
        except ValidationError as e:
            form[e.field if e.field in form._fields else name].errors = [e.message]
    if not shape_ok or any(form[name].errors for name in PROFILE_FIELDS):
        return render_template("portal/profile.html", form=form, member=member), 422
    user = current_user._get_current_object()
    try:
        changed = []
        if member.marketing_opt_in and not data["marketing_opt_in"]:
            # Turning news off also cancels news already queued (the unsubscribe link does the same).
            unsubscribe(db.session, member, now=now, via="profile")
            changed.append("marketing_opt_in")
        values = members.validate_member(data, region=region, today=today, partial=True)
        changed += list(members.update_member(db.session, member, values, actor=user, now=now, by_member=True))
        if "first_name" in changed or "last_name" in changed:
            user.name = member.full_name
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        target = e.field if e.field in form._fields else None
        if target:
            form[target].errors = [e.message]
        return render_template("portal/profile.html", form=form, member=member, error=None if target else e.message), \
            e.status_code
    if changed:
        labels = {"first_name": _("first name"), "last_name": _("last name"), "phone": _("phone"),
                  "address_line1": _("address"), "address_line2": _("address"), "city": _("town or city"),
                  "postcode": _("postcode"), "country": _("country"), "language": _("language of emails"),
                  "marketing_opt_in": _("news and announcements"), "directory_opt_in": _("directory listing")}
        words = sorted({labels.get(name, name) for name in changed})
        flash(_("Saved: %(fields)s.", fields=", ".join(words)), "success")
    else:
        flash(_("Nothing changed."), "info")
    return redirect(url_for("portal.profile"))

