"""Signed tokens with itsdangerous: one salt per purpose, library errors mapped to ours."""
from __future__ import annotations

from flask import current_app
from itsdangerous import BadData, URLSafeTimedSerializer

DELETE_FORM = "delete-image"  # the confirmation form of the delete page


class InvalidTokenError(Exception):
    pass


def _serializer(purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=purpose)


def sign(purpose: str, value: str) -> str:
    return _serializer(purpose).dumps(value)


def verify(purpose: str, token: str, expected: str, max_age: int) -> None:
    """Raise InvalidTokenError unless `token` signs `expected` for `purpose`, fresh enough."""
    try:
        value = _serializer(purpose).loads(token, max_age=max_age)
    except BadData:
        raise InvalidTokenError() from None
    if value != expected:
        raise InvalidTokenError()
