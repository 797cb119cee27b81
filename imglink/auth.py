"""API keys: make, parse, hash, and the current request's account, cached on `g`."""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import string
import zlib

from flask import g, request

from .db import Statement
from .errors import UnauthorizedError
from .models import Account, ApiKey, utcnow

KEY_PREFIX = "ilk_"
ALPHABET = string.digits + string.ascii_letters
BODY_LENGTH = 24  # base62: about 143 random bits
CHECKSUM_LENGTH = 6
LOOKUP_LENGTH = len(KEY_PREFIX) + 8  # kept in clear to find the row and name the key
KEY_LENGTH = len(KEY_PREFIX) + BODY_LENGTH + CHECKSUM_LENGTH
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)  # spare the database a write per request
QUERY_KEY_NAMES = ("api_key", "apikey", "key", "token", "access_token")


def _base62(number: int, length: int) -> str:
    chars = []
    for _ in range(length):
        number, digit = divmod(number, 62)
        chars.append(ALPHABET[digit])
    return "".join(reversed(chars))


def random_base62(length: int) -> str:
    """Return `length` random base62 characters, from one read of the system's CSPRNG (each
    such read lets other threads run, so one per upload, not one per character)."""
    return _base62(secrets.randbelow(62 ** length), length)


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), CHECKSUM_LENGTH)


def generate_key() -> str:
    """Return a new API key: `ilk_`, 24 random base62 characters and a 6-character checksum."""
    body = random_base62(BODY_LENGTH)
    return KEY_PREFIX + body + _checksum(body)


def hash_key(key: str) -> str:
    # Keys carry 143 random bits, so a fast hash is enough; no salt or stretching needed.
    return hashlib.sha256(key.encode()).hexdigest()


def key_prefix(key: str) -> str:
    return key[:LOOKUP_LENGTH]


def is_well_formed(key: str) -> bool:
    body = key[len(KEY_PREFIX):-CHECKSUM_LENGTH]
    return (len(key) == KEY_LENGTH and key.startswith(KEY_PREFIX)
            and all(c in ALPHABET for c in key[len(KEY_PREFIX):])
            and _checksum(body) == key[-CHECKSUM_LENGTH:])


# One row: the account, with its key's columns alongside (one model built, not two).
FIND_KEY = Statement(lambda prefix: (
    Account.select(Account, ApiKey.id.alias("key_id"), ApiKey.key_hash, ApiKey.revoked_at,
                   ApiKey.last_used_at).join(ApiKey).where(ApiKey.prefix == prefix)))


def authenticate(key: str) -> Account:
    """Return the account owning `key`; UnauthorizedError if malformed, unknown or revoked."""
    if not is_well_formed(key):
        raise UnauthorizedError("The API key is malformed")
    prefix = key_prefix(key)
    account = next(iter(Account.raw(FIND_KEY.sql(prefix), prefix)), None)
    if account is None or not hmac.compare_digest(account.key_hash, hash_key(key)):
        raise UnauthorizedError("The API key is not valid")
    if account.revoked_at is not None:
        raise UnauthorizedError("The API key has been revoked")
    # A raw row converts only the account's own columns.
    account.last_used_at = ApiKey.last_used_at.python_value(account.last_used_at)
    now = utcnow()
    if account.last_used_at is None or now - account.last_used_at >= LAST_USED_RESOLUTION:
        ApiKey.update(last_used_at=now).where(ApiKey.id == account.key_id).execute()
    return account


def _account_from_request() -> Account | None:
    if any(name in request.args for name in QUERY_KEY_NAMES):
        raise UnauthorizedError(
            "API keys are accepted only in the Authorization header, never in the URL")
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, key = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise UnauthorizedError("Send the API key as 'Authorization: Bearer KEY'")
    return authenticate(key.strip())


def current_account() -> Account | None:
    """Return the account of the request's API key, None when anonymous; raise on a bad key."""
    if "account" not in g:
        try:
            g.account = _account_from_request()
        except UnauthorizedError as e:
            g.account, g.auth_error = None, e
    if "auth_error" in g:
        raise g.auth_error
    return g.account
