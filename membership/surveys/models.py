"""Surveys, their questions, the members' responses and answers, and detractor follow-ups."""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from membership.core.types import UTCDateTime
from membership.extensions import db

SURVEY_STATUSES = ("draft", "published")
# manual: staff send invitations / members find it in the portal; event: attendees of events that
# ended are invited; help: the member is invited when their help request is resolved.
SURVEY_TRIGGERS = ("manual", "event", "help")
QUESTION_KINDS = ("nps", "rating", "ces", "single", "multiple", "text")
FOLLOW_UP_STATUSES = ("open", "done")


class Survey(db.Model):
    __tablename__ = "survey"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    intro: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12), default="draft")
    trigger: Mapped[str] = mapped_column(String(12), default="manual")
    # trigger "event": only this event (None: every event that ends while the survey is open)
    event_id: Mapped[int | None] = mapped_column(ForeignKey("event.id", ondelete="SET NULL"))
    # members can find and answer it in the portal (manual surveys)
    in_portal: Mapped[bool] = mapped_column(Boolean, default=True)
    # local dates, both inclusive; closes_on None: open until staff close it
    opens_on: Mapped[date] = mapped_column(Date)
    closes_on: Mapped[date | None] = mapped_column(Date)
    # invitations queued so far (kept here: counting them in the outbox would scan it)
    invited: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    questions = relationship("SurveyQuestion", order_by="(SurveyQuestion.position, SurveyQuestion.id)",
                             back_populates="survey", cascade="all, delete-orphan")
    event = relationship("Event")

    __table_args__ = (Index("ix_survey_status_trigger", "status", "trigger"),)

    def is_open(self, today: date) -> bool:
        return (self.status == "published" and self.opens_on <= today
                and (self.closes_on is None or today <= self.closes_on))

    def is_closed(self, today: date) -> bool:
        return self.closes_on is not None and today > self.closes_on


class SurveyQuestion(db.Model):
    __tablename__ = "survey_question"

    id: Mapped[int] = mapped_column(primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("survey.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer, default=0)
    kind: Mapped[str] = mapped_column(String(12))
    prompt: Mapped[str] = mapped_column(String(500))
    required: Mapped[bool] = mapped_column(Boolean, default=False)
    options: Mapped[list[str] | None] = mapped_column(JSON)  # single / multiple choice

    survey = relationship("Survey", back_populates="questions")

    __table_args__ = (Index("ix_survey_question_survey_position", "survey_id", "position"),)


class SurveyResponse(db.Model):
    """One member's answers to one survey (in one context: "" for a survey sent to members,
    "event:<id>" or "help:<id>" for one sent after an event or a help request). One per member,
    survey and context (the unique constraint settles a double submit); editable until it closes."""

    __tablename__ = "survey_response"

    id: Mapped[int] = mapped_column(primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("survey.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id", ondelete="CASCADE"), index=True)
    context_key: Mapped[str] = mapped_column(String(40), default="")
    channel: Mapped[str] = mapped_column(String(10), default="portal")  # portal, link
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    answers = relationship("SurveyAnswer", back_populates="response", cascade="all, delete-orphan")
    member = relationship("Member")

    __table_args__ = (
        UniqueConstraint("survey_id", "member_id", "context_key", name="uq_survey_response_member"),
        Index("ix_survey_response_survey_submitted", "survey_id", "submitted_at"),
    )


class SurveyAnswer(db.Model):
    __tablename__ = "survey_answer"

    id: Mapped[int] = mapped_column(primary_key=True)
    response_id: Mapped[int] = mapped_column(ForeignKey("survey_response.id", ondelete="CASCADE"))
    question_id: Mapped[int] = mapped_column(ForeignKey("survey_question.id", ondelete="CASCADE"))
    number: Mapped[int | None] = mapped_column(Integer)  # nps, rating, ces
    text: Mapped[str | None] = mapped_column(Text)  # free text; the chosen option of a single choice
    choices: Mapped[list[str] | None] = mapped_column(JSON)  # multiple choice

    response = relationship("SurveyResponse", back_populates="answers")

    __table_args__ = (
        UniqueConstraint("response_id", "question_id", name="uq_survey_answer_question"),
        Index("ix_survey_answer_question_number", "question_id", "number"),
    )


class SurveyFollowUp(db.Model):
    """A detractor answer (NPS 0-6) waiting for a staff member to get in touch."""

    __tablename__ = "survey_follow_up"

    id: Mapped[int] = mapped_column(primary_key=True)
    response_id: Mapped[int] = mapped_column(ForeignKey("survey_response.id", ondelete="CASCADE"), unique=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("survey.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id", ondelete="CASCADE"), index=True)
    score: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(8), default="open")
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    note: Mapped[str | None] = mapped_column(Text)

    survey = relationship("Survey")
    member = relationship("Member")
    response = relationship("SurveyResponse")
    closed_by = relationship("User")

    __table_args__ = (Index("ix_survey_follow_up_status_opened", "status", "opened_at"),)


def answer_value(answer: SurveyAnswer) -> Any:
    if answer.number is not None:
        return answer.number
    if answer.choices is not None:
        return answer.choices
    return answer.text
