"""Accounts and their API keys: create, change plan, authenticate, list and revoke."""
from __future__ import annotations

import datetime as dt
import hmac
import re
from collections.abc import Mapping
from typing import Any

from peewee import IntegrityError

from .clock import utcnow
from .db import database
from .errors import AdminError, UnauthorizedError
from .ids import KEY_LOOKUP_LENGTH, generate_key, hash_secret, is_well_formed_key, key_prefix
from .models import Account, ApiKey

LAST_USED_RESOLUTION = dt.timedelta(minutes=1)  # spare the database a write per request
Plans = Mapping[str, Mapping[str, Any]]


def authenticate(key: str) -> Account:
    """Return the account owning `key`; UnauthorizedError if malformed, unknown or revoked."""
    if not is_well_formed_key(key):
        raise UnauthorizedError("The API key is malformed")
    row = (ApiKey.select(ApiKey, Account).join(Account)
           .where(ApiKey.prefix == key_prefix(key)).first())
    if row is None or not hmac.compare_digest(row.key_hash, hash_secret(key)):
        raise UnauthorizedError("The API key is not valid")
    if row.revoked_at is not None:
        raise UnauthorizedError("The API key has been revoked")
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        ApiKey.update(last_used_at=now).where(ApiKey.id == row.id).execute()
    return row.account


def _account(email: str) -> Account:
    account = Account.get_or_none(Account.email == email.strip().lower())
    if account is None:
        raise AdminError(f"No account with the e-mail {email!r}")
    return account


def _check_plan(plan: str, plans: Plans) -> None:
    if plan not in plans or plan == "anonymous":
        names = ", ".join(p for p in plans if p != "anonymous")
        raise AdminError(f"Unknown plan {plan!r}; choose one of: {names}")


def create_key(account: Account) -> str:
    key = generate_key()
    ApiKey.create(account=account, prefix=key_prefix(key), key_hash=hash_secret(key))
    return key


def create_account(email: str, plan: str, plans: Plans) -> tuple[Account, str]:
    """Create an account and its first API key; return both (the key in clear, once)."""
    _check_plan(plan, plans)
    email = email.strip().lower()
    if not re.fullmatch(r"[^@\s]+@[^@\s]+", email):
        raise AdminError(f"Not an e-mail address: {email!r}")
    try:
        with database.atomic():
            account = Account.create(email=email, plan=plan)
            return account, create_key(account)
    except IntegrityError:
        raise AdminError(f"An account with the e-mail {email!r} exists already") from None


def set_plan(email: str, plan: str, plans: Plans) -> Account:
    _check_plan(plan, plans)
    account = _account(email)
    account.plan = plan
    account.save()
    return account


def create_key_for(email: str) -> str:
    return create_key(_account(email))


def list_keys(email: str) -> list[ApiKey]:
    return list(_account(email).keys.order_by(ApiKey.created_at, ApiKey.id))


def revoke_key(prefix: str) -> ApiKey:
    """Revoke the key named by its prefix (as `imglink key list` shows it) or in full."""
    key = ApiKey.get_or_none(ApiKey.prefix == prefix[:KEY_LOOKUP_LENGTH])
    if key is None or len(prefix) < KEY_LOOKUP_LENGTH:
        raise AdminError(f"No key with the prefix {prefix!r}")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        key.save()
    return key
