"""Where image bytes live: one small interface and its local-disk implementation."""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol


class Storage(Protocol):
    def save(self, key: str, fp: BinaryIO) -> None:
        """Store the rest of `fp` under `key`, all or nothing."""

    def open(self, key: str) -> BinaryIO:
        """Open the stored file for reading; FileNotFoundError when there is none."""

    def delete(self, key: str) -> None:
        """Remove the file; no error when it is already gone."""

    def exists(self, key: str) -> bool: ...

    def keys(self) -> Iterator[str]:
        """Yield every stored key."""

    def check(self) -> None:
        """Raise OSError when the storage cannot be written."""


class LocalStorage:
    """Files in a folder, written to a temp file beside the target, fsynced and renamed."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise ValueError(f"storage key outside the root: {key!r}")
        return path

    def save(self, key: str, fp: BinaryIO) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(fp, out, 1024 * 1024)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            _unlink(tmp)
            raise
        _fsync_dir(path.parent)

    def open(self, key: str) -> BinaryIO:
        return open(self.path(key), "rb")

    def delete(self, key: str) -> None:
        _unlink(self.path(key))

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def keys(self) -> Iterator[str]:
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                if not name.startswith(".tmp-"):
                    yield Path(dirpath, name).relative_to(self.root).as_posix()

    def check(self) -> None:
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise OSError(f"storage folder is not writable: {self.root}")


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


def make_storage(url: str) -> Storage:
    """Return the storage named by `url`: a folder path or file:// URL."""
    if url.startswith("file://"):
        url = url[len("file://"):]
    if "://" in url:
        raise ValueError(f"unsupported STORAGE_URL scheme: {url!r}")
    return LocalStorage(url)
