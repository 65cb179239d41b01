"""Answering: the signed link for a signed-out member, the portal, one answer per member (editable
until the survey closes), bad answers refused with a message and nothing written."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from membership.core.models import Activity
from membership.core.time import local_today, utcnow
from membership.extensions import db
from membership.surveys import services as sv
from membership.surveys.models import SurveyAnswer, SurveyResponse
from tests.conftest import login
from tests.surveys.conftest import build, count, invitations, link_of, q, text


def answers(survey, nps="9", rating="4", single="A friend", multiple=("Events", "Newsletter"), free="Good work"):
    return {f"q{q(survey, 'nps').id}": nps, f"q{q(survey, 'rating').id}": rating,
            f"q{q(survey, 'single').id}": single, f"q{q(survey, 'multiple').id}": list(multiple),
            f"q{q(survey, 'text').id}": free}


def test_a_signed_out_member_answers_through_the_invitation_link_and_can_change_the_answers(
        client, staff_client, survey, current_member):
    ada, _user = current_member(first_name="Ada", email="ada@example.org")
    bob, _ = current_member(first_name="Bob", email="bob@example.org")
    response = staff_client.post(f"/staff/surveys/{survey.id}/invite", data={"audience": "current"})
    assert response.status_code == 302
    assert {m.to_address for m in invitations()} == {"ada@example.org", "bob@example.org"}
    path = link_of(invitations("ada@example.org")[0])
    staff_client.post("/logout")

    page = client.get(path)
    assert page.status_code == 200 and "How likely are you to recommend us?" in text(page)
    done = client.post(path, data=answers(survey))
    assert done.status_code == 200 and "Your answers are recorded." in text(done)
    response = db.session.scalar(select(SurveyResponse))
    assert response.member_id == ada.id and response.channel == "link" and response.context_key == ""
    by_q = {a.question_id: a for a in response.answers}
    assert by_q[q(survey, "nps").id].number == 9 and by_q[q(survey, "single").id].text == "A friend"
    assert by_q[q(survey, "multiple").id].choices == ["Events", "Newsletter"]
    assert db.session.scalar(select(Activity).where(Activity.kind == "survey_answered")).member_id == ada.id

    # the link again shows the answers given; sending again changes them (still one response)
    again = text(client.get(path))
    assert "You answered on" in again and 'value="9" autocomplete="off" checked' in again
    assert client.post(path, data=answers(survey, nps="10", multiple=("Directory",))).status_code == 200
    db.session.expire_all()
    assert count(SurveyResponse) == 1
    by_q = {a.question_id: a for a in db.session.scalar(select(SurveyResponse)).answers}
    assert by_q[q(survey, "nps").id].number == 10 and by_q[q(survey, "multiple").id].choices == ["Directory"]
    # an edit is the same touchpoint: one activity
    assert count(Activity) == len(list(db.session.scalars(select(Activity).where(Activity.kind != "survey_answered")))) + 1


def test_a_tampered_or_foreign_link_is_refused(client, survey, current_member):
    ada, _ = current_member()
    token = sv.survey_token(survey, ada)
    assert client.get(f"/surveys/r/{token}x").status_code == 404
    page = client.post(f"/surveys/r/{token[:-3]}abc", data={})
    assert page.status_code == 404 and "This link is not valid" in text(page)
    assert count(SurveyResponse) == 0


def test_invitations_are_queued_once_per_member_and_skip_members_without_an_address(
        staff_client, survey, current_member):
    current_member(email="one@example.org")
    current_member(email="two@example.org")
    current_member(email=None, login=False)
    for _ in range(2):  # a second click queues nothing new
        assert staff_client.post(f"/staff/surveys/{survey.id}/invite", data={"audience": "current"}).status_code == 302
    assert sorted(m.to_address for m in invitations()) == ["one@example.org", "two@example.org"]
    assert len({m.dedupe_key for m in invitations()}) == 2
    db.session.expire_all()
    assert sv.invited_count(db.session, db.session.get(type(survey), survey.id)) == 2


def test_the_invitation_is_written_in_each_members_own_language(staff_client, survey, current_member):
    current_member(first_name="Rina", email="rina@example.org", language="bn")
    current_member(first_name="Sam", email="sam@example.org", language="en")
    assert staff_client.post(f"/staff/surveys/{survey.id}/invite", data={"audience": "current"}).status_code == 302
    bengali, english = invitations("rina@example.org")[0], invitations("sam@example.org")[0]
    assert "প্রিয় Rina " in bengali.body_text and "আমরা সদস্যদের মতামত জানতে চাই" in bengali.body_text and "সাইন ইন করতেও হবে না" in bengali.body_text
    assert "আপনার মতামত জানান" in bengali.subject and "জরিপের উত্তর দিন" in bengali.body_html
    assert "/surveys/r/" in bengali.body_text  # the same signed link, whatever the language
    assert "Dear Sam " in english.body_text and "tell us what you think" in english.subject
    assert "প্রিয়" not in english.body_text


def test_invitations_of_a_draft_or_an_unknown_segment_are_refused_with_a_message(staff_client, current_member):
    current_member()
    draft = build([("nps", "Recommend?", True, None)], publish=False)
    page = staff_client.post(f"/staff/surveys/{draft.id}/invite", data={"audience": "current"})
    assert page.status_code == 422 and "Publish the survey" in text(page)
    live = build([("nps", "Recommend?", True, None)])
    page = staff_client.post(f"/staff/surveys/{live.id}/invite", data={"audience": "segment:999"})
    assert page.status_code == 422 and "Choose all current members or a saved segment." in text(page)
    assert invitations() == []


def test_one_response_per_member_through_the_portal_too(client, survey, current_member):
    ada, user = current_member()
    assert login(client, user).status_code == 302
    listing = text(client.get("/my/surveys/"))
    assert "Member survey" in listing
    assert client.post(f"/my/surveys/{survey.id}", data=answers(survey, nps="3")).status_code == 200
    assert client.post(f"/my/surveys/{survey.id}", data=answers(survey, nps="8")).status_code == 200
    db.session.expire_all()
    responses = list(db.session.scalars(select(SurveyResponse)))
    assert len(responses) == 1 and responses[0].channel == "portal"
    assert {a.number for a in responses[0].answers if a.number is not None} == {8, 4}
    assert "answered" in text(client.get("/my/surveys/"))


def test_bad_answers_are_shown_beside_each_question_and_nothing_is_written(client, survey, current_member):
    ada, _ = current_member()
    path = f"/surveys/r/{sv.survey_token(survey, ada)}"
    bad = answers(survey, nps="11", rating="x", single="Something else", multiple=("Events", "Hacked"))
    page = client.post(path, data=bad)
    body = text(page)
    assert page.status_code == 422
    assert "Choose a number from 0 to 10." in body and "Choose a number from 1 to 5." in body
    assert "Choose one of the options shown." in body and "Choose among the options shown." in body
    missing = client.post(path, data={f"q{q(survey, 'text').id}": "only this"})
    assert missing.status_code == 422 and "This question needs an answer." in text(missing)
    assert count(SurveyResponse) == 0 and count(SurveyAnswer) == 0


def test_a_closed_survey_takes_no_answer_and_says_so(client, staff_client, survey, current_member):
    ada, _ = current_member()
    path = f"/surveys/r/{sv.survey_token(survey, ada)}"
    assert client.post(path, data=answers(survey)).status_code == 200
    assert staff_client.post(f"/staff/surveys/{survey.id}/close").status_code == 302
    staff_client.post("/logout")
    page = client.get(path)
    assert "This survey is closed." in text(page) and 'id="survey-form"' not in text(page)
    refused = client.post(path, data=answers(survey, nps="1"))
    assert refused.status_code == 422 and "This survey is closed" in text(refused)
    db.session.expire_all()
    assert [a.number for a in db.session.scalar(select(SurveyResponse)).answers if a.question_id == q(survey, "nps").id] == [9]


def test_a_survey_that_has_not_opened_takes_no_answer(client, current_member):
    ada, _ = current_member()
    later = build([("nps", "Recommend?", True, None)], opens_on=local_today() + timedelta(days=3))
    page = client.post(f"/surveys/r/{sv.survey_token(later, ada)}", data={f"q{later.questions[0].id}": "9"})
    assert page.status_code == 422 and "This survey is not open yet." in text(page) and count(SurveyResponse) == 0


def test_an_erased_member_link_no_longer_works(client, survey, current_member):
    ada, _ = current_member()
    token = sv.survey_token(survey, ada)
    ada.erased_at = utcnow()
    db.session.commit()
    assert client.get(f"/surveys/r/{token}").status_code == 404


def test_answers_are_in_the_member_data_download_and_free_text_is_cleared_on_erasure(app, survey, current_member):
    from membership.privacy.erasure import erase_member
    from membership.privacy.export import collect
    ada, _ = current_member()
    now = utcnow()
    sv.submit(db.session, survey, ada, {q(survey, "nps").id: "3", q(survey, "text").id: "My phone is 0171"},
              now=now, today=local_today(now))
    db.session.commit()
    exported = collect(db.session, ada)["survey_answers"]
    assert {(r["question"], r["answer"]) for r in exported} == {
        ("How likely are you to recommend us?", 3), ("Anything else?", "My phone is 0171")}
    erase_member(db.session, ada, now=now, today=local_today(now), actor=None)
    db.session.commit()
    values = {a.question_id: (a.number, a.text) for a in db.session.scalars(select(SurveyAnswer))}
    assert values == {q(survey, "nps").id: (3, None), q(survey, "text").id: (None, None)}
