"""Survey fixtures: a published survey of every question kind, current members with logins."""
from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from membership.core.time import local_today, utcnow
from membership.extensions import db
from membership.notifications.models import OutboxMessage
from membership.surveys import services as sv


@pytest.fixture
def current_member(make_member, make_plan, make_term, make_user):
    """current_member(**kw) -> (member, user): a current member (free plan) with a login."""
    plan = make_plan(name="Standard", fee_minor=0)

    def make(login=True, **kw):
        member = make_member(**kw)
        make_term(member, plan, starts_on=local_today() - timedelta(days=30), today=local_today())
        user = make_user("member", email=member.email, name=member.full_name, member_id=member.id) if login else None
        db.session.commit()
        return member, user
    return make


def build(questions, *, title="Member survey", trigger="manual", publish=True, opens_on=None, closes_on=None,
          in_portal=True):
    """A survey with `questions`: [(kind, prompt, required, options)]."""
    now = utcnow()
    today = local_today(now)
    survey = sv.create_survey(db.session, sv.SurveyData(
        title=title, intro="Tell us.", opens_on=opens_on or today - timedelta(days=1), closes_on=closes_on,
        trigger=trigger, in_portal=in_portal), actor=None, now=now)
    for kind, prompt, required, options in questions:
        sv.add_question(db.session, survey, sv.QuestionData(kind=kind, prompt=prompt, required=required,
                                                            options=options), actor=None, now=now)
    if publish:
        sv.publish(db.session, survey, actor=None, now=now)
    db.session.commit()
    return survey


EVERY_KIND = [("nps", "How likely are you to recommend us?", True, None),
              ("rating", "How satisfied are you?", False, None),
              ("single", "How did you hear of us?", False, ["A friend", "The web", "An event"]),
              ("multiple", "What do you use?", False, ["Events", "Directory", "Newsletter"]),
              ("text", "Anything else?", False, None)]


@pytest.fixture
def survey(app):
    return build(EVERY_KIND)


def q(survey, kind):
    return next(x for x in survey.questions if x.kind == kind)


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def invitations(to: str | None = None) -> list[OutboxMessage]:
    stmt = select(OutboxMessage).where(OutboxMessage.template_key == "survey_invitation").order_by(OutboxMessage.id)
    if to:
        stmt = stmt.where(OutboxMessage.to_address == to)
    return list(db.session.scalars(stmt))


def link_of(message: OutboxMessage) -> str:
    match = re.search(r"https?://[^/\s]+(/surveys/r/[^\s]+)", message.body_text)
    assert match, message.body_text
    return match.group(1)


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))
