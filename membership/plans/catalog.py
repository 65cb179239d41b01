"""The plan catalogue: validate, create, update, retire and un-retire plans.

Used by the admin pages and (later) the API, so every rule lives here and every problem is a
ValidationError naming its field. Editing a plan never touches existing terms: a term copies the
plan's dates, fee and grace days when it is made.
"""
from __future__ import annotations

import calendar
import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from flask_babel import gettext as _, ngettext
from sqlalchemy import case, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from membership.core import formats
from membership.core.errors import Conflict, ValidationError
from membership.core.i18n import N_
from membership.core.validation import label_text
from membership.core.services import record_audit
from membership.members.models import Member, Organization
from membership.members.services import clean_text
from membership.plans.models import CURRENT_STATUSES, PERIOD_KINDS, Membership, Plan

PERIOD_KIND_LABELS = {"rolling": N_("Rolling"), "fixed": N_("Fixed period"), "lifetime": N_("Lifetime")}


def month_name(month: int) -> str:
    """The month's full name in the language now in force ("July", "জুলাই")."""
    return formats.strftime(date(2000, month, 1), "%B")

# The fields a plan is edited through (the form and the API use the same names).
PLAN_FIELDS = ("code", "name", "description", "fee", "period_kind", "period_months", "period_start_month",
               "period_start_day", "rollover_month", "rollover_day", "grace_days", "renewal_opens_days",
               "backdate_after_lapse", "joinable_online", "needs_approval", "is_organizational", "max_contacts",
               "sort_order")

MAX_FEE_MINOR = 1_000_000_000  # 10,000,000.00: far above any fee, well inside a 32-bit integer
_CODE = re.compile(r"[A-Za-z0-9_-]+")
_AMOUNT = re.compile(r"\d+(\.\d*)?|\.\d+")
_GROUPED = re.compile(r"\d{1,3}(,\d{3})+(\.\d*)?")
_TRUE = {"1", "true", "y", "yes", "on"}
_FALSE = {"", "0", "false", "n", "no", "off"}


class PlanInvalid(ValidationError):
    """One or more plan fields are wrong. `errors` maps each bad field to its message; `field` and
    the message are the first of them, so callers that show one error still can."""

    def __init__(self, errors: dict[str, str]):
        field, message = next(iter(errors.items()))
        super().__init__(message, field=field)
        self.errors = dict(errors)


# ---------------------------------------------------------------- parsing helpers


def parse_amount(value: Any, *, field: str = "amount", label: str = N_("Amount"), required: bool = True,
                 max_minor: int = MAX_FEE_MINOR) -> int | None:
    """An amount typed as a decimal ("1500", "1500.5", "1,500.00") in minor units (150000).

    Refuses negative amounts, more than two decimals, and anything that is not a plain number
    (no exponents, NaN or currency signs). Raises ValidationError naming `field`.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ValidationError(_("%(label)s is required.", label=label_text(label)), field=field)
        return None
    if isinstance(value, bool):
        raise ValidationError(_("%(label)s: enter an amount like 1500.00.", label=label_text(label)), field=field)
    if isinstance(value, (int, Decimal, float)):
        text = format(Decimal(str(value)), "f")
    else:
        text = str(value).strip().replace(" ", "")
    negative = text.startswith("-")
    if negative:
        text = text[1:]
    if _GROUPED.fullmatch(text):
        text = text.replace(",", "")
    if not _AMOUNT.fullmatch(text):
        raise ValidationError(_("%(label)s: enter an amount like 1500.00.", label=label_text(label)), field=field)
    try:
        amount = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern above already rules it out
        raise ValidationError(_("%(label)s: enter an amount like 1500.00.", label=label_text(label)),
                              field=field) from None
    if negative and amount != 0:
        raise ValidationError(_("%(label)s cannot be negative.", label=label_text(label)), field=field)
    if amount != amount.quantize(Decimal("0.01")):
        raise ValidationError(_("%(label)s: use at most 2 decimal places.", label=label_text(label)), field=field)
    minor = int(amount * 100)
    if minor > max_minor:
        raise ValidationError(_("%(label)s is too large (at most %(amount)s).", label=label_text(label),
                                amount=format_minor(max_minor)), field=field)
    return minor


def format_minor(minor: int | None) -> str:
    """Minor units as the plain decimal an admin types: 150000 -> "1500.00"."""
    if minor is None:
        return ""
    sign = "-" if minor < 0 else ""
    minor = abs(minor)
    return f"{sign}{minor // 100}.{minor % 100:02d}"


def _int(data: dict, key: str, label: str, lo: int, hi: int, *, required: bool) -> int | None:
    value = data.get(key)
    if isinstance(value, str):
        value = value.strip()
    if value is None or value == "":
        if required:
            raise ValidationError(_("%(label)s is required.", label=label_text(label)), field=key)
        return None
    whole = _("%(label)s must be a whole number.", label=label_text(label))
    if isinstance(value, bool):
        raise ValidationError(whole, field=key)
    if isinstance(value, str):
        if not re.fullmatch(r"[+-]?\d{1,9}", value):
            raise ValidationError(whole, field=key)
        value = int(value)
    elif not isinstance(value, int):
        raise ValidationError(whole, field=key)
    if not lo <= value <= hi:
        raise ValidationError(_("%(label)s must be between %(low)s and %(high)s.", label=label_text(label),
                                low=formats.digits(str(lo)), high=formats.digits(str(hi))), field=key)
    return value


def _bool(data: dict, key: str, default: bool) -> bool:
    value = data.get(key, default)
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    text = str(value).strip().casefold()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValidationError(_("Choose yes or no."), field=key)


_DAY_LABELS = {  # the name of a day-of-the-year setting, and of its two parts
    "Period start": (N_("Period start"), N_("Period start month"), N_("Period start day")),
    "Rollover": (N_("Rollover"), N_("Rollover month"), N_("Rollover day")),
}


def _month_day(data: dict, month_key: str, day_key: str, label: str, *, required: bool) -> tuple[int | None, int | None]:
    """A day of the year (month, day) that exists in every year: 31 February and 29 February are refused."""
    errors: dict[str, str] = {}
    month = day = None
    whole, month_label, day_label = _DAY_LABELS[label]
    try:
        month = _int(data, month_key, month_label, 1, 12, required=required)
    except ValidationError as e:
        errors[e.field] = e.message
    try:
        day = _int(data, day_key, day_label, 1, 31, required=required)
    except ValidationError as e:
        errors[e.field] = e.message
    if not errors:
        name = label_text(whole)
        if (month is None) != (day is None):
            missing = day_key if day is None else month_key
            errors[missing] = _("Give both the month and the day of the %(label)s, or neither.",
                                label=name.lower() if formats.language() == "en" else name)
        elif month is not None:
            if month == 2 and day == 29:
                errors[day_key] = _("%(label)s: 29 February does not exist every year; choose 28 February "
                                    "or 1 March.", label=name)
            elif day > calendar.monthrange(2025, month)[1]:
                errors[day_key] = _("%(label)s: %(month)s has no day %(day)s.", label=name, month=month_name(month),
                                    day=formats.digits(str(day)))
    if errors:
        raise PlanInvalid(errors)
    return month, day


# ---------------------------------------------------------------- validation


def validate_plan(session: Session, data: dict[str, Any], *, plan: Plan | None = None) -> dict[str, Any]:
    """Check and normalise plan fields from any edge. Returns the values to set on a Plan.

    `data` uses PLAN_FIELDS names; `fee` is a decimal amount in the association's currency
    ("1500.00"). Pass the plan being edited as `plan` (its own code is not a duplicate).
    Raises PlanInvalid with every bad field at once.
    """
    errors: dict[str, str] = {}
    out: dict[str, Any] = {}

    def check(fn):
        try:
            return fn()
        except PlanInvalid as e:
            for k, v in e.errors.items():
                errors.setdefault(k, v)
        except ValidationError as e:
            errors.setdefault(e.field or "code", e.message)
        return None

    def code():
        value = clean_text(data.get("code"), field="code", label=N_("Code"), max_length=32, required=True)
        if not _CODE.fullmatch(value):
            raise ValidationError(_("Code: use only letters A-Z, digits, - and _ (no spaces)."), field="code")
        query = select(Plan).where(func.lower(Plan.code) == value.lower())
        if plan is not None and plan.id is not None:
            query = query.where(Plan.id != plan.id)
        other = session.scalar(query.limit(1))
        if other is not None:
            raise ValidationError(_("The code %(code)s is already used by the plan %(name)s.", code=other.code,
                                    name=other.name), field="code")
        return value

    out["code"] = check(code)
    out["name"] = check(lambda: clean_text(data.get("name"), field="name", label=N_("Name"), max_length=120,
                                           required=True))
    out["description"] = check(lambda: clean_text(data.get("description"), field="description",
                                                  label=N_("Description"), max_length=5000, multiline=True))
    out["fee_minor"] = check(lambda: parse_amount(data.get("fee"), field="fee", label=N_("Fee")))

    kind = data.get("period_kind")
    kind = kind.strip() if isinstance(kind, str) else kind
    if kind not in PERIOD_KINDS:
        errors["period_kind"] = _("Choose a period: rolling, fixed or lifetime.")
        kind = None
    out["period_kind"] = kind

    if kind in ("rolling", "fixed"):
        months = check(lambda: _int(data, "period_months", N_("Period months"), 1, 120, required=True))
        if kind == "fixed" and months is not None and 12 % months != 0:
            # Fixed periods restart every year on the start day, so they must divide the year evenly.
            errors.setdefault("period_months", _("A fixed period must divide the year: 1, 2, 3, 4, 6 or 12 months."))
        out["period_months"] = months
    else:
        out["period_months"] = plan.period_months if plan is not None and plan.period_months else 12

    if kind == "fixed":
        start = check(lambda: _month_day(data, "period_start_month", "period_start_day", "Period start",
                                         required=True)) or (None, None)
        rollover = check(lambda: _month_day(data, "rollover_month", "rollover_day", "Rollover",
                                            required=False)) or (None, None)
        if rollover[0] is not None and start[0] is not None and rollover == start:
            errors.setdefault("rollover_day", _("The rollover day must differ from the period start "
                                                "(on the start day every join would cover two periods)."))
    else:
        start = rollover = (None, None)
    out["period_start_month"], out["period_start_day"] = start
    out["rollover_month"], out["rollover_day"] = rollover

    out["grace_days"] = check(lambda: _int(data, "grace_days", N_("Grace days"), 0, 365, required=True))
    if kind == "lifetime":
        out["renewal_opens_days"] = None
    else:
        out["renewal_opens_days"] = check(lambda: _int(data, "renewal_opens_days", N_("Renewal opens"), 0, 365,
                                                       required=False))
    for key, default in (("backdate_after_lapse", False), ("joinable_online", True), ("needs_approval", False),
                         ("is_organizational", False)):
        out[key] = check(lambda key=key, default=default: _bool(data, key, default))
    if out["is_organizational"]:
        out["max_contacts"] = check(lambda: _int(data, "max_contacts", N_("Maximum contacts"), 1, 10000,
                                                 required=False))
    else:
        out["max_contacts"] = None
    out["sort_order"] = check(lambda: _int(data, "sort_order", N_("Sort order"), -9999, 9999, required=False)) or 0

    if plan is not None and plan.id is not None and out["is_organizational"] is not None \
            and bool(out["is_organizational"]) != bool(plan.is_organizational) and _has_terms(session, plan):
        # Member terms on an organisational plan (or the reverse) could never be renewed.
        errors.setdefault("is_organizational", _("This plan already has terms, so it cannot switch between "
                                                 "individual and organisational; create a new plan instead."))
    if errors:
        raise PlanInvalid(errors)
    return out


def _has_terms(session: Session, plan: Plan) -> bool:
    return session.scalar(select(Membership.id).where(Membership.plan_id == plan.id).limit(1)) is not None


def plan_to_data(plan: Plan) -> dict[str, Any]:
    """The plan in the shape validate_plan reads (fee as a decimal string): for edit forms and the API."""
    data = {key: getattr(plan, key) for key in PLAN_FIELDS if key != "fee"}
    data["fee"] = format_minor(plan.fee_minor)
    return data


# ---------------------------------------------------------------- create, update, retire


def _flush_plan(session: Session, plan: Plan) -> None:
    # Two admins saving the same new code at once: the unique index decides; say so beside the field.
    try:
        with session.begin_nested():
            session.add(plan)
            session.flush()
    except IntegrityError:
        raise PlanInvalid({"code": _("The code %(code)s is already used by another plan.", code=plan.code)}) from None


def create_plan(session: Session, data: dict[str, Any], *, currency: str, actor, now: datetime) -> Plan:
    """Add a plan from raw fields (see validate_plan). Flushes and audits; the caller commits.
    Raises PlanInvalid."""
    values = validate_plan(session, data)
    plan = Plan(**values, currency=currency, is_active=True, created_at=now)
    _flush_plan(session, plan)
    record_audit(session, actor=actor, action="plan.create", entity=plan, now=now,
                 summary=f"Created plan {plan.code} {plan.name}",
                 changes={k: v for k, v in values.items() if v is not None})
    return plan


def update_plan(session: Session, plan: Plan, data: dict[str, Any], *, actor, now: datetime) -> dict[str, list]:
    """Change a plan. Fields missing from `data` keep their value, so the API can send only what
    changes. Existing terms are not touched (they carry their own dates, fee and grace days).
    Returns {field: [old, new]}; audits the change. Raises PlanInvalid."""
    values = validate_plan(session, {**plan_to_data(plan), **data}, plan=plan)
    changes = {k: [getattr(plan, k), v] for k, v in values.items() if getattr(plan, k) != v}
    if not changes:
        return changes
    for key, value in values.items():
        setattr(plan, key, value)
    _flush_plan(session, plan)
    record_audit(session, actor=actor, action="plan.update", entity=plan, now=now,
                 summary=f"Updated plan {plan.code}: " + ", ".join(sorted(changes)), changes=changes)
    return changes


def retire_plan(session: Session, plan: Plan, *, actor, now: datetime) -> None:
    """Stop offering a plan for joins and renewals. Existing terms run on unchanged.
    Raises Conflict when it is already retired."""
    if not plan.is_active:
        raise Conflict(_("The plan %(name)s is already retired.", name=plan.name))
    plan.is_active = False
    plan.retired_at = now
    session.flush()
    record_audit(session, actor=actor, action="plan.retire", entity=plan, now=now,
                 summary=f"Retired plan {plan.code} {plan.name}", changes={"is_active": [True, False]})


def unretire_plan(session: Session, plan: Plan, *, actor, now: datetime) -> None:
    """Offer a retired plan again. Raises Conflict when it is not retired."""
    if plan.is_active:
        raise Conflict(_("The plan %(name)s is not retired.", name=plan.name))
    plan.is_active = True
    plan.retired_at = None
    session.flush()
    record_audit(session, actor=actor, action="plan.unretire", entity=plan, now=now,
                 summary=f"Offered plan {plan.code} {plan.name} again", changes={"is_active": [False, True]})


# ---------------------------------------------------------------- reading


def member_counts(session: Session) -> dict[int, dict[str, int]]:
    """Per plan id: members whose current plan it is ("all") and how many of them are current
    ("current": active or in grace), plus organisations holding it. Two grouped queries."""
    rows = session.execute(
        select(Member.plan_id, func.count(),
               func.sum(case((Member.status.in_(CURRENT_STATUSES), 1), else_=0)))
        .where(Member.plan_id.is_not(None), Member.erased_at.is_(None))
        .group_by(Member.plan_id)).all()
    counts = {pid: {"all": n, "current": int(cur or 0), "organizations": 0} for pid, n, cur in rows}
    for pid, n in session.execute(select(Organization.plan_id, func.count())
                                  .where(Organization.plan_id.is_not(None))
                                  .group_by(Organization.plan_id)).all():
        counts.setdefault(pid, {"all": 0, "current": 0, "organizations": 0})["organizations"] = n
    return counts


def offered_plans(session: Session, *, organizational: bool | None = None) -> list[Plan]:
    """Active plans in display order, optionally only (non-)organisational ones."""
    query = select(Plan).where(Plan.is_active.is_(True))
    if organizational is not None:
        query = query.where(Plan.is_organizational.is_(organizational))
    return list(session.scalars(query.order_by(Plan.sort_order, Plan.name, Plan.id)))


def _day_label(month: int | None, day: int | None) -> str:
    """ "1 Jul" in the language now in force ("১ জুলাই" in Bengali)."""
    if not (month and day):
        return ""
    return formats.strftime(date(2000, month, day), "%-d %b")


def months_in_words(months: int) -> str:
    return formats.digits(ngettext("%(num)s month", "%(num)s months", months))


def describe_period(plan: Plan, *, length: str | None = None) -> str:
    """The plan's period in words, in the language now in force: "12 months, rolling",
    "12 months from 1 Jul (rollover 1 Apr)", "Lifetime". `length` replaces "12 months" (the plan cards say "1 year")."""
    if plan.period_kind == "lifetime":
        return _("Lifetime")
    length = length or months_in_words(plan.period_months)
    if plan.period_kind == "fixed":
        text = _("%(length)s from %(day)s", length=length,
                 day=_day_label(plan.period_start_month, plan.period_start_day) or _day_label(1, 1))
        rollover = _day_label(plan.rollover_month, plan.rollover_day)
        return _("%(period)s (rollover %(day)s)", period=text, day=rollover) if rollover else text
    return _("%(length)s, rolling", length=length)


def example_term(plan: Plan, start: date) -> tuple[date, date | None]:
    """The term a join on `start` would get (shown on the form so admins can check the settings)."""
    from membership.plans.services import term_dates
    return term_dates(plan, start)
