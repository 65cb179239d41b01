"""Shared steps of the portal tests: the join form, the emails in the outbox and their links."""
from __future__ import annotations

import re

from sqlalchemy import select

from membership.extensions import db
from membership.notifications.models import OutboxMessage

GOOD_PASSWORD = "lantern-river-orchard-58"


def application(**overrides) -> dict:
    data = {"first_name": "Nusrat", "last_name": "Jahan", "email": "nusrat@example.org", "phone": "01712345678",
            "address_line1": "House 12, Road 5", "city": "Dhaka", "postcode": "1205", "country": "BD",
            "language": "en", "marketing_opt_in": "y", "password": GOOD_PASSWORD, "confirm": GOOD_PASSWORD}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def emails(template_key: str | None = None, to: str | None = None) -> list[OutboxMessage]:
    query = select(OutboxMessage).order_by(OutboxMessage.id)
    if template_key:
        query = query.where(OutboxMessage.template_key == template_key)
    if to:
        query = query.where(OutboxMessage.to_address == to)
    return list(db.session.scalars(query))


def link_path(message: OutboxMessage, prefix: str) -> str:
    """The path of the first link in the email's text that starts with `prefix` (e.g. "/join/confirm/")."""
    match = re.search(r"https?://[^/\s]+(" + re.escape(prefix) + r"[^\s]*)", message.body_text)
    assert match, f"no {prefix} link in {message.body_text!r}"
    return match.group(1)


def join(client, plan, **overrides):
    return client.post(f"/join/{plan.id}", data=application(**overrides))


def confirm_link(email: str) -> str:
    return link_path(emails("confirm_email", to=email)[-1], "/join/confirm/")


def join_and_confirm(client, plan, **overrides):
    """Apply and confirm; returns the confirmation response."""
    response = join(client, plan, **overrides)
    assert response.status_code == 302, response.get_data(as_text=True)
    email = application(**overrides)["email"]
    return client.post(confirm_link(email))


def sign_in(client, email, password=GOOD_PASSWORD, **extra):
    return client.post("/login", data={"email": email, "password": password, **extra})
