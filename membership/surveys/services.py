"""Surveys: building them, inviting members, answering (once per member, editable until the close),
and the results (NPS, distributions, free text, CSV). Plain functions taking a session and explicit
`now` / `today`; they add and flush, the edge commits once.

Scales: nps 0-10 (promoters 9-10, passives 7-8, detractors 0-6; NPS = % promoters - % detractors),
rating 1-5 (as CSAT: satisfied = 4 or 5), ces 1-7 (customer effort: "how easy was it", 7 = very easy).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Iterator

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import Text, case, cast, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from membership.core.errors import ValidationError
from membership.core.services import record_activity_once, record_audit
from membership.core.time import as_utc, tz
from membership.core.validation import clean_text
from membership.members.models import Member
from membership.surveys.models import (
    QUESTION_KINDS, SURVEY_TRIGGERS, Survey, SurveyAnswer, SurveyFollowUp, SurveyQuestion, SurveyResponse)

TOKEN_SALT = "samiti.survey-link.v1"
TOKEN_MAX_AGE = timedelta(days=366)
SCALES: dict[str, tuple[int, int]] = {"nps": (0, 10), "rating": (1, 5), "ces": (1, 7)}
KIND_LABELS = {"nps": _l("Recommend score (NPS, 0 to 10)"), "rating": _l("Rating, 1 to 5"),
               "ces": _l("Effort score (CES, 1 to 7)"), "single": _l("Single choice"),
               "multiple": _l("Multiple choice"), "text": _l("Free text")}
TRIGGER_LABELS = {"manual": _l("Sent by staff, and in the portal"), "event": _l("After events, to attendees"),
                  "help": _l("When a help request is resolved")}
TITLE_MAX = 200
PROMPT_MAX = 500
TEXT_ANSWER_MAX = 4000
OPTION_MAX = 200
OPTIONS_MAX = 20
QUESTIONS_MAX = 50
DETRACTOR_MAX = 6
# attendees of events that ended this recently are invited (turning a survey on later does not
# email people about events of months ago)
EVENT_WINDOW = timedelta(days=7)
INVITE_CHUNK = 500


# ---------------------------------------------------------------- building


@dataclass
class SurveyData:
    title: str
    intro: str | None
    opens_on: date
    closes_on: date | None
    trigger: str = "manual"
    event_id: int | None = None
    in_portal: bool = True


def validate_survey(raw: dict[str, Any]) -> SurveyData:
    """Check a survey's settings; ValidationError (with `field`) on the first bad one."""
    title = clean_text(raw.get("title"), field="title", label=_("Title"), max_length=TITLE_MAX, required=True)
    intro = clean_text(raw.get("intro"), field="intro", label=_("Introduction"), max_length=4000, multiline=True)
    opens_on = raw.get("opens_on")
    if not isinstance(opens_on, date):
        raise ValidationError(_("Enter the first day of the survey."), field="opens_on")
    closes_on = raw.get("closes_on")
    if closes_on is not None and not isinstance(closes_on, date):
        raise ValidationError(_("Enter a valid last day."), field="closes_on")
    if closes_on is not None and closes_on < opens_on:
        raise ValidationError(_("The last day cannot be before the first day."), field="closes_on")
    trigger = raw.get("trigger") or "manual"
    if trigger not in SURVEY_TRIGGERS:
        raise ValidationError(_("Choose when the survey is sent."), field="trigger")
    event_id = raw.get("event_id") or None
    if trigger != "event":
        event_id = None
    return SurveyData(title=title or "", intro=intro or None, opens_on=opens_on, closes_on=closes_on,
                      trigger=trigger, event_id=event_id, in_portal=bool(raw.get("in_portal", True)))


def create_survey(session: Session, data: SurveyData, *, actor, now: datetime) -> Survey:
    survey = Survey(title=data.title, intro=data.intro, opens_on=data.opens_on, closes_on=data.closes_on,
                    trigger=data.trigger, event_id=data.event_id, in_portal=data.in_portal, status="draft",
                    created_at=now, created_by_id=getattr(actor, "id", None), updated_at=now)
    session.add(survey)
    session.flush()
    record_audit(session, actor=actor, action="survey.create", entity=survey, now=now,
                 summary=f"Created the survey {survey.title!r}")
    return survey


def update_survey(session: Session, survey: Survey, data: SurveyData, *, actor, now: datetime) -> None:
    changes = {}
    for name in ("title", "intro", "opens_on", "closes_on", "trigger", "event_id", "in_portal"):
        new = getattr(data, name)
        if getattr(survey, name) != new:
            changes[name] = [getattr(survey, name), new]
            setattr(survey, name, new)
    if changes:
        survey.updated_at = now
        record_audit(session, actor=actor, action="survey.update", entity=survey, now=now,
                     summary=f"Changed the survey {survey.title!r}", changes=changes)


@dataclass
class QuestionData:
    kind: str
    prompt: str
    required: bool
    options: list[str] | None


def validate_question(raw: dict[str, Any]) -> QuestionData:
    kind = raw.get("kind")
    if kind not in QUESTION_KINDS:
        raise ValidationError(_("Choose the kind of question."), field="kind")
    prompt = clean_text(raw.get("prompt"), field="prompt", label=_("Question"), max_length=PROMPT_MAX, required=True)
    options = None
    if kind in ("single", "multiple"):
        seen: list[str] = []
        for line in (raw.get("options") or "").splitlines():
            option = " ".join(line.split())
            if not option:
                continue
            if len(option) > OPTION_MAX:
                raise ValidationError(_("Keep each option under %(n)s characters.", n=OPTION_MAX), field="options")
            if option.casefold() in (s.casefold() for s in seen):
                raise ValidationError(_("The option %(option)s is there twice.", option=option), field="options")
            seen.append(option)
        if len(seen) < 2:
            raise ValidationError(_("Give at least two options, one per line."), field="options")
        if len(seen) > OPTIONS_MAX:
            raise ValidationError(_("Give at most %(n)s options.", n=OPTIONS_MAX), field="options")
        options = seen
    return QuestionData(kind=kind, prompt=prompt or "", required=bool(raw.get("required")), options=options)


def add_question(session: Session, survey: Survey, data: QuestionData, *, actor, now: datetime) -> SurveyQuestion:
    if len(survey.questions) >= QUESTIONS_MAX:
        raise ValidationError(_("A survey has at most %(n)s questions.", n=QUESTIONS_MAX), field="prompt")
    position = max((q.position for q in survey.questions), default=0) + 1
    question = SurveyQuestion(survey_id=survey.id, position=position, kind=data.kind, prompt=data.prompt,
                              required=data.required, options=data.options)
    session.add(question)
    survey.questions.append(question)
    survey.updated_at = now
    session.flush()
    record_audit(session, actor=actor, action="survey.question_add", entity=survey, now=now,
                 summary=f"Added a question to the survey {survey.title!r}: {data.prompt[:80]}",
                 changes={"kind": data.kind, "required": data.required})
    return question


def update_question(session: Session, question: SurveyQuestion, data: QuestionData, *, actor,
                    now: datetime) -> None:
    survey = question.survey
    if data.kind != question.kind and _answer_count(session, question) > 0:
        raise ValidationError(_("Members have answered this question: its kind cannot change."), field="kind")
    changes = {}
    for name in ("kind", "prompt", "required", "options"):
        if getattr(question, name) != getattr(data, name):
            changes[name] = [getattr(question, name), getattr(data, name)]
            setattr(question, name, getattr(data, name))
    if changes:
        survey.updated_at = now
        record_audit(session, actor=actor, action="survey.question_update", entity=survey, now=now,
                     summary=f"Changed a question of the survey {survey.title!r}", changes=changes)


def delete_question(session: Session, question: SurveyQuestion, *, actor, now: datetime) -> None:
    survey = question.survey
    if _answer_count(session, question) > 0:
        raise ValidationError(_("Members have answered this question: it cannot be deleted."), field="question")
    survey.questions.remove(question)
    session.delete(question)
    survey.updated_at = now
    record_audit(session, actor=actor, action="survey.question_delete", entity=survey, now=now,
                 summary=f"Deleted a question of the survey {survey.title!r}: {question.prompt[:80]}")


def move_question(session: Session, question: SurveyQuestion, direction: int, *, actor, now: datetime) -> None:
    """Swap the question with its neighbour above (-1) or below (+1); positions are renumbered."""
    survey = question.survey
    order = list(survey.questions)
    i = order.index(question)
    j = i + (1 if direction > 0 else -1)
    if 0 <= j < len(order):
        order[i], order[j] = order[j], order[i]
    for n, q in enumerate(order, start=1):
        q.position = n
    survey.updated_at = now
    session.flush()
    session.expire(survey, ["questions"])


def _answer_count(session: Session, question: SurveyQuestion) -> int:
    return session.scalar(select(func.count()).select_from(SurveyAnswer)
                          .where(SurveyAnswer.question_id == question.id)) or 0


def publish(session: Session, survey: Survey, *, actor, now: datetime) -> None:
    if not survey.questions:
        raise ValidationError(_("Add at least one question before publishing."), field="status")
    if survey.status == "published":
        return
    survey.status = "published"
    survey.updated_at = now
    record_audit(session, actor=actor, action="survey.publish", entity=survey, now=now,
                 summary=f"Published the survey {survey.title!r}")


def close(session: Session, survey: Survey, *, actor, now: datetime, today: date) -> None:
    """Close the survey now: its last day (inclusive) becomes yesterday, so no answer is taken after
    this click. Closing a closed survey does nothing."""
    if survey.is_closed(today):
        return
    survey.closes_on = today - timedelta(days=1)
    survey.updated_at = now
    record_audit(session, actor=actor, action="survey.close", entity=survey, now=now,
                 summary=f"Closed the survey {survey.title!r}")


def standard_help_survey(session: Session, *, actor, now: datetime, today: date) -> Survey:
    """The help-desk survey (effort and satisfaction) customer-service teams send after each
    resolved request: CES 1-7 "How easy was it to get help?" and CSAT 1-5, plus a comment."""
    survey = create_survey(session, SurveyData(
        title=_("How did we do?"), intro=_("Your help request was resolved. Two quick questions, please."),
        opens_on=today, closes_on=None, trigger="help", in_portal=False), actor=actor, now=now)
    for kind, prompt, required in (
            ("ces", _("How easy was it to get help?"), True),
            ("rating", _("How satisfied are you with the help you got?"), True),
            ("text", _("Anything we could do better?"), False)):
        add_question(session, survey, QuestionData(kind=kind, prompt=prompt, required=required, options=None),
                     actor=actor, now=now)
    publish(session, survey, actor=actor, now=now)
    return survey


# ---------------------------------------------------------------- links


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=TOKEN_SALT)


def survey_token(survey: Survey, member: Member, context_key: str = "") -> str:
    return _serializer().dumps({"s": survey.id, "m": member.id, "c": context_key})


def survey_link(survey: Survey, member: Member, context_key: str = "") -> str:
    """The absolute, signed link with which `member` answers `survey` without signing in (for
    invitations, and for campaigns that want to include it)."""
    from membership.notifications import templating
    return templating.link(f"/surveys/r/{survey_token(survey, member, context_key)}")


def load_token(session: Session, token: str, *, now: datetime) -> tuple[Survey, Member, str]:
    """The survey, member and context a link names; ValidationError for a bad or expired link."""
    bad = _("This link is not valid. Please check that you copied all of it.")
    try:
        data, signed_at = _serializer().loads(token, return_timestamp=True)
    except (BadSignature, ValueError, TypeError):
        raise ValidationError(bad, field="token") from None
    if not isinstance(data, dict) or not isinstance(data.get("s"), int) or not isinstance(data.get("m"), int) \
            or not isinstance(data.get("c", ""), str):
        raise ValidationError(bad, field="token")
    if now - as_utc(signed_at) > TOKEN_MAX_AGE:
        raise ValidationError(_("This link has expired."), field="token")
    survey = session.get(Survey, data["s"])
    member = session.get(Member, data["m"])
    if survey is None or member is None or member.erased_at is not None:
        raise ValidationError(bad, field="token")
    return survey, member, data.get("c", "")


# ---------------------------------------------------------------- invitations


def _close_words(survey: Survey) -> str:
    return f"{survey.closes_on:%d %B %Y}" if survey.closes_on else ""


def _invitation_key(survey: Survey, member_id: int, context_key: str) -> str:
    key = f"survey:{survey.id}:member:{member_id}"
    return f"{key}:{context_key}" if context_key else key


def invite(session: Session, survey: Survey, member: Member, *, now: datetime, context_key: str = "",
           about: str = ""):
    """Queue one invitation (exactly once per survey, member and context: the outbox dedupe key)."""
    from membership.notifications import outbox
    message = outbox.enqueue(session, template_key="survey_invitation", now=now, member=member, source=survey,
                             dedupe_key=_invitation_key(survey, member.id, context_key),
                             context={"survey_title": survey.title, "survey_about": about,
                                      "survey_link": survey_link(survey, member, context_key),
                                      "survey_closes": _close_words(survey)})
    if message is not None:
        _count_invited(session, survey, 1)
    return message


def _count_invited(session: Session, survey: Survey, n: int) -> None:
    if n:
        session.execute(update(Survey).where(Survey.id == survey.id).values(invited=Survey.invited + n)
                        .execution_options(synchronize_session=False))
        session.expire(survey, ["invited"])


def audience_query(session: Session, *, segment_id: int | None):
    """Members an invitation goes to: a saved segment's members, or every current member;
    never erased members or members without an address."""
    from membership.members.queries import MemberFilter, member_query, resolve_segment
    if segment_id is not None:
        f = resolve_segment(session, MemberFilter(segment=segment_id))
        ids = member_query(f).order_by(None).with_only_columns(Member.id)
        stmt = select(Member).where(Member.id.in_(ids))
    else:
        stmt = select(Member).where(Member.status.in_(("active", "grace")))
    return stmt.where(Member.erased_at.is_(None), Member.email.is_not(None)).order_by(Member.id)


def send_invitations(session: Session, survey: Survey, *, segment_id: int | None, actor, now: datetime,
                     today: date) -> int:
    """Queue an invitation to each member of the audience (once each: a second click, or a second
    sending to an overlapping segment, queues only those not invited yet). Returns how many were queued."""
    from membership.notifications import outbox
    if survey.trigger != "manual":
        raise ValidationError(_("This survey is sent automatically; it has no invitations to send."), field="audience")
    if not survey.is_open(today):
        raise ValidationError(_("Publish the survey, and make sure it is open today, before sending invitations."),
                              field="audience")
    queued = 0
    last_id = 0
    base = audience_query(session, segment_id=segment_id)
    while True:
        chunk = list(session.scalars(base.where(Member.id > last_id).limit(INVITE_CHUNK)))
        if not chunk:
            break
        last_id = chunk[-1].id
        rows = []
        for member in chunk:
            values = outbox.prepare(
                session, template_key="survey_invitation", now=now, member=member, source=survey,
                dedupe_key=_invitation_key(survey, member.id, ""), check_existing=False,
                context={"survey_title": survey.title, "survey_about": "", "survey_link": survey_link(survey, member),
                         "survey_closes": _close_words(survey)})
            if values is not None:
                rows.append(values)
        queued += len(outbox.enqueue_many(session, rows))
    _count_invited(session, survey, queued)
    record_audit(session, actor=actor, action="survey.invite", entity=survey, now=now,
                 summary=f"Sent invitations to the survey {survey.title!r}: {queued} queued",
                 changes={"segment_id": segment_id, "queued": queued})
    return queued


def invited_count(session: Session, survey: Survey) -> int:
    return survey.invited or 0


def on_help_request_resolved(session: Session, request, *, now: datetime) -> int:
    """Invite the member of a resolved help request to each open help survey (once per request)."""
    if request.member_id is None:
        return 0
    today = now.astimezone(tz()).date()
    member = session.get(Member, request.member_id)
    if member is None or member.erased_at is not None:
        return 0
    count = 0
    for survey in session.scalars(select(Survey).where(Survey.status == "published", Survey.trigger == "help")):
        if survey.is_open(today) and invite(session, survey, member, now=now, context_key=f"help:{request.id}",
                                            about=request.subject or "") is not None:
            count += 1
    return count


def invite_event_attendees(session: Session, *, now: datetime) -> dict[str, int]:
    """Scheduler sweep: invite the member attendees of events that ended within EVENT_WINDOW to each
    open survey attached to events (that event, or every event). Once per survey, member and event."""
    from membership.events.models import Event, EventRegistration
    today = now.astimezone(tz()).date()
    counts = {"surveys": 0, "queued": 0}
    surveys = [s for s in session.scalars(select(Survey).where(Survey.status == "published",
                                                               Survey.trigger == "event").order_by(Survey.id))
               if s.is_open(today)]
    for survey in surveys:
        counts["surveys"] += 1
        stmt = (select(EventRegistration, Event, Member)
                .join(Event, Event.id == EventRegistration.event_id)
                .join(Member, Member.id == EventRegistration.member_id)
                .where(EventRegistration.status == "attended", Event.ends_at <= now,
                       Event.ends_at > now - EVENT_WINDOW, Member.erased_at.is_(None))
                .order_by(EventRegistration.id))
        if survey.event_id is not None:
            stmt = stmt.where(Event.id == survey.event_id)
        for _registration, event, member in session.execute(stmt):
            if invite(session, survey, member, now=now, context_key=f"event:{event.id}", about=event.title):
                counts["queued"] += 1
    return counts


# ---------------------------------------------------------------- answering


class AnswerErrors(ValidationError):
    """Bad answers: {question id: message}. Nothing is written."""

    def __init__(self, errors: dict[int, str]):
        super().__init__(_("Please correct the answers marked below."), field="answers")
        self.errors = errors


def clean_answers(survey: Survey, raw: dict[int, Any]) -> dict[int, dict[str, Any]]:
    """Check every answer (`raw`: question id -> a string, or a list of strings for multiple
    choice); returns question id -> column values, or raises AnswerErrors naming each bad one."""
    errors: dict[int, str] = {}
    values: dict[int, dict[str, Any]] = {}
    for q in survey.questions:
        value = raw.get(q.id)
        if q.kind == "multiple":
            chosen = [v for v in (value or []) if isinstance(v, str) and v.strip()]
            unknown = [c for c in chosen if c not in (q.options or [])]
            if unknown:
                errors[q.id] = _("Choose among the options shown.")
            elif not chosen:
                if q.required:
                    errors[q.id] = _("Choose at least one option.")
            else:
                values[q.id] = {"choices": [o for o in q.options or [] if o in chosen]}
            continue
        text = value.strip() if isinstance(value, str) else ""
        if not text:
            if q.required:
                errors[q.id] = _("This question needs an answer.")
            continue
        if q.kind in SCALES:
            low, high = SCALES[q.kind]
            if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
                errors[q.id] = _("Choose a number from %(low)s to %(high)s.", low=low, high=high)
            else:
                values[q.id] = {"number": int(text)}
        elif q.kind == "single":
            if text not in (q.options or []):
                errors[q.id] = _("Choose one of the options shown.")
            else:
                values[q.id] = {"text": text}
        else:
            if len(text) > TEXT_ANSWER_MAX:
                errors[q.id] = _("Keep the answer under %(n)s characters.", n=TEXT_ANSWER_MAX)
            else:
                try:
                    values[q.id] = {"text": clean_text(text, field="answer", label=q.prompt,
                                                       max_length=TEXT_ANSWER_MAX, multiline=True)}
                except ValidationError as e:
                    errors[q.id] = e.message
    if errors:
        raise AnswerErrors(errors)
    if not values:
        raise AnswerErrors({survey.questions[0].id: _("Answer at least one question.")} if survey.questions else {})
    return values


def response_of(session: Session, survey: Survey, member: Member, context_key: str = "") -> SurveyResponse | None:
    return session.scalar(select(SurveyResponse).where(
        SurveyResponse.survey_id == survey.id, SurveyResponse.member_id == member.id,
        SurveyResponse.context_key == context_key))


def submit(session: Session, survey: Survey, member: Member, raw: dict[int, Any], *, now: datetime, today: date,
           context_key: str = "", channel: str = "portal") -> SurveyResponse:
    """Record (or replace) the member's answers. One response per member, survey and context: a
    second submit, even at the same moment from two tabs, edits the first (the unique constraint
    decides; the loser updates the winner's row). Raises ValidationError when the survey is not
    open, AnswerErrors for bad answers; nothing is written then."""
    if not survey.is_open(today):
        if survey.is_closed(today):
            raise ValidationError(_("This survey is closed: thank you for your interest."), field="survey")
        raise ValidationError(_("This survey is not open yet."), field="survey")
    if member.erased_at is not None:
        raise ValidationError(_("This survey is not available."), field="survey")
    if survey.trigger == "manual" and context_key:
        raise ValidationError(_("This link is not valid. Please check that you copied all of it."), field="token")
    values = clean_answers(survey, raw)
    response = response_of(session, survey, member, context_key)
    if response is None:
        try:
            with session.begin_nested():
                response = SurveyResponse(survey_id=survey.id, member_id=member.id, context_key=context_key,
                                          channel=channel, submitted_at=now, updated_at=now)
                session.add(response)
                session.flush()
        except IntegrityError:
            response = None
        if response is None:  # another request inserted it first: edit that one
            response = session.scalar(select(SurveyResponse).where(
                SurveyResponse.survey_id == survey.id, SurveyResponse.member_id == member.id,
                SurveyResponse.context_key == context_key).with_for_update())
            edited = True
        else:
            edited = False
    else:
        session.execute(select(SurveyResponse.id).where(SurveyResponse.id == response.id).with_for_update())
        edited = True
    if edited:
        response.updated_at = now
        response.channel = channel
        for answer in list(response.answers):
            response.answers.remove(answer)
        session.flush()
    for qid, cols in values.items():
        response.answers.append(SurveyAnswer(question_id=qid, **cols))
    session.flush()
    record_activity_once(session, dedupe_key=f"survey_answered:{response.id}", member_id=member.id,
                         kind="survey_answered", occurred_at=now, source=response,
                         detail={"survey": survey.title[:100], "survey_id": survey.id, "context": context_key})
    _open_follow_up(session, survey, response, values, now=now)
    return response


def _open_follow_up(session: Session, survey: Survey, response: SurveyResponse,
                    values: dict[int, dict[str, Any]], *, now: datetime) -> SurveyFollowUp | None:
    """A detractor score (NPS 0-6) opens one follow-up per response (an edit does not open a second)."""
    scores = [values[q.id]["number"] for q in survey.questions if q.kind == "nps" and q.id in values]
    low = [s for s in scores if s <= DETRACTOR_MAX]
    if not low:
        return None
    from membership.core.db import conflict_insert
    dialect_insert = conflict_insert(session.get_bind().dialect.name)
    stmt = (dialect_insert(SurveyFollowUp).values(
        response_id=response.id, survey_id=survey.id, member_id=response.member_id, score=min(low),
        status="open", opened_at=now).on_conflict_do_nothing(index_elements=["response_id"])
        .returning(SurveyFollowUp.id))
    new_id = session.execute(stmt).scalar()
    return session.get(SurveyFollowUp, new_id) if new_id else None


def close_follow_up(session: Session, follow_up: SurveyFollowUp, *, note: str | None, actor, now: datetime) -> None:
    if follow_up.status != "open":
        raise ValidationError(_("This follow-up is already done."), field="note")
    note = clean_text(note, field="note", label=_("Note"), max_length=2000, multiline=True, required=True)
    follow_up.status = "done"
    follow_up.note = note
    follow_up.closed_at = now
    follow_up.closed_by_id = getattr(actor, "id", None)
    record_audit(session, actor=actor, action="survey.follow_up_done", entity=follow_up, now=now,
                 member_id=follow_up.member_id, summary=f"Followed up a detractor answer: {note[:80]}")


def follow_ups_query(status: str = "open"):
    stmt = select(SurveyFollowUp).order_by(SurveyFollowUp.opened_at.desc(), SurveyFollowUp.id.desc())
    if status in ("open", "done"):
        stmt = stmt.where(SurveyFollowUp.status == status)
    return stmt


# ---------------------------------------------------------------- results


@dataclass
class NPS:
    promoters: int = 0
    passives: int = 0
    detractors: int = 0

    @property
    def total(self) -> int:
        return self.promoters + self.passives + self.detractors

    @property
    def score(self) -> int | None:
        """% promoters - % detractors, rounded to a whole number (-100 to 100)."""
        if not self.total:
            return None
        return round(100 * (self.promoters - self.detractors) / self.total)

    def share(self, part: int) -> float | None:
        return part / self.total if self.total else None


def nps_of(distribution: dict[int, int]) -> NPS:
    return NPS(promoters=sum(n for v, n in distribution.items() if v >= 9),
               passives=sum(n for v, n in distribution.items() if 7 <= v <= 8),
               detractors=sum(n for v, n in distribution.items() if v <= DETRACTOR_MAX))


NPS_BANDS = {"promoters": (9, 10), "passives": (7, 8), "detractors": (0, DETRACTOR_MAX)}


@dataclass
class QuestionResult:
    question: SurveyQuestion
    answered: int = 0
    distribution: dict[Any, int] = field(default_factory=dict)  # value (number or option) -> count
    average: float | None = None
    nps: NPS | None = None
    satisfied_share: float | None = None  # rating: 4-5; ces: 5-7
    texts: list[Any] = field(default_factory=list)  # TextAnswer
    texts_total: int = 0

    @property
    def scale(self) -> list[int]:
        low, high = SCALES.get(self.question.kind, (0, -1))
        return list(range(low, high + 1))

    @property
    def max_count(self) -> int:
        return max(self.distribution.values(), default=0)


@dataclass
class Results:
    survey: Survey
    responses: int
    questions: list[QuestionResult]


def _context_condition(context: str | None):
    if context is None:
        return None
    if context == "":
        return SurveyResponse.context_key == ""
    return SurveyResponse.context_key == context


def _choice_pattern(option: str) -> str:
    """LIKE pattern matching a JSON list that holds `option` (as the column's serialiser writes it,
    quotes included, on both databases)."""
    escaped = json.dumps(option).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def results(session: Session, survey: Survey, *, context: str | None = None, texts_limit: int = 50) -> Results:
    """Figures per question, each from one grouped query on the indexed (question, value): counts
    per value, averages, NPS bands, options chosen (counted in SQL), the latest free-text answers
    (`texts_limit` each). The responses table is joined only to pick one context."""
    c = _context_condition(context)
    cond = [SurveyResponse.survey_id == survey.id] + ([c] if c is not None else [])
    responses = session.scalar(select(func.count()).select_from(SurveyResponse).where(*cond)) or 0

    def answers(*columns):
        stmt = select(*columns).select_from(SurveyAnswer)
        if c is not None:
            stmt = stmt.join(SurveyResponse, SurveyResponse.id == SurveyAnswer.response_id).where(c)
        return stmt

    out = []
    for q in survey.questions:
        r = QuestionResult(question=q)
        mine = SurveyAnswer.question_id == q.id
        if q.kind in SCALES:
            rows = session.execute(answers(SurveyAnswer.number, func.count())
                                   .where(mine, SurveyAnswer.number.is_not(None))
                                   .group_by(SurveyAnswer.number)).all()
            r.distribution = {int(v): int(n) for v, n in rows}
            r.answered = sum(r.distribution.values())
            if r.answered:
                r.average = sum(v * n for v, n in r.distribution.items()) / r.answered
            if q.kind == "nps":
                r.nps = nps_of(r.distribution)
            elif r.answered:
                good = 4 if q.kind == "rating" else 5
                r.satisfied_share = sum(n for v, n in r.distribution.items() if v >= good) / r.answered
        elif q.kind == "single":
            rows = session.execute(answers(SurveyAnswer.text, func.count()).where(mine)
                                   .group_by(SurveyAnswer.text)).all()
            counts = {v: int(n) for v, n in rows}
            r.distribution = {o: counts.pop(o, 0) for o in q.options or []}
            r.distribution.update(counts)  # options renamed since
            r.answered = sum(r.distribution.values())
        elif q.kind == "multiple":
            as_text = cast(SurveyAnswer.choices, Text)
            options = list(q.options or [])
            row = session.execute(answers(func.count(), *[
                func.coalesce(func.sum(case((as_text.like(_choice_pattern(o), escape="\\"), 1), else_=0)), 0)
                for o in options]).where(mine)).one()
            r.answered = int(row[0])
            r.distribution = {o: int(n) for o, n in zip(options, row[1:])}
        else:
            r.texts_total = session.scalar(answers(func.count()).where(mine, SurveyAnswer.text.is_not(None))) or 0
            r.answered = r.texts_total
            rows = session.execute(
                select(SurveyResponse.member_id, Member.first_name, Member.last_name, SurveyResponse.updated_at,
                       SurveyAnswer.text)
                .join(SurveyAnswer, SurveyAnswer.response_id == SurveyResponse.id)
                .join(Member, Member.id == SurveyResponse.member_id)
                .where(*cond, mine, SurveyAnswer.text.is_not(None))
                .order_by(SurveyResponse.updated_at.desc(), SurveyResponse.id.desc()).limit(texts_limit)).all()
            r.texts = [TextAnswer(member_id=m, name=f"{first} {last}".strip(), at=at, text=t)
                       for m, first, last, at, t in rows]
        out.append(r)
    return Results(survey=survey, responses=responses, questions=out)


@dataclass(frozen=True)
class TextAnswer:
    member_id: int
    name: str
    at: datetime
    text: str


def respondents_query(survey: Survey, *, question: SurveyQuestion | None = None, value: str | None = None,
                      context: str | None = None):
    """The responses behind a figure: every response, those who answered `question`, or those whose
    answer is `value` (a number, an option, or an NPS band: promoters / passives / detractors)."""
    stmt = (select(SurveyResponse).options(joinedload(SurveyResponse.member))
            .where(SurveyResponse.survey_id == survey.id))
    c = _context_condition(context)
    if c is not None:
        stmt = stmt.where(c)
    if question is not None:
        answer = select(SurveyAnswer.response_id).where(SurveyAnswer.question_id == question.id)
        if value not in (None, ""):
            if question.kind in SCALES:
                if question.kind == "nps" and value in NPS_BANDS:
                    low, high = NPS_BANDS[value]
                    answer = answer.where(SurveyAnswer.number.between(low, high))
                elif value.isascii() and value.isdigit():
                    answer = answer.where(SurveyAnswer.number == int(value))
                else:
                    answer = answer.where(False)
            elif question.kind == "single":
                answer = answer.where(SurveyAnswer.text == value)
            elif question.kind == "multiple":
                # the JSON list as text holds the option as json.dumps writes it (the column's own
                # serialiser), quotes included, on both databases
                answer = answer.where(cast(SurveyAnswer.choices, Text).like(_choice_pattern(value), escape="\\"))
        stmt = stmt.where(SurveyResponse.id.in_(answer))
    return stmt.order_by(SurveyResponse.submitted_at.desc(), SurveyResponse.id.desc())


def export_rows(session: Session, survey: Survey, *, context: str | None = None) -> Iterator[list[str]]:
    """The CSV of every response: one row each, one column per question (formula-safe). Reads
    plain columns in chunks of 2,000 responses (no ORM objects: 100,000 rows stay quick)."""
    from membership.members.csvio import neutralise
    from membership.web import format_when
    questions = list(survey.questions)
    yield ["member_number", "name", "email", "submitted_at", "updated_at", "channel", "context",
           *[neutralise(f"Q{n}. {q.prompt}") for n, q in enumerate(questions, start=1)]]
    stmt = (select(SurveyResponse.id, Member.member_number, Member.first_name, Member.last_name, Member.email,
                   SurveyResponse.submitted_at, SurveyResponse.updated_at, SurveyResponse.channel,
                   SurveyResponse.context_key)
            .join(Member, Member.id == SurveyResponse.member_id)
            .where(SurveyResponse.survey_id == survey.id).order_by(SurveyResponse.id))
    c = _context_condition(context)
    if c is not None:
        stmt = stmt.where(c)
    last_id = 0
    while True:
        rows = session.execute(stmt.where(SurveyResponse.id > last_id).limit(2000)).all()
        if not rows:
            break
        last_id = rows[-1][0]
        cells: dict[tuple[int, int], str] = {}
        for rid, qid, number, text_value, choices in session.execute(
                select(SurveyAnswer.response_id, SurveyAnswer.question_id, SurveyAnswer.number, SurveyAnswer.text,
                       SurveyAnswer.choices)
                .where(SurveyAnswer.response_id.between(rows[0][0], last_id),
                       SurveyAnswer.response_id.in_([r[0] for r in rows]))):
            if number is not None:
                cells[(rid, qid)] = str(number)
            elif choices is not None:
                cells[(rid, qid)] = neutralise("; ".join(choices))
            else:
                cells[(rid, qid)] = neutralise(text_value or "")
        for rid, number, first, last, email, submitted, updated, channel, ctx in rows:
            yield [neutralise(number or ""), neutralise(f"{first} {last}".strip()), neutralise(email or ""),
                   format_when(submitted, "%Y-%m-%d %H:%M"), format_when(updated, "%Y-%m-%d %H:%M"), channel,
                   neutralise(ctx), *[cells.get((rid, q.id), "") for q in questions]]


# ---------------------------------------------------------------- member-facing lists


def portal_surveys(session: Session, member: Member, *, today: date) -> list[tuple[Survey, SurveyResponse | None]]:
    """Open surveys a member may answer in the portal, with their response if they gave one."""
    surveys = [s for s in session.scalars(select(Survey).where(
        Survey.status == "published", Survey.trigger == "manual", Survey.in_portal.is_(True))
        .order_by(Survey.opens_on.desc(), Survey.id.desc())) if s.is_open(today)]
    if not surveys:
        return []
    mine = {r.survey_id: r for r in session.scalars(select(SurveyResponse).where(
        SurveyResponse.member_id == member.id, SurveyResponse.context_key == "",
        SurveyResponse.survey_id.in_([s.id for s in surveys])))}
    return [(s, mine.get(s.id)) for s in surveys]


# ---------------------------------------------------------------- help-desk figures


@dataclass
class HelpScores:
    window_days: int
    effort_answers: int = 0
    effort_average: float | None = None  # CES 1-7, 7 = very easy
    effort_easy_share: float | None = None  # 5-7
    satisfaction_answers: int = 0
    satisfaction_share: float | None = None  # CSAT: 4-5 of 1-5
    satisfaction_average: float | None = None
    survey_ids: list[int] = field(default_factory=list)


def help_scores(session: Session, *, now: datetime, window_days: int = 90) -> HelpScores:
    """Effort (CES) and satisfaction (CSAT) from the help surveys' answers of the last `window_days`."""
    out = HelpScores(window_days=window_days)
    since = now - timedelta(days=window_days)
    rows = session.execute(
        select(SurveyQuestion.kind, SurveyAnswer.number, func.count())
        .join(SurveyAnswer, SurveyAnswer.question_id == SurveyQuestion.id)
        .join(SurveyResponse, SurveyResponse.id == SurveyAnswer.response_id)
        .join(Survey, Survey.id == SurveyQuestion.survey_id)
        .where(Survey.trigger == "help", SurveyQuestion.kind.in_(("ces", "rating")),
               SurveyAnswer.number.is_not(None), SurveyResponse.updated_at >= since)
        .group_by(SurveyQuestion.kind, SurveyAnswer.number)).all()
    ces = {int(v): int(n) for k, v, n in rows if k == "ces"}
    csat = {int(v): int(n) for k, v, n in rows if k == "rating"}
    if ces:
        out.effort_answers = sum(ces.values())
        out.effort_average = sum(v * n for v, n in ces.items()) / out.effort_answers
        out.effort_easy_share = sum(n for v, n in ces.items() if v >= 5) / out.effort_answers
    if csat:
        out.satisfaction_answers = sum(csat.values())
        out.satisfaction_average = sum(v * n for v, n in csat.items()) / out.satisfaction_answers
        out.satisfaction_share = sum(n for v, n in csat.items() if v >= 4) / out.satisfaction_answers
    out.survey_ids = list(session.scalars(select(Survey.id).where(Survey.trigger == "help").order_by(Survey.id)))
    return out


def parse_answers(form, survey: Survey) -> dict[int, Any]:
    """The answers in a posted form: fields "q<id>" (a list for multiple choice)."""
    raw: dict[int, Any] = {}
    for q in survey.questions:
        name = f"q{q.id}"
        raw[q.id] = form.getlist(name) if q.kind == "multiple" else form.get(name, "")
    return raw


def answers_for_form(response: SurveyResponse | None) -> dict[int, Any]:
    """question id -> what the form shows (a string, or a list of options)."""
    if response is None:
        return {}
    out: dict[int, Any] = {}
    for a in response.answers:
        out[a.question_id] = a.choices if a.choices is not None else (
            str(a.number) if a.number is not None else (a.text or ""))
    return out



# ---------------------------------------------------------------- privacy (export and erasure)


def member_answers(session: Session, member_id: int) -> list[dict[str, Any]]:
    """A member's answers, for their data download: survey, question, answer, when."""
    rows = session.execute(
        select(Survey.title, SurveyQuestion.prompt, SurveyAnswer, SurveyResponse)
        .join(SurveyResponse, SurveyResponse.id == SurveyAnswer.response_id)
        .join(SurveyQuestion, SurveyQuestion.id == SurveyAnswer.question_id)
        .join(Survey, Survey.id == SurveyResponse.survey_id)
        .where(SurveyResponse.member_id == member_id)
        .order_by(SurveyResponse.submitted_at, SurveyResponse.id, SurveyQuestion.position, SurveyQuestion.id)).all()
    out = []
    for title, prompt, answer, response in rows:
        value = answer.number if answer.number is not None else (
            "; ".join(answer.choices) if answer.choices is not None else answer.text)
        out.append({"survey": title, "question": prompt, "answer": value, "about": response.context_key,
                    "answered_at": response.submitted_at.isoformat(), "changed_at": response.updated_at.isoformat()})
    return out


def redact_member_answers(session: Session, member_id: int) -> int:
    """Erasure: the member's free-text answers and the staff notes of their follow-ups are cleared;
    scores and choices stay, so the survey's figures do not change. Returns the answers cleared."""
    texts = select(SurveyQuestion.id).where(SurveyQuestion.kind == "text")
    mine = select(SurveyResponse.id).where(SurveyResponse.member_id == member_id)
    cleared = session.execute(
        update(SurveyAnswer).where(SurveyAnswer.response_id.in_(mine), SurveyAnswer.question_id.in_(texts),
                                   SurveyAnswer.text.is_not(None))
        .values(text=None).execution_options(synchronize_session=False)).rowcount
    session.execute(update(SurveyFollowUp).where(SurveyFollowUp.member_id == member_id, SurveyFollowUp.note.is_not(None))
                    .values(note=None).execution_options(synchronize_session=False))
    return cleared
