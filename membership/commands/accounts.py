from flask_babel import gettext as _
import click
from flask.cli import with_appcontext

from membership.accounts import services as accounts
from membership.commands.common import require_schema
from membership.core.errors import DomainError
from membership.core.time import utcnow
from membership.extensions import db


@click.command("create-admin")
@click.option("--email", prompt=True)
@click.option("--name", default="", help="Display name")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@with_appcontext
def create_admin(email: str, name: str, password: str) -> None:
    """Create an admin login."""
    require_schema("user")
    try:
        user = accounts.create_user(db.session, email=email, name=name or email.split("@")[0], role="admin",
                                    password=password, actor=None, now=utcnow())
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        raise click.ClickException(str(e))
    click.echo(_("Admin %(email)s created.", email=user.email))
