"""The request class: multipart file parts stream to disk, capped at the caller's file limit."""
from __future__ import annotations

import tempfile

from flask import Request, current_app

SPOOL_SIZE = 1024 * 1024  # parts up to this size stay in memory; larger ones go to disk


class UploadBuffer(tempfile.SpooledTemporaryFile):
    """A file part as it arrives; past `limit` bytes it stops storing and marks itself."""

    def __init__(self, limit: int | None, directory: str) -> None:
        super().__init__(max_size=SPOOL_SIZE, mode="w+b", dir=directory)
        self.limit = limit
        self.received = 0
        self.oversized = False

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.received += len(data)
        if self.oversized:
            return len(data)
        if self.limit is not None and self.received > self.limit:
            # Keep reading the body so the other files of a bulk request still count,
            # but hold none of this one.
            self.oversized = True
            self.truncate(0)
            return len(data)
        return super().write(data)


class ImglinkRequest(Request):
    #: Set by a view before it reads `files`: the caller's per-file byte limit.
    file_size_limit: int | None = None

    def _get_file_stream(self, total_content_length, content_type, filename=None,
                         content_length=None):
        buffer = UploadBuffer(self.file_size_limit, current_app.config["UPLOAD_TMP_DIR"])
        # Kept to close even when parsing stops half-way and `files` is never set.
        self.__dict__.setdefault("upload_buffers", []).append(buffer)
        return buffer

    def close(self) -> None:
        super().close()
        for buffer in self.__dict__.get("upload_buffers", ()):
            buffer.close()
