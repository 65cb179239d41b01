"""Events, registrations and feedback (see DESIGN.md, "Events")."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from membership.core.types import UTCDateTime
from membership.extensions import db

EVENT_STATUSES = ("draft", "published", "cancelled", "finished")
# pending: a guest who has not confirmed their email yet (holds no seat)
REGISTRATION_STATUSES = ("pending", "confirmed", "waitlisted", "cancelled", "attended", "no_show")
# statuses of a "live" registration: one per person and event
LIVE_STATUSES = ("pending", "confirmed", "waitlisted", "attended", "no_show")
# statuses that hold a seat (count against capacity)
SEATED_STATUSES = ("confirmed", "attended", "no_show")
REGISTRATION_SOURCES = ("member", "guest", "staff", "walk_in")


class Event(db.Model):
    """An event: times in UTC (shown in the association's zone), capacity, prices, status."""

    __tablename__ = "event"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    venue: Mapped[str | None] = mapped_column(String(300))
    online_url: Mapped[str | None] = mapped_column(String(500))
    capacity: Mapped[int | None] = mapped_column(Integer)  # None: unlimited
    waitlist_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    registration_opens_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # None: once published
    registration_closes_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # None: at the start
    # people may cancel their own registration until then (None: until the start)
    cancellation_deadline: Mapped[datetime | None] = mapped_column(UTCDateTime)
    members_only: Mapped[bool] = mapped_column(Boolean, default=False)
    member_price_minor: Mapped[int] = mapped_column(Integer, default=0)
    non_member_price_minor: Mapped[int] = mapped_column(Integer, default=0)
    currency: Mapped[str] = mapped_column(String(3))
    # reminder email this many hours before the start (None: no reminder)
    reminder_hours_before: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12), default="draft")
    # seats taken (confirmed + attended + no-show): changed only by one atomic UPDATE ... WHERE
    # seats_taken < capacity, so concurrent registrations never overfill the event
    seats_taken: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duplicated_from_id: Mapped[int | None] = mapped_column(ForeignKey("event.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))

    registrations = relationship("EventRegistration", back_populates="event", lazy="dynamic")

    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        CheckConstraint("capacity IS NULL OR capacity >= 0", name="capacity_not_negative"),
        CheckConstraint("member_price_minor >= 0 AND non_member_price_minor >= 0", name="prices_not_negative"),
        CheckConstraint("seats_taken >= 0", name="seats_not_negative"),
        Index("ix_event_status_starts", "status", "starts_at"),
        Index("ix_event_starts", "starts_at"),
    )

    def __repr__(self) -> str:
        return f"<Event {self.id} {self.title!r} {self.status}>"


class EventRegistration(db.Model):
    """One person's registration for an event: a member, or a guest with a name and email."""

    __tablename__ = "event_registration"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id", ondelete="CASCADE"))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("member.id", ondelete="SET NULL"), index=True)
    guest_name: Mapped[str | None] = mapped_column(String(200))
    guest_email: Mapped[str | None] = mapped_column(String(254))
    # "member:<id>" or "guest:<normalised email>": one live registration per person and event
    person_key: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(12))
    source: Mapped[str] = mapped_column(String(10), default="member")
    price_minor: Mapped[int] = mapped_column(Integer, default=0)  # fixed when the seat is taken
    currency: Mapped[str] = mapped_column(String(3))
    member_price: Mapped[bool] = mapped_column(Boolean, default=False)  # charged the member price
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    waitlisted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    promoted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_by: Mapped[str | None] = mapped_column(String(10))  # self, staff, event
    checked_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    checked_in_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))

    event = relationship("Event", back_populates="registrations")
    member = relationship("Member")
    payments = relationship("Payment", back_populates="registration", order_by="Payment.received_at")
    feedback = relationship("EventFeedback", back_populates="registration", uselist=False)

    __table_args__ = (
        CheckConstraint("price_minor >= 0", name="price_not_negative"),
        CheckConstraint("member_id IS NOT NULL OR guest_email IS NOT NULL", name="member_or_guest"),
        # one live registration per person and event (a cancelled one may be followed by another)
        Index("uq_event_registration_live", "event_id", "person_key", unique=True,
              sqlite_where=text("status <> 'cancelled'"), postgresql_where=text("status <> 'cancelled'")),
        Index("ix_event_registration_event_status", "event_id", "status", "registered_at"),
    )

    @property
    def name(self) -> str:
        return self.member.full_name if self.member is not None else (self.guest_name or "")

    @property
    def email(self) -> str | None:
        return self.member.email if self.member is not None else self.guest_email

    def __repr__(self) -> str:
        return f"<EventRegistration {self.id} event={self.event_id} {self.person_key} {self.status}>"


class EventFeedback(db.Model):
    """What one attendee said after the event."""

    __tablename__ = "event_feedback"

    id: Mapped[int] = mapped_column(primary_key=True)
    registration_id: Mapped[int] = mapped_column(ForeignKey("event_registration.id", ondelete="CASCADE"),
                                                 unique=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id", ondelete="CASCADE"), index=True)
    rating: Mapped[int] = mapped_column(Integer)
    would_recommend: Mapped[bool | None] = mapped_column(Boolean)
    comment: Mapped[str | None] = mapped_column(Text)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime)

    registration = relationship("EventRegistration", back_populates="feedback")

    __table_args__ = (CheckConstraint("rating BETWEEN 1 AND 5", name="rating_1_to_5"),)
