"""The current request's account, from its `Authorization` header, cached on `g`."""
from __future__ import annotations

from flask import g, request

from ..core.accounts import authenticate
from ..core.errors import UnauthorizedError
from ..core.models import Account

QUERY_KEY_NAMES = ("api_key", "apikey", "key", "token", "access_token")


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
