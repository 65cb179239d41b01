"""Forms of the member import pages: the upload (file and choices) and the confirm/discard posts."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, RadioField
from wtforms.fields.choices import SelectChoice

ON_MATCH_CHOICES = [
    SelectChoice("skip", _l('Skip them: leave their records as they are')),
    SelectChoice("update", _l('Update them from the file (empty cells clear the value)')),
]


class ImportUploadForm(FlaskForm):
    file = FileField(_l('CSV file'), validators=[FileRequired(_l("Choose a CSV file to import."))])
    on_match = RadioField(_l('Members already in Samiti (same email or member number)'), choices=ON_MATCH_CHOICES,
                          default="skip")
    # Plans are an admin's business: the view removes this field for staff.
    create_plans = BooleanField(_l("Create plans whose code is unknown (a guess: free, lifetime or one year "
                                   "with 30 days' grace; a zip with plans.csv needs no guess)"))


class ImportConfirmForm(FlaskForm):
    """Only the CSRF token: the choices were made at upload and are kept with the file."""
