"""Input cleaning shared by every domain: text without control characters, email syntax."""
from __future__ import annotations

import re
import unicodedata
from typing import Any

from email_validator import EmailNotValidError, validate_email
from flask_babel import gettext as _

from membership.core.errors import ValidationError
from membership.core import formats

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CONTROL_LINE = re.compile(r"[\x00-\x1f\x7f]")


def label_text(label: Any) -> str:
    """A field's label in the language now in force: callers pass the English words (or an already
    translated lazy string); messages built from it then read whole in the page's language."""
    return _(str(label))


def clean_text(value: Any, *, field: str, label: str, max_length: int, required: bool = False,
               multiline: bool = False) -> str | None:
    """Stripped NFC text; refuses control characters (PostgreSQL rejects NUL; headers must not get CR/LF)."""
    if value is None:
        value = ""
    value = unicodedata.normalize("NFC", str(value)).strip()
    if (_CONTROL if multiline else _CONTROL_LINE).search(value):
        raise ValidationError(_("%(label)s contains characters that are not allowed.", label=label_text(label)),
                              field=field)
    if len(value) > max_length:
        raise ValidationError(_("%(label)s must be at most %(count)s characters.", label=label_text(label),
                                count=formats.digits(str(max_length))), field=field)
    if required and not value:
        raise ValidationError(_("%(label)s is required.", label=label_text(label)), field=field)
    return value or None


def clean_email(value: str | None, *, required: bool = False, field: str = "email") -> str | None:
    """A syntactically valid address (no DNS look-up), or None when empty and not required."""
    value = clean_text(value, field=field, label="Email", max_length=254, required=required)
    if value is None:
        return None
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as e:
        if formats.language() == "en":
            raise ValidationError(f"Email: {e}", field=field) from None  # email_validator's own (English) detail
        raise ValidationError(_("Email: this is not a valid email address."), field=field) from None
