"""Survey pages: the staff builder and results (/staff/surveys), the members' portal list
(/my/surveys) and the signed link that needs no sign-in (/surveys/r/<token>). Every rule is in
membership.surveys.services; these views translate its errors into messages on the page."""
from __future__ import annotations

from flask import Blueprint, Flask, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, select
from wtforms.fields.choices import SelectChoice

from membership.core import time as clock
from membership.core.errors import DomainError, ValidationError
from membership.core.services import record_audit
from membership.extensions import db, limiter
from membership.members.models import Member
from membership.surveys import services
from membership.surveys.forms import ActionForm, AnswerForm, FollowUpForm, InviteForm, QuestionForm, SurveyForm
from membership.surveys.models import Survey, SurveyFollowUp, SurveyQuestion, SurveyResponse
from membership.web import get_or_404, page_or_last, require_roles

staff_bp = Blueprint("surveys", __name__, url_prefix="/staff/surveys")
staff_bp.before_request(require_roles("staff", "admin"))
portal_bp = Blueprint("portal_surveys", __name__, url_prefix="/my/surveys")
portal_bp.before_request(require_roles("member"))
public_bp = Blueprint("survey_link", __name__, url_prefix="/surveys")

PER_PAGE = 50


def init_app(app: Flask) -> None:
    app.register_blueprint(staff_bp)
    app.register_blueprint(portal_bp)
    app.register_blueprint(public_bp)


def _actor():
    return current_user._get_current_object()


def _put_errors(form, error: DomainError, default: str) -> None:
    name = error.field if error.field in form._fields else default
    form[name].errors = [*form[name].errors, error.message]


@staff_bp.app_template_global()
def help_survey_scores():
    """The effort and satisfaction figures for the help KPIs on the staff home (one include line)."""
    return services.help_scores(db.session, now=clock.utcnow())


# ---------------------------------------------------------------- staff: list and builder


@staff_bp.get("/")
def index():
    page = page_or_last(select(Survey).order_by(Survey.created_at.desc(), Survey.id.desc()), per_page=PER_PAGE)
    ids = [s.id for s in page.items]
    counts = dict(db.session.execute(select(SurveyResponse.survey_id, func.count()).where(
        SurveyResponse.survey_id.in_(ids)).group_by(SurveyResponse.survey_id)).all()) if ids else {}
    open_follow_ups = db.session.scalar(select(func.count()).select_from(SurveyFollowUp)
                                        .where(SurveyFollowUp.status == "open")) or 0
    has_help = db.session.scalar(select(func.count()).select_from(Survey).where(Survey.trigger == "help")) or 0
    return render_template("staff/surveys/index.html", page=page, today=clock.local_today(),
                           open_follow_ups=open_follow_ups, has_help=has_help, action_form=ActionForm(), counts=counts,
                           trigger_labels=services.TRIGGER_LABELS)


def _event_choices(form: SurveyForm, survey: Survey | None = None) -> None:
    from membership.events.models import Event
    events = db.session.scalars(select(Event).where(Event.status.in_(("published", "finished")))
                                .order_by(Event.starts_at.desc()).limit(100)).all()
    choices = [SelectChoice("", _("Every event that ends while the survey is open"))]
    choices += [SelectChoice(str(e.id), f"{e.title} ({clock.to_local(e.starts_at):%d %b %Y})") for e in events]
    if survey is not None and survey.event_id and str(survey.event_id) not in {c.value for c in choices}:
        choices.append(SelectChoice(str(survey.event_id), survey.event.title if survey.event else str(survey.event_id)))
    form.event_id.choices = choices


def _validated(form: SurveyForm):
    from membership.events.models import Event
    data = services.validate_survey(form.raw())
    if data.event_id is not None and db.session.get(Event, data.event_id) is None:
        raise ValidationError(_("Choose an event from the list."), field="event_id")
    return data


@staff_bp.route("/new", methods=["GET", "POST"])
def new():
    form = SurveyForm()
    _event_choices(form)
    if request.method == "GET":
        form.opens_on.data = clock.local_today()
        return render_template("staff/surveys/new.html", form=form)
    if form.validate_on_submit():
        try:
            survey = services.create_survey(db.session, _validated(form), actor=_actor(), now=clock.utcnow())
            db.session.commit()
            flash(_("Survey created. Now add its questions."), "success")
            return redirect(url_for("surveys.edit", survey_id=survey.id))
        except DomainError as e:
            db.session.rollback()
            _put_errors(form, e, "title")
    return render_template("staff/surveys/new.html", form=form), 422


def _builder(survey: Survey, *, form=None, question_form=None, invite_form=None, status=200):
    from membership.engagement.models import Segment
    if form is None:
        form = SurveyForm(formdata=None, obj=survey)
        form.event_id.data = str(survey.event_id or "")
    _event_choices(form, survey)
    question_form = question_form or QuestionForm(formdata=None)
    invite_form = invite_form or InviteForm(formdata=None)
    segments = db.session.scalars(select(Segment).order_by(Segment.name)).all()
    invite_form.audience.choices = [SelectChoice("current", _("All current members"))] + [
        SelectChoice(f"segment:{s.id}", _("Segment: %(name)s", name=s.name)) for s in segments]
    responses = db.session.scalar(select(func.count()).select_from(SurveyResponse)
                                  .where(SurveyResponse.survey_id == survey.id)) or 0
    return render_template(
        "staff/surveys/edit.html", survey=survey, form=form, question_form=question_form, invite_form=invite_form,
        action_form=ActionForm(), today=clock.local_today(), responses=responses,
        invited=services.invited_count(db.session, survey), kind_labels=services.KIND_LABELS,
        trigger_labels=services.TRIGGER_LABELS), status


@staff_bp.get("/<int:survey_id>")
def edit(survey_id: int):
    return _builder(get_or_404(Survey, survey_id))


@staff_bp.post("/<int:survey_id>")
def update(survey_id: int):
    survey = get_or_404(Survey, survey_id)
    form = SurveyForm()
    _event_choices(form, survey)
    if form.validate_on_submit():
        try:
            services.update_survey(db.session, survey, _validated(form), actor=_actor(), now=clock.utcnow())
            db.session.commit()
            flash(_("Survey saved."), "success")
            return redirect(url_for("surveys.edit", survey_id=survey.id))
        except DomainError as e:
            db.session.rollback()
            survey = get_or_404(Survey, survey_id)
            _put_errors(form, e, "title")
    return _builder(survey, form=form, status=422)


@staff_bp.post("/<int:survey_id>/questions")
def add_question(survey_id: int):
    survey = get_or_404(Survey, survey_id)
    form = QuestionForm()
    if form.validate_on_submit():
        try:
            services.add_question(db.session, survey, services.validate_question(form.raw()), actor=_actor(),
                                  now=clock.utcnow())
            db.session.commit()
            flash(_("Question added."), "success")
            return redirect(url_for("surveys.edit", survey_id=survey.id) + "#questions")
        except DomainError as e:
            db.session.rollback()
            survey = get_or_404(Survey, survey_id)
            _put_errors(form, e, "prompt")
    return _builder(survey, question_form=form, status=422)


def _question(survey_id: int, question_id: int) -> SurveyQuestion:
    question = get_or_404(SurveyQuestion, question_id)
    if question.survey_id != survey_id:
        abort(404)
    return question


@staff_bp.route("/<int:survey_id>/questions/<int:question_id>", methods=["GET", "POST"])
def edit_question(survey_id: int, question_id: int):
    question = _question(survey_id, question_id)
    if request.method == "GET":
        form = QuestionForm(formdata=None, obj=question)
        form.options.data = "\n".join(question.options or [])
        return render_template("staff/surveys/question.html", form=form, question=question, survey=question.survey)
    form = QuestionForm()
    if form.validate_on_submit():
        try:
            services.update_question(db.session, question, services.validate_question(form.raw()), actor=_actor(),
                                     now=clock.utcnow())
            db.session.commit()
            flash(_("Question saved."), "success")
            return redirect(url_for("surveys.edit", survey_id=survey_id) + "#questions")
        except DomainError as e:
            db.session.rollback()
            question = _question(survey_id, question_id)
            _put_errors(form, e, "prompt")
    return render_template("staff/surveys/question.html", form=form, question=question, survey=question.survey), 422


def _action(survey_id: int, do, done: str, anchor: str = ""):
    survey = get_or_404(Survey, survey_id)
    if not ActionForm().validate_on_submit():
        flash(_("The form expired; please try again."), "danger")
        return redirect(url_for("surveys.edit", survey_id=survey_id))
    try:
        do(survey)
        db.session.commit()
        flash(done, "success")
    except DomainError as e:
        db.session.rollback()
        flash(e.message, "danger")
    return redirect(url_for("surveys.edit", survey_id=survey_id) + anchor)


@staff_bp.post("/<int:survey_id>/questions/<int:question_id>/delete")
def delete_question(survey_id: int, question_id: int):
    question = _question(survey_id, question_id)
    return _action(survey_id, lambda s: services.delete_question(db.session, question, actor=_actor(),
                                                                 now=clock.utcnow()),
                   _("Question deleted."), "#questions")


@staff_bp.post("/<int:survey_id>/questions/<int:question_id>/move")
def move_question(survey_id: int, question_id: int):
    question = _question(survey_id, question_id)
    direction = -1 if request.args.get("dir") == "up" else 1
    return _action(survey_id, lambda s: services.move_question(db.session, question, direction, actor=_actor(),
                                                               now=clock.utcnow()),
                   _("Question moved."), "#questions")


@staff_bp.post("/<int:survey_id>/publish")
def publish(survey_id: int):
    return _action(survey_id, lambda s: services.publish(db.session, s, actor=_actor(), now=clock.utcnow()),
                   _("Survey published."))


@staff_bp.post("/<int:survey_id>/close")
def close(survey_id: int):
    return _action(survey_id, lambda s: services.close(db.session, s, actor=_actor(), now=clock.utcnow(),
                                                       today=clock.local_today()),
                   _("Survey closed: no more answers are taken."))


@staff_bp.post("/<int:survey_id>/invite")
def invite(survey_id: int):
    from membership.engagement.models import Segment
    survey = get_or_404(Survey, survey_id)
    form = InviteForm()
    segments = {f"segment:{s.id}": s for s in db.session.scalars(select(Segment))}
    form.audience.choices = [SelectChoice("current", "")] + [SelectChoice(k, "") for k in segments]
    if not form.validate_on_submit():
        return _builder(survey, invite_form=form, status=422)
    audience = form.audience.data or ""
    if audience != "current" and audience not in segments:
        form.audience.errors = [_("Choose all current members or a saved segment.")]
        return _builder(survey, invite_form=form, status=422)
    segment_id = segments[audience].id if audience in segments else None
    now = clock.utcnow()
    try:
        queued = services.send_invitations(db.session, survey, segment_id=segment_id, actor=_actor(), now=now,
                                           today=clock.local_today(now))
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        survey = get_or_404(Survey, survey_id)
        form.audience.errors = [e.message]
        if survey.trigger != "manual":  # no invitation form on its page: say it at the top
            flash(e.message, "danger")
        return _builder(survey, invite_form=form, status=422)
    flash(_("%(count)s invitations queued (members invited before are not emailed twice).", count=queued), "success")
    return redirect(url_for("surveys.edit", survey_id=survey_id))


@staff_bp.post("/help-survey")
def create_help_survey():
    if not ActionForm().validate_on_submit():
        abort(400)
    now = clock.utcnow()
    survey = services.standard_help_survey(db.session, actor=_actor(), now=now, today=clock.local_today(now))
    db.session.commit()
    flash(_("The help-desk survey is open: members are asked how easy it was to get help each time a request is "
            "resolved."), "success")
    return redirect(url_for("surveys.edit", survey_id=survey.id))


# ---------------------------------------------------------------- staff: results


def _context_arg() -> str | None:
    raw = request.args.get("context")
    if raw is None:
        return None
    raw = raw.strip()[:40]
    return raw


@staff_bp.get("/<int:survey_id>/results")
def results(survey_id: int):
    survey = get_or_404(Survey, survey_id)
    context = _context_arg()
    figures = services.results(db.session, survey, context=context)
    contexts = db.session.execute(
        select(SurveyResponse.context_key, func.count()).where(SurveyResponse.survey_id == survey.id)
        .group_by(SurveyResponse.context_key).order_by(SurveyResponse.context_key).limit(200)).all()
    return render_template("staff/surveys/results.html", survey=survey, figures=figures, context=context,
                           contexts=contexts, invited=services.invited_count(db.session, survey),
                           kind_labels=services.KIND_LABELS)


@staff_bp.get("/<int:survey_id>/respondents")
def respondents(survey_id: int):
    survey = get_or_404(Survey, survey_id)
    question = None
    raw_q = (request.args.get("question") or "").strip()
    if raw_q:
        if not (raw_q.isascii() and raw_q.isdigit()):
            abort(404)
        question = _question(survey_id, int(raw_q))
    value = (request.args.get("value") or "").strip()[:200] or None
    context = _context_arg()
    page = page_or_last(services.respondents_query(survey, question=question, value=value, context=context),
                        per_page=PER_PAGE)
    args = {k: v for k, v in (("question", raw_q), ("value", value), ("context", context)) if v not in (None, "")}
    return render_template("staff/surveys/respondents.html", survey=survey, question=question, value=value,
                           page=page, args=args)


@staff_bp.get("/<int:survey_id>/export.csv")
def export(survey_id: int):
    from membership.members import csvio
    survey = get_or_404(Survey, survey_id)
    context = _context_arg()
    now = clock.utcnow()
    record_audit(db.session, actor=_actor(), action="survey.export", entity=survey, now=now,
                 summary=f"Exported the answers of the survey {survey.title!r}")
    db.session.commit()
    body = "".join(csvio.iter_csv_text(services.export_rows(db.session, survey, context=context)))
    return Response(body.encode("utf-8"), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="survey-{survey.id}.csv"'})


# ---------------------------------------------------------------- staff: follow-ups


@staff_bp.get("/follow-ups")
def follow_ups():
    status = request.args.get("status") if request.args.get("status") in ("open", "done", "all") else "open"
    page = page_or_last(services.follow_ups_query(status), per_page=PER_PAGE)
    return render_template("staff/surveys/follow_ups.html", page=page, status=status, form=FollowUpForm(formdata=None))


@staff_bp.post("/follow-ups/<int:follow_up_id>")
def follow_up_done(follow_up_id: int):
    follow_up = get_or_404(SurveyFollowUp, follow_up_id)
    form = FollowUpForm()
    if form.validate_on_submit():
        try:
            services.close_follow_up(db.session, follow_up, note=form.note.data, actor=_actor(), now=clock.utcnow())
            db.session.commit()
            flash(_("Follow-up done."), "success")
            return redirect(url_for("surveys.follow_ups"))
        except DomainError as e:
            db.session.rollback()
            form.note.errors = [*form.note.errors, e.message]
    page = page_or_last(services.follow_ups_query("open"), per_page=PER_PAGE)
    return render_template("staff/surveys/follow_ups.html", page=page, status="open", form=form,
                           failed_id=follow_up_id), 422


# ---------------------------------------------------------------- answering (portal and link)


def _answer_page(survey: Survey, member: Member, *, context_key: str, action: str, channel: str,
                 template: str, **extra):
    """GET shows the form (with the member's answers, if any); POST records them."""
    now = clock.utcnow()
    today = clock.local_today(now)
    existing = services.response_of(db.session, survey, member, context_key)
    form = AnswerForm()
    errors: dict[int, str] = {}
    problem = None
    status = 200
    values = services.answers_for_form(existing)
    if request.method == "POST":
        values = {q.id: (request.form.getlist(f"q{q.id}") if q.kind == "multiple" else request.form.get(f"q{q.id}", ""))
                  for q in survey.questions}
        if not form.validate_on_submit():
            problem = _("The form expired; please send your answers again.")
            status = 400
        else:
            try:
                services.submit(db.session, survey, member, services.parse_answers(request.form, survey), now=now,
                                today=today, context_key=context_key, channel=channel)
                db.session.commit()
                return render_template("surveys/thanks.html", survey=survey, edited=existing is not None,
                                       again=action, **extra)
            except services.AnswerErrors as e:
                db.session.rollback()
                errors, problem, status = e.errors, e.message, 422
            except DomainError as e:
                db.session.rollback()
                problem, status = e.message, e.status_code
    return render_template(template, survey=survey, member=member, form=form, values=values, errors=errors,
                           problem=problem, existing=existing, open=survey.is_open(today), closed=survey.is_closed(today),
                           action=action,
                           **extra), status


@public_bp.route("/r/<token>", methods=["GET", "POST"])
@limiter.limit("60 per hour", methods=["POST"])
def answer_link(token: str):
    """The link in an invitation: answers without signing in (the signed token names the member)."""
    try:
        survey, member, context_key = services.load_token(db.session, token, now=clock.utcnow())
    except DomainError as e:
        return render_template("surveys/link_problem.html", problem=e.message), 404
    return _answer_page(survey, member, context_key=context_key, channel="link", template="surveys/answer.html",
                        action=url_for("survey_link.answer_link", token=token))


def _me() -> Member | None:
    member = current_user.member
    if member is None or member.erased_at is not None:
        return None
    return member


@portal_bp.get("/")
def portal_list():
    member = _me()
    if member is None:
        return redirect(url_for("portal.home"))
    items = services.portal_surveys(db.session, member, today=clock.local_today())
    return render_template("portal/surveys/index.html", items=items)


@portal_bp.route("/<int:survey_id>", methods=["GET", "POST"])
def portal_answer(survey_id: int):
    member = _me()
    if member is None:
        return redirect(url_for("portal.home"))
    survey = get_or_404(Survey, survey_id)
    if survey.status != "published" or survey.trigger != "manual" or not survey.in_portal:
        abort(404)
    return _answer_page(survey, member, context_key="", channel="portal", template="portal/surveys/answer.html",
                        action=url_for("portal_surveys.portal_answer", survey_id=survey.id))
