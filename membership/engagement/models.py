"""Engagement and churn risk: score history, the current score per member, fitted models, risk
alerts, saved segments and the admin's scoring settings (issue 6)."""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from membership.core.types import UTCDateTime
from membership.extensions import db

ENGAGEMENT_BANDS = ("highly_engaged", "engaged", "drifting", "dormant")
RISK_BANDS = ("high", "medium", "low")


class MemberScore(db.Model):
    """One member's scores as of one day (the history: one row per member and scoring day)."""

    __tablename__ = "member_score"

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id", ondelete="CASCADE"))
    scored_on: Mapped[date] = mapped_column(Date)
    engagement: Mapped[float] = mapped_column(Float)
    engagement_band: Mapped[str] = mapped_column(String(16))
    # churn risk: the probability of not renewing the current term (None without a current term)
    churn_risk: Mapped[float | None] = mapped_column(Float)
    risk_band: Mapped[str | None] = mapped_column(String(8))
    # top reasons in plain words, most important first: [{"text": ..., "weight": ...}, ...]
    reasons: Mapped[list[Any] | None] = mapped_column(JSON)
    # the features the score was computed from (for explanations and audits)
    features: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # engagement by activity kind: {"event_attended": 12.5, ...}
    breakdown: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    model_id: Mapped[int | None] = mapped_column(ForeignKey("churn_model.id", ondelete="SET NULL"))

    __table_args__ = (
        UniqueConstraint("member_id", "scored_on", name="uq_member_score_member_day"),
        Index("ix_member_score_day_risk", "scored_on", "risk_band"),
    )


class CurrentScore(db.Model):
    """The latest scores of each member (one row per member), for filters, lists and the dashboard."""

    __tablename__ = "current_score"

    member_id: Mapped[int] = mapped_column(ForeignKey("member.id", ondelete="CASCADE"), primary_key=True)
    scored_on: Mapped[date] = mapped_column(Date)
    engagement: Mapped[float] = mapped_column(Float)
    engagement_band: Mapped[str] = mapped_column(String(16))
    churn_risk: Mapped[float | None] = mapped_column(Float)
    risk_band: Mapped[str | None] = mapped_column(String(8))
    reasons: Mapped[list[Any] | None] = mapped_column(JSON)
    last_activity_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    member = relationship("Member")

    __table_args__ = (
        Index("ix_current_score_engagement_band", "engagement_band"),
        Index("ix_current_score_engagement", "engagement"),  # the member list sorted by it, the median
        Index("ix_current_score_risk", "risk_band", "churn_risk"),
        Index("ix_current_score_last_activity", "last_activity_at"),
    )


class ChurnModel(db.Model):
    """A churn-risk model: the transparent default, or one fitted on the association's history."""

    __tablename__ = "churn_model"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))  # default, fitted
    # {"intercept": float, "weights": {feature: float}, "scaling": {feature: [mean, std]}, ...}
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    fitted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    training_terms: Mapped[int | None] = mapped_column(Integer)  # how many past terms it learnt from
    churn_rate: Mapped[float | None] = mapped_column(Float)
    # back-tested quality on terms it did not learn from
    auc: Mapped[float | None] = mapped_column(Float)
    average_precision: Mapped[float | None] = mapped_column(Float)
    baseline_auc: Mapped[float | None] = mapped_column(Float)  # "days since last activity" on the same terms
    is_active: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str | None] = mapped_column(Text)


class RiskAlert(db.Model):
    """A member who crossed into high risk: one alert per risk episode, closed by a staff action
    (an interaction) or when the member renews or the risk falls."""

    __tablename__ = "risk_alert"

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id", ondelete="CASCADE"), index=True)
    opened_on: Mapped[date] = mapped_column(Date)
    churn_risk: Mapped[float] = mapped_column(Float)
    reasons: Mapped[list[Any] | None] = mapped_column(JSON)
    suggested_action: Mapped[str | None] = mapped_column(Text)
    notified_on: Mapped[date | None] = mapped_column(Date)  # the digest that told staff
    status: Mapped[str] = mapped_column(String(10), default="open")  # open, actioned, resolved
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    interaction_id: Mapped[int | None] = mapped_column(ForeignKey("interaction.id", ondelete="SET NULL"))
    close_reason: Mapped[str | None] = mapped_column(Text)

    member = relationship("Member")

    __table_args__ = (
        # one open alert per member
        Index("uq_risk_alert_open", "member_id", unique=True,
              sqlite_where=text("status = 'open'"), postgresql_where=text("status = 'open'")),
        Index("ix_risk_alert_status_opened", "status", "opened_on"),
    )


class Segment(db.Model):
    """A saved member filter under a name (member list, CSV export, later email campaigns)."""

    __tablename__ = "segment"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    filters: Mapped[dict[str, Any]] = mapped_column(JSON)  # MemberFilter.as_args()
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))


class Setting(db.Model):
    """An admin setting stored in the database (e.g. the engagement weights and half-life)."""

    __tablename__ = "setting"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))


class ChurnOutcome(db.Model):
    """A past outcome given directly (history import's outcomes.csv): as of `as_of`, did the
    member go on to churn? Used by `churn fit` and `churn backtest` instead of outcomes derived from
    terms or from inactivity (issue 10)."""

    __tablename__ = "churn_outcome"

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id", ondelete="CASCADE"))
    as_of: Mapped[date] = mapped_column(Date)
    churned: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("member_id", "as_of", name="uq_churn_outcome_member_day"),
        Index("ix_churn_outcome_as_of", "as_of"),
    )
