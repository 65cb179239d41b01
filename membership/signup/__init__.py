"""Joining online: the public /join pages (plans, application, email confirmation) and their services."""
from flask import Blueprint

bp = Blueprint("signup", __name__, url_prefix="/join")

from membership.signup import views  # noqa: E402,F401
