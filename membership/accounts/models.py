"""Logins: staff (admin, staff) and members."""
from __future__ import annotations

import secrets
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from membership.core.types import UTCDateTime
from membership.extensions import db

ROLES = ("admin", "staff", "member")


def new_session_token() -> str:
    return secrets.token_urlsafe(24)


class User(UserMixin, db.Model):
    __tablename__ = "user"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    # Stripped, NFC, casefolded: the unique key (SQLite's lower() folds ASCII only).
    email_normalized: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="member")
    is_active_flag: Mapped[bool] = mapped_column("is_active", default=True)
    # Changed at logout, password change and deactivation: every copied session cookie dies with it.
    session_token: Mapped[str] = mapped_column(String(64), default=new_session_token)
    member_id: Mapped[int | None] = mapped_column(ForeignKey("member.id", ondelete="SET NULL"), unique=True)
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    deactivated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The language a staff login chose for pages and staff emails (None: the association's default).
    # A member login's choice is Member.language, the same preference as their emails.
    language: Mapped[str | None] = mapped_column(String(8))

    member = relationship("Member", foreign_keys=[member_id])

    # Flask-Login: the id in the session carries the token, so rotating it logs out every copy.
    def get_id(self) -> str:
        return f"{self.id}:{self.session_token}"

    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive users
        return bool(self.is_active_flag)

    @property
    def is_staff(self) -> bool:
        return self.role in ("admin", "staff")

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def __repr__(self) -> str:
        return f"<User {self.id} {self.email} {self.role}>"
