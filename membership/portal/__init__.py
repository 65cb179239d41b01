"""The members' self-service portal: every URL under /my needs a signed-in member."""
from flask import Blueprint

from membership.web import require_roles

bp = Blueprint("portal", __name__, url_prefix="/my")
bp.before_request(require_roles("member"))

# Each module owns one area of the portal.
from membership.portal import views, views_data, views_directory, views_events, views_help  # noqa: E402,F401
