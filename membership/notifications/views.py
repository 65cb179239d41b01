"""Public mail links: the one-click unsubscribe (RFC 8058) of marketing emails.

GET shows a confirmation button (mail scanners that follow links must not unsubscribe anyone);
POST with the signed token turns marketing emails off. A mail client's one-click POST
(body "List-Unsubscribe=One-Click", no cookies, no CSRF token) is the only POST accepted
without a CSRF token; every other POST is checked as usual.
"""
from __future__ import annotations

from flask import Blueprint, abort, current_app, render_template, request

from membership.core.time import utcnow
from membership.extensions import csrf, db
from membership.notifications.emails import member_from_token, unsubscribe

bp = Blueprint("mail", __name__, url_prefix="/mail")

ONE_CLICK = "One-Click"


@bp.get("/unsubscribe/<token>")
def unsubscribe_page(token: str):
    member = member_from_token(db.session, token)
    if member is None or member.erased_at is not None:
        return render_template("mail/unsubscribe.html", member=None, token=token), 404
    return render_template("mail/unsubscribe.html", member=member, token=token, done=False)


@bp.post("/unsubscribe/<token>")
@csrf.exempt
def unsubscribe_post(token: str):
    one_click = request.form.get("List-Unsubscribe") == ONE_CLICK
    if not one_click and current_app.config.get("WTF_CSRF_ENABLED", True):
        csrf.protect()  # raises CSRFError (400 page) without a valid token
    member = member_from_token(db.session, token)
    if member is None or member.erased_at is not None:
        if one_click:
            abort(404)
        return render_template("mail/unsubscribe.html", member=None, token=token), 404
    unsubscribe(db.session, member, now=utcnow(), via="one-click" if one_click else "unsubscribe page")
    db.session.commit()
    if one_click:
        return "", 204
    return render_template("mail/unsubscribe.html", member=member, token=token, done=True)
