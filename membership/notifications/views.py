"""Public mail links: the one-click unsubscribe (RFC 8058) of marketing emails.

GET shows a confirmation button (mail scanners that follow links must not unsubscribe anyone);
POST with the signed token turns marketing emails off. A mail client's one-click POST
(body "List-Unsubscribe=One-Click", no cookies, no CSRF token) is the only POST accepted
without a CSRF token; every other POST is checked as usual.
"""
from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, redirect, render_template, request

from membership.core.time import utcnow
from membership.extensions import csrf, db
from membership.notifications.unsubscribe import campaign_from_token, member_from_token, unsubscribe

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
    from membership.campaigns.services import campaign_for_unsubscribe
    unsubscribe(db.session, member, now=utcnow(), via="one-click" if one_click else "unsubscribe page",
                source=campaign_for_unsubscribe(db.session, campaign_from_token(token)))
    db.session.commit()
    if one_click:
        return "", 204
    return render_template("mail/unsubscribe.html", member=member, token=token, done=True)


# ---------------------------------------------------------------- engagement tracking (issue 6)

_NO_CACHE = {"Cache-Control": "no-store, no-cache, must-revalidate, max-age=0, private",
             "Pragma": "no-cache", "Expires": "0"}


def _message(message_id: int):
    from membership.notifications.models import OutboxMessage
    return db.session.get(OutboxMessage, message_id)


@bp.get("/o/<token>.gif")
def open_pixel(token: str):
    """The 1x1 image in each member email: records `email_opened` once per message. Always answers
    the image (a mail client shows a broken picture otherwise), whatever the token."""
    from membership.engagement import tracking

    message_id = tracking.read_open_token(token)
    if message_id is not None:
        try:
            if tracking.record_open(db.session, _message(message_id), now=utcnow()):
                db.session.commit()
        except Exception:  # noqa: BLE001 - a tracking failure must never break the image
            db.session.rollback()
            current_app.logger.exception("could not record the opening of message %s", message_id)
    return Response(tracking.PIXEL_GIF, mimetype="image/gif", headers=_NO_CACHE)


@bp.get("/c/<token>")
def click(token: str):
    """A tracked link: records `email_clicked` and redirects to the site's own page it names.
    A bad token is 404; a target off the site's own host is refused (400): no open redirect."""
    from membership.engagement import tracking

    found = tracking.read_click_token(token)
    if found is None:
        abort(404)
    message_id, url = found
    if not tracking.is_own_url(url):
        abort(400)
    try:
        if tracking.record_click(db.session, _message(message_id), url, now=utcnow()):
            db.session.commit()
    except Exception:  # noqa: BLE001 - the member still gets where the link leads
        db.session.rollback()
        current_app.logger.exception("could not record a click on message %s", message_id)
    return _redirect(url)


def _redirect(url: str):
    response = redirect(url, code=302)
    response.headers.update(_NO_CACHE)
    return response
