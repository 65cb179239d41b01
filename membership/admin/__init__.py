"""Admin pages (plans, staff accounts): signed-in admins only."""
from flask import Blueprint

from membership.web import require_roles

bp = Blueprint("admin", __name__, url_prefix="/staff/admin")
bp.before_request(require_roles("admin"))

from membership.admin import views_engagement, views_plans, views_reminders, views_users  # noqa: E402,F401
