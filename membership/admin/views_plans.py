"""Admin: the plan catalogue (list with member counts, create, edit, retire, offer again)."""
from __future__ import annotations

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from membership.admin import bp
from membership.admin.forms import PlanForm
from membership.core.errors import DomainError
from membership.core.time import local_today, utcnow
from membership.extensions import db
from membership.plans import catalog
from membership.plans.models import Plan
from membership.web import get_or_404

PLANS_PER_PAGE = 50
SHOW = {"all": None, "active": True, "retired": False}


@bp.app_template_filter("plan_period")
def plan_period(plan: Plan) -> str:
    return catalog.describe_period(plan)


@bp.get("/plans")
def plans():
    return _list_page()


def _list_page(status: int = 200):
    show = request.args.get("show", "all")
    if show not in SHOW:
        show = "all"
    query = select(Plan)
    if SHOW[show] is not None:
        query = query.where(Plan.is_active.is_(SHOW[show]))
    # Plans on offer first, in the order members see them; retired ones after.
    query = query.order_by(Plan.is_active.desc(), Plan.sort_order, Plan.name, Plan.id)
    page = db.paginate(query, per_page=PLANS_PER_PAGE, error_out=False)
    return render_template("admin/plans/list.html", page=page, show=show,
                           counts=catalog.member_counts(db.session)), status


def _apply_errors(form: PlanForm, error: DomainError) -> list[str]:
    """Put each message beside its field; return the ones that belong to no field."""
    errors = getattr(error, "errors", None) or {error.field: error.message}
    general = []
    for field, message in errors.items():
        if field and field in form:
            form[field].errors = list(form[field].errors) + [message]
        else:
            general.append(message)
    return general


def _render_form(form: PlanForm, plan: Plan | None, general: list[str] | None = None, status: int = 200):
    example = None
    if plan is not None:
        try:
            today = local_today()
            example = (today, *catalog.example_term(plan, today))
        except DomainError:
            example = None
    return render_template("admin/plans/form.html", form=form, plan=plan, general_errors=general or [],
                           example=example,
                           currency=plan.currency if plan is not None else current_app.config["CURRENCY"]), status


@bp.route("/plans/new", methods=["GET", "POST"])
def plan_new():
    form = PlanForm()
    if request.method == "GET":
        return _render_form(form, None)
    if not form.validate():
        return _render_form(form, None, status=422)
    try:
        plan = catalog.create_plan(db.session, form.plan_data(), currency=current_app.config["CURRENCY"],
                                   actor=current_user, now=utcnow())
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        return _render_form(form, None, _apply_errors(form, e), status=e.status_code)
    flash(_("Plan %(name)s (%(code)s) created: %(plan)s.", name=plan.name, code=plan.code, plan=catalog.describe_period(plan)), "success")
    return redirect(url_for("admin.plans"))


@bp.route("/plans/<int:plan_id>/edit", methods=["GET", "POST"])
def plan_edit(plan_id: int):
    plan = get_or_404(Plan, plan_id)
    if request.method == "GET":
        return _render_form(PlanForm.for_plan(catalog.plan_to_data(plan)), plan)
    form = PlanForm()
    if not form.validate():
        return _render_form(form, plan, status=422)
    try:
        changes = catalog.update_plan(db.session, plan, form.plan_data(), actor=current_user, now=utcnow())
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        return _render_form(form, plan, _apply_errors(form, e), status=e.status_code)
    if changes:
        flash(_("Plan %(name)s saved (changed: %(changes)s). Existing terms are unchanged.", name=plan.name, changes=', '.join(sorted(changes))),
              "success")
    else:
        flash(_("Plan %(name)s: nothing changed.", name=plan.name), "info")
    return redirect(url_for("admin.plans"))


@bp.post("/plans/<int:plan_id>/retire")
def plan_retire(plan_id: int):
    plan = get_or_404(Plan, plan_id)
    try:
        catalog.retire_plan(db.session, plan, actor=current_user, now=utcnow())
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        flash(str(e), "error")
        return _list_page(e.status_code)
    flash(_("Plan %(name)s retired: no new joins or renewals on it. Existing terms run on unchanged.", name=plan.name),
          "success")
    return redirect(url_for("admin.plans"))


@bp.post("/plans/<int:plan_id>/unretire")
def plan_unretire(plan_id: int):
    plan = get_or_404(Plan, plan_id)
    try:
        catalog.unretire_plan(db.session, plan, actor=current_user, now=utcnow())
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        flash(str(e), "error")
        return _list_page(e.status_code)
    flash(_("Plan %(name)s is offered again.", name=plan.name), "success")
    return redirect(url_for("admin.plans"))
