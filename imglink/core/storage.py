"""Where image bytes live: one small interface and its local-disk implementation."""
from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError


class Storage(Protocol):
    def save(self, key: str, fp: BinaryIO, content_type: str | None = None) -> None:
        """Store the rest of `fp` under `key`, all or nothing, replacing any file there."""

    def create(self, key: str, fp: BinaryIO, content_type: str | None = None) -> None:
        """Store the rest of `fp` under a new key that nobody can know before this returns
        (an upload's), more cheaply than save(): the file may be seen half-written until
        then. A failure leaves no file; a crash may leave part of one, which `imglink
        storage check` finds as an orphan."""

    def open(self, key: str) -> BinaryIO:
        """Open the stored file for reading; FileNotFoundError when there is none."""

    def delete(self, key: str) -> None:
        """Remove the file; no error when it is already gone."""

    def exists(self, key: str) -> bool: ...

    def entries(self) -> Iterator[tuple[str, float]]:
        """Yield every stored key, temp files included, with its modification time."""

    def keys(self) -> Iterator[str]:
        """Yield every stored key."""

    def check(self) -> None:
        """Raise an exception when the storage cannot be reached."""

    def local_path(self, key: str) -> Path | None:
        """Return the file's path on this host, or None for remote storage."""

    def presigned_url(self, key: str, expires_in: int) -> str | None:
        """Return a time-limited URL a client can fetch the file from, where supported."""


# Keys are ours (models.storage_key, or temp files found by `entries`): relative paths of
# plain names; never "." or "..", never empty parts.
KEY_PART = re.compile(r"[A-Za-z0-9._-]+")
# Images are public, and nginx, running as another user, serves the files as they are.
FILE_MODE = 0o644
COPY_CHUNK = 1024 * 1024


class LocalStorage:
    """Files in a folder, fsynced with their folder: an upload's written in place, others to
    a temp file beside the target, then renamed over it."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        if not all(KEY_PART.fullmatch(part) and part not in (".", "..")
                   for part in key.split("/")):
            raise ValueError(f"not a storage key: {key!r}")
        return self.root / key

    def save(self, key: str, fp: BinaryIO, content_type: str | None = None) -> None:
        path = self.path(key)
        tmp = path.with_name(f".tmp-{secrets.token_hex(8)}")
        self._write(tmp, fp)
        try:
            os.replace(tmp, path)
        except BaseException:
            _unlink(tmp)
            raise
        _fsync_dir(path.parent)

    def create(self, key: str, fp: BinaryIO, content_type: str | None = None) -> None:
        # Written in place: the fsync that makes the bytes durable makes the new name durable
        # too, where save()'s rename needs a second journal commit (measured: 3 to 5 % of an
        # upload's CPU, two files per upload).
        path = self.path(key)
        self._write(path, fp)
        _fsync_dir(path.parent)

    def _write(self, path: Path, fp: BinaryIO) -> None:
        """Write the rest of `fp` to the new file `path` and fsync it; on failure, no file."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        new_folder = False
        try:
            fd = os.open(path, flags, FILE_MODE)
        except FileNotFoundError:  # the first file of its shard
            path.parent.mkdir(parents=True, exist_ok=True)
            new_folder = True
            fd = os.open(path, flags, FILE_MODE)
        try:
            with open(fd, "wb") as out:
                shutil.copyfileobj(fp, out, COPY_CHUNK)
                out.flush()
                os.fsync(fd)
        except BaseException:
            _unlink(path)
            raise
        if new_folder:
            _fsync_dir(path.parent.parent)

    def open(self, key: str) -> BinaryIO:
        return open(self.path(key), "rb")

    def delete(self, key: str) -> None:
        _unlink(self.path(key))

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def entries(self) -> Iterator[tuple[str, float]]:
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                path = Path(dirpath, name)
                try:
                    mtime = path.stat().st_mtime
                except FileNotFoundError:  # deleted while we walked
                    continue
                yield path.relative_to(self.root).as_posix(), mtime

    def keys(self) -> Iterator[str]:
        return (key for key, _ in self.entries())

    def check(self) -> None:
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise OSError(f"storage folder is not writable: {self.root}")

    def local_path(self, key: str) -> Path:
        return self.path(key)

    def presigned_url(self, key: str, expires_in: int) -> None:
        return None


class S3Storage:
    """Objects in an S3-compatible bucket, under an optional prefix, through boto3.

    boto3's managed transfer uploads large files in parts, and an object appears only
    once complete, so a failed upload never leaves half a file.
    """

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None,
                 region: str | None = None, access_key: str | None = None,
                 secret_key: str | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.client = boto3.client(
            "s3", endpoint_url=endpoint_url or None, region_name=region or None,
            aws_access_key_id=access_key or None, aws_secret_access_key=secret_key or None,
            config=Config(retries={"max_attempts": 3, "mode": "standard"},
                          connect_timeout=5, read_timeout=60, s3={"addressing_style": "path"}))

    def _name(self, key: str) -> str:
        return self.prefix + key

    def save(self, key: str, fp: BinaryIO, content_type: str | None = None) -> None:
        extra = {"ContentType": content_type} if content_type else {}
        self.client.upload_fileobj(fp, self.bucket, self._name(key), ExtraArgs=extra)

    create = save  # an object appears only once complete either way

    def open(self, key: str) -> BinaryIO:
        """Download the object into a temp file, so it can be sent with its length and ranges."""
        out = tempfile.TemporaryFile()
        try:
            self.client.download_fileobj(self.bucket, self._name(key), out)
        except ClientError as e:
            out.close()
            if _is_missing(e):
                raise FileNotFoundError(key) from None
            raise
        out.seek(0)
        return out  # type: ignore[return-value]

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._name(key))

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._name(key))
        except ClientError as e:
            if _is_missing(e):
                return False
            raise
        return True

    def entries(self) -> Iterator[tuple[str, float]]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for item in page.get("Contents", []):
                yield item["Key"][len(self.prefix):], item["LastModified"].timestamp()

    def keys(self) -> Iterator[str]:
        return (key for key, _ in self.entries())

    def check(self) -> None:
        self.client.head_bucket(Bucket=self.bucket)

    def local_path(self, key: str) -> None:
        return None

    def presigned_url(self, key: str, expires_in: int) -> str:
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self._name(key)},
            ExpiresIn=expires_in)


def _is_missing(error: ClientError) -> bool:
    code = error.response.get("Error", {}).get("Code", "")
    return code in ("404", "NoSuchKey", "NotFound")


def _unlink(path: str | os.PathLike) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_storage(url: str, **s3_options: str | None) -> Storage:
    """Return the storage named by `url`: a folder, file:///folder or s3://bucket/prefix."""
    parts = urlsplit(url)
    if parts.scheme == "s3":
        return S3Storage(parts.netloc, parts.path, **s3_options)
    if parts.scheme == "file":
        return LocalStorage(parts.path)
    if parts.scheme:
        raise ValueError(f"unsupported STORAGE_URL scheme: {url!r}")
    return LocalStorage(url)
