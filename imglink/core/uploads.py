"""Uploading: validate, thumbnail, clean and store images. Files first, then the record."""
from __future__ import annotations

import datetime as dt
import io
import re
import tempfile
import unicodedata
from dataclasses import dataclass, field
from typing import BinaryIO

from . import metadata
from .clock import utcnow
from .errors import FileTooLargeError, ImgLinkError, InvalidImageError, MissingFileError
from .ids import hash_secret, new_token, random_image_id
from .imaging import MEDIA_TYPES, ImageInfo, process
from .images import delete_quietly
from .models import Account, Image, RetiredId
from .policy import UploadFields, UploadPolicy
from .storage import Storage

CLEANED_SPOOL_SIZE = 1024 * 1024  # a cleaned copy up to this size stays in memory


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
    errors: list[tuple[int, str, ImgLinkError]] = field(default_factory=list)


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


def _new_image_id() -> str:
    """Return a random id that names no image and never did."""
    while True:
        image_id = random_image_id()
        taken = (Image.select(Image.id).where(Image.id == image_id)
                 | RetiredId.select(RetiredId.id).where(RetiredId.id == image_id))
        if not taken.exists():
            return image_id


def _file_size(stream: BinaryIO) -> int:
    stream.seek(0, io.SEEK_END)
    size = stream.tell()
    stream.seek(0)
    return size


def upload_image(upload: Upload, policy: UploadPolicy, fields: UploadFields, *,
                 storage: Storage, account: Account | None) -> UploadResult:
    """Validate, thumbnail, clean and store one image; return its record and delete token."""
    size = max(_file_size(upload.stream), upload.received or 0)
    if size > policy.max_file:
        raise FileTooLargeError(f"The file is {size:,} bytes; this plan's limit is "
                                f"{policy.max_file:,} bytes per file")
    if size == 0:
        if not upload.filename:
            raise MissingFileError()
        raise InvalidImageError("The file is empty")
    info = process(upload.stream, policy.limits)
    # In memory unless large: most uploads have nothing to remove and never write to it.
    with tempfile.SpooledTemporaryFile(CLEANED_SPOOL_SIZE, dir=policy.tmp_dir) as cleaned:
        removed = (_strip_metadata(upload.stream, cleaned, info.format)
                   if policy.strip_metadata else [])
        stored = cleaned if removed else upload.stream
        image = _new_record(info, _file_size(stored), upload.filename, policy, fields, account)
        token = new_token()
        image.delete_token_hash = hash_secret(token)
        _store(image, stored, info, storage)
        return UploadResult(image, token, removed)


def upload_images(uploads: list[Upload], policy: UploadPolicy, fields: UploadFields, *,
                  storage: Storage, account: Account | None) -> BulkResult:
    """Store each upload in turn; a refused file is recorded and does not stop the others."""
    result = BulkResult()
    for index, upload in enumerate(uploads):
        try:
            result.results.append(
                upload_image(upload, policy, fields, storage=storage, account=account))
        except ImgLinkError as e:
            name = safe_filename(upload.filename, "", policy.filename_max_length)
            result.errors.append((index, name, e))
    return result


def _strip_metadata(src: BinaryIO, dst: BinaryIO, fmt: str) -> list[str]:
    try:
        return metadata.strip(src, dst, fmt)
    except ValueError as e:
        raise InvalidImageError(f"The image's structure is broken: {e}") from None


def _new_record(info: ImageInfo, size: int, filename: str, policy: UploadPolicy,
                fields: UploadFields, account: Account | None) -> Image:
    now = utcnow()
    return Image(
        id=_new_image_id(), account=account, size=size, width=info.width, height=info.height,
        format=info.format, ext=info.ext, thumb_ext=info.thumbnail_ext, album=fields.album,
        filename=safe_filename(filename, info.ext, policy.filename_max_length),
        uploaded_at=now,
        expires_at=now + dt.timedelta(hours=fields.expiry_hours) if fields.expiry_hours else None,
    )


def _store(image: Image, stream: BinaryIO, info: ImageInfo, storage: Storage) -> None:
    """Write the image's files, then its record; on any failure, neither stays."""
    try:
        stream.seek(0)
        storage.create(image.original_key, stream, MEDIA_TYPES[image.ext])
        storage.create(image.thumbnail_key, io.BytesIO(info.thumbnail),
                       MEDIA_TYPES[image.thumb_ext])
        # One statement, so it commits by itself: no transaction around it.
        image.save(force_insert=True)
    except BaseException:
        # Whatever step failed, possibly after a file was in place: no file without a record.
        for key in (image.original_key, image.thumbnail_key):
            delete_quietly(storage, key)
        raise
