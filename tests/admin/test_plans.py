"""Admin plan pages and the plan catalogue service (plans.catalog)."""
from __future__ import annotations

import html
import re
from datetime import date

import pytest
from sqlalchemy import func, select

from membership.core.errors import ValidationError
from membership.core.models import AuditLog
from membership.extensions import db
from membership.plans import catalog
from membership.plans.models import Membership, Plan
from membership.plans.services import join, renew, term_dates
from tests.conftest import NOW, TODAY

GOOD = {
    "code": "STD", "name": "Standard", "description": "Individual membership", "fee": "1500.00",
    "period_kind": "rolling", "period_months": "12", "period_start_month": "", "period_start_day": "",
    "rollover_month": "", "rollover_day": "", "grace_days": "30", "renewal_opens_days": "",
    "joinable_online": "y", "sort_order": "0", "max_contacts": "",
}
FIXED = {"period_kind": "fixed", "period_months": "12", "period_start_month": "7", "period_start_day": "1"}


def form(**changes):
    data = dict(GOOD)
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def plan_count():
    return db.session.scalar(select(func.count()).select_from(Plan))


def audit_count():
    return db.session.scalar(select(func.count()).select_from(AuditLog))


def text_of(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def input_value(page: str, name: str) -> str | None:
    tag = re.search(rf'<input[^>]*name="{name}"[^>]*>', page)
    value = tag and re.search(r'value="([^"]*)"', tag.group(0))
    return value.group(1) if value else None


def error_beside(page: str, field: str) -> str:
    """The message rendered beside a field: the first invalid-feedback after the input itself,
    before the next input."""
    start = page.index(f'id="{field}"')
    rest = page[start:]
    marker = 'class="invalid-feedback"'
    assert marker in rest, f"no error beside {field}"
    cut = rest.index(marker)
    assert "<input" not in rest[1:cut] and "<select" not in rest[1:cut], f"no error beside {field}"
    return rest[cut:].split(">", 1)[1].split("</div>", 1)[0]


# ---------------------------------------------------------------- create


def test_admin_creates_a_plan(admin_client, admin_user):
    page = admin_client.get("/staff/admin/plans/new")
    assert page.status_code == 200
    assert 'name="fee"' in page.text and 'name="csrf_token"' in page.text
    response = admin_client.post("/staff/admin/plans/new", data=form(fee="1,500.50"))
    assert response.status_code == 302
    plan = db.session.scalar(select(Plan).where(Plan.code == "STD"))
    assert plan.fee_minor == 150050 and plan.currency == "BDT"
    assert plan.period_kind == "rolling" and plan.period_months == 12 and plan.grace_days == 30
    assert plan.joinable_online and not plan.needs_approval and plan.is_active
    assert plan.period_start_month is None and plan.renewal_opens_days is None
    audit = db.session.scalar(select(AuditLog).where(AuditLog.action == "plan.create"))
    assert audit.entity_id == plan.id and audit.actor_id == admin_user.id
    listing = admin_client.get(response.headers["Location"])
    assert "Plan Standard (STD) created" in text_of(listing)
    assert "Standard" in listing.text and "1,500.50" in text_of(listing)


def test_fixed_fiscal_plan_with_rollover(admin_client):
    data = form(code="FY", name="Fiscal year", rollover_month="4", rollover_day="1", **FIXED)
    assert admin_client.post("/staff/admin/plans/new", data=data).status_code == 302
    plan = db.session.scalar(select(Plan).where(Plan.code == "FY"))
    assert (plan.period_kind, plan.period_start_month, plan.period_start_day) == ("fixed", 7, 1)
    assert (plan.rollover_month, plan.rollover_day) == (4, 1)
    # The saved settings give the terms staff expect: to 30 June, and past the rollover to the next June.
    assert term_dates(plan, date(2026, 9, 10)) == (date(2026, 9, 10), date(2027, 6, 30))
    assert term_dates(plan, date(2027, 5, 2)) == (date(2027, 5, 2), date(2028, 6, 30))
    assert "12 months from 1 Jul (rollover 1 Apr)" in admin_client.get("/staff/admin/plans").text


def test_lifetime_and_organisational_plan(admin_client):
    data = form(code="LIFE", name="Life", period_kind="lifetime", period_months="", renewal_opens_days="30",
                is_organizational="y", max_contacts="5", joinable_online="")
    assert admin_client.post("/staff/admin/plans/new", data=data).status_code == 302
    plan = db.session.scalar(select(Plan).where(Plan.code == "LIFE"))
    assert plan.period_kind == "lifetime" and plan.renewal_opens_days is None
    assert plan.is_organizational and plan.max_contacts == 5 and not plan.joinable_online


def test_rolling_plan_ignores_fixed_fields_and_max_contacts(admin_client):
    data = form(period_start_month="7", period_start_day="1", rollover_month="2", rollover_day="30",
                max_contacts="3")
    assert admin_client.post("/staff/admin/plans/new", data=data).status_code == 302
    plan = db.session.scalar(select(Plan).where(Plan.code == "STD"))
    assert plan.period_start_month is None and plan.rollover_day is None and plan.max_contacts is None


BAD = [
    ({"fee": "-5"}, "fee", "Fee cannot be negative."),
    ({"fee": "-0.01"}, "fee", "Fee cannot be negative."),
    ({"fee": "12.345"}, "fee", "Fee: use at most 2 decimal places."),
    ({"fee": "abc"}, "fee", "Fee: enter an amount like 1500.00."),
    ({"fee": "1e3"}, "fee", "Fee: enter an amount like 1500.00."),
    ({"fee": "NaN"}, "fee", "Fee: enter an amount like 1500.00."),
    ({"fee": "1,5"}, "fee", "Fee: enter an amount like 1500.00."),
    ({"fee": "৳100"}, "fee", "Fee: enter an amount like 1500.00."),
    ({"fee": ""}, "fee", "Fee is required."),
    ({"fee": "99999999999"}, "fee", "Fee is too large"),
    ({"code": ""}, "code", "Code is required."),
    ({"code": "gold plan"}, "code", "Code: use only letters A-Z, digits, - and _ (no spaces)."),
    ({"code": "ÄB"}, "code", "Code: use only letters A-Z"),
    ({"code": "X" * 33}, "code", "Code must be at most 32 characters."),
    ({"name": "  "}, "name", "Name is required."),
    ({"name": "Bad\x00name"}, "name", "Name contains characters that are not allowed."),
    ({"period_kind": "weekly"}, "period_kind", "Choose a period: rolling, fixed or lifetime."),
    ({"period_kind": None}, "period_kind", "Choose a period: rolling, fixed or lifetime."),
    ({"period_months": "0"}, "period_months", "Period months must be between 1 and 120."),
    ({"period_months": "121"}, "period_months", "Period months must be between 1 and 120."),
    ({"period_months": "twelve"}, "period_months", "Period months must be a whole number."),
    ({"period_months": "1.5"}, "period_months", "Period months must be a whole number."),
    ({"period_months": ""}, "period_months", "Period months is required."),
    ({**FIXED, "period_months": "5"}, "period_months", "A fixed period must divide the year"),
    ({**FIXED, "period_start_month": ""}, "period_start_month", "Period start month is required."),
    ({**FIXED, "period_start_day": ""}, "period_start_day", "Period start day is required."),
    ({**FIXED, "period_start_month": "2", "period_start_day": "31"}, "period_start_day",
     "Period start: February has no day 31."),
    ({**FIXED, "period_start_month": "4", "period_start_day": "31"}, "period_start_day",
     "Period start: April has no day 31."),
    ({**FIXED, "period_start_month": "2", "period_start_day": "29"}, "period_start_day",
     "29 February does not exist every year"),
    ({**FIXED, "period_start_month": "13"}, "period_start_month", "Period start month must be between 1 and 12."),
    ({**FIXED, "period_start_day": "0"}, "period_start_day", "Period start day must be between 1 and 31."),
    ({**FIXED, "rollover_month": "4"}, "rollover_day", "Give both the month and the day of the rollover"),
    ({**FIXED, "rollover_day": "4"}, "rollover_month", "Give both the month and the day of the rollover"),
    ({**FIXED, "rollover_month": "6", "rollover_day": "31"}, "rollover_day", "Rollover: June has no day 31."),
    ({**FIXED, "rollover_month": "7", "rollover_day": "1"}, "rollover_day",
     "The rollover day must differ from the period start"),
    ({"grace_days": "-1"}, "grace_days", "Grace days must be between 0 and 365."),
    ({"grace_days": "366"}, "grace_days", "Grace days must be between 0 and 365."),
    ({"grace_days": ""}, "grace_days", "Grace days is required."),
    ({"renewal_opens_days": "400"}, "renewal_opens_days", "Renewal opens must be between 0 and 365."),
    ({"is_organizational": "y", "max_contacts": "0"}, "max_contacts", "Maximum contacts must be between 1 and 10000."),
    ({"sort_order": "first"}, "sort_order", "Sort order must be a whole number."),
    ({"description": "x" * 5001}, "description", "Description must be at most 5000 characters."),
]


@pytest.mark.parametrize("changes,field,message", BAD, ids=[f"{b[1]}:{b[0]}" for b in BAD])
def test_bad_plan_input_is_refused_beside_the_field_and_writes_nothing(admin_client, changes, field, message):
    before = (plan_count(), audit_count())
    response = admin_client.post("/staff/admin/plans/new", data=form(**changes))
    assert response.status_code == 422
    page = text_of(response)
    assert message in error_beside(page, field)
    assert (plan_count(), audit_count()) == before
    # What was typed stays in the form.
    for key, value in changes.items():
        if not value or key in ("name", "description", "period_kind", "is_organizational"):
            continue
        if key.endswith("_month"):
            if value.isdigit() and 1 <= int(value) <= 12:
                assert f'<option selected value="{value}">' in page, key
        else:
            assert input_value(page, key) == value, key


def test_every_problem_is_shown_at_once(admin_client):
    response = admin_client.post("/staff/admin/plans/new",
                                 data=form(code="", fee="-1", grace_days="999", period_kind="weekly"))
    assert response.status_code == 422
    page = text_of(response)
    for field in ("code", "fee", "grace_days", "period_kind"):
        error_beside(page, field)
    assert "Please correct the fields marked below." in page


def test_duplicate_code_is_refused_whatever_the_case(admin_client, make_plan):
    make_plan(code="GOLD", name="Gold")
    db.session.commit()
    response = admin_client.post("/staff/admin/plans/new", data=form(code="gold"))
    assert response.status_code == 422
    assert "The code GOLD is already used by the plan Gold." in error_beside(text_of(response), "code")
    assert plan_count() == 1


# ---------------------------------------------------------------- edit


def test_edit_changes_the_plan_but_never_existing_terms(admin_client, make_plan, make_member, make_term):
    plan = make_plan(code="STD", name="Standard", fee_minor=5000, grace_days=30)
    member = make_member()
    term = make_term(member, plan, starts_on=date(2025, 7, 1))
    db.session.commit()
    before = (term.starts_on, term.ends_on, term.fee_minor, term.grace_days, term.status)

    page = admin_client.get(f"/staff/admin/plans/{plan.id}/edit")
    assert page.status_code == 200
    assert "Editing a plan never changes existing terms" in page.text
    assert 'value="50.00"' in page.text and 'value="STD"' in page.text

    data = form(code="STD", name="Standard plus", fee="75.25", grace_days="10", period_months="6")
    response = admin_client.post(f"/staff/admin/plans/{plan.id}/edit", data=data)
    assert response.status_code == 302
    db.session.expire_all()
    plan = db.session.get(Plan, plan.id)
    assert (plan.name, plan.fee_minor, plan.grace_days, plan.period_months) == ("Standard plus", 7525, 10, 6)
    term = db.session.get(Membership, term.id)
    assert (term.starts_on, term.ends_on, term.fee_minor, term.grace_days, term.status) == before
    audit = db.session.scalar(select(AuditLog).where(AuditLog.action == "plan.update"))
    assert audit.changes["fee_minor"] == [5000, 7525] and audit.changes["name"] == ["Standard", "Standard plus"]
    assert "Existing terms are unchanged" in text_of(admin_client.get("/staff/admin/plans"))


def test_bad_edit_writes_nothing(admin_client, make_plan):
    plan = make_plan(code="STD", name="Standard", fee_minor=5000)
    db.session.commit()
    before = audit_count()
    response = admin_client.post(f"/staff/admin/plans/{plan.id}/edit",
                                 data=form(code="STD", name="Renamed", fee="12.345"))
    assert response.status_code == 422
    assert "at most 2 decimal places" in error_beside(text_of(response), "fee")
    assert 'value="Renamed"' in response.text  # what was typed is kept
    db.session.expire_all()
    assert db.session.get(Plan, plan.id).name == "Standard" and audit_count() == before


def test_saving_without_changes_says_so(admin_client, make_plan):
    plan = make_plan(code="STD", name="Standard", fee_minor=5000, grace_days=30)
    db.session.commit()
    data = catalog.plan_to_data(plan)
    post = {k: ("" if v is None else ("y" if v is True else ("" if v is False else str(v)))) for k, v in data.items()}
    response = admin_client.post(f"/staff/admin/plans/{plan.id}/edit", data=post, follow_redirects=True)
    assert "nothing changed" in text_of(response)
    assert db.session.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == "plan.update")) == 0


def test_a_plan_with_terms_cannot_switch_to_organisational(admin_client, make_plan, make_member, make_term):
    plan = make_plan(code="STD", name="Standard")
    make_term(make_member(), plan)
    db.session.commit()
    response = admin_client.post(f"/staff/admin/plans/{plan.id}/edit",
                                 data=form(code="STD", name="Standard", is_organizational="y"))
    assert response.status_code == 422
    assert "cannot switch between individual and organisational" in error_beside(text_of(response),
                                                                                 "is_organizational")
    db.session.expire_all()
    assert db.session.get(Plan, plan.id).is_organizational is False


def test_unknown_plan_is_404(admin_client):
    assert admin_client.get("/staff/admin/plans/999/edit").status_code == 404
    assert admin_client.post("/staff/admin/plans/999/retire").status_code == 404


# ---------------------------------------------------------------- retire


def test_retire_keeps_existing_terms_and_stops_new_ones(admin_client, admin_user, make_plan, make_member,
                                                        make_term):
    plan = make_plan(code="OLD", name="Old plan", fee_minor=0)
    member = make_member()
    term = make_term(member, plan, starts_on=date(2025, 7, 1), today=TODAY)
    db.session.commit()
    before = (term.starts_on, term.ends_on, term.status, member.status, member.plan_id)

    response = admin_client.post(f"/staff/admin/plans/{plan.id}/retire", follow_redirects=True)
    assert response.status_code == 200
    assert "Plan Old plan retired" in text_of(response)
    db.session.expire_all()
    plan = db.session.get(Plan, plan.id)
    assert plan.is_active is False and plan.retired_at is not None
    term = db.session.get(Membership, term.id)
    assert (term.starts_on, term.ends_on, term.status, term.member.status, term.member.plan_id) == before
    audit = db.session.scalar(select(AuditLog).where(AuditLog.action == "plan.retire"))
    assert audit.actor_id == admin_user.id and audit.entity_id == plan.id

    # No longer offered: neither joins nor renewals on it.
    with pytest.raises(ValidationError, match="retired"):
        join(db.session, make_member(), plan, today=TODAY, now=NOW, actor=None)
    with pytest.raises(ValidationError, match="retired"):
        renew(db.session, term, today=TODAY, now=NOW, actor=None)
    db.session.rollback()
    assert plan not in catalog.offered_plans(db.session)

    listing = admin_client.get("/staff/admin/plans?show=retired")
    assert "Old plan" in listing.text and "Offer again" in listing.text
    assert "Old plan" not in admin_client.get("/staff/admin/plans?show=active").text

    # Retiring twice is refused with a message; offering again works.
    again = admin_client.post(f"/staff/admin/plans/{plan.id}/retire")
    assert again.status_code == 409 and "already retired" in text_of(again)
    assert admin_client.post(f"/staff/admin/plans/{plan.id}/unretire").status_code == 302
    db.session.expire_all()
    plan = db.session.get(Plan, plan.id)
    assert plan.is_active and plan.retired_at is None
    assert db.session.scalar(select(func.count()).select_from(AuditLog)
                             .where(AuditLog.action == "plan.unretire")) == 1
    assert admin_client.post(f"/staff/admin/plans/{plan.id}/unretire").status_code == 409


def test_retire_is_not_a_get(admin_client, make_plan):
    plan = make_plan()
    db.session.commit()
    assert admin_client.get(f"/staff/admin/plans/{plan.id}/retire").status_code == 405
    db.session.expire_all()
    assert db.session.get(Plan, plan.id).is_active


# ---------------------------------------------------------------- list


def test_list_shows_member_counts_per_plan(admin_client, make_plan, make_member, make_term):
    gold = make_plan(code="GOLD", name="Gold", fee_minor=0, grace_days=0)
    silver = make_plan(code="SILVER", name="Silver", fee_minor=0)
    for _ in range(3):
        make_term(make_member(), gold, starts_on=date(2025, 7, 1), today=TODAY)
    make_term(make_member(), gold, starts_on=date(2024, 1, 1), today=TODAY)  # ended 2024-12-31: lapsed
    db.session.commit()
    counts = catalog.member_counts(db.session)
    assert counts[gold.id]["all"] == 4 and counts[gold.id]["current"] == 3
    assert silver.id not in counts

    page = admin_client.get("/staff/admin/plans")
    assert page.status_code == 200
    row = page.text.split(">Gold</a>", 1)[1].split("</tr>", 1)[0]
    cells = [c.split("</td>")[0].strip() for c in row.split('<td class="text-end">')[1:]]
    assert cells[-2:] == ["3", "4"]


def test_counting_members_is_one_query_whatever_the_number_of_plans(app, make_plan, make_member, make_term):
    from sqlalchemy import event
    for n in range(5):
        plan = make_plan(fee_minor=0)
        make_term(make_member(), plan, starts_on=date(2025, 7, 1), today=TODAY)
    statements = []
    listener = lambda *a: statements.append(a[2])  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        catalog.member_counts(db.session)
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 2  # members grouped by plan, organisations grouped by plan


def test_list_paginates(admin_client, make_plan):
    for n in range(55):
        make_plan(code=f"C{n:02d}", name=f"Plan {n:02d}", sort_order=n)
    db.session.commit()
    first = admin_client.get("/staff/admin/plans")
    assert "Plan 00" in first.text and "Plan 54" not in first.text and "55 plans" in first.text
    second = admin_client.get("/staff/admin/plans?page=2")
    assert "Plan 54" in second.text and "Plan 00" not in second.text


# ---------------------------------------------------------------- who may


def admin_routes(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("admin."):
            args = {name: 1 for name in rule.arguments}
            path = rule.rule
            for name in rule.arguments:
                path = path.replace(f"<int:{name}>", "1").replace(f"<{name}>", "1")
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                yield method, path, args


def test_staff_who_are_not_admins_get_403_on_every_admin_page(app, staff_client, make_plan):
    make_plan()
    db.session.commit()
    routes = list(admin_routes(app))
    assert len(routes) >= 10
    before = (plan_count(), audit_count())
    for method, path, _ in routes:
        response = staff_client.open(path, method=method, data=form())
        assert response.status_code == 403, (method, path, response.status_code)
    assert (plan_count(), audit_count()) == before


def test_visitors_are_sent_to_the_login_page(app, client):
    for method, path, _ in admin_routes(app):
        response = client.open(path, method=method)
        assert response.status_code == 302 and "/login" in response.headers["Location"], (method, path)


# ---------------------------------------------------------------- the service on its own (for the API)


def test_catalog_partial_update_keeps_other_fields(app, make_plan):
    plan = make_plan(code="STD", name="Standard", fee_minor=5000, grace_days=14, period_months=6)
    changes = catalog.update_plan(db.session, plan, {"fee": 20}, actor=None, now=NOW)
    assert changes == {"fee_minor": [5000, 2000]}
    assert (plan.name, plan.grace_days, plan.period_months) == ("Standard", 14, 6)


def test_catalog_reports_every_field(app):
    with pytest.raises(catalog.PlanInvalid) as info:
        catalog.validate_plan(db.session, {"code": "a b", "fee": "-1", "period_kind": "monthly",
                                           "grace_days": None})
    errors = info.value.errors
    assert set(errors) >= {"code", "name", "fee", "period_kind", "grace_days"}
    assert info.value.field == "code" and info.value.status_code == 422


@pytest.mark.parametrize("typed,minor", [("1500", 150000), ("1500.5", 150050), ("1,500.00", 150000),
                                         (" 0.01 ", 1), ("0", 0), ("-0", 0), (".5", 50), (12, 1200),
                                         ("1 500", 150000)])
def test_parse_amount(typed, minor):
    assert catalog.parse_amount(typed) == minor


def test_describe_period(make_plan):
    assert catalog.describe_period(make_plan(period_kind="rolling", period_months=1)) == "1 month, rolling"
    assert catalog.describe_period(make_plan(period_kind="lifetime")) == "Lifetime"
    fixed = make_plan(period_kind="fixed", period_months=12, period_start_month=1, period_start_day=1)
    assert catalog.describe_period(fixed) == "12 months from 1 Jan"


def test_a_code_taken_at_the_same_moment_is_reported_beside_the_field(app, make_plan, monkeypatch):
    """Two admins saving the same new code at once: both pass the look-up, the unique index decides."""
    make_plan(code="STD", name="Standard")
    real = catalog.validate_plan

    def blind(session, data, plan=None):  # the other admin's row was not there when we looked
        values = real(session, {**data, "code": "FRESH"}, plan=plan)
        return {**values, "code": "STD"}

    monkeypatch.setattr(catalog, "validate_plan", blind)
    with pytest.raises(catalog.PlanInvalid) as info:
        catalog.create_plan(db.session, form(code="STD"), currency="BDT", actor=None, now=NOW)
    assert info.value.errors == {"code": "The code STD is already used by another plan."}
    assert db.session.scalar(select(func.count()).select_from(Plan)) == 1  # the session is still usable
