"""Languages: Flask-Babel set up for the app, and the one place that knows which languages exist.

Templates use `_()`/`ngettext()` (installed in Jinja by Flask-Babel); Python code uses `gettext as _`
for strings made during a request and `lazy_gettext as _l` for strings defined at import (form labels).
Catalogues will live in `membership/translations/<lang>/LC_MESSAGES/messages.po`; none is shipped yet,
so every page is English until the Bengali catalogue lands (issue 9).
"""
from __future__ import annotations

from pathlib import Path

from flask import Flask, current_app, has_request_context, request
from flask_babel import Babel

LANGUAGES = ("en", "bn")
TRANSLATIONS = Path(__file__).resolve().parent.parent / "translations"

babel = Babel()


def select_locale() -> str:
    """The language of this request: Accept-Language, then the association's default
    (DEFAULT_LANGUAGE); outside a request (scheduler, CLI), the default. A signed-in user's stored
    choice is not consulted yet (issue 9)."""
    default = current_app.config.get("DEFAULT_LANGUAGE", "en")
    if not has_request_context():
        return default
    return request.accept_languages.best_match(LANGUAGES) or default


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS))
    app.config.setdefault("BABEL_DEFAULT_LOCALE", app.config.get("DEFAULT_LANGUAGE", "en"))
    babel.init_app(app, locale_selector=select_locale,
                   timezone_selector=lambda: current_app.config.get("TIMEZONE", "UTC"))
