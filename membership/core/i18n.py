"""Languages: Flask-Babel set up for the app, and the one place that knows which languages exist.

Templates use `_()`/`ngettext()` (installed in Jinja by Flask-Babel); Python code uses `gettext as _`
for strings made during a request and `lazy_gettext as _l` for strings defined at import (form labels).
The catalogues live in `membership/translations/<lang>/LC_MESSAGES/messages.po` (see core/catalog.py
and `flask i18n`).

The language of a page: a signed-in user's choice made with the switch (User.language, kept on the
account), else the visitor's choice kept in the session, else the browser's Accept-Language, else
DEFAULT_LANGUAGE. The switch also sets a member's Member.language, the language of their emails
(which My details shows as "language of our emails"); emails use `language_of(...)`.
"""
from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from flask import Blueprint, Flask, current_app, has_request_context, redirect, request, session
from flask_babel import Babel, force_locale, refresh

LANGUAGES = ("en", "bn")
# Each language named in itself: what the switch and the language fields show.
LANGUAGE_NAMES = {"en": "English", "bn": "বাংলা"}
TRANSLATIONS = Path(__file__).resolve().parent.parent / "translations"
SESSION_KEY = "language"

babel = Babel()


def N_(message: str) -> str:
    """Marks a string for the catalogue without translating it (it is translated where it is shown)."""
    return message
bp = Blueprint("i18n", __name__)


def default_language() -> str:
    lang = current_app.config.get("DEFAULT_LANGUAGE", "en")
    return lang if lang in LANGUAGES else "en"


def clean_language(value: str | None) -> str | None:
    value = (value or "").strip().lower()
    return value if value in LANGUAGES else None


def language_of(member=None, user=None) -> str:
    """The language to write to someone in: a member's own choice (Member.language, "language of
    our emails"), a staff login's (User.language); for someone with neither (a guest at an event)
    the language of the page they are on; outside a request the association's default."""
    if member is not None and clean_language(getattr(member, "language", None)):
        return member.language
    if user is not None:
        if getattr(user, "member", None) is not None and clean_language(user.member.language):
            return user.member.language
        if clean_language(getattr(user, "language", None)):
            return user.language
    if has_request_context() and member is None and user is None:
        from flask_babel import get_locale
        locale = get_locale()
        if locale is not None and locale.language in LANGUAGES:
            return locale.language
    return default_language()


def _stored_choice() -> str | None:
    from flask_login import current_user

    try:
        user = current_user._get_current_object()
    except Exception:  # no login manager in this context
        return None
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return clean_language(user.language)


def select_locale() -> str:
    """The language of this request (see the module docstring); outside a request (scheduler,
    CLI), the default unless a caller forced one with `in_language`."""
    if not has_request_context():
        return default_language()
    return (_stored_choice() or clean_language(session.get(SESSION_KEY))
            or request.accept_languages.best_match(LANGUAGES) or default_language())


@contextmanager
def in_language(language: str | None):
    """Render (emails, files) in `language` whatever the request's own language."""
    with force_locale(clean_language(language) or default_language()):
        yield


def set_language(db_session, user, language: str, *, now: datetime) -> None:
    """Store a signed-in user's choice of the switch on their login (their pages, on every device);
    a member's emails follow it too (Member.language, the same preference as "language of our
    emails" in My details). Caller commits."""
    from membership.core.services import record_audit

    user.language = language
    member = user.member if user.member_id is not None else None
    if member is not None and member.erased_at is None and member.language != language:
        before = member.language
        member.language = language
        record_audit(db_session, actor=user, action="member.language", entity=member, now=now,
                     member_id=member.id, summary=f"Language changed to {LANGUAGE_NAMES[language]}",
                     changes={"language": [before, language]})


@bp.post("/language")
def choose_language():
    """The language switch: remember the choice and go back to the page it was made on."""
    from flask_login import current_user

    from membership.core.time import utcnow
    from membership.extensions import db
    from membership.web import is_safe_next

    language = clean_language(request.form.get("language"))
    target = request.form.get("next") or ""
    if not is_safe_next(target):
        target = "/"
    # The form carries the page's path only (a query string echoed into every page could carry
    # anything); the Referer of this same-site post gives the query string back.
    referrer = urlsplit(request.referrer or "")
    if referrer.netloc == request.host and referrer.path == target.split("?", 1)[0] and referrer.query:
        candidate = f"{referrer.path}?{referrer.query}"
        if is_safe_next(candidate):
            target = candidate
    if language is None:
        return redirect(target, code=303)
    session[SESSION_KEY] = language
    if current_user.is_authenticated:
        set_language(db.session, current_user, language, now=utcnow())
        db.session.commit()
    refresh()
    return redirect(target, code=303)


def switch_next() -> str:
    """Where the switch sends the visitor back to: this page (its query string comes from the Referer)."""
    return request.path if has_request_context() else "/"


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS))
    app.config.setdefault("BABEL_DEFAULT_LOCALE", app.config.get("DEFAULT_LANGUAGE", "en"))
    babel.init_app(app, locale_selector=select_locale,
                   timezone_selector=lambda: current_app.config.get("TIMEZONE", "UTC"))
    app.jinja_env.globals.update(language_names=LANGUAGE_NAMES, switch_next=switch_next,
                                 current_language=lambda: str(_current_locale()))
    app.register_blueprint(bp)
    _translate_wtforms()

    @app.before_request
    def _choose_the_language_afresh():
        # Flask-Babel keeps the chosen locale in `g`, which lives on the app context; a request run
        # inside an outer app context (tests, a CLI that dispatches requests) would keep the
        # language of an earlier request (the same reason web.py reloads the user).
        from flask import g
        g.pop("_flask_babel", None)


class _WTFormsTranslations:
    """WTForms' own messages ("This field is required." ...) from our catalogue: WTForms ships no
    Bengali, so its messages are listed in core/wtforms_messages.py and translated with the rest."""

    def gettext(self, string):
        from flask_babel import get_translations
        return get_translations().ugettext(string)

    def ngettext(self, singular, plural, n):
        from flask_babel import get_translations
        return get_translations().ungettext(singular, plural, n)


def _translate_wtforms() -> None:
    from flask_wtf import FlaskForm

    translations = _WTFormsTranslations()
    FlaskForm.Meta.get_translations = lambda self, form: translations


def _current_locale():
    from flask_babel import get_locale
    return get_locale() or default_language()

