"""Churn-risk alerts: one per risk episode.

An episode starts when a member's risk band becomes "high" (it was not high at the previous
scoring, or the member had never been scored) and the member has no open alert; it ends when the
member renews, the risk falls below high, or the membership ends (status "resolved", with a
close_reason), or when staff record the action they took (status "actioned", done by the staff
pages). Staff hear of each alert once: the daily digest lists alerts not yet notified and stamps
them with the digest's day.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from membership.engagement.models import RiskAlert
from membership.engagement.scoring import suggested_action
from membership.members.models import Member

MAX_DIGEST_ALERTS = 50


def update_alerts(session: Session, scores: Mapping[int, dict[str, Any]], previous_bands: Mapping[int, str | None],
                  *, today: date, now: datetime, opened: list[RiskAlert] | None = None) -> dict[str, int]:
    """Open and close alerts for one batch of freshly scored members.

    `scores`: {member_id: {"churn_risk", "risk_band", "reasons", "renewed"}}; `previous_bands`:
    the risk band each member had at the previous scoring (absent: never scored). The alerts
    opened are appended to `opened` when given. Adds and flushes; the caller commits."""
    counts = {"opened": 0, "resolved": 0}
    if not scores:
        return counts
    open_alerts = {a.member_id: a for a in session.scalars(
        select(RiskAlert).where(RiskAlert.member_id.in_(list(scores)), RiskAlert.status == "open"))}
    for member_id, s in scores.items():
        alert = open_alerts.get(member_id)
        band = s.get("risk_band")
        if alert is not None:
            reason = None
            if s.get("renewed"):
                reason = "Renewed."
            elif s.get("churn_risk") is None:
                reason = "No current term any more: the membership ended."
            elif band != "high":
                reason = f"Risk fell to {band} ({s['churn_risk']:.0%})."
            if reason:
                alert.status, alert.closed_at, alert.close_reason = "resolved", now, reason
                counts["resolved"] += 1
            continue
        if band == "high" and previous_bands.get(member_id) != "high":
            alert = RiskAlert(member_id=member_id, opened_on=today, churn_risk=s["churn_risk"],
                              reasons=s.get("reasons") or [],
                              suggested_action=suggested_action(s.get("reasons") or []), status="open")
            session.add(alert)
            if opened is not None:
                opened.append(alert)
            counts["opened"] += 1
    session.flush()
    return counts


def alerts_to_notify(session: Session) -> list[tuple[RiskAlert, Member]]:
    """Open alerts staff have not been told about yet, riskiest first."""
    return list(session.execute(
        select(RiskAlert, Member).join(Member, Member.id == RiskAlert.member_id)
        .where(RiskAlert.status == "open", RiskAlert.notified_on.is_(None), Member.erased_at.is_(None))
        .order_by(RiskAlert.churn_risk.desc(), RiskAlert.id)).all())


def digest_alert_lines(pending: list[tuple[RiskAlert, Member]]) -> list[str]:
    """Digest lines for new alerts: member, number, risk, reasons, suggested action."""
    if not pending:
        return []
    from flask_babel import gettext as _
    from flask_babel import ngettext

    from membership.core.formats import digits, number

    n = len(pending)
    lines = [ngettext("%(count)s member crossed into high churn risk:", "%(count)s members crossed into high churn "
                      "risk:", n, count=number(n))]
    for alert, member in pending[:MAX_DIGEST_ALERTS]:
        why = "; ".join(r.get("text", "") for r in (alert.reasons or [])) or _("several small signs")
        lines.append(_("%(name)s (%(number)s): %(risk)s risk - %(why)s. Suggested: %(action)s.",
                       name=member.full_name, number=member.member_number, risk=digits(f"{alert.churn_risk:.0%}"),
                       why=why, action=alert.suggested_action or _("call them")))
    if n > MAX_DIGEST_ALERTS:
        lines.append(_("... and %(count)s more (see Members at risk).", count=number(n - MAX_DIGEST_ALERTS)))
    return lines


def mark_notified(session: Session, alerts: list[RiskAlert], *, day: date) -> None:
    for alert in alerts:
        alert.notified_on = day
    session.flush()
