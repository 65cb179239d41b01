"""`flask api token create|list|revoke`: API tokens from the command line."""
from __future__ import annotations

import click
from flask.cli import with_appcontext
from sqlalchemy import select

from membership.accounts.models import User
from membership.accounts.services import normalize_email
from membership.api import tokens
from membership.commands.common import require_schema
from membership.core.errors import DomainError
from membership.core.time import utcnow
from membership.extensions import db


@click.group("api")
def api_group() -> None:
    """The JSON API."""


@api_group.group("token")
def token_group() -> None:
    """API tokens (stored hashed; the secret is printed once)."""


@token_group.command("create")
@click.option("--name", required=True, help="what will use it, e.g. 'website'")
@click.option("--owner", "owner_email", required=True, help="email of the admin or staff login it acts as")
@click.option("--scope", "scopes", multiple=True, type=click.Choice(["read", "write"]), default=("read",),
              show_default=True, help="repeat for both")
@with_appcontext
def token_create(name: str, owner_email: str, scopes: tuple[str, ...]) -> None:
    """Create a token and print its secret (only now)."""
    require_schema("api_token")
    owner = db.session.scalar(select(User).where(User.email_normalized == normalize_email(owner_email)))
    if owner is None:
        raise click.ClickException(f"No login {owner_email}.")
    try:
        token, secret = tokens.create_token(db.session, name=name, scopes=scopes, owner=owner, actor=None,
                                            now=utcnow())
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        raise click.ClickException(str(e))
    click.echo(f"Token {token.id} ({token.prefix}…, {token.scopes}) for {owner.email}. Copy it now, it is not kept:")
    click.echo(secret)


@token_group.command("list")
@click.option("--all", "show_all", is_flag=True, help="include revoked tokens")
@with_appcontext
def token_list(show_all: bool) -> None:
    """List tokens (never their secrets)."""
    require_schema("api_token")
    rows = tokens.list_tokens(db.session, include_revoked=show_all)
    if not rows:
        click.echo("No API tokens.")
    for t in rows:
        state = f"revoked {t.revoked_at:%Y-%m-%d %H:%M}Z" if t.revoked_at else "active"
        used = f"{t.last_used_at:%Y-%m-%d %H:%M}Z" if t.last_used_at else "never"
        click.echo(f"{t.id}\t{t.prefix}…\t{t.scopes}\t{t.owner.email}\t{t.name}\tlast used {used}\t{state}")


@token_group.command("revoke")
@click.argument("token")
@with_appcontext
def token_revoke(token: str) -> None:
    """Revoke a token, given by id or prefix (as listed)."""
    require_schema("api_token")
    try:
        row = tokens.find_token(db.session, token)
        tokens.revoke_token(db.session, row, actor=None, now=utcnow())
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        raise click.ClickException(str(e))
    click.echo(f"Token {row.id} ({row.prefix}…) revoked.")
