"""Dates, numbers and money in the language of the page or of the email's recipient.

English keeps the association's LOCALE (en_GB by default) and the strftime patterns the pages use;
Bengali uses Babel's bn_BD data (Bengali month and day names, ৳ for BDT) and, unless
BENGALI_DIGITS=false, Bengali digits (০-৯). The current language is Flask-Babel's locale: the
request's, or the one forced with core.i18n.in_language while an email is rendered.
"""
from __future__ import annotations

import functools
import re
from datetime import date, datetime
from decimal import Decimal

from babel.dates import format_date as babel_format_date
from babel.dates import format_datetime as babel_format_datetime
from babel.numbers import format_currency, format_decimal
from flask import current_app, has_app_context

BENGALI_DIGITS = str.maketrans("0123456789", "০১২৩৪৫৬৭৮৯")
_BABEL_LOCALES = {"bn": "bn_BD"}
# strftime directives -> CLDR pattern letters
_STRFTIME_TO_CLDR = {"%d": "dd", "%-d": "d", "%e": "d", "%b": "MMM", "%B": "MMMM", "%m": "MM", "%Y": "y",
                     "%y": "yy", "%a": "EEE", "%A": "EEEE", "%H": "HH", "%M": "mm", "%S": "ss", "%I": "hh",
                     "%p": "a"}
_DIRECTIVE = re.compile(r"%-?[a-zA-Z]")


def language() -> str:
    """The two-letter language now in force (page or email), "en" outside any context."""
    from flask_babel import get_locale

    if not has_app_context():
        return "en"
    locale = get_locale()
    return locale.language if locale is not None else current_app.config.get("DEFAULT_LANGUAGE", "en")


def babel_locale(lang: str | None = None) -> str:
    lang = lang or language()
    if lang in _BABEL_LOCALES:
        return _BABEL_LOCALES[lang]
    return (current_app.config.get("LOCALE") if has_app_context() else None) or "en_GB"


def digits(text: str, lang: str | None = None) -> str:
    """Latin digits as Bengali ones on Bengali pages and emails (the BENGALI_DIGITS setting)."""
    lang = lang or language()
    if lang == "bn" and (not has_app_context() or current_app.config.get("BENGALI_DIGITS", True)):
        return text.translate(BENGALI_DIGITS)
    return text


def _cldr(fmt: str) -> str:
    out, pos = [], 0
    for m in _DIRECTIVE.finditer(fmt):
        literal = fmt[pos:m.start()]
        if literal:
            out.append("'" + literal.replace("'", "''") + "'" if re.search(r"[A-Za-z']", literal) else literal)
        out.append(_STRFTIME_TO_CLDR.get(m.group(), m.group()))
        pos = m.end()
    tail = fmt[pos:]
    if tail:
        out.append("'" + tail.replace("'", "''") + "'" if re.search(r"[A-Za-z']", tail) else tail)
    return "".join(out)


def strftime(value: date | datetime, fmt: str) -> str:
    """`value.strftime(fmt)` in the current language: English as is; other languages through Babel
    (names of months and days), with their digits. ISO-style patterns (%Y-%m-%d...) stay as they are,
    for files and machine-read values."""
    lang = language()
    if lang == "en" or fmt.startswith("%Y-%m-%d"):
        return value.strftime(fmt)
    return digits(_babel_strftime(value, fmt, babel_locale(lang)), lang)


@functools.lru_cache(maxsize=4096)
def _babel_strftime(value, fmt: str, locale: str) -> str:
    pattern = _cldr(fmt)
    if isinstance(value, datetime):
        return babel_format_datetime(value, pattern, tzinfo=value.tzinfo, locale=locale)
    return babel_format_date(value, pattern, locale=locale)


def long_date(value: date) -> str:
    """15 July 2026 / ১৫ জুলাই, ২০২৬."""
    lang = language()
    return digits(_long_date(value, babel_locale(lang)), lang)


@functools.lru_cache(maxsize=4096)
def _long_date(value: date, locale: str) -> str:
    # Babel is slow per call, and a reminder run formats the same few end dates thousands of times.
    return babel_format_date(value, format="long", locale=locale)


def datetime_pattern(value: datetime, pattern: str) -> str:
    lang = language()
    return digits(babel_format_datetime(value, pattern, tzinfo=value.tzinfo, locale=babel_locale(lang)), lang)


def money(minor: int, currency: str) -> str:
    lang = language()
    return digits(_money(minor, currency, babel_locale(lang)), lang)


@functools.lru_cache(maxsize=4096)
def _money(minor: int, currency: str, locale: str) -> str:
    return format_currency(Decimal(minor) / 100, currency, locale=locale)


def number(value) -> str:
    lang = language()
    return digits(format_decimal(value, locale=babel_locale(lang)), lang)
