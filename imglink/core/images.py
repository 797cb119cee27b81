"""Stored images: find one, authorize and carry out its deletion, purge the expired."""
from __future__ import annotations

import datetime as dt
import hmac
import logging

from .clock import utcnow
from .db import database
from .errors import ForbiddenError, NotFoundError, UnauthorizedError
from .ids import IMAGE_ID_PATTERN, hash_secret
from .models import Account, Image, RetiredId
from .storage import Storage

log = logging.getLogger(__name__)


def get_image(image_id: str) -> Image:
    """Return the live image with this id; NotFoundError when unknown, deleted or expired."""
    image = (Image.get_or_none(Image.id == image_id)
             if IMAGE_ID_PATTERN.fullmatch(image_id) else None)
    if image is None or image.is_expired():
        raise NotFoundError()
    return image


def check_delete_token(image: Image, token: str) -> bool:
    return hmac.compare_digest(image.delete_token_hash, hash_secret(token))


def require_delete_credentials(account: Account | None, token: str | None) -> None:
    """Refuse a deletion that brings neither a key nor a delete token, before anything is
    looked up."""
    if account is None and not token:
        raise UnauthorizedError(
            "Deleting needs the owner's API key or the image's X-Delete-Token header")


def authorize_delete(image: Image, account: Account | None, token: str | None) -> None:
    """Allow the owner's key or the image's delete token; raise otherwise."""
    require_delete_credentials(account, token)
    if token:
        if not check_delete_token(image, token):
            raise ForbiddenError("The delete token does not match this image")
        return
    assert account is not None
    if image.account_id != account.id:
        raise ForbiddenError()


def delete_image(image: Image, storage: Storage) -> bool:
    """Delete the record, retire the id, then remove the files; False if already gone."""
    with database.atomic():
        deleted = Image.delete().where(Image.id == image.id).execute()
        if deleted:
            RetiredId.insert(id=image.id).on_conflict_ignore().execute()
    if deleted:
        delete_quietly(storage, image.original_key)
        delete_quietly(storage, image.thumbnail_key)
    return bool(deleted)


def purge_expired(storage: Storage, now: dt.datetime | None = None) -> int:
    """Delete every expired image; safe to run at any time, also beside the app."""
    expired = Image.select().where(Image.expires_at <= (now or utcnow()))
    return sum(delete_image(image, storage) for image in list(expired))


def delete_quietly(storage: Storage, key: str) -> None:
    """Remove a file, logging a failure: the orphan is reported by `imglink storage check`."""
    try:
        storage.delete(key)
    except Exception:  # noqa: BLE001
        log.exception("Could not remove %s", key)
