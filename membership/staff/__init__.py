"""The staff portal: every URL under /staff needs a signed-in staff or admin user."""
from flask import Blueprint

from membership.web import require_roles

bp = Blueprint("staff", __name__, url_prefix="/staff")
bp.before_request(require_roles("staff", "admin"))

# Each module owns one area of the portal.
from membership.staff import (  # noqa: E402,F401
    views_applications, views_home, views_import, views_member_page, views_members, views_notifications,
    views_organizations, views_payments, views_scheduler)
from membership.staff import views_closures, views_help  # noqa: E402,F401
from membership.staff import views_events  # noqa: E402,F401
from membership.staff import views_engagement  # noqa: E402,F401
from membership.staff import views_online_payments  # noqa: E402,F401
from membership.campaigns import views as _campaign_views  # noqa: E402,F401
