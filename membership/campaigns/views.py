"""Campaigns in the staff portal: the list with figures side by side, compose (per language),
the campaign page (recipients and who is left out, preview, test, send now or schedule, report),
and the member lists behind every figure.

Each POST parses its form, calls one operation of membership.campaigns.services, commits once and
flashes what happened; a DomainError rolls back and is shown beside the field or at the top.
"""
from __future__ import annotations

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from wtforms.fields.choices import SelectChoice

from membership.campaigns import services
from membership.campaigns.forms import ActionForm, CampaignForm, ScheduleForm, TestForm
from membership.campaigns.models import Campaign
from membership.core import time as clock
from membership.core.errors import DomainError, ValidationError
from membership.core.i18n import LANGUAGES
from membership.engagement.models import Segment
from membership.extensions import db
from membership.members.models import Member
from membership.notifications import templating
from membership.plans.models import Plan
from membership.staff import bp
from membership.web import get_or_404, page_or_last

PER_PAGE = 25
MEMBERS_PER_PAGE = 50
LANGUAGE_NAMES = {"en": "English", "bn": "বাংলা"}


def _actor():
    return current_user._get_current_object()


def reason_labels() -> dict[str, str]:
    return {"recipient": _("Will get it"), "erased": _("Erased"), "not_current": _("Not a current member"),
            "no_email": _("No email address"), "bouncing": _("Address bouncing"),
            "unsubscribed": _("Unsubscribed"), "no_opt_in": _("No marketing opt-in")}


def figure_labels() -> dict[str, str]:
    return {"total": _("Emails"), "queued": _("Queued"), "sent": _("Sent"), "failed": _("Failed"),
            "bounced": _("Bounced"), "cancelled": _("Cancelled"), "opened": _("Opened"), "clicked": _("Clicked"),
            "unsubscribed": _("Unsubscribed")}


def status_labels() -> dict[str, str]:
    return {"draft": _("Draft"), "scheduled": _("Scheduled"), "sending": _("Sending"), "sent": _("Sent")}


# ---------------------------------------------------------------- list


@bp.get("/campaigns")
def campaigns():
    page = page_or_last(select(Campaign).order_by(Campaign.created_at.desc(), Campaign.id.desc()), per_page=PER_PAGE)
    figures = services.list_figures(db.session, page.items)
    return render_template("staff/campaigns/list.html", page=page, figures=figures, labels=figure_labels(),
                           status_labels=status_labels())


# ---------------------------------------------------------------- compose


def _fill_choices(form: CampaignForm) -> None:
    form.segment.choices = [SelectChoice("", _("— none —"))] + [
        SelectChoice(str(i), n) for i, n in db.session.execute(select(Segment.id, Segment.name).order_by(Segment.name))]
    form.plan_id.choices = [SelectChoice("", _("— any —"))] + [
        SelectChoice(str(i), n) for i, n in db.session.execute(select(Plan.id, Plan.name).order_by(Plan.name))]


def _form_filters(form: CampaignForm) -> dict:
    filters = {}
    if form.segment.data:
        filters["segment"] = form.segment.data
    if form.status.data:
        filters["status"] = list(form.status.data)
    if form.plan_id.data:
        filters["plan_id"] = form.plan_id.data
    if (form.tag.data or "").strip():
        filters["tag"] = [form.tag.data.strip()]
    return filters


def _form_versions(form: CampaignForm) -> dict[str, services.VersionText]:
    return {lang: services.VersionText(form[f"{lang}_subject"].data or "", form[f"{lang}_body_text"].data or "",
                                       form[f"{lang}_body_html"].data or "") for lang in LANGUAGES}


def _show_error(form, exc: DomainError) -> None:
    """Beside the field it is about, else at the top of the page."""
    if exc.field and exc.field in form._fields:
        form[exc.field].errors = list(form[exc.field].errors or []) + [exc.message]
    else:
        flash(exc.message, "danger")


def _compose(campaign: Campaign | None):
    form = CampaignForm()
    _fill_choices(form)
    status = 200
    if request.method == "GET":
        if campaign is None:
            start = templating.current_source(db.session, services.TEMPLATE_KEY)
            lang = services.default_language()
            form[f"{lang}_subject"].data, form[f"{lang}_body_text"].data = start.subject, start.body_text
            form[f"{lang}_body_html"].data = start.body_html or ""
            if request.args.get("segment"):
                form.segment.data = request.args.get("segment")
        else:
            form.name.data, form.kind.data = campaign.name, campaign.kind
            f = campaign.filters or {}
            form.segment.data = str(f.get("segment") or "")
            form.status.data = list(f.get("status") or [])
            form.plan_id.data = str(f.get("plan_id") or "")
            form.tag.data = (f.get("tag") or [""])[0]
            for v in campaign.versions:
                form[f"{v.language}_subject"].data, form[f"{v.language}_body_text"].data = v.subject, v.body_text
                form[f"{v.language}_body_html"].data = v.body_html or ""
    elif not form.validate():
        status = 422
    else:
        try:
            saved = services.save_campaign(db.session, campaign, name=form.name.data, kind=form.kind.data,
                                           filters=_form_filters(form), versions=_form_versions(form),
                                           actor=_actor(), now=clock.utcnow())
            db.session.commit()
        except DomainError as exc:
            db.session.rollback()
            _show_error(form, exc)
            status = 422
        else:
            flash(_("Saved the draft “%(name)s”. Check who gets it and preview it below.", name=saved.name), "success")
            return redirect(url_for("staff.campaign", campaign_id=saved.id))
    return render_template("staff/campaigns/compose.html", form=form, campaign=campaign, languages=LANGUAGES,
                           language_names=LANGUAGE_NAMES, default_language=services.default_language(),
                           placeholders=templating.COMMON_PLACEHOLDERS), status


@bp.route("/campaigns/new", methods=["GET", "POST"])
def campaign_new():
    return _compose(None)


@bp.route("/campaigns/<int:campaign_id>/edit", methods=["GET", "POST"])
def campaign_edit(campaign_id: int):
    campaign = get_or_404(Campaign, campaign_id)
    if campaign.status != "draft":
        flash(_("Only a draft can be changed; this campaign is %(status)s.",
                status=status_labels()[campaign.status].lower()), "warning")
        return redirect(url_for("staff.campaign", campaign_id=campaign.id))
    return _compose(campaign)


# ---------------------------------------------------------------- the campaign page


def _find_member(text: str) -> Member | None:
    from membership.members.services import find_by_email

    text = (text or "").strip()
    if not text:
        return None
    member = (find_by_email(db.session, text) if "@" in text
              else db.session.scalar(select(Member).where(Member.member_number == text.upper())))
    return member if member is not None and member.erased_at is None else None


def _preview_member(campaign: Campaign, text: str) -> tuple[Member | None, str | None]:
    """The member named by `text`, else the first recipient; with a problem to show."""
    if text:
        member = _find_member(text)
        if member is None:
            return None, _("No member has the number or email “%(text)s”.", text=text)
        return member, None
    if campaign.status in ("sending", "sent"):
        # the first member it went to (through the outbox's source index, not the audience query)
        # (no ORDER BY: ordered by id, SQLite walks the whole table to the campaign's rows)
        first_id = db.session.scalar(services.sent_member_ids(campaign).limit(1))
        return (db.session.get(Member, first_id) if first_id else None), None
    first = db.session.scalar(select(Member).where(Member.id.in_(services.campaignable_members(
        db.session, filters=campaign.filters, kind=campaign.kind))).order_by(Member.id).limit(1))
    return first, None


def _render_campaign_page(campaign: Campaign, *, schedule_form=None, test_form=None, status: int = 200):
    now = clock.utcnow()
    test_form = test_form or TestForm(formdata=None, member=request.args.get("member", "")[:254])
    schedule_form = schedule_form or ScheduleForm(formdata=None)
    counts = report = None
    try:
        counts = services.audience_counts(db.session, campaign) if campaign.status in ("draft", "scheduled") else None
    except ValidationError as exc:
        flash(_("The recipients cannot be worked out: %(problem)s", problem=exc.message), "danger")
    if campaign.status in ("sending", "sent"):
        report = services.report(db.session, campaign)
    member, member_problem = _preview_member(campaign, test_form.member.data or "")
    if member_problem:
        test_form.member.errors = list(test_form.member.errors or []) + [member_problem]
    language = test_form.language.data or None
    rendered = version = preview_error = None
    try:
        rendered, version = services.preview(db.session, campaign, member, now=now, language=language)
    except ValidationError as exc:
        preview_error = exc.message
    return render_template("staff/campaigns/campaign.html", campaign=campaign, counts=counts, report=report,
                           reasons=reason_labels(), labels=figure_labels(), status_labels=status_labels(),
                           filters=services.describe_filters(db.session, campaign.filters),
                           member=member, rendered=rendered, version=version, preview_error=preview_error,
                           test_form=test_form, schedule_form=schedule_form, action_form=ActionForm(),
                           language_names=LANGUAGE_NAMES, rate=services.rate_per_minute()), status


@bp.get("/campaigns/<int:campaign_id>")
def campaign(campaign_id: int):
    return _render_campaign_page(get_or_404(Campaign, campaign_id))[0]


@bp.get("/campaigns/<int:campaign_id>/preview.html")
def campaign_preview_html(campaign_id: int):
    """The HTML version for the preview frame, with the outbox preview's sandboxing headers."""
    from membership.staff.views_notifications import _sandboxed_html

    campaign = get_or_404(Campaign, campaign_id)
    member, _problem = _preview_member(campaign, request.args.get("member", "")[:254])
    language = request.args.get("language") if request.args.get("language") in LANGUAGES else None
    try:
        rendered, _version = services.preview(db.session, campaign, member, now=clock.utcnow(), language=language)
    except ValidationError as exc:
        return Response(str(exc), mimetype="text/plain", status=422)
    if not rendered.body_html:
        abort(404)
    return _sandboxed_html(rendered.body_html)


@bp.get("/campaigns/<int:campaign_id>/audience")
def campaign_audience(campaign_id: int):
    """The members the campaign reaches, or leaves out for one reason (?reason=)."""
    campaign = get_or_404(Campaign, campaign_id)
    labels = reason_labels()
    reason = request.args.get("reason") or "recipient"
    if reason not in labels:
        abort(404)
    try:
        stmt = services.audience_members(db.session, campaign, reason)
    except ValidationError as exc:
        flash(exc.message, "danger")
        return redirect(url_for("staff.campaign", campaign_id=campaign.id))
    page = page_or_last(stmt, per_page=MEMBERS_PER_PAGE)
    return render_template("staff/campaigns/members.html", campaign=campaign, page=page, title=labels[reason],
                           endpoint="staff.campaign_audience", args={"campaign_id": campaign.id, "reason": reason})


@bp.get("/campaigns/<int:campaign_id>/members")
def campaign_members(campaign_id: int):
    """The members behind one figure of the report (?figure=opened, ?figure=clicked&url=...)."""
    campaign = get_or_404(Campaign, campaign_id)
    figure = request.args.get("figure") or ""
    url = (request.args.get("url") or "")[:500] or None
    labels = figure_labels()
    if figure not in services.FIGURES:
        abort(404)
    page = page_or_last(services.figure_members(db.session, campaign, figure, url), per_page=MEMBERS_PER_PAGE)
    title = labels[figure] + (f": {url}" if url and figure == "clicked" else "")
    return render_template("staff/campaigns/members.html", campaign=campaign, page=page, title=title,
                           endpoint="staff.campaign_members",
                           args={"campaign_id": campaign.id, "figure": figure, **({"url": url} if url else {})})


# ---------------------------------------------------------------- actions


def _act(campaign: Campaign, action, success: str):
    form = ActionForm()
    if not form.validate():
        flash(_("Your form expired; please try again."), "danger")
        return redirect(url_for("staff.campaign", campaign_id=campaign.id))
    try:
        action()
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "warning" if exc.status_code == 409 else "danger")
    else:
        flash(success, "success")
    return redirect(url_for("staff.campaign", campaign_id=campaign.id))


@bp.post("/campaigns/<int:campaign_id>/send-now")
def campaign_send_now(campaign_id: int):
    campaign = get_or_404(Campaign, campaign_id)
    now = clock.utcnow()
    return _act(campaign, lambda: services.schedule(db.session, campaign, send_at=now, actor=_actor(), now=now),
                _("Sending: the scheduler queues the emails within a minute and sends %(rate)s a minute.",
                  rate=services.rate_per_minute()))


@bp.post("/campaigns/<int:campaign_id>/schedule")
def campaign_schedule(campaign_id: int):
    campaign = get_or_404(Campaign, campaign_id)
    form = ScheduleForm()
    if not form.validate():
        return _render_campaign_page(campaign, schedule_form=form, status=422)
    now = clock.utcnow()
    try:
        send_at = services.parse_local_moment(form.send_at.data)
        services.schedule(db.session, campaign, send_at=send_at, actor=_actor(), now=now)
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        if exc.field == "send_at":
            form.send_at.errors = [exc.message]
        else:
            flash(exc.message, "warning" if exc.status_code == 409 else "danger")
        db.session.expire_all()
        return _render_campaign_page(get_or_404(Campaign, campaign_id), schedule_form=form,
                                     status=exc.status_code)
    flash(_("Scheduled for %(when)s.", when=form.send_at.data), "success")
    return redirect(url_for("staff.campaign", campaign_id=campaign_id))


@bp.post("/campaigns/<int:campaign_id>/unschedule")
def campaign_unschedule(campaign_id: int):
    campaign = get_or_404(Campaign, campaign_id)
    return _act(campaign, lambda: services.unschedule(db.session, campaign, actor=_actor(), now=clock.utcnow()),
                _("Back to draft: nothing will be sent until you send or schedule it again."))


@bp.post("/campaigns/<int:campaign_id>/delete")
def campaign_delete(campaign_id: int):
    campaign = get_or_404(Campaign, campaign_id)
    form = ActionForm()
    if not form.validate():
        abort(400)
    name = campaign.name
    try:
        services.delete_draft(db.session, campaign, actor=_actor(), now=clock.utcnow())
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "warning")
        return redirect(url_for("staff.campaign", campaign_id=campaign_id))
    flash(_("Deleted the draft “%(name)s”.", name=name), "success")
    return redirect(url_for("staff.campaigns"))


@bp.post("/campaigns/<int:campaign_id>/test")
def campaign_test(campaign_id: int):
    campaign = get_or_404(Campaign, campaign_id)
    form = TestForm()
    if not form.validate():
        return _render_campaign_page(campaign, test_form=form, status=422)
    member, problem = _preview_member(campaign, form.member.data or "")
    if problem:
        form.member.errors = [problem]
        return _render_campaign_page(campaign, test_form=form, status=422)
    try:
        services.send_test(db.session, campaign, user=_actor(), member=member, now=clock.utcnow(),
                           language=form.language.data or None)
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "danger")
        return _render_campaign_page(campaign, test_form=form, status=exc.status_code)
    flash(_("A test is on its way to %(email)s (it goes out with the next outbox run).", email=current_user.email),
          "success")
    return redirect(url_for("staff.campaign", campaign_id=campaign.id, member=form.member.data or None))
