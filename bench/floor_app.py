"""The transport floor: a bare WSGI app that receives a multipart upload and discards it.

`bench/run.py` serves it with the repo's gunicorn.conf.py, exactly like ImgLink, so the
difference between the two is what ImgLink does on top of receiving the bytes. The body is
parsed by Werkzeug's form parser into the same kind of buffer as ImgLink's (a spooled temp
file that goes to disk past 1 MiB, in FLOOR_TMP_DIR), then dropped; the answer is a small
JSON document like ImgLink's.
"""
from __future__ import annotations

import json
import os
import tempfile

from werkzeug.formparser import parse_form_data

SPOOL_SIZE = 1024 * 1024  # as imglink.wrappers.SPOOL_SIZE
TMP_DIR = os.environ.get("FLOOR_TMP_DIR") or None


def _stream_factory(total_content_length, content_type, filename=None, content_length=None):
    return tempfile.SpooledTemporaryFile(max_size=SPOOL_SIZE, mode="w+b", dir=TMP_DIR)


def app(environ, start_response):
    """Answer POST /api/v1/upload after reading the whole body; anything else is a 200 ping."""
    received = 0
    if environ["REQUEST_METHOD"] == "POST":
        _stream, _form, files = parse_form_data(environ, stream_factory=_stream_factory,
                                                max_form_memory_size=1024 * 1024)
        for file in files.values():
            file.stream.seek(0, os.SEEK_END)
            received += file.stream.tell()
            file.stream.close()
    body = json.dumps({"success": True, "data": {"received": received},
                       "message": "Discarded"}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
