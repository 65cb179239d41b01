"""Admin: the engagement settings (activity weights, half-life, band thresholds) and the churn
model in use."""
from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _, lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select

from membership.admin import bp
from membership.core.errors import ValidationError
from membership.core.services import ACTIVITY_KINDS
from membership.core.time import utcnow
from membership.engagement.models import ENGAGEMENT_BANDS, ChurnModel
from membership.engagement.scoring import DEFAULT_MODEL
from membership.engagement.settings import get_settings, save_settings
from membership.extensions import db

BAND_LABELS = {"highly_engaged": _l('Highly engaged'), "engaged": _l('Engaged'), "drifting": _l('Drifting'), "dormant": _l('Dormant')}


def _page(values=None, error: ValidationError | None = None, status: int = 200):
    settings = get_settings(db.session)
    models = db.session.scalars(select(ChurnModel).order_by(ChurnModel.fitted_at.desc(), ChurnModel.id.desc())
                                .limit(5)).all()
    active = next((m for m in models if m.is_active), None)
    return render_template("admin/engagement.html", settings=settings, kinds=sorted(ACTIVITY_KINDS),
                           values=values, error=error, bands=ENGAGEMENT_BANDS[:-1], band_labels=BAND_LABELS,
                           models=models, active=active, default_model=DEFAULT_MODEL), status


@bp.get("/engagement")
def engagement_settings():
    return _page()


@bp.post("/engagement")
def save_engagement_settings():
    form = request.form
    values = {"weights": {k: form.get(f"weights.{k}", "") for k in ACTIVITY_KINDS if f"weights.{k}" in form},
              "half_life_days": form.get("half_life_days", ""),
              "bands": {b: form.get(f"bands.{b}", "") for b in ENGAGEMENT_BANDS[:-1] if f"bands.{b}" in form},
              "we_miss_you": form.get("we_miss_you") == "on"}
    try:
        save_settings(db.session, values, actor=current_user, now=utcnow())
        db.session.commit()
    except ValidationError as e:
        db.session.rollback()
        return _page(values=form, error=e, status=422)
    flash(_('Engagement settings saved: the next daily scoring uses them.'), "success")
    return redirect(url_for("admin.engagement_settings"))
