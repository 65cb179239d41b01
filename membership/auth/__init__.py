from flask import Blueprint

bp = Blueprint("auth", __name__)

from membership.auth import views, views_account  # noqa: E402,F401
