"""One answer per member under concurrency, on PostgreSQL: many requests of the same member at the
same moment (a double click, two tabs) leave one response, with the answers of one of them; the
detractor follow-up and the activity are recorded once."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from membership.core.models import Activity
from membership.core.time import local_today, utcnow
from membership.extensions import db
from membership.members.models import Member
from membership.surveys import services as sv
from membership.surveys.models import Survey, SurveyAnswer, SurveyFollowUp, SurveyResponse
from tests.conftest import require_postgres
from tests.surveys.conftest import build

N = 8


@pytest.fixture
def postgres(app):
    return require_postgres("the one-answer-per-member race runs on PostgreSQL only")


def race(app, engine, n, work):
    start = threading.Barrier(n, timeout=30)
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            with app.app_context(), Session(engine) as session:
                start.wait()
                work(i, session)
                session.commit()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)


def test_simultaneous_submits_of_one_member_leave_one_response(app, postgres, current_member):
    survey = build([("nps", "Recommend?", True, None), ("text", "Why?", False, None)])
    member, _ = current_member(login=False)
    survey_id, member_id = survey.id, member.id
    nps_id, text_id = survey.questions[0].id, survey.questions[1].id
    now = utcnow()

    def submit(i, session):
        s = session.get(Survey, survey_id)
        m = session.get(Member, member_id)
        sv.submit(session, s, m, {nps_id: str(i % 7), text_id: f"answer {i}"}, now=now, today=local_today(now),
                  channel="link")

    race(app, postgres, N, submit)
    db.session.expire_all()
    responses = list(db.session.scalars(select(SurveyResponse)))
    assert len(responses) == 1
    answers = list(db.session.scalars(select(SurveyAnswer)))
    assert len(answers) == 2  # one submit's answers, not a mix of several
    i = int(next(a.text for a in answers if a.question_id == text_id).split()[1])
    assert next(a.number for a in answers if a.question_id == nps_id) == i % 7
    assert db.session.scalar(select(func.count()).select_from(SurveyFollowUp)) == 1
    assert db.session.scalar(select(func.count()).select_from(Activity)
                             .where(Activity.kind == "survey_answered")) == 1
