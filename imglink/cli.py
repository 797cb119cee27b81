"""The `imglink` admin commands, built on Flask's CLI (the app gives them its config)."""
from __future__ import annotations

import datetime as dt
import functools

import click
from flask import Flask, current_app
from flask.cli import AppGroup, FlaskGroup, with_appcontext

from .core import accounts, images
from .core.db import create_tables, database
from .core.errors import AdminError
from .core.storage_check import check_storage
from .web.context import get_storage, imaging_limits


def _service(fn):
    """Run the command inside its own database connection; AdminError exits non-zero."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            with database.connection_context():
                return fn(*args, **kwargs)
        except AdminError as e:
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
    account, key = accounts.create_account(email, plan, _plans())
    click.echo(f"Created account {account.email} on the {account.plan} plan. "
               "Its API key, shown only this once:", err=True)
    click.echo(key)


@account_group.command("set-plan")
@click.argument("email")
@click.argument("plan")
@_service
def account_set_plan(email: str, plan: str):
    """Move an account to another plan, effective on its next request."""
    account = accounts.set_plan(email, plan, _plans())
    click.echo(f"{account.email} is now on the {account.plan} plan.")


key_group = AppGroup("key", help="Create, list and revoke API keys.")


@key_group.command("create")
@click.argument("email")
@_service
def key_create(email: str):
    """Create another API key for an account; the key is printed alone on the last line."""
    key = accounts.create_key_for(email)
    click.echo("New API key, shown only this once:", err=True)
    click.echo(key)


@key_group.command("list")
@click.argument("email")
@_service
def key_list(email: str):
    """List an account's keys by prefix (the keys themselves are not stored)."""
    for key in accounts.list_keys(email):
        state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
        used = f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "never"
        click.echo(f"{key.prefix}…  created {key.created_at:%Y-%m-%d %H:%M}  "
                   f"last used {used}  {state}")


@key_group.command("revoke")
@click.argument("key_prefix")
@_service
def key_revoke(key_prefix: str):
    """Revoke a key, given its prefix as `key list` shows it; effective at once."""
    key = accounts.revoke_key(key_prefix)
    click.echo(f"Revoked {key.prefix}….")


@click.command("purge-expired")
@with_appcontext
@_service
def purge_expired():
    """Delete expired images, files and records; safe to run from cron at any time."""
    count = images.purge_expired(get_storage())
    click.echo(f"Purged {count} expired image{'s' if count != 1 else ''}.")


storage_group = AppGroup("storage", help="Inspect and repair stored files.")


@storage_group.command("check")
@click.option("--fix", is_flag=True, help="Move files kept where an earlier version put them, "
              "remove orphan files, drop records whose original is gone, and remake missing "
              "thumbnails. Without it, only report.")
@click.option("--grace-minutes", default=10, show_default=True, type=click.IntRange(0),
              help="Leave files younger than this alone (uploads in progress).")
@_service
def storage_check(fix: bool, grace_minutes: int):
    """Report files without records and records without files; exit 1 if any remain."""
    report = check_storage(get_storage(), imaging_limits(), fix=fix,
                                    grace=dt.timedelta(minutes=grace_minutes))
    verb = "removed" if fix else "found"
    for old, new in report.misplaced_files:
        click.echo(f"file in an earlier layout ({'moved' if fix else 'found'}): {old} -> {new}")
    for key in report.orphan_files:
        click.echo(f"orphan file ({verb}): {key}")
    for image_id in report.missing_originals:
        click.echo(f"record without its original ({'deleted' if fix else 'found'}): {image_id}")
    for image_id in report.missing_thumbnails:
        done = image_id not in report.unfixable
        state = ("remade" if done else "could not be remade") if fix else "found"
        click.echo(f"record without its thumbnail ({state}): {image_id}")
    click.echo("Storage and records agree." if report.clean else
               f"{len(report.misplaced_files)} files to move, "
               f"{len(report.orphan_files)} orphan files, {len(report.missing_originals)} "
               f"missing originals, {len(report.missing_thumbnails)} missing thumbnails.")
    if not report.clean and (not fix or report.unfixable):
        raise SystemExit(1)


db_group = AppGroup("db", help="Manage the database schema.")


@db_group.command("upgrade")
def db_upgrade():
    """Create missing tables."""
    create_tables()
    click.echo("Database schema is up to date.")


def init_app(app: Flask) -> None:
    for command in (account_group, key_group, purge_expired, storage_group, db_group):
        app.cli.add_command(command)


def _create_app():
    from . import create_app
    return create_app()


main = FlaskGroup(create_app=_create_app, add_default_commands=False,
                  help="ImgLink admin commands. Run them with the server's settings "
                  "(IMGLINK_DATA_DIR, IMGLINK_DATABASE_URL, IMGLINK_STORAGE_URL...), so that "
                  "they see its data.")
