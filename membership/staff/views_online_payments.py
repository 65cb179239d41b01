"""Staff: the online checkouts (membership.payments), those paid twice (to refund) first."""
from __future__ import annotations

from flask import flash, render_template
from flask_babel import ngettext
from sqlalchemy import case, select

from membership.extensions import db
from membership.payments.checkout import PROVIDER_NAMES
from membership.payments.models import Checkout
from membership.staff import bp


@bp.get("/payments/online")
def online_payments():
    """Every online checkout, those paid twice (to refund) first, then the newest."""
    rows = db.session.scalars(
        select(Checkout).order_by(case((Checkout.status == "paid_twice", 0), else_=1), Checkout.created_at.desc(),
                                  Checkout.id.desc()).limit(500)).all()
    twice = sum(1 for r in rows if r.status == "paid_twice")
    if twice:
        flash(ngettext("%(num)s online payment arrived for something already paid another way: refund it.",
                       "%(num)s online payments arrived for something already paid another way: refund them.",
                       twice), "warning")
    return render_template("staff/payments/online.html", rows=rows, providers=PROVIDER_NAMES)
