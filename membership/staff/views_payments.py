"""Payments: the list (filters, total of the filter, pagination) and the printable receipt."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from flask import current_app, render_template, request
from flask_babel import gettext as _
from sqlalchemy import func, or_, select
from sqlalchemy.orm import joinedload

from membership.core import time as clock
from membership.extensions import db
from membership.members.models import Member
from membership.plans.models import PAYMENT_METHODS, Payment
from membership.staff import bp
from membership.staff.forms_member_page import METHOD_LABELS, to_id
from membership.web import get_or_404

PAYMENTS_PER_PAGE = 50


@dataclass
class PaymentFilter:
    """What the payment list can be narrowed by, read leniently from the query string: a bad value
    is reported in `errors` and ignored, never a 500."""
    q: str = ""
    method: str = ""
    received_from: date | None = None
    received_to: date | None = None
    member_id: int | None = None
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_args(cls, args) -> "PaymentFilter":
        f = cls()
        q = (args.get("q") or "").strip()[:100]
        if any(ord(c) < 32 or ord(c) == 127 for c in q):
            f.errors["q"] = _('The search contained characters that are not allowed; they were ignored.')
            q = "".join(c for c in q if ord(c) >= 32 and ord(c) != 127)
        f.q = q
        method = args.get("method") or ""
        if method and method not in PAYMENT_METHODS:
            f.errors["method"] = _('Not a payment method.')
        else:
            f.method = method
        for name, label in (("received_from", _("Received from")), ("received_to", _("Received to"))):
            raw = (args.get(name) or "").strip()
            if raw:
                try:
                    value = date.fromisoformat(raw)
                    if not 1900 <= value.year <= 2999:
                        raise ValueError
                    setattr(f, name, value)
                except ValueError:
                    f.errors[name] = _("%(label)s: use a date like 2026-01-31.", label=label)
        if f.received_from and f.received_to and f.received_from > f.received_to:
            f.errors["received_to"] = _('Received to is before received from; the dates were swapped.')
            f.received_from, f.received_to = f.received_to, f.received_from
        raw_member = args.get("member_id")
        if raw_member:
            f.member_id = to_id(raw_member)
            if f.member_id is None:
                f.errors["member_id"] = _('Not a member.')
        return f

    def as_args(self) -> dict[str, str]:
        out = {"q": self.q, "method": self.method,
               "received_from": self.received_from.isoformat() if self.received_from else "",
               "received_to": self.received_to.isoformat() if self.received_to else "",
               "member_id": str(self.member_id) if self.member_id else ""}
        return {k: v for k, v in out.items() if v}

    def conditions(self) -> list:
        """SQL conditions. Dates are days in the association's zone: from its midnight to the next."""
        zone = clock.tz()
        where = []
        if self.q:
            where.append(or_(Payment.receipt_number.icontains(self.q, autoescape=True),
                             Payment.reference.icontains(self.q, autoescape=True)))
        if self.method:
            where.append(Payment.method == self.method)
        if self.received_from:
            where.append(Payment.received_at >= clock.local_midnight_utc(self.received_from, zone))
        if self.received_to:
            where.append(Payment.received_at < clock.local_midnight_utc(self.received_to + timedelta(days=1), zone))
        if self.member_id:
            where.append(Payment.member_id == self.member_id)
        return where


@bp.get("/payments")
def payments():
    """Payments newest first, with the count and total of everything the filter matches."""
    f = PaymentFilter.from_args(request.args)
    where = f.conditions()
    stmt = (select(Payment).where(*where)
            .options(joinedload(Payment.member), joinedload(Payment.organization),
                     joinedload(Payment.membership), joinedload(Payment.recorded_by))
            .order_by(Payment.received_at.desc(), Payment.id.desc()))
    page = db.paginate(stmt, page=to_id(request.args.get("page")) or 1, per_page=PAYMENTS_PER_PAGE,
                       error_out=False, count=False)
    totals = db.session.execute(select(Payment.currency, func.count(), func.sum(Payment.amount_minor))
                                .where(*where).group_by(Payment.currency).order_by(Payment.currency)).all()
    page.total = sum(n for _currency, n, _amount in totals)
    member = db.session.get(Member, f.member_id) if f.member_id else None
    return render_template("staff/payments/list.html", page=page, f=f, args=f.as_args(), totals=totals,
                           count=page.total, member=member, methods=METHOD_LABELS)


@bp.get("/payments/<int:payment_id>/receipt")
def receipt(payment_id: int):
    """A printable receipt: the association, the number, who paid, how much, for what."""
    payment = get_or_404(Payment, payment_id)
    address = [line.strip() for line in (current_app.config.get("ASSOCIATION_ADDRESS") or "").splitlines()
               if line.strip()]
    return render_template("staff/payments/receipt.html", payment=payment, term=payment.membership,
                           address=address, method=METHOD_LABELS.get(payment.method, payment.method))
