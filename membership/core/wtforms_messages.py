"""WTForms' built-in messages, listed so that `flask i18n extract` puts them in our catalogue
(WTForms ships no Bengali). Never called: core/i18n.py hands WTForms our translations."""
from membership.core.i18n import N_


def ngettext(singular: str, plural: str, n: int) -> tuple[str, str]:
    return singular, plural


MESSAGES = (
    N_("Invalid field name '%s'."),
    N_('Field must be equal to %(other_name)s.'),
    ngettext('Field must be at least %(min)d character long.', 'Field must be at least %(min)d characters long.', 1),
    ngettext('Field cannot be longer than %(max)d character.', 'Field cannot be longer than %(max)d characters.', 1),
    ngettext('Field must be exactly %(max)d character long.', 'Field must be exactly %(max)d characters long.', 1),
    N_('Field must be between %(min)d and %(max)d characters long.'),
    N_('Number must be at least %(min)s.'),
    N_('Number must be at most %(max)s.'),
    N_('Number must be between %(min)s and %(max)s.'),
    N_('Date must be at least %(min)s.'),
    N_('Date must be at most %(max)s.'),
    N_('Date must be between %(min)s and %(max)s.'),
    N_('This field is required.'),
    N_('Invalid input.'),
    N_('Invalid email address.'),
    N_('Invalid IP address.'),
    N_('Invalid Mac address.'),
    N_('Invalid URL.'),
    N_('Invalid UUID.'),
    N_('Invalid value, must be one of: %(values)s.'),
    N_("Invalid value, can't be any of: %(values)s."),
    N_('This field cannot be edited.'),
    N_('This field is disabled and cannot have a value.'),
    N_('Invalid CSRF Token.'),
    N_('CSRF token missing.'),
    N_('CSRF failed.'),
    N_('CSRF token expired.'),
    N_('Invalid Choice: could not coerce.'),
    N_('Choices cannot be None.'),
    N_('Not a valid choice.'),
    N_('Invalid choice(s): one or more data inputs could not be coerced.'),
    ngettext("'%(value)s' is not a valid choice for this field.", "'%(value)s' are not valid choices for this field.", 1),
    N_('Not a valid datetime value.'),
    N_('Not a valid date value.'),
    N_('Not a valid time value.'),
    N_('Not a valid week value.'),
    N_('Not a valid integer value.'),
    N_('Not a valid decimal value.'),
    N_('Not a valid float value.'),
)
