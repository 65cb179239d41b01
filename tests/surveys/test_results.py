"""Results: NPS checked by hand, distributions and the members behind each figure, the CSV
(formula-safe), detractor follow-ups, and the staff builder refusing bad input."""
from __future__ import annotations

import csv
import io

from sqlalchemy import select

from membership.core.models import AuditLog
from membership.core.time import local_today, utcnow
from membership.extensions import db
from membership.surveys import services as sv
from membership.surveys.models import Survey, SurveyFollowUp, SurveyQuestion
from tests.surveys.conftest import build, count, q, text


def answer(survey, member, **by_kind):
    raw = {}
    for kind, value in by_kind.items():
        raw[q(survey, kind).id] = value
    now = utcnow()
    sv.submit(db.session, survey, member, raw, now=now, today=local_today(now))
    db.session.commit()


def test_nps_by_hand():
    # 10 answers: promoters 10, 9, 9, 10 (4); passives 8, 7 (2); detractors 6, 5, 0, 3 (4)
    scores = [10, 9, 9, 8, 7, 6, 5, 0, 10, 3]
    distribution = {}
    for s in scores:
        distribution[s] = distribution.get(s, 0) + 1
    nps = sv.nps_of(distribution)
    assert (nps.promoters, nps.passives, nps.detractors) == (4, 2, 4)
    assert nps.score == 0  # 40 % - 40 %
    # 6 answers: 4 promoters (66.7 %), 1 passive, 1 detractor (16.7 %): 50
    assert sv.nps_of({10: 3, 9: 1, 7: 1, 2: 1}).score == 50
    # all detractors: -100; nobody: no score
    assert sv.nps_of({0: 2, 6: 1}).score == -100
    assert sv.nps_of({}).score is None


def test_results_page_shows_the_nps_and_each_figure_opens_its_members(staff_client, survey, current_member):
    people = []
    for score in (10, 10, 10, 9, 7, 2):
        member, _ = current_member(login=False)
        people.append((member, score))
        answer(survey, member, nps=str(score), single="The web" if score >= 9 else "A friend",
               multiple=["Events"] if score == 10 else ["Directory", "Events"])
    page = staff_client.get(f"/staff/surveys/{survey.id}/results")
    body = text(page)
    assert page.status_code == 200
    assert 'data-figure="nps">+50<' in body
    assert "6 responses" in body
    figures = sv.results(db.session, survey)
    nps_result = next(r for r in figures.questions if r.question.kind == "nps")
    assert nps_result.nps.promoters == 4 and nps_result.nps.passives == 1 and nps_result.nps.detractors == 1
    assert nps_result.distribution == {10: 3, 9: 1, 7: 1, 2: 1}
    single = next(r for r in figures.questions if r.question.kind == "single")
    assert single.distribution == {"A friend": 2, "The web": 4, "An event": 0}
    multiple = next(r for r in figures.questions if r.question.kind == "multiple")
    assert multiple.distribution == {"Events": 6, "Directory": 3, "Newsletter": 0} and multiple.answered == 6

    def members_behind(**args):
        listing = staff_client.get(f"/staff/surveys/{survey.id}/respondents", query_string=args)
        assert listing.status_code == 200
        return {int(x) for x in __import__("re").findall(r'data-member="(\d+)"', listing.get_data(as_text=True))}

    nps_q = q(survey, "nps").id
    assert members_behind(question=nps_q, value="promoters") == {m.id for m, s in people if s >= 9}
    assert members_behind(question=nps_q, value="detractors") == {m.id for m, s in people if s <= 6}
    assert members_behind(question=nps_q, value="10") == {m.id for m, s in people if s == 10}
    assert members_behind(question=q(survey, "single").id, value="The web") == {m.id for m, s in people if s >= 9}
    assert members_behind(question=q(survey, "multiple").id, value="Directory") == {m.id for m, s in people if s < 10}
    assert members_behind() == {m.id for m, _s in people}
    assert staff_client.get(f"/staff/surveys/{survey.id}/respondents?question=abc").status_code == 404


def test_a_detractor_answer_opens_one_follow_up_that_staff_close_with_a_note(staff_client, survey, current_member):
    fan, _ = current_member(login=False)
    critic, _ = current_member(login=False)
    answer(survey, fan, nps="9")
    answer(survey, critic, nps="4")
    answer(survey, critic, nps="2")  # the edit does not open a second follow-up
    follow_ups = list(db.session.scalars(select(SurveyFollowUp)))
    assert [(f.member_id, f.score, f.status) for f in follow_ups] == [(critic.id, 4, "open")]
    listing = text(staff_client.get("/staff/surveys/follow-ups"))
    assert critic.full_name in listing and fan.full_name not in listing

    refused = staff_client.post(f"/staff/surveys/follow-ups/{follow_ups[0].id}", data={"note": "  "})
    assert refused.status_code == 422 and "Write what was said or done." in text(refused)
    db.session.expire_all()
    assert db.session.get(SurveyFollowUp, follow_ups[0].id).status == "open"
    done = staff_client.post(f"/staff/surveys/follow-ups/{follow_ups[0].id}", data={"note": "Called; fixed it."})
    assert done.status_code == 302
    db.session.expire_all()
    closed = db.session.get(SurveyFollowUp, follow_ups[0].id)
    assert closed.status == "done" and closed.note == "Called; fixed it." and closed.closed_by_id is not None
    assert db.session.scalar(select(AuditLog).where(AuditLog.action == "survey.follow_up_done")).member_id == critic.id


def test_the_csv_export_holds_every_answer_and_is_formula_safe(staff_client, survey, current_member):
    member, _ = current_member(login=False, first_name="=cmd|' /C calc'!A0")
    answer(survey, member, nps="7", multiple=["Events", "Newsletter"], text="=HYPERLINK(\"http://x\")")
    response = staff_client.get(f"/staff/surveys/{survey.id}/export.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    header, row = rows[0], rows[1]
    assert header[:4] == ["member_number", "name", "email", "submitted_at"]
    assert header[7] == "Q1. How likely are you to recommend us?"
    assert row[1].startswith("'=cmd")
    assert row[7] == "7" and row[10] == "Events; Newsletter" and row[11].startswith("'=HYPERLINK")
    assert db.session.scalar(select(AuditLog).where(AuditLog.action == "survey.export")) is not None


def test_the_builder_refuses_bad_input_with_a_message_and_writes_nothing(staff_client):
    page = staff_client.post("/staff/surveys/new", data={"title": "", "opens_on": "2026-06-01"})
    assert page.status_code == 422 and "Give the survey a title." in text(page)
    page = staff_client.post("/staff/surveys/new", data={"title": "Annual", "opens_on": "2026-06-10",
                                                         "closes_on": "2026-06-01", "trigger": "manual"})
    assert page.status_code == 422 and "The last day cannot be before the first day." in text(page)
    page = staff_client.post("/staff/surveys/new", data={"title": "Annual", "opens_on": "someday"})
    assert page.status_code == 422 and count(Survey) == 0

    made = staff_client.post("/staff/surveys/new", data={"title": "Annual", "opens_on": "2026-06-01",
                                                         "trigger": "manual", "in_portal": "y"})
    assert made.status_code == 302
    survey = db.session.scalar(select(Survey))
    page = staff_client.post(f"/staff/surveys/{survey.id}/questions",
                             data={"prompt": "Pick", "kind": "single", "options": "Only one"})
    assert page.status_code == 422 and "Give at least two options, one per line." in text(page)
    page = staff_client.post(f"/staff/surveys/{survey.id}/questions",
                             data={"prompt": "Pick", "kind": "single", "options": "Yes\nyes"})
    assert page.status_code == 422 and "is there twice" in text(page)
    page = staff_client.post(f"/staff/surveys/{survey.id}/questions", data={"prompt": "", "kind": "nps"})
    assert page.status_code == 422 and "Write the question." in text(page)
    page = staff_client.post(f"/staff/surveys/{survey.id}/questions", data={"prompt": "Hm", "kind": "essay"})
    assert page.status_code == 422 and count(SurveyQuestion) == 0
    published = staff_client.post(f"/staff/surveys/{survey.id}/publish", follow_redirects=True)
    assert "Add at least one question before publishing." in text(published)
    db.session.expire_all()
    assert db.session.get(Survey, survey.id).status == "draft"

    ok = staff_client.post(f"/staff/surveys/{survey.id}/questions",
                           data={"prompt": "Recommend?", "kind": "nps", "required": "y"})
    assert ok.status_code == 302
    second = staff_client.post(f"/staff/surveys/{survey.id}/questions",
                               data={"prompt": "Why?", "kind": "text"})
    assert second.status_code == 302
    db.session.expire_all()
    first_id, second_id = [x.id for x in db.session.get(Survey, survey.id).questions]
    assert staff_client.post(f"/staff/surveys/{survey.id}/questions/{second_id}/move?dir=up").status_code == 302
    db.session.expire_all()
    assert [x.id for x in db.session.get(Survey, survey.id).questions] == [second_id, first_id]
    assert staff_client.post(f"/staff/surveys/{survey.id}/publish").status_code == 302
    db.session.expire_all()
    assert db.session.get(Survey, survey.id).status == "published"
    assert staff_client.get(f"/staff/surveys/{survey.id}").status_code == 200
    assert staff_client.get("/staff/surveys/").status_code == 200


def test_an_answered_question_cannot_be_deleted_or_change_kind(staff_client, survey, current_member):
    member, _ = current_member(login=False)
    answer(survey, member, nps="9")
    nps_q = q(survey, "nps")
    deleted = staff_client.post(f"/staff/surveys/{survey.id}/questions/{nps_q.id}/delete", follow_redirects=True)
    assert "cannot be deleted" in text(deleted)
    changed = staff_client.post(f"/staff/surveys/{survey.id}/questions/{nps_q.id}",
                                data={"prompt": "Rate us", "kind": "rating"})
    assert changed.status_code == 422 and "its kind cannot change" in text(changed)
    db.session.expire_all()
    assert db.session.get(SurveyQuestion, nps_q.id).kind == "nps"


def test_members_cannot_reach_the_staff_survey_pages(client, survey, current_member):
    from tests.conftest import login
    _m, user = current_member()
    login(client, user)
    assert client.get("/staff/surveys/").status_code in (302, 403)
    assert client.get(f"/staff/surveys/{survey.id}/export.csv").status_code in (302, 403)
    build([("nps", "x", True, None)], title="Other")


def test_choice_counts_hold_for_bengali_options_and_like_wildcards(staff_client, current_member):
    options = ["সভা", "50% off", "a_b", "ab"]
    survey = build([("multiple", "Which?", True, options)])
    picks = [["সভা", "a_b"], ["ab"], ["50% off", "সভা"]]
    members = []
    for chosen in picks:
        member, _ = current_member(login=False)
        members.append(member)
        answer(survey, member, multiple=chosen)
    figures = sv.results(db.session, survey)
    assert figures.questions[0].distribution == {"সভা": 2, "50% off": 1, "a_b": 1, "ab": 1}
    rows = db.session.scalars(sv.respondents_query(survey, question=survey.questions[0], value="ab")).all()
    assert [r.member_id for r in rows] == [members[1].id]  # "a_b" does not match "ab", nor the other way
    rows = db.session.scalars(sv.respondents_query(survey, question=survey.questions[0], value="সভা")).all()
    assert sorted(r.member_id for r in rows) == sorted([members[0].id, members[2].id])
