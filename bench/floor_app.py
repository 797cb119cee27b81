"""The floors' work as code: the transport floor app, and the imaging and I/O floors' steps.

The transport floor is a bare endpoint in ImgLink's stack: a Flask app with one route and
nothing else (no extensions, no database), which `bench/run.py` serves with the repo's
gunicorn.conf.py exactly like ImgLink, so the difference between the two is what ImgLink
does on top of receiving the bytes. Flask's request parses the multipart body into the same
kind of buffer as ImgLink's (a spooled temp file that goes to disk past 1 MiB, in
FLOOR_TMP_DIR); the file is dropped and the answer is a small JSON document like ImgLink's.

With FLOOR_WORK=all the same app also does the imaging floor's and the I/O floor's steps
(`imaging_work`, `io_work`, which bench/run.py times on their own outside any server) on
each file it receives: the three floors' work in one bare server, under the same load as
ImgLink.
"""
from __future__ import annotations

import hashlib
import io
import itertools
import os
import tempfile

from flask import Flask, Request, jsonify, request
from PIL import Image

SPOOL_SIZE = 1024 * 1024  # as imglink.web.request.SPOOL_SIZE
TMP_DIR = os.environ.get("FLOOR_TMP_DIR") or None
DO_WORK = os.environ.get("FLOOR_WORK") == "all"
THUMBNAIL_SIZE = 320  # ImgLink's defaults
THUMBNAIL_QUALITY = 85
FILE_NUMBERS = itertools.count()  # names the I/O floor's files within a process


def imaging_work(data: bytes, size: int = THUMBNAIL_SIZE,
                 quality: int = THUMBNAIL_QUALITY) -> None:
    """Decode a JPEG at reduced scale (draft) and thumbnail it as ImgLink does."""
    with Image.open(io.BytesIO(data)) as im:
        im.draft("RGB", (size, size))
        im.thumbnail((size, size))
        im.save(io.BytesIO(), "JPEG", quality=quality)


def io_work(data: bytes, path: str) -> None:
    """Hash the bytes with sha256 and write one durable copy to a new file at `path` (write +
    fsync). The file is new, like a stored image: rewriting one file over and over lets the
    kernel reuse the pages it has just freed, which measured several times cheaper."""
    hashlib.sha256(data).hexdigest()
    with open(path, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


class FloorRequest(Request):
    """Files go to the same kind of buffer as ImgLink's: in memory up to 1 MiB, then disk."""

    def _get_file_stream(self, total_content_length, content_type, filename=None,
                         content_length=None):
        return tempfile.SpooledTemporaryFile(max_size=SPOOL_SIZE, mode="w+b", dir=TMP_DIR)


app = Flask(__name__)
app.request_class = FloorRequest


@app.get("/")
def ping():
    return jsonify({"success": True, "data": None, "message": "Floor"})


@app.post("/api/v1/upload")
def upload():
    """Read the whole multipart body, keep nothing, and answer a small JSON document."""
    received = 0
    for file in request.files.values():
        if DO_WORK:
            file.stream.seek(0)
            data = file.stream.read()
            imaging_work(data)
            # A new file per upload, kept like a stored image (bench/run.py removes the folder).
            io_work(data, os.path.join(TMP_DIR or tempfile.gettempdir(),
                                       f"io-floor-{os.getpid()}-{next(FILE_NUMBERS)}"))
        file.stream.seek(0, os.SEEK_END)
        received += file.stream.tell()
        file.stream.close()
    return jsonify({"success": True, "data": {"received": received}, "message": "Discarded"})
