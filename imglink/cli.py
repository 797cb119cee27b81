"""The `imglink` admin commands, built on Flask's CLI."""
from __future__ import annotations

import functools

import click
from flask import Flask, current_app
from flask.cli import AppGroup, FlaskGroup, with_appcontext

from . import services
from .db import create_tables, database
from .deps import get_storage


def _service(fn):
    """Run the command inside its own database connection; ServiceError exits non-zero."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            with database.connection_context():
                return fn(*args, **kwargs)
        except services.ServiceError as e:
            raise click.ClickException(str(e)) from None
    return wrapper


def _plans() -> dict:
    return current_app.config["PLANS"]


account_group = AppGroup("account", help="Create accounts and change their plans.")


@account_group.command("create")
@click.argument("email")
@click.option("--plan", default="free", show_default=True, help="free, pro or enterprise")
@_service
def account_create(email: str, plan: str):
    """Create an account; its first API key is printed alone on the last line."""
    account, key = services.create_account(email, plan, _plans())
    click.echo(f"Created account {account.email} on the {account.plan} plan. "
               "Its API key, shown only this once:", err=True)
    click.echo(key)


@account_group.command("set-plan")
@click.argument("email")
@click.argument("plan")
@_service
def account_set_plan(email: str, plan: str):
    """Move an account to another plan, effective on its next request."""
    account = services.set_plan(email, plan, _plans())
    click.echo(f"{account.email} is now on the {account.plan} plan.")


key_group = AppGroup("key", help="Create, list and revoke API keys.")


@key_group.command("create")
@click.argument("email")
@_service
def key_create(email: str):
    """Create another API key for an account; the key is printed alone on the last line."""
    key = services.create_key_for(email)
    click.echo("New API key, shown only this once:", err=True)
    click.echo(key)


@key_group.command("list")
@click.argument("email")
@_service
def key_list(email: str):
    """List an account's keys by prefix (the keys themselves are not stored)."""
    for key in services.list_keys(email):
        state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
        used = f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "never"
        click.echo(f"{key.prefix}…  created {key.created_at:%Y-%m-%d %H:%M}  "
                   f"last used {used}  {state}")


@key_group.command("revoke")
@click.argument("key_prefix")
@_service
def key_revoke(key_prefix: str):
    """Revoke a key, given its prefix as `key list` shows it; effective at once."""
    key = services.revoke_key(key_prefix)
    click.echo(f"Revoked {key.prefix}….")


@click.command("purge-expired")
@with_appcontext
@_service
def purge_expired():
    """Delete expired images, files and records; safe to run from cron at any time."""
    count = services.purge_expired(get_storage())
    click.echo(f"Purged {count} expired image{'s' if count != 1 else ''}.")


db_group = AppGroup("db", help="Manage the database schema.")


@db_group.command("upgrade")
def db_upgrade():
    """Create missing tables."""
    create_tables()
    click.echo("Database schema is up to date.")


def init_app(app: Flask) -> None:
    for command in (account_group, key_group, purge_expired, db_group):
        app.cli.add_command(command)


def _create_app():
    from . import create_app
    return create_app()


main = FlaskGroup(create_app=_create_app, add_default_commands=False,
                  help="ImgLink admin commands. Settings come from IMGLINK_* variables.")
