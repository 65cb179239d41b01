"""Engagement in the staff portal (issue 6): the at-risk list, the action taken on a risk alert,
a member's activity timeline, tags, and saved segments of the member list.

Scores are read-only here (the daily scoring job writes them). Each POST parses its form, calls one
operation of membership.engagement.queries, commits once and flashes what happened; a DomainError
rolls back and is shown to staff.
"""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from membership.core import time as clock
from membership.core.errors import DomainError
from membership.core.services import ACTIVITY_KINDS
from membership.engagement import queries as engagement
from membership.engagement.models import RiskAlert, Segment
from membership.extensions import db
from membership.members.models import Member
from membership.plans.models import Plan
from membership.staff import bp
from membership.staff.forms_engagement import AlertActionForm, SegmentForm, TagForm
from membership.staff.forms_member_page import to_id
from membership.web import get_or_404

ACTIVITY_PER_PAGE = 50
AT_RISK_PER_PAGE = 50
SEGMENTS_PER_PAGE = 100


def _actor():
    return current_user._get_current_object()


def _live_member(member_id: int) -> Member:
    member = get_or_404(Member, member_id)
    if member.erased_at is not None:
        abort(404)
    return member


def _page_no() -> int:
    return to_id(request.args.get("page")) or 1


# ---------------------------------------------------------------- the member's timeline


@bp.get("/members/<int:member_id>/activity")
def member_activity(member_id: int):
    """Every activity of the member, newest first, filtered by kind (?kind=), a page at a time."""
    member = get_or_404(Member, member_id)
    kind = request.args.get("kind") or ""
    if kind not in ACTIVITY_KINDS:
        kind = ""
    page = db.paginate(engagement.timeline_query(member.id, kind or None), page=_page_no(),
                       per_page=ACTIVITY_PER_PAGE, error_out=False)
    counts = engagement.kind_counts(db.session, member.id)
    return render_template("staff/engagement/activity.html", member=member, page=page, kind=kind, counts=counts,
                           kind_labels=engagement.KIND_LABELS)


# ---------------------------------------------------------------- risk alerts


@bp.post("/members/<int:member_id>/alert-action")
def alert_action(member_id: int):
    """Record the action taken on the member's open risk alert: an interaction, and the alert
    closed with it, in one transaction."""
    from membership.staff.views_member_page import render_member_page

    member = _live_member(member_id)
    form = AlertActionForm()
    alert = db.session.get(RiskAlert, to_id(form.alert_id.data) or 0)
    if alert is None or alert.member_id != member.id:
        flash(_('This alert does not exist (any more).'), "warning")
        return redirect(url_for("staff.member", member_id=member.id))
    if alert.status != "open":
        flash(_('This alert was already closed; nothing more was recorded.'), "info")
        return redirect(url_for("staff.member", member_id=member.id, _anchor="engagement"))
    if not form.validate():
        return render_member_page(member, alert_form=form, status=422)
    try:
        engagement.record_alert_action(db.session, alert, channel=form.action_channel.data,
                                       summary=form.action_summary.data, outcome=form.action_outcome.data,
                                       actor=_actor(), now=clock.utcnow())
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        name = f"action_{e.field}"
        target = form[name] if name in form._fields else None
        if target is not None:
            target.errors = [*target.errors, e.message]
        else:
            form.form_errors.append(e.message)
        return render_member_page(member, alert_form=form, status=e.status_code)
    flash(_('Action recorded as an interaction; the risk alert is closed.'), "success")
    return redirect(url_for("staff.member", member_id=member.id, _anchor="engagement"))


@bp.get("/at-risk")
def at_risk():
    """Members at high (or, on the second tab, medium) risk of not renewing, newest alerts first,
    filtered by plan and days to the end of the term."""
    today = clock.local_today()
    band = request.args.get("band") if request.args.get("band") in ("high", "medium") else "high"
    plan_id = to_id(request.args.get("plan_id"))
    within = to_id(request.args.get("within"))
    within = within if within in engagement.DAYS_CHOICES else None
    stmt = engagement.at_risk_query(band=band, today=today, plan_id=plan_id, within_days=within)
    page = db.paginate(stmt, page=_page_no(), per_page=AT_RISK_PER_PAGE, error_out=False)
    scores, alerts = engagement.page_details(db.session, [m.id for m in page.items])
    plans = db.session.scalars(select(Plan).order_by(Plan.is_active.desc(), Plan.sort_order, Plan.name)).all()
    args = {k: v for k, v in (("band", band), ("plan_id", plan_id), ("within", within)) if v}
    return render_template("staff/engagement/at_risk.html", page=page, band=band, plan_id=plan_id, within=within,
                           plans=plans, plan_names={p.id: p.name for p in plans}, args=args, today=today,
                           scores=scores, alerts=alerts, risk_labels=engagement.RISK_LABELS,
                           counts=engagement.band_counts(db.session), days_choices=engagement.DAYS_CHOICES,
                           reason_texts=engagement.reason_texts)


# ---------------------------------------------------------------- tags


@bp.post("/members/<int:member_id>/tags")
def add_tag(member_id: int):
    member = _live_member(member_id)
    form = TagForm()
    if not form.validate():
        flash(_("Tag not added: %(problems)s", problems="; ".join(str(e) for e in form.tag.errors or [_("enter a tag.")])),
              "warning")
        return redirect(url_for("staff.member", member_id=member.id, _anchor="tags"))
    try:
        tag = engagement.add_tag(db.session, member, form.tag.data, actor=_actor(), now=clock.utcnow())
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        flash(_("Tag not added: %(message)s", message=e.message), "warning")
        return redirect(url_for("staff.member", member_id=member.id, _anchor="tags"))
    if tag is None:
        flash(_('The member already has this tag.'), "info")
    else:
        flash(_("Tag “%(tag)s” added.", tag=tag), "success")
    return redirect(url_for("staff.member", member_id=member.id, _anchor="tags"))


@bp.post("/members/<int:member_id>/tags/remove")
def remove_tag(member_id: int):
    member = _live_member(member_id)
    tag = request.form.get("tag") or ""
    if engagement.remove_tag(db.session, member, tag, actor=_actor(), now=clock.utcnow()):
        db.session.commit()
        flash(_('Tag removed.'), "success")
    else:
        flash(_('The member does not have this tag.'), "info")
    return redirect(url_for("staff.member", member_id=member.id, _anchor="tags"))


# ---------------------------------------------------------------- segments


@bp.post("/segments/new")
def save_segment():
    """Save the member list's current filter (the query string of this POST) under a name."""
    from membership.staff.views_members import parse_member_filter

    f = parse_member_filter(request.args)
    args = f.as_args()
    form = SegmentForm()
    if not form.validate():
        flash(_("Segment not saved: %(problems)s",
                problems="; ".join(str(e) for e in form.name.errors or [_("enter a name.")])), "warning")
        return redirect(url_for("staff.members", **args))
    try:
        row = engagement.save_segment(db.session, form.name.data, args, actor=_actor(), now=clock.utcnow())
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        flash(_("Segment not saved: %(message)s", message=e.message), "warning")
        return redirect(url_for("staff.members", **args))
    flash(_("Saved segment “%(name)s”.", name=row.name), "success")
    return redirect(url_for("staff.members", segment=row.id))


@bp.get("/segments")
def segments():
    """The saved segments with how many members each matches now (one COUNT per segment)."""
    rows = db.session.scalars(select(Segment).order_by(Segment.name).limit(SEGMENTS_PER_PAGE)).all()
    counts = {s.id: engagement.segment_count(db.session, s) for s in rows}
    return render_template("staff/engagement/segments.html", segments=rows, counts=counts,
                           rename_form=SegmentForm(formdata=None))


@bp.post("/segments/<int:segment_id>/rename")
def rename_segment(segment_id: int):
    segment = get_or_404(Segment, segment_id)
    form = SegmentForm()
    if not form.validate():
        flash(_("Not renamed: %(problems)s", problems="; ".join(str(e) for e in form.name.errors or [_("enter a name.")])),
              "warning")
        return redirect(url_for("staff.segments"))
    try:
        engagement.rename_segment(db.session, segment, form.name.data, actor=_actor(), now=clock.utcnow())
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        flash(_("Not renamed: %(message)s", message=e.message), "warning")
        return redirect(url_for("staff.segments"))
    flash(_("Renamed to “%(name)s”.", name=segment.name), "success")
    return redirect(url_for("staff.segments"))


@bp.post("/segments/<int:segment_id>/delete")
def delete_segment(segment_id: int):
    segment = get_or_404(Segment, segment_id)
    name = segment.name
    engagement.delete_segment(db.session, segment, actor=_actor(), now=clock.utcnow())
    db.session.commit()
    flash(_("Deleted segment “%(name)s”.", name=name), "success")
    return redirect(url_for("staff.segments"))

