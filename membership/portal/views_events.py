"""My events in the member portal: the member's upcoming registrations (status, waitlist position,
amount due, cancel, calendar file) and past events (attended or not, feedback link). Only the
signed-in member's own registrations are read; cancelling goes through the events pages."""
from __future__ import annotations

from flask import abort, render_template
from flask_login import current_user

from membership.core.time import utcnow
from membership.events import public_queries as queries
from membership.events.forms import ActionForm
from membership.events.models import SEATED_STATUSES
from membership.events.views import payment_instructions
from membership.extensions import db
from membership.portal import bp
from membership.events.dues import amount_due
from membership.events.tokens import feedback_token


@bp.get("/events")
def my_events():
    member = current_user.member
    if member is None or member.erased_at is not None:
        abort(403)
    now = utcnow()
    upcoming, past = queries.my_registrations(db.session, member, now)
    positions = {r.id: queries.waitlist_position(db.session, r) for r in upcoming if r.status == "waitlisted"}
    due = {r.id: amount_due(db.session, r) for r in upcoming
           if r.status in SEATED_STATUSES and r.price_minor}
    feedback_links = {r.id: feedback_token(r) for r in past
                      if r.status == "attended" and r.feedback is None}
    return render_template("portal/events.html", upcoming=upcoming, past=past, positions=positions, due=due,
                           feedback_links=feedback_links, instructions=payment_instructions(),
                           action_form=ActionForm(formdata=None))
