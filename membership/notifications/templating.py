"""Email templates: the shipped defaults, staff edits, the placeholders and sandboxed rendering.

Every template has a subject, a plain-text body and an optional HTML body. The shipped defaults
are files in `defaults/` (`<key>.subject.txt`, `<key>.txt`, `<key>.html`); a staff edit is an
EmailTemplate row that replaces them until it is reset (the row is deleted).

Staff write templates, so they render in Jinja's immutable sandbox with strict undefined
values: `{{ ''.__class__ }}` or an unknown placeholder is a clear error at save time, never a
500 and never code execution. The context holds plain values only (strings, numbers, small
dicts), never ORM objects, so nothing a template calls can reach the database.

The reason a service email is sent and the unsubscribe link of a marketing email are added by
`render_email` below the body, outside the staff-editable part, so an edit cannot drop them.
"""
from __future__ import annotations

from flask_babel import gettext as _

import functools
import operator
import traceback
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from flask import current_app
from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from markupsafe import Markup, escape
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from membership.core import formats
from membership.core.errors import ValidationError
from membership.core.i18n import N_
from membership.core.services import record_audit
from membership.core.time import local_date, to_local, tz
from membership.notifications.models import EmailTemplate

DEFAULTS_DIR = Path(__file__).resolve().parent / "defaults"
CATEGORIES = ("service", "marketing", "staff")

SUBJECT_MAX = 300
BODY_MAX = 100_000
OUTPUT_MAX = 500_000  # a rendered body larger than this is refused (a loop gone wild)

# Placeholders every template may use (shown to staff on the edit page).
COMMON_PLACEHOLDERS = (
    ("association_name", "The association's name"),
    ("recipient_name", "The recipient's full name"),
    ("member.first_name", "First name"),
    ("member.last_name", "Last name"),
    ("member.full_name", "First and last name"),
    ("member.member_number", "Member number"),
    ("member.email", "Email address"),
    ("plan_name", "Name of the member's plan"),
    ("expiry_date", "End date of the membership term, e.g. 15 July 2026"),
    ("days_left", "Days from today to the end date (negative once it has passed)"),
    ("days_overdue", "Days since the end date (0 before it)"),
    ("grace_end_date", "Last day of the grace period after the end date"),
    ("renewal_link", "Link to the renewal page of the member portal"),
    ("portal_link", "Link to the member portal"),
    ("unsubscribe_link", "One-click unsubscribe link (marketing emails only; empty otherwise)"),
    ("today", "Today's date"),
)


@dataclass(frozen=True)
class TemplateInfo:
    key: str
    name: str
    description: str  # when Samiti sends it
    category: str  # service / marketing / staff
    reason: str  # completes "You received this email because ..."; a sandboxed template itself
    placeholders: tuple[tuple[str, str], ...] = ()  # extra to COMMON_PLACEHOLDERS
    sample: dict[str, Any] = field(default_factory=dict)  # values of the extras for previews
    # The sent text holds a secret (a password-reset link): staff pages show only its headers.
    sensitive: bool = False


_REMINDER_REASON = N_("you are a member of {{ association_name }} and your membership ends on {{ expiry_date }}. "
                      "We remind every member before their membership ends.")

_EVENT_REASON = N_("you registered for {{ event_title }}, organised by {{ association_name }}.")
_EVENT_PLACEHOLDERS = (
    ("event_title", "The event's title"),
    ("event_start", "When it starts, in the association's time zone, e.g. Tuesday 9 March 2027, 18:30"),
    ("event_end", "When it ends, e.g. Tuesday 9 March 2027, 20:30"),
    ("event_venue", "The venue, or the online link (may be empty)"),
    ("event_online_url", "The online link (may be empty)"),
    ("event_link", "Link to the event's page"),
    ("registration_status", "confirmed, waitlisted, pending..."),
    ("price", "The price of this registration with currency (empty when free)"),
    ("amount_due", "What is still to pay, with currency (empty when nothing is due)"),
    ("cancellation_deadline", "Until when people can cancel themselves"),
    ("cancel_link", "Where this person cancels (the event page; for a guest a signed link)"),
)
_EVENT_SAMPLE = {
    "event_title": "Annual general meeting", "event_start": "Tuesday 9 March 2027, 18:30",
    "event_end": "Tuesday 9 March 2027, 20:30", "event_venue": "Community Hall, 12 Lake Road",
    "event_online_url": "", "event_link": "https://example.org/events/42", "registration_status": "confirmed",
    "price": "BDT 250.00", "amount_due": "BDT 250.00", "cancellation_deadline": "Monday 8 March 2027, 18:30",
    "cancel_link": "https://example.org/events/42",
}

_AUTORENEW_PLACEHOLDERS = (
    ("card_label", "The saved card, as the provider names it, e.g. Visa ending 4242"),
    ("amount", "The amount charged (or to be charged), with currency"),
)
_AUTORENEW_SAMPLE = {"card_label": "Visa ending 4242", "amount": "BDT 1,500.00"}

TEMPLATES: dict[str, TemplateInfo] = {t.key: t for t in (
    TemplateInfo("welcome", "Welcome", "When a member joins.", "service",
                 N_("you have just joined {{ association_name }}.")),
    TemplateInfo(
        "payment_receipt", "Payment receipt", "When a payment is recorded.", "service",
        N_("you made a payment to {{ association_name }} (receipt {{ receipt_number }})."),
        (("receipt_number", "Receipt number, e.g. R-2026-00042"), ("amount", "Amount with currency"),
         ("payment_date", "Date the payment was received"), ("payment_method", "Cash, card, ..."),
         ("payment_reference", "Reference given with the payment (may be empty)"),
         ("term_start", "First day of the term paid for (may be empty)"),
         ("term_end", "Last day of the term paid for (may be empty)")),
        {"receipt_number": "R-2026-00042", "amount": "BDT 5,000.00", "payment_date": "15 June 2026",
         "payment_method": "Bank transfer", "payment_reference": "TRX-1234", "term_start": "1 July 2026",
         "term_end": "30 June 2027"}),
    TemplateInfo("renewal_reminder_30", "Renewal reminder, 30 days before",
                 "30 days before a term ends (default reminder rule).", "service", _REMINDER_REASON),
    TemplateInfo("renewal_reminder_7", "Renewal reminder, 7 days before",
                 "7 days before a term ends (default reminder rule).", "service", _REMINDER_REASON),
    TemplateInfo("renewal_due_today", "Renewal due today",
                 "On the day a term ends (default reminder rule).", "service", _REMINDER_REASON),
    TemplateInfo("renewal_reminder", "Renewal reminder (any day)",
                 "For reminder rules you add: adapts its wording to the days left or passed.", "service",
                 N_("you are a member of {{ association_name }} and your membership "
                    "{% if days_left < 0 %}ended{% else %}ends{% endif %} on {{ expiry_date }}.")),
    TemplateInfo("grace_notice", "Grace period notice",
                 "14 days after a term ends, while the member is in the grace period (default reminder rule).",
                 "service",
                 N_("your {{ association_name }} membership ended on {{ expiry_date }} and can be renewed "
                    "without a break until {{ grace_end_date }}.")),
    TemplateInfo("lapsed_notice", "Lapsed notice", "When a membership lapses after its grace period.",
                 "service", N_("your {{ association_name }} membership has lapsed.")),
    TemplateInfo(
        "password_reset", "Password reset", "When someone asks to reset a password.", "service",
        N_("someone asked to reset the password of your {{ association_name }} account."),
        (("reset_link", "The link that sets a new password"),
         ("link_expires_in", "How long the link works, e.g. 1 hour")),
        {"reset_link": "https://example.org/reset/abc123", "link_expires_in": "1 hour"}, sensitive=True),
    TemplateInfo(
        "staff_digest", "Staff digest", "A summary for staff (sent by the scheduler).", "staff",
        N_("you are on the staff of {{ association_name }}."),
        (("digest_date", "The day the summary is about"), ("lines", "The summary, one line per item"),
         ("staff_link", "Link to the staff portal")),
        {"digest_date": "15 June 2026", "staff_link": "https://example.org/staff/",
         "lines": ["3 new members", "12 renewals due in the next 30 days", "1 email failed"]}),
    # ---- member portal: joining online, email changes, the staff approval queue (membership.signup)
    TemplateInfo(
        "confirm_email", "Confirm email (joining)", "When someone applies to join online.", "service",
        N_("someone, we hope you, asked to join {{ association_name }} with this email address."),
        (("confirm_link", "The link that confirms the address"),
         ("link_expires_in", "How long the link works, e.g. 3 days")),
        {"confirm_link": "https://example.org/join/confirm/abc123", "link_expires_in": "3 days"}, sensitive=True),
    TemplateInfo(
        "account_exists", "Account already exists",
        "When someone tries to join with an address that already belongs to a member.", "service",
        N_("someone tried to join {{ association_name }} with this email address."),
        (("login_link", "Link to the sign-in page"), ("forgot_link", "Link to 'forgot password'")),
        {"login_link": "https://example.org/login", "forgot_link": "https://example.org/password/forgot"}),
    TemplateInfo(
        "email_change_confirm", "Confirm a new email address",
        "When a member asks to change their email address (sent to the new address).", "service",
        N_("someone asked to use this address for a {{ association_name }} account."),
        (("confirm_link", "The link that makes the change"), ("link_expires_in", "How long the link works"),
         ("new_email", "The new address"), ("old_email", "The current address")),
        {"confirm_link": "https://example.org/account/email/confirm/abc123", "link_expires_in": "24 hours",
         "new_email": "ada.new@example.org", "old_email": "ada@example.org"}, sensitive=True),
    TemplateInfo(
        "email_changed", "Email address changed", "When a member's email address has changed (sent to the old "
        "address).", "service", N_("this was the email address of your {{ association_name }} account."),
        (("new_email", "The new address"), ("old_email", "The old address")),
        {"new_email": "ada.new@example.org", "old_email": "ada@example.org"}),
    TemplateInfo(
        "application_received", "Application received",
        "When an applicant confirms their email and the membership waits for payment or approval.", "service",
        N_("you applied to join {{ association_name }}."),
        (("needs_approval", "True when staff must approve the application"),
         ("needs_payment", "True when a payment is due"), ("amount_due", "The amount to pay, with currency"),
         ("payment_instructions", "How to pay (the PAYMENT_INSTRUCTIONS setting)")),
        {"needs_approval": True, "needs_payment": True, "amount_due": "BDT 1,500.00",
         "payment_instructions": "Pay by bank transfer and quote your member number."}),
    TemplateInfo(
        "application_approved", "Application approved", "When staff approve an application.", "service",
        N_("you applied to join {{ association_name }}."),
        (("needs_payment", "True when a payment is due"), ("amount_due", "The amount to pay, with currency"),
         ("payment_instructions", "How to pay (the PAYMENT_INSTRUCTIONS setting)")),
        {"needs_payment": True, "amount_due": "BDT 1,500.00",
         "payment_instructions": "Pay by bank transfer and quote your member number."}),
    TemplateInfo(
        "application_declined", "Application declined", "When staff decline an application.", "service",
        N_("you applied to join {{ association_name }}."),
        (("decline_reason", "The reason staff gave"),),
        {"decline_reason": "This plan is for students; please choose the standard plan."}),
    # ---- member portal: help requests and account closure (membership.support, membership.privacy)
    TemplateInfo(
        "staff_invitation", "Staff invitation", "When an admin creates a staff account by invitation, or makes a "
        "new invitation link.", "staff",
        N_("an administrator of {{ association_name }} made a staff account for you."),
        (("invitation_link", "The link with which they choose their password"),
         ("link_expires_in", "How long the link works, e.g. 7 days"), ("role", "staff or admin"),
         ("invited_by", "The name of the admin who invited them")),
        {"invitation_link": "https://example.org/invitation/abc123", "link_expires_in": "7 days",
         "role": "staff", "invited_by": "Amina Rahman"}, sensitive=True),
    # ---- engagement (membership.engagement.jobs): optional, switched on in Admin > Engagement
    TemplateInfo(
        "we_miss_you", "We miss you",
        "Optional (Admin > Engagement): when a member crosses into high churn risk, once per risk episode. "
        "Marketing: only to members who accept such emails.", "marketing",
        N_("you are a member of {{ association_name }}."),
        (("events_link", "Link to the association's upcoming events"),),
        {"events_link": "https://example.org/events"}),
    # ---- campaigns (membership.campaigns): each campaign has its own subject and body; this is
    # the text a new campaign starts from, and the footer reason of service announcements
    TemplateInfo(
        "campaign", "Campaign (starting text)",
        "The text a new email campaign starts from (Staff > Campaigns); each campaign keeps its own "
        "subject and body, per language.", "marketing",
        N_("you are a member of {{ association_name }}.")),
    TemplateInfo(
        "help_reply", "Reply to a help request", "When staff reply to a member's help request.", "service",
        N_("you asked {{ association_name }} for help (request #{{ request_number }})."),
        (("request_number", "Number of the help request, e.g. 42"), ("request_subject", "Subject of the request"),
         ("reply_text", "The staff reply"), ("staff_name", "Name of the staff member who replied (may be empty)"),
         ("request_link", "Link to the request in the member portal")),
        {"request_number": "42", "request_subject": "Where is my receipt?", "staff_name": "Sam",
         "reply_text": "Hello Ada,\nYour receipt is in the portal under My membership.",
         "request_link": "https://example.org/my/help/42"}),
    TemplateInfo(
        "closure_confirmed", "Account closed", "When staff confirm a member's request to close their account.",
        "service", N_("you asked {{ association_name }} to close your account (request #{{ request_number }})."),
        (("request_number", "Number of the closure request"),), {"request_number": "7"}),
    TemplateInfo(
        "closure_declined", "Account closure declined",
        "When staff decline a member's request to close their account.", "service",
        N_("you asked {{ association_name }} to close your account (request #{{ request_number }})."),
        (("request_number", "Number of the closure request"), ("decision_note", "Why staff declined it"),
         ("data_link", "Link to the My data page of the member portal")),
        {"request_number": "7", "decision_note": "You have an unpaid event booking; please contact us first.",
         "data_link": "https://example.org/my/data"}),
    # ---- events (membership.events.emails)
    TemplateInfo("event_confirmation", "Event registration confirmed",
                 "When someone's registration for an event is confirmed (a calendar file is attached).", "service",
                 _EVENT_REASON, _EVENT_PLACEHOLDERS, _EVENT_SAMPLE),
    TemplateInfo("event_waitlisted", "Event waitlist",
                 "When someone registers for a full event and is put on its waitlist.", "service",
                 _EVENT_REASON, _EVENT_PLACEHOLDERS, _EVENT_SAMPLE),
    TemplateInfo("event_promoted", "Event seat from the waitlist",
                 "When a seat frees up and the first person on the waitlist gets it (a calendar file is "
                 "attached).", "service", _EVENT_REASON, _EVENT_PLACEHOLDERS, _EVENT_SAMPLE),
    TemplateInfo("event_registration_cancelled", "Event registration cancelled",
                 "When a registration is cancelled, by the person or by staff.", "service",
                 _EVENT_REASON, _EVENT_PLACEHOLDERS + (("cancelled_by_staff", "True when staff cancelled it"),),
                 {**_EVENT_SAMPLE, "cancelled_by_staff": False}),
    TemplateInfo("event_cancelled", "Event cancelled", "When staff cancel an event (sent to everyone registered).",
                 "service", _EVENT_REASON,
                 _EVENT_PLACEHOLDERS + (("cancel_reason", "The reason staff gave (may be empty)"),),
                 {**_EVENT_SAMPLE, "cancel_reason": "The speaker is ill; we will announce a new date soon."}),
    TemplateInfo("event_changed", "Event changed",
                 "When staff move a published event or change its place (sent to everyone registered or "
                 "waiting; those with a place get the updated calendar file).", "service", _EVENT_REASON,
                 _EVENT_PLACEHOLDERS + (("changes", "What changed, one line each: 'Start: was ..., now ...'"),),
                 {**_EVENT_SAMPLE, "changes": ["Start: was Tuesday 9 March 2027, 18:30; now Thursday 11 March 2027, "
                                               "18:30"]}),
    TemplateInfo("event_reminder", "Event reminder",
                 "Before an event starts, as many hours before as the event says (sent by the scheduler).",
                 "service", _EVENT_REASON, _EVENT_PLACEHOLDERS, _EVENT_SAMPLE),
    # ---- auto-renewal by card (membership.payments.autorenew)
    TemplateInfo(
        "autorenew_notice", "Automatic renewal notice",
        "AUTO_RENEW_NOTICE_DAYS before a saved card is charged to renew a membership (sent by the scheduler).",
        "service", N_("you asked {{ association_name }} to renew your membership automatically with your card."),
        _AUTORENEW_PLACEHOLDERS + (("charge_date", "The day the card will be charged"),
                                   ("stop_link", "Where the member stops automatic renewal")),
        {**_AUTORENEW_SAMPLE, "charge_date": "30 June 2027", "stop_link": "https://example.org/my/"}),
    TemplateInfo(
        "autorenew_declined", "Automatic renewal: card declined",
        "When the saved card is declined at an automatic renewal (the ordinary reminders carry on).", "service",
        N_("you asked {{ association_name }} to renew your membership automatically with your card."),
        _AUTORENEW_PLACEHOLDERS + (("will_retry", "True when the card will be tried again tomorrow"),
                                   ("failure_message", "What the card's bank said (may be empty)")),
        {**_AUTORENEW_SAMPLE, "will_retry": True, "failure_message": "Your card was declined."}),
    TemplateInfo(
        "autorenew_stopped", "Automatic renewal stopped",
        "When a member, or staff, stop the automatic renewal by card.", "service",
        N_("automatic renewal of your {{ association_name }} membership was stopped."),
        _AUTORENEW_PLACEHOLDERS, dict(_AUTORENEW_SAMPLE)),
    # ---- surveys (membership.surveys): invitations staff send, and those sent after events and help requests
    TemplateInfo(
        "survey_invitation", "Survey invitation",
        "When staff send a survey to members, after an event a survey is attached to, or when a help request "
        "is resolved.", "service",
        N_("you are a member of {{ association_name }}, and we ask members what they think."),
        (("survey_title", "The survey's title"), ("survey_link", "The personal link to answer (no sign-in)"),
         ("survey_closes", "The last day to answer (may be empty)"),
         ("survey_about", "What it is about: an event's title or a help request's subject (may be empty)")),
        {"survey_title": "Annual member survey", "survey_link": "https://example.org/surveys/r/abc123",
         "survey_closes": "30 June 2026", "survey_about": ""}),
    TemplateInfo("event_feedback_request", "Event feedback request",
                 "After an event, to the people who attended (sent by the scheduler).", "service",
                 N_("you attended {{ event_title }}, organised by {{ association_name }}."),
                 _EVENT_PLACEHOLDERS + (("feedback_link", "The link to the feedback form"),),
                 {**_EVENT_SAMPLE, "feedback_link": "https://example.org/events/feedback/abc123"}),
    TemplateInfo("event_guest_confirm", "Confirm an event registration (guests)",
                 "When someone who is not signed in registers for an event: the link confirms their address.",
                 "service", N_("someone, we hope you, registered for {{ event_title }} with this email address."),
                 _EVENT_PLACEHOLDERS + (("confirm_link", "The link that confirms the registration"),
                                        ("link_expires_in", "How long the link works, e.g. 3 days")),
                 {**_EVENT_SAMPLE, "confirm_link": "https://example.org/events/confirm/abc123",
                  "link_expires_in": "3 days"}, sensitive=True),
)}


@dataclass(frozen=True)
class Source:
    subject: str
    body_text: str
    body_html: str | None
    is_custom: bool = False


@dataclass(frozen=True)
class Rendered:
    subject: str
    body_text: str
    body_html: str | None


class TemplateProblem(ValidationError):
    """A template that does not compile or render; `field` says which part (subject, body_text, body_html)."""


# ---------------------------------------------------------------- the sandbox


MAX_NUMBER_ARG = 10_000  # the largest number a template may pass to a method or filter
MAX_RANGE = 1_000


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox (no unsafe attributes, no mutation), plus limits on the work a
    template can ask for, since staff write them and the scheduler renders them unattended:
    no huge repeats or powers, no printf-style `%`, no big numbers passed to methods or filters
    (`'x'.center(10**9)`), `range` up to 1,000, no `format` calls (a width in a format string
    is a number we cannot see), and (checked when compiling) no loop inside a loop and no macros.
    """

    intercepted_binops = frozenset(["*", "**", "%"])

    def call_binop(self, context, operator_name, left, right):
        if operator_name == "**":
            if isinstance(right, (int, float)) and abs(right) > 100:
                raise SecurityError("the exponent is too large")
            return operator.pow(left, right)
        if operator_name == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * n > 10_000:
                    raise SecurityError("the repeated value would be too large")
            return operator.mul(left, right)
        if operator_name == "%":
            if isinstance(left, str):
                raise SecurityError("printf-style formatting with % is not available; use {{ placeholders }}")
            return operator.mod(left, right)
        return super().call_binop(context, operator_name, left, right)

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 - Jinja's signature
        if getattr(__obj, "__name__", "") in ("format", "format_map"):
            raise SecurityError("format() is not available in email templates; use {{ placeholders }}")
        _check_numbers(args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)


def _check_numbers(args, kwargs) -> None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) > MAX_NUMBER_ARG:
            raise SecurityError(f"numbers above {MAX_NUMBER_ARG:,} cannot be passed to a method or filter")


def _guard_filter(func):
    @functools.wraps(func)  # keeps Jinja's pass_context/pass_environment marks
    def guarded(*args, **kwargs):
        _check_numbers(args[1:], kwargs)
        return func(*args, **kwargs)
    return guarded


def _safe_range(*args):
    _check_numbers(args, {})
    r = range(*args)
    if len(r) > MAX_RANGE:
        raise SecurityError(f"range() is limited to {MAX_RANGE:,} numbers in email templates")
    return r


def _gettext(message: str) -> str:
    from flask_babel import get_translations
    return get_translations().ugettext(message)


def _ngettext(singular: str, plural: str, n: int) -> str:
    from flask_babel import get_translations
    return get_translations().ungettext(singular, plural, n)


def _make_env(autoescape: bool) -> _Sandbox:
    """The shipped texts mark their sentences with _("...") / ngettext(...): they render in the
    language in force (core.i18n.in_language, the recipient's), from the same catalogue as the pages."""
    env = _Sandbox(undefined=StrictUndefined, autoescape=autoescape, trim_blocks=True, lstrip_blocks=True,
                   keep_trailing_newline=False, extensions=["jinja2.ext.i18n"])
    env.install_gettext_callables(_gettext, _ngettext, newstyle=True)
    for name in ("lipsum", "cycler", "joiner", "namespace", "dict"):
        env.globals.pop(name, None)
    env.globals["range"] = _safe_range
    env.filters.pop("format", None)
    env.filters = {name: _guard_filter(f) for name, f in env.filters.items()}
    return env


_TEXT_ENV = _make_env(False)
_HTML_ENV = _make_env(True)


def _check_structure(env: _Sandbox, source: str) -> None:
    """Refuse a loop inside a loop, macros and includes: with them a template's work has no bound."""
    from jinja2 import nodes

    def walk(node, loops: int) -> None:
        if isinstance(node, (nodes.Macro, nodes.CallBlock)):
            raise SecurityError(f"macros are not available in email templates (line {node.lineno})")
        if isinstance(node, (nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)):
            raise SecurityError(f"email templates cannot include other templates (line {node.lineno})")
        if isinstance(node, nodes.For):
            if loops:
                raise SecurityError(f"a loop inside a loop is not allowed in email templates (line {node.lineno})")
            loops += 1
        for child in node.iter_child_nodes():
            walk(child, loops)

    walk(env.parse(source), 0)


@functools.lru_cache(maxsize=512)
def _compile(kind: str, source: str):
    env = _HTML_ENV if kind == "html" else _TEXT_ENV
    _check_structure(env, source)
    return env.from_string(source)


def _template_line(exc: BaseException) -> int | None:
    lineno = getattr(exc, "lineno", None)
    if lineno:
        return lineno
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename == "<template>":
            return frame.lineno
    return None


def explain(exc: BaseException) -> str:
    """A message staff can act on, for an error raised while compiling or rendering a template."""
    line = _template_line(exc)
    where = f" (line {line})" if line else ""
    if isinstance(exc, TemplateSyntaxError):
        return f"Template syntax error{where}: {exc.message}"
    if isinstance(exc, SecurityError):
        return f"Not allowed in an email template{where}: {exc}"
    if isinstance(exc, UndefinedError):
        text = str(exc)
        if "has no attribute" in text:
            attr = text.rsplit("attribute", 1)[-1].strip(" '\"")
            return f"Unknown placeholder{where}: '{attr}' does not exist here ({text})."
        if text.endswith("is undefined"):
            return f"Unknown placeholder{where}: {text.removesuffix(' is undefined')} is not one of the placeholders."
        return f"Unknown placeholder{where}: {text}"
    if isinstance(exc, TemplateError):
        return f"Template error{where}: {exc}"
    return f"The template could not be rendered{where}: {type(exc).__name__}: {exc}"


def _render_one(kind: str, source: str, context: dict[str, Any]) -> str:
    out = _compile(kind, source).render(context)
    if len(out) > OUTPUT_MAX:
        raise SecurityError("the rendered text is too long")
    return out


# ---------------------------------------------------------------- sources


def is_sensitive(key: str) -> bool:
    """True for emails whose text staff must not read (it holds a password-reset link)."""
    info = TEMPLATES.get(key)
    return info is None or info.sensitive


def _info(key: str) -> TemplateInfo:
    try:
        return TEMPLATES[key]
    except KeyError:
        raise ValueError(f"unknown email template {key!r}") from None


@functools.lru_cache(maxsize=64)
def default_source(key: str) -> Source:
    """The shipped default of `key`, read from the files in defaults/."""
    _info(key)
    subject = (DEFAULTS_DIR / f"{key}.subject.txt").read_text(encoding="utf-8").strip()
    text = (DEFAULTS_DIR / f"{key}.txt").read_text(encoding="utf-8")
    html_path = DEFAULTS_DIR / f"{key}.html"
    html = html_path.read_text(encoding="utf-8") if html_path.exists() else None
    return Source(subject=subject, body_text=text, body_html=html)


def _language(language: str | None) -> str:
    from membership.core.i18n import clean_language, default_language
    return clean_language(language) or default_language()


def custom_row(session: Session, key: str, language: str | None = None) -> EmailTemplate | None:
    """The staff edit of `key` in `language` (default: the association's DEFAULT_LANGUAGE)."""
    return session.scalar(select(EmailTemplate).where(EmailTemplate.key == key,
                                                      EmailTemplate.language == _language(language)))


def custom_languages(session: Session, key: str) -> list[str]:
    """The languages in which staff have edited `key`."""
    return list(session.scalars(select(EmailTemplate.language).where(EmailTemplate.key == key)
                                .order_by(EmailTemplate.language)))


_CUSTOM = select(EmailTemplate.subject, EmailTemplate.body_text, EmailTemplate.body_html).where(
    EmailTemplate.key == bindparam("key"), EmailTemplate.language == bindparam("language"))


def current_source(session: Session, key: str, language: str | None = None) -> Source:
    """What `key` is written with for a recipient reading `language`: the staff edit in that
    language, else the staff edit in the association's default language, else the shipped default
    (whose sentences are translated when it renders).

    Looked up once per transaction, key and language: a reminder run queueing thousands of emails
    reads the template once (an edit saved meanwhile applies from the caller's next transaction).
    """
    _info(key)
    from membership.core.i18n import default_language
    language = _language(language)
    if hasattr(session, "registry"):  # a scoped_session (db.session): its current Session
        session = session()
    transaction = session.get_transaction()
    cache = session.info.get("samiti.email_templates")
    if cache is None or cache[0] is not transaction:
        cache = session.info["samiti.email_templates"] = (transaction, {})
    source = cache[1].get((key, language))
    if source is None:
        row = session.execute(_CUSTOM, {"key": key, "language": language}).first()
        if row is None and language != default_language():
            row = session.execute(_CUSTOM, {"key": key, "language": default_language()}).first()
        source = default_source(key) if row is None else Source(
            subject=row.subject, body_text=row.body_text, body_html=row.body_html or None, is_custom=True)
        if transaction is not None:
            cache[1][(key, language)] = source
    return source


# ---------------------------------------------------------------- context


def _config(name: str, default: str = "") -> str:
    return current_app.config.get(name) or default


def format_day(value: date | datetime | None) -> str:
    """A date as the association writes it (e.g. 15 July 2026); datetimes in its time zone."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = to_local(value).date()
    return formats.long_date(value)  # in the recipient's language (core.i18n.in_language)


def format_money(minor: int, currency: str) -> str:
    return formats.money(minor, currency)


def link(path: str) -> str:
    """An absolute link to `path` on this Samiti (BASE_URL + path), usable from the scheduler."""
    return _config("BASE_URL", "http://127.0.0.1:5000").rstrip("/") + path


def member_view(member=None, *, name: str = "", email: str = "") -> dict[str, str]:
    if member is None:
        first = name.split()[0] if name.split() else ""
        return {"first_name": first, "last_name": " ".join(name.split()[1:]), "full_name": name,
                "member_number": "", "email": email}
    return {"first_name": member.first_name or "", "last_name": member.last_name or "",
            "full_name": member.full_name, "member_number": member.member_number or "",
            "email": member.email or ""}


def term_values(term, today: date) -> dict[str, Any]:
    """Placeholders that describe a membership term (a Membership row)."""
    values: dict[str, Any] = {"plan_name": term.plan.name if term.plan is not None else "",
                              "term_start": format_day(term.starts_on), "term_end": format_day(term.ends_on)}
    values.update(_end_values(term.ends_on, term.grace_days or 0, today))
    return values


def _end_values(ends_on: date | None, grace_days: int, today: date) -> dict[str, Any]:
    if ends_on is None:
        return {"expiry_date": "", "days_left": 0, "days_overdue": 0, "grace_end_date": ""}
    left = (ends_on - today).days
    return {"expiry_date": format_day(ends_on), "days_left": left, "days_overdue": max(0, -left),
            "grace_end_date": format_day(ends_on + timedelta(days=grace_days))}


def payment_values(payment) -> dict[str, Any]:
    """Placeholders that describe a payment (a Payment row)."""
    values = {"receipt_number": payment.receipt_number, "amount": format_money(payment.amount_minor, payment.currency),
              "payment_date": format_day(payment.received_at),
              "payment_method": (payment.method or "").replace("_", " ").capitalize(),
              "payment_reference": payment.reference or ""}
    return values


def _plain(value: Any, key: str) -> Any:
    """Context values must be plain: no ORM objects (a template could call their methods)."""
    if value is None or isinstance(value, (str, int, float, bool, Decimal)):
        return value
    if isinstance(value, (datetime, date)):
        return format_day(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v, key) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v, key) for k, v in value.items()}
    raise TypeError(f"email context value {key!r} is a {type(value).__name__}; pass plain values "
                    "(str, int, date, list, dict) or use the 'term', 'payment' and 'member' keys")


def build_context(*, now: datetime, member=None, to_name: str = "", to_address: str = "",
                  extra: dict[str, Any] | None = None, unsubscribe_link: str = "") -> dict[str, Any]:
    """The placeholders of one email: the standard ones, then `extra` on top.

    `extra` may hold a Membership under "term" and a Payment under "payment"; they become their
    placeholders (plan_name, expiry_date, days_left..., receipt_number, amount...). Without a
    term, the member's cached plan and expiry date are used.
    """
    from membership.plans.models import Membership, Payment  # domain models, imported late

    today = local_date(now, tz())
    extra = dict(extra or {})
    term = extra.pop("term", None)
    payment = extra.pop("payment", None)
    if "member" in extra and not isinstance(extra["member"], dict):
        member = member or extra.pop("member")
    ctx: dict[str, Any] = {
        "association_name": _config("ASSOCIATION_NAME", "Samiti"),
        "association_address": _config("ASSOCIATION_ADDRESS"),
        "recipient_name": (member.full_name if member is not None else to_name) or to_name,
        "member": member_view(member, name=to_name, email=to_address),
        "plan_name": "", "term_start": "", "term_end": "",
        "renewal_link": link("/my/renew"), "portal_link": link("/my/"),
        "unsubscribe_link": unsubscribe_link, "today": format_day(today),
    }
    if member is not None and member.plan is not None:
        ctx["plan_name"] = member.plan.name
    ctx.update(_end_values(member.expires_on if member is not None else None, 0, today))
    if member is not None and member.expires_on is not None and member.plan is not None:
        ctx.update(_end_values(member.expires_on, member.plan.grace_days or 0, today))
    if payment is not None:
        if not isinstance(payment, Payment):
            raise TypeError("'payment' in an email context must be a Payment")
        ctx.update(payment_values(payment))
        term = term or payment.membership
    if term is not None:
        if not isinstance(term, Membership):
            raise TypeError("'term' in an email context must be a Membership")
        ctx.update(term_values(term, today))
    for key, value in extra.items():
        ctx[key] = _plain(value, key)
    if isinstance(ctx.get("link_expires_in"), str):
        ctx["link_expires_in"] = duration_words(ctx["link_expires_in"])
    return ctx


_DURATION = __import__("re").compile(r"^(\d+) (hour|hours|day|days)$")


def duration_words(text: str) -> str:
    """"3 days" / "1 hour" (how long a link works, as callers write it) in the language in force."""
    from flask_babel import ngettext

    m = _DURATION.match(text.strip())
    if not m:
        return text
    n = int(m.group(1))
    if m.group(2).startswith("hour"):
        return formats.digits(ngettext("%(num)s hour", "%(num)s hours", n))
    return formats.digits(ngettext("%(num)s day", "%(num)s days", n))


def sample_context(key: str, *, now: datetime, member=None) -> dict[str, Any]:
    """The context used to check a template and to preview it: a real member when given (with
    their current term and latest payment), made-up values for everything else."""
    info = _info(key)
    today = local_date(now, tz())
    ctx = build_context(now=now, member=member, to_name="Ada Lovelace", to_address="ada@example.org",
                        unsubscribe_link=link("/mail/unsubscribe/preview-token"))
    if member is None:
        ctx.update({"plan_name": "Individual (annual)", "term_start": format_day(today - timedelta(days=335)),
                    "term_end": format_day(today + timedelta(days=30))})
        ctx["member"]["member_number"] = "M-00042"
        ctx.update(_end_values(today + timedelta(days=30), 30, today))
    ctx.update({k: _plain(v, k) for k, v in info.sample.items() if k not in ctx})
    if member is not None:
        _add_member_payment(ctx, member, today)
    return ctx


def _add_member_payment(ctx: dict[str, Any], member, today: date) -> None:
    from membership.extensions import db
    from membership.plans.models import Payment

    payment = db.session.scalar(select(Payment).where(Payment.member_id == member.id)
                                .order_by(Payment.received_at.desc(), Payment.id.desc()).limit(1))
    if payment is not None:
        ctx.update(payment_values(payment))
        if payment.membership is not None:
            ctx.update(term_values(payment.membership, today))


# ---------------------------------------------------------------- rendering


def render_source(source: Source, context: dict[str, Any]) -> Rendered:
    """Render subject, text and HTML. Raises TemplateProblem (with the field) on any template error."""
    parts: dict[str, str | None] = {}
    for name, kind, text in (("subject", "text", source.subject), ("body_text", "text", source.body_text),
                             ("body_html", "html", source.body_html)):
        if text is None or not text.strip():
            parts[name] = None
            continue
        try:
            parts[name] = _render_one(kind, text, context)
        except Exception as exc:  # any template failure, including SecurityError and TypeError
            raise TemplateProblem(explain(exc), field=name) from exc
    subject = " ".join((parts["subject"] or "").split())  # one line, whatever the template did
    return Rendered(subject=subject, body_text=parts["body_text"] or "", body_html=parts["body_html"])


def reason_text(key: str, context: dict[str, Any]) -> str:
    """The shipped reason of `key` (why the recipient gets it), rendered with the context."""
    from flask_babel import gettext
    return " ".join(_render_one("text", gettext(_info(key).reason), context).split())


_HTML_LAYOUT = Markup(
    '<!doctype html>\n<html lang="{lang}">\n<head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title></head>\n'
    '<body style="margin:0;padding:16px;background:#f6f7f9;">\n'
    '<div style="max-width:600px;margin:0 auto;background:#ffffff;padding:24px;'
    'font-family:Arial,Helvetica,sans-serif;font-size:15px;line-height:1.5;color:#1d2125;">\n'
    '{body}\n'
    '<hr style="border:0;border-top:1px solid #dee2e6;margin:24px 0 12px;">\n'
    '<p style="font-size:12px;color:#5c636a;margin:0;">{footer}</p>\n'
    '</div>\n</body>\n</html>\n')


def render_email(session: Session, key: str, context: dict[str, Any], *, category: str,
                 reason: str | None = None, unsubscribe_link: str = "",
                 source: Source | None = None, language: str | None = None) -> tuple[Rendered, str]:
    """The finished email of template `key`: body plus the footer Samiti adds.

    A service email's footer says why it was sent (`reason`, or the template's shipped reason);
    a marketing email's footer carries the unsubscribe link. A staff edit that fails to render
    (it passed validation, but meets a context it was not checked against) falls back to the
    shipped default, so the email still goes out; the failure is logged.
    Returns (rendered, reason).
    """
    from flask_babel import gettext as _

    info = _info(key)
    language = _language(language or formats.language())
    source = source or current_source(session, key, language)
    try:
        rendered = render_source(source, context)
    except TemplateProblem:
        if not source.is_custom:
            raise
        current_app.logger.warning("email template %r failed to render; using the shipped default", key,
                                   exc_info=True)
        rendered = render_source(default_source(key), context)
    association = context.get("association_name", "")
    if reason is None:
        reason = reason_text(key, context)
    reason = " ".join(str(reason).split())
    if category == "marketing":
        why_news = _("You receive this email because you asked for news from %(association)s.",
                     association=association)
        foot_text = why_news + "\n" + _("Unsubscribe: %(link)s", link=unsubscribe_link)
        foot_html = Markup('{} <a href="{}">{}</a>.').format(why_news, unsubscribe_link, _("Unsubscribe"))
    elif category == "staff":
        foot_text = (_("An automated message for staff of %(association)s: %(reason)s", association=association,
                       reason=reason) if reason
                     else _("An automated message for staff of %(association)s.", association=association))
        foot_html = escape(foot_text)
    else:
        because = _("You received this email because %(reason)s", reason=reason) if reason else ""
        foot_text = f"{association}\n{because}" if reason else association
        foot_html = Markup("{}<br>{}").format(association, because) if reason else escape(association)
    text = rendered.body_text.rstrip() + "\n\n-- \n" + foot_text + "\n"
    html = None
    if rendered.body_html:
        # str.format on escaped parts: the same result as Markup.format, without its per-call
        # formatter (a campaign renders thousands of emails in one run)
        html = str(_HTML_LAYOUT).format(lang=escape(language), title=escape(rendered.subject),
                                        body=rendered.body_html, footer=escape(foot_html))
    return Rendered(subject=rendered.subject, body_text=text, body_html=html), reason


# ---------------------------------------------------------------- staff edits


def _clean_source(subject: str, body_text: str, body_html: str | None) -> tuple[str, str, str | None]:
    subject = (subject or "").strip()
    body_text = (body_text or "").replace("\r\n", "\n")
    body_html = (body_html or "").replace("\r\n", "\n")
    for name, value in (("subject", subject), ("body_text", body_text), ("body_html", body_html)):
        if "\x00" in value:
            raise TemplateProblem(_("This text contains a NUL character; remove it."), field=name)
    if not subject:
        raise TemplateProblem(_("Enter a subject."), field="subject")
    if "\n" in subject or "\r" in subject:
        raise TemplateProblem(_("The subject must be one line."), field="subject")
    if len(subject) > SUBJECT_MAX:
        raise TemplateProblem(_("The subject can be at most %(count)s characters.", count=formats.digits(str(SUBJECT_MAX))),
                              field="subject")
    if not body_text.strip():
        raise TemplateProblem(_("Enter the plain-text body (every email has one)."), field="body_text")
    for name, value in (("body_text", body_text), ("body_html", body_html)):
        if len(value) > BODY_MAX:
            raise TemplateProblem(_("This body can be at most %(body_max)s characters.", body_max=formats.number(BODY_MAX)),
                                  field=name)
    return subject, body_text, (body_html if body_html.strip() else None)


def check_template(key: str, *, subject: str, body_text: str, body_html: str | None, now: datetime,
                   member=None, language: str | None = None) -> Rendered:
    """Compile and render a candidate template against the sample context (or `member`), in
    `language` (default: the language in force): the preview of each language version.

    Returns the rendered result; raises TemplateProblem naming the field at fault.
    """
    from membership.core.i18n import in_language

    subject, body_text, body_html = _clean_source(subject, body_text, body_html)
    with in_language(language or formats.language()):
        ctx = sample_context(key, now=now, member=member)
        return render_source(Source(subject, body_text, body_html, True), ctx)


def preview(session: Session, key: str, *, language: str, now: datetime, member=None) -> Rendered:
    """`key` as a recipient reading `language` gets it now (their version, or the fallback)."""
    from membership.core.i18n import in_language

    with in_language(language):
        ctx = sample_context(key, now=now, member=member)
        return render_source(current_source(session, key, language), ctx)


def save_template(session: Session, key: str, *, subject: str, body_text: str, body_html: str | None,
                  actor, now: datetime, language: str | None = None) -> EmailTemplate:
    """Store a staff edit of `key` in `language` (default: DEFAULT_LANGUAGE) after checking that it
    compiles and renders against sample data in that language.

    Raises TemplateProblem (field: subject, body_text or body_html). Adds and flushes; caller commits.
    """
    info = _info(key)
    language = _language(language)
    subject, body_text, body_html = _clean_source(subject, body_text, body_html)
    check_template(key, subject=subject, body_text=body_text, body_html=body_html, now=now, language=language)
    row = custom_row(session, key, language)
    before = current_source(session, key, language)
    if row is None:
        row = EmailTemplate(key=key, language=language, subject=subject, body_text=body_text, body_html=body_html,
                            updated_at=now, updated_by_id=getattr(actor, "id", None))
        session.add(row)
    else:
        row.subject, row.body_text, row.body_html = subject, body_text, body_html
        row.updated_at, row.updated_by_id = now, getattr(actor, "id", None)
    session.flush()
    session.info.pop("samiti.email_templates", None)
    changed = [name for name, old, new in (("subject", before.subject, subject),
                                           ("body_text", before.body_text, body_text),
                                           ("body_html", before.body_html, body_html)) if old != new]
    record_audit(session, actor=actor, action="email_template.update", entity=row, now=now,
                 summary=f"Email template '{info.name}' edited" + _language_note(language)
                 + (f" ({', '.join(changed)})" if changed else ""),
                 changes={"fields": changed, "language": language})
    return row


def _language_note(language: str) -> str:
    from membership.core.i18n import LANGUAGE_NAMES, default_language
    return "" if language == default_language() else f" ({LANGUAGE_NAMES.get(language, language)} version)"


def reset_template(session: Session, key: str, *, actor, now: datetime, language: str | None = None) -> bool:
    """Drop the staff edit of `key` in `language` (default: DEFAULT_LANGUAGE), so the fallback is
    used again. False if there was none. Adds the audit row; caller commits."""
    info = _info(key)
    language = _language(language)
    row = custom_row(session, key, language)
    if row is None:
        return False
    record_audit(session, actor=actor, action="email_template.reset", entity=row, now=now,
                 summary=f"Email template '{info.name}'{_language_note(language)} reset to the shipped default")
    session.delete(row)
    session.flush()
    session.info.pop("samiti.email_templates", None)
    return True
