"""The admin's engagement settings (activity weights, half-life, band thresholds), stored in the
Setting table with defaults, so staff can tune the score without a deploy."""
from __future__ import annotations

from flask_babel import gettext as _

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from membership.core.errors import ValidationError
from membership.core.services import ACTIVITY_KINDS
from membership.engagement.models import Setting

# Points per activity on the day it happens; halves every half-life. System kinds (status
# changes, lapses, cancellations, no-shows) say nothing good about engagement: weight 0.
DEFAULT_WEIGHTS: dict[str, float] = {
    "event_attended": 10, "renewed": 8, "interaction": 6, "feedback_given": 5, "joined": 5,
    "event_registered": 4, "email_clicked": 3, "payment": 3, "help_request": 2, "profile_updated": 2,
    "email_opened": 1, "logged_in": 1, "survey_answered": 4,
    "external_contact": 6, "website_visit": 1,  # through the API: a call or meeting logged elsewhere; a visit
    "event_cancelled": 0, "event_no_show": 0, "status_changed": 0, "lapsed": 0, "cancelled": 0,
}
DEFAULT_HALF_LIFE_DAYS = 90
# Lower bound of each band (score >= bound); below the last one: dormant.
DEFAULT_BANDS: dict[str, float] = {"highly_engaged": 40.0, "engaged": 15.0, "drifting": 3.0}

KEY_WEIGHTS = "engagement.weights"
KEY_HALF_LIFE = "engagement.half_life_days"
KEY_BANDS = "engagement.bands"
KEY_WE_MISS_YOU = "engagement.we_miss_you"


@dataclass(frozen=True)
class EngagementSettings:
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    half_life_days: float = DEFAULT_HALF_LIFE_DAYS
    bands: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_BANDS))
    # send members who cross into high risk the "we_miss_you" email (marketing: opted-in only)
    we_miss_you: bool = False


def get_settings(session: Session) -> EngagementSettings:
    """The stored settings, each falling back to its default (unknown kinds in a stored weight map
    are ignored; missing kinds take the default weight)."""
    rows = {s.key: s.value for s in session.scalars(
        select(Setting).where(Setting.key.in_((KEY_WEIGHTS, KEY_HALF_LIFE, KEY_BANDS, KEY_WE_MISS_YOU))))}
    weights = dict(DEFAULT_WEIGHTS)
    for kind, w in (rows.get(KEY_WEIGHTS) or {}).items():
        if kind in weights or kind in ACTIVITY_KINDS:
            weights[kind] = float(w)
    half_life = float(rows.get(KEY_HALF_LIFE) or DEFAULT_HALF_LIFE_DAYS)
    bands = dict(DEFAULT_BANDS)
    bands.update({k: float(v) for k, v in (rows.get(KEY_BANDS) or {}).items() if k in DEFAULT_BANDS})
    return EngagementSettings(weights=weights, half_life_days=half_life, bands=bands,
                              we_miss_you=rows.get(KEY_WE_MISS_YOU) is True)


def _number(value: Any, field_name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValidationError(_("Enter a number."), field=field_name) from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ValidationError(_("Enter a number."), field=field_name)
    return number


def save_settings(session: Session, values: dict[str, Any], *, actor, now: datetime) -> EngagementSettings:
    """Validate and store settings. `values` may hold "weights" ({kind: number}), "half_life_days"
    and "bands" ({band: lower bound}); missing ones are left as they are. Raises ValidationError
    (with `field`, e.g. "weights.event_attended") on the first bad value; flushes nothing, the
    caller commits."""
    current = get_settings(session)
    to_store: dict[str, Any] = {}
    if "weights" in values:
        weights = dict(current.weights)
        for kind, raw in (values["weights"] or {}).items():
            if kind not in ACTIVITY_KINDS:
                raise ValidationError(f"Unknown activity kind {kind!r}.", field=f"weights.{kind}")
            w = _number(raw, f"weights.{kind}")
            if w < 0 or w > 1000:
                raise ValidationError(_("A weight is between 0 and 1000."), field=f"weights.{kind}")
            weights[kind] = w
        to_store[KEY_WEIGHTS] = weights
    if "half_life_days" in values:
        h = _number(values["half_life_days"], "half_life_days")
        if not 1 <= h <= 3650:
            raise ValidationError(_("The half-life is between 1 and 3650 days."), field="half_life_days")
        to_store[KEY_HALF_LIFE] = h
    if "bands" in values:
        bands = dict(current.bands)
        for name, raw in (values["bands"] or {}).items():
            if name not in DEFAULT_BANDS:
                raise ValidationError(f"Unknown band {name!r}.", field=f"bands.{name}")
            b = _number(raw, f"bands.{name}")
            if b < 0:
                raise ValidationError(_("A threshold cannot be negative."), field=f"bands.{name}")
            bands[name] = b
        if not bands["highly_engaged"] > bands["engaged"] > bands["drifting"]:
            raise ValidationError(_("Thresholds must decrease: highly engaged > engaged > drifting."),
                                  field="bands.engaged")
        to_store[KEY_BANDS] = bands
    if "we_miss_you" in values:
        to_store[KEY_WE_MISS_YOU] = bool(values["we_miss_you"])
    actor_id = getattr(actor, "id", None)
    for key, value in to_store.items():
        row = session.get(Setting, key)
        if row is None:
            session.add(Setting(key=key, value=value, updated_at=now, updated_by_id=actor_id))
        else:
            row.value, row.updated_at, row.updated_by_id = value, now, actor_id
    if to_store:
        from membership.core.services import record_audit
        record_audit(session, actor=actor, action="engagement.settings", entity=None, now=now,
                     summary="Changed the engagement settings", changes=to_store)
    session.flush()
    return get_settings(session)
