"""Use cases: upload, read, delete, expire, and accounts. Files first, then the record."""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import io
import logging
import re
import secrets
import tempfile
import time
import unicodedata
from dataclasses import dataclass, field
from typing import BinaryIO

from peewee import IntegrityError

from .auth import LOOKUP_LENGTH, generate_key, hash_key, key_prefix, random_base62
from .db import Statement, database
from .errors import (ApiError, FileTooLargeError, ForbiddenError, InvalidImageError,
                     MissingFileError, NotFoundError, UnauthorizedError)
from . import metadata
from .imaging import MEDIA_TYPES, ImageInfo, Limits, process
from .models import Account, ApiKey, Image, RetiredId, utcnow
from .storage import Storage

log = logging.getLogger(__name__)

ID_LENGTH = 10  # base62: about 59 bits from the CSPRNG
ID_PATTERN = re.compile(r"[A-Za-z0-9]{%d}" % ID_LENGTH)
CLEANED_SPOOL_SIZE = 1024 * 1024  # a cleaned copy up to this size stays in memory


class ServiceError(Exception):
    """A bad admin request (unknown plan, unknown account...), for the CLI."""


@dataclass
class Upload:
    """One file as received: its stream, the client's name, and how many bytes were sent."""
    stream: BinaryIO
    filename: str
    received: int | None = None  # bytes the client sent, when more than the stream kept


@dataclass
class UploadResult:
    image: Image
    delete_token: str
    metadata_removed: list[str] = field(default_factory=list)  # metadata.KINDS names


@dataclass
class BulkResult:
    results: list[UploadResult] = field(default_factory=list)
    errors: list[tuple[int, str, ApiError]] = field(default_factory=list)


def safe_filename(raw: str | None, ext: str, max_length: int) -> str:
    """Return the client's file name reduced to its last component and safe to show;
    `image.EXT` when nothing is left (`ext` empty: an empty string)."""
    name = re.split(r"[/\\]", raw or "")[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip().strip(".")
    if not name:
        return f"image.{ext}" if ext else ""
    if len(name) > max_length:
        stem, dot, suffix = name.rpartition(".")
        if dot and 0 < len(suffix) <= 10:
            name = stem[: max_length - len(suffix) - 1] + "." + suffix
        else:
            name = name[:max_length]
    return name


# Whether an id names an image, or once did.
ID_TAKEN = Statement(lambda image_id, retired_id: (
    Image.select(Image.id).where(Image.id == image_id)
    | RetiredId.select(RetiredId.id).where(RetiredId.id == retired_id)))
INSERT_IMAGE = Statement(lambda *values: Image.insert(dict(zip(Image._meta.sorted_fields, values))))


def _random_id() -> str:
    return random_base62(ID_LENGTH)


def _new_image_id() -> str:
    while True:
        image_id = _random_id()
        if ID_TAKEN.execute(image_id, image_id).fetchone() is None:
            return image_id


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _file_size(stream: BinaryIO) -> int:
    stream.seek(0, io.SEEK_END)
    size = stream.tell()
    stream.seek(0)
    return size


def upload_image(upload: Upload, *, storage: Storage, limits: Limits, max_file: int,
                 account: Account | None, album: str | None, expiry_hours: int,
                 filename_max_length: int, strip_metadata: bool, tmp_dir: str) -> UploadResult:
    """Validate, thumbnail, clean and store one image; return its record and delete token."""
    size = max(_file_size(upload.stream), upload.received or 0)
    if size > max_file:
        raise FileTooLargeError(
            f"The file is {size:,} bytes; this plan's limit is {max_file:,} bytes per file")
    if size == 0:
        if not upload.filename:
            raise MissingFileError()
        raise InvalidImageError("The file is empty")
    info = process(upload.stream, limits)
    # In memory unless large: most uploads have nothing to remove and never write to it.
    with tempfile.SpooledTemporaryFile(CLEANED_SPOOL_SIZE, dir=tmp_dir) as cleaned:
        removed = _strip_metadata(upload.stream, cleaned, info.format) if strip_metadata else []
        stored = cleaned if removed else upload.stream
        return _store(stored, _file_size(stored), info, removed, upload.filename,
                      storage=storage, account=account, album=album, expiry_hours=expiry_hours,
                      filename_max_length=filename_max_length)


def _strip_metadata(src: BinaryIO, dst: BinaryIO, fmt: str) -> list[str]:
    try:
        return metadata.strip(src, dst, fmt)
    except ValueError as e:
        raise InvalidImageError(f"The image's structure is broken: {e}") from None


def _store(stream: BinaryIO, size: int, info: ImageInfo, removed: list[str], filename: str, *,
           storage: Storage, account: Account | None, album: str | None, expiry_hours: int,
           filename_max_length: int) -> UploadResult:
    """Write the image's files, then its record; on any failure, neither stays."""
    image_id = _new_image_id()
    token = secrets.token_urlsafe(24)
    now = utcnow()
    image = Image(
        id=image_id, account=account, size=size, width=info.width, height=info.height,
        format=info.format, ext=info.ext, thumb_ext=info.thumbnail_ext, album=album,
        filename=safe_filename(filename, info.ext, filename_max_length),
        delete_token_hash=_hash_token(token), uploaded_at=now,
        expires_at=now + dt.timedelta(hours=expiry_hours) if expiry_hours else None,
    )
    try:
        stream.seek(0)
        storage.create(image.original_key, stream, MEDIA_TYPES[image.ext])
        storage.create(image.thumbnail_key, io.BytesIO(info.thumbnail),
                       MEDIA_TYPES[image.thumb_ext])
        # One statement, so it commits by itself: no transaction around it.
        INSERT_IMAGE.execute(*(f.db_value(image.__data__.get(f.name))
                               for f in Image._meta.sorted_fields))
    except BaseException:
        # Whatever step failed, possibly after a file was in place: no file without a record.
        for key in (image.original_key, image.thumbnail_key):
            _delete_quietly(storage, key)
        raise
    return UploadResult(image, token, removed)


def upload_images(uploads: list[Upload], **options) -> BulkResult:
    """Store each upload in turn; a refused file is recorded and does not stop the others."""
    result = BulkResult()
    for index, upload in enumerate(uploads):
        try:
            result.results.append(upload_image(upload, **options))
        except ApiError as e:
            name = safe_filename(upload.filename, "", options["filename_max_length"])
            result.errors.append((index, name, e))
    return result


def get_image(image_id: str) -> Image:
    """Return the live image with this id; NotFoundError when unknown, deleted or expired."""
    image = Image.get_or_none(Image.id == image_id) if ID_PATTERN.fullmatch(image_id) else None
    if image is None or image.is_expired():
        raise NotFoundError()
    return image


def check_delete_token(image: Image, token: str) -> bool:
    return hmac.compare_digest(image.delete_token_hash, _hash_token(token))


def authorize_delete(image: Image, account: Account | None, token: str | None) -> None:
    """Allow the owner's key or the image's delete token; raise otherwise."""
    if token:
        if not check_delete_token(image, token):
            raise ForbiddenError("The delete token does not match this image")
        return
    if account is None:
        raise UnauthorizedError("Deleting needs the owner's API key or the X-Delete-Token header")
    if image.account_id != account.id:
        raise ForbiddenError()


def delete_image(image: Image, storage: Storage) -> bool:
    """Delete the record, retire the id, then remove the files; False if already gone."""
    with database.atomic():
        deleted = Image.delete().where(Image.id == image.id).execute()
        if deleted:
            RetiredId.insert(id=image.id).on_conflict_ignore().execute()
    if deleted:
        _delete_quietly(storage, image.original_key)
        _delete_quietly(storage, image.thumbnail_key)
    return bool(deleted)


def purge_expired(storage: Storage, now: dt.datetime | None = None) -> int:
    """Delete every expired image; safe to run at any time, also beside the app."""
    expired = Image.select().where(Image.expires_at <= (now or utcnow()))
    return sum(delete_image(image, storage) for image in list(expired))


def _delete_quietly(storage: Storage, key: str) -> None:
    try:
        storage.delete(key)
    except Exception:  # noqa: BLE001 - the orphan is reported by `imglink storage check`
        log.exception("Could not remove %s", key)


# Storage consistency, for `imglink storage check`.

@dataclass
class StorageReport:
    orphan_files: list[str] = field(default_factory=list)  # no record owns them
    # Files of a record still under the key an earlier version gave them, as (old, new).
    misplaced_files: list[tuple[str, str]] = field(default_factory=list)
    missing_originals: list[str] = field(default_factory=list)  # image ids
    missing_thumbnails: list[str] = field(default_factory=list)  # image ids
    unfixable: list[str] = field(default_factory=list)  # thumbnails that could not be remade

    @property
    def clean(self) -> bool:
        return not (self.orphan_files or self.misplaced_files or self.missing_originals
                    or self.missing_thumbnails)


def _earlier_key(key: str) -> str:
    """Return where ImgLink 0.1 kept the file `key` names: two folder levels, i/Ab/Cd/ID.ext."""
    kind, shard, name = key.split("/")
    return f"{kind}/{shard}/{name[2:4]}/{name}"


def check_storage(storage: Storage, limits: Limits, *, fix: bool = False,
                  grace: dt.timedelta = dt.timedelta(minutes=10)) -> StorageReport:
    """Compare stored files with image records; with `fix`, move files still kept where an
    earlier version put them, remove orphans and remake thumbnails.

    Files younger than `grace` are left alone: an upload writes its files before its record.
    """
    # Records first: every file of a record in this snapshot was written before it.
    images = {image.id: image for image in Image.select().iterator()}
    expected = {key: image.id for image in images.values()
                for key in (image.original_key, image.thumbnail_key)}
    earlier = {_earlier_key(key): key for key in expected}
    cutoff = time.time() - grace.total_seconds()
    present: set[str] = set()
    report = StorageReport()
    for key, modified in storage.entries():
        if key in expected:
            present.add(key)
        elif key in earlier:
            report.misplaced_files.append((key, earlier[key]))
        elif modified < cutoff:
            report.orphan_files.append(key)
    # A file found at its earlier key is not missing: it is moved, or waits to be.
    present.update(new for _, new in report.misplaced_files)
    for image in images.values():
        if image.original_key not in present:
            report.missing_originals.append(image.id)
        elif image.thumbnail_key not in present:
            report.missing_thumbnails.append(image.id)
    if fix:
        for old, new in report.misplaced_files:
            with storage.open(old) as file:
                storage.save(new, file, MEDIA_TYPES[new.rpartition(".")[2]])
            storage.delete(old)
        for key in report.orphan_files:
            _delete_quietly(storage, key)
        for image_id in report.missing_originals:
            delete_image(images[image_id], storage)  # the image is lost; its links must 404
        for image_id in report.missing_thumbnails:
            try:
                remake_thumbnail(images[image_id], storage, limits)
            except ApiError:
                report.unfixable.append(image_id)
    return report


def remake_thumbnail(image: Image, storage: Storage, limits: Limits) -> None:
    """Render the image's thumbnail again from its stored original."""
    with storage.open(image.original_key) as original:
        info = process(original, limits)
    storage.save(image.thumbnail_key, io.BytesIO(info.thumbnail), MEDIA_TYPES[info.thumbnail_ext])


# Accounts and keys, for the admin CLI.

def _account(email: str) -> Account:
    account = Account.get_or_none(Account.email == email.strip().lower())
    if account is None:
        raise ServiceError(f"No account with the e-mail {email!r}")
    return account


def _check_plan(plan: str, plans: dict) -> None:
    if plan not in plans or plan == "anonymous":
        names = ", ".join(p for p in plans if p != "anonymous")
        raise ServiceError(f"Unknown plan {plan!r}; choose one of: {names}")


def create_key(account: Account) -> str:
    key = generate_key()
    ApiKey.create(account=account, prefix=key_prefix(key), key_hash=hash_key(key))
    return key


def create_account(email: str, plan: str, plans: dict) -> tuple[Account, str]:
    """Create an account and its first API key; return both (the key in clear, once)."""
    _check_plan(plan, plans)
    email = email.strip().lower()
    if not re.fullmatch(r"[^@\s]+@[^@\s]+", email):
        raise ServiceError(f"Not an e-mail address: {email!r}")
    try:
        with database.atomic():
            account = Account.create(email=email, plan=plan)
            return account, create_key(account)
    except IntegrityError:
        raise ServiceError(f"An account with the e-mail {email!r} exists already") from None


def set_plan(email: str, plan: str, plans: dict) -> Account:
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
    key = ApiKey.get_or_none(ApiKey.prefix == prefix[:LOOKUP_LENGTH])
    if key is None or len(prefix) < LOOKUP_LENGTH:
        raise ServiceError(f"No key with the prefix {prefix!r}")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        key.save()
    return key
