from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, EqualTo, Length


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=256)])
    remember = BooleanField("Keep me signed in on this device")
    next = StringField()
    submit = SubmitField("Sign in")


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField("Current password", validators=[DataRequired()])
    new_password = PasswordField("New password", validators=[DataRequired(), Length(max=256)])
    confirm = PasswordField("Repeat the new password",
                            validators=[DataRequired(), EqualTo("new_password", message="The passwords differ.")])
    submit = SubmitField("Change password")


class SetPasswordForm(FlaskForm):
    name = StringField("Your name", validators=[DataRequired(), Length(max=200)])
    new_password = PasswordField("Password", validators=[DataRequired(), Length(max=256)])
    confirm = PasswordField("Repeat the password",
                            validators=[DataRequired(), EqualTo("new_password", message="The passwords differ.")])
    submit = SubmitField("Set password and sign in")


class EmailOnlyForm(FlaskForm):
    """Forgot password, and "send the confirmation link again"."""
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])


class ResetPasswordForm(FlaskForm):
    new_password = PasswordField("New password", validators=[DataRequired(), Length(max=256)])
    confirm = PasswordField("Repeat the new password",
                            validators=[DataRequired(), EqualTo("new_password", message="The passwords differ.")])


class ChangeEmailForm(FlaskForm):
    email = EmailField("New email address", validators=[DataRequired(), Length(max=254)])
    current_password = PasswordField("Your password", validators=[DataRequired(), Length(max=256)])


class ConfirmForm(FlaskForm):
    """A single button that confirms a link (links change nothing when opened: mail scanners open them)."""
