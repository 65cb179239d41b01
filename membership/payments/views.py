"""The edges of online payment: the providers' webhook/IPN endpoints (no CSRF: they are verified by
signature or validation call instead), the member's "Pay online" buttons and return pages, and the
staff's list of online checkouts."""
from __future__ import annotations

import logging

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import select

from membership.core.errors import DomainError
from membership.core.settings import current_settings
from membership.core.time import utcnow
from membership.extensions import csrf, db
from membership.payments import checkout as payments
from membership.payments.base import InvalidNotification
from membership.payments.models import Checkout

log = logging.getLogger(__name__)
bp = Blueprint("payments", __name__, url_prefix="/payments")


def init_app(app) -> None:
    app.register_blueprint(bp)
    app.after_request(_allow_provider_forms)


def provider_origins(settings) -> list[str]:
    """Where a "Pay online" form's redirect may lead: the providers' hosted pages."""
    from urllib.parse import urlsplit

    origins = []
    for name in payments.online_providers(settings):
        base = settings.stripe_api_base if name == "stripe" else settings.sslcommerz_api_base
        parts = urlsplit(base)
        origins.append(f"{parts.scheme}://{parts.netloc}")
        if name == "stripe":
            origins.append("https://checkout.stripe.com")
    return origins


def _allow_provider_forms(response):
    """Pages with a "Pay online" form: the CSP's form-action also allows the providers' pages (the
    form's answer redirects there, which form-action 'self' would block). Otherwise the same policy
    as membership.web.security_headers, which runs after this and keeps a header already set."""
    from flask import g

    origins = g.pop("pay_form_origins", None)
    if origins:
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            f"object-src 'none'; base-uri 'self'; form-action 'self' {' '.join(dict.fromkeys(origins))}; "
            "frame-ancestors 'none'")
    return response


@bp.app_context_processor
def _pay_online():
    def pay_online_providers() -> dict[str, str]:
        """{name: label} of the providers offered here; empty: no "Pay online" anywhere."""
        from flask import g

        settings = current_settings()
        found = payments.online_providers(settings)
        if found:
            g.pay_form_origins = provider_origins(settings)
        return found

    return {"pay_online_providers": pay_online_providers, "provider_saves_cards":
            lambda name: payments.supports_saved_cards(current_settings(), name)}


# ---------------------------------------------------------------- provider notifications


def _notification(provider: str):
    settings = current_settings()
    try:
        result = payments.handle_notification(db.session, settings, provider, dict(request.headers),
                                               request.get_data(cache=True), request.form.to_dict(), utcnow())
        db.session.commit()
    except InvalidNotification as e:
        db.session.rollback()
        log.warning("refused %s notification: %s", provider, e)
        return {"error": "invalid notification"}, 400
    log.info("%s notification: %s", provider, result.outcome)
    return {"received": True, "outcome": result.outcome}, 200


@bp.post("/stripe/webhook")
@csrf.exempt
def stripe_webhook():
    return _notification("stripe")


@bp.post("/sslcommerz/ipn")
@csrf.exempt
def sslcommerz_ipn():
    return _notification("sslcommerz")


# ---------------------------------------------------------------- the member


def _urls(reference: str) -> payments.ReturnUrls:
    base = current_settings().base_url
    return payments.ReturnUrls(
        success_url=base + url_for("payments.returned", reference=reference, result="success"),
        cancel_url=base + url_for("payments.returned", reference=reference, result="cancel"),
        notify_url=base + url_for("payments.sslcommerz_ipn"))


def _member():
    if current_user.role != "member" or current_user.member is None or current_user.member.erased_at is not None:
        abort(403)
    return current_user.member


def go_pay(*, provider: str, purpose: str, member, term=None, registration=None, save_card=False,
           back: str):
    """Start the checkout and send the browser to the provider, or back with the reason."""
    try:
        target = payments.start_checkout(db.session, current_settings(), provider, purpose=purpose, member=member,
                                         term=term, registration=registration, save_card=save_card,
                                         urls=_urls, now=utcnow())
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        flash(e.message, "warning")
        return redirect(back)
    return redirect(target, code=303)


@bp.post("/pay/term/<int:term_id>")
@login_required
def pay_term(term_id: int):
    from membership.plans.models import Membership
    member = _member()
    term = db.session.get(Membership, term_id)
    if term is None or term.member_id != member.id:
        abort(404)
    return go_pay(provider=request.form.get("provider", ""), purpose="renewal" if term.renews_id else "join",
                  member=member, term=term, save_card=request.form.get("save_card") == "y",
                  back=url_for("portal.home"))


@bp.post("/pay/registration/<int:registration_id>")
@login_required
def pay_registration(registration_id: int):
    from membership.events.models import EventRegistration
    member = _member()
    registration = db.session.get(EventRegistration, registration_id)
    if registration is None or registration.member_id != member.id:
        abort(404)
    return go_pay(provider=request.form.get("provider", ""), purpose="event", member=member,
                  registration=registration, back=url_for("portal.my_events"))


@bp.route("/return/<reference>", methods=["GET", "POST"])
@csrf.exempt  # SSLCommerz sends the payer back with a form POST
def returned(reference: str):
    """Where the provider sends the payer back. The reference is a random token; the page says only
    whether the payment is confirmed (the webhook/IPN decides, never this page)."""
    checkout = db.session.scalar(select(Checkout).where(Checkout.reference == reference[:40]))
    if checkout is None:
        abort(404)
    result = request.args.get("result", "success")
    if request.method == "POST":
        return redirect(url_for("payments.returned", reference=reference, result=result), code=303)
    return render_template("payments/returned.html", checkout=checkout, result=result,
                           waiting=result == "success" and not checkout.is_paid and checkout.status == "open")


