"""POST /api/v1/upload and /api/v1/upload/bulk, through the Flask test client.

Covers format detection from the bytes, byte-exact storage, refused and corrupt files,
orientation, thumbnails (size, aspect, transparency, JPEG draft decoding), file names and
the links built from them, album and expiry, per-plan size and bulk limits, streaming of
large parts to disk, and the envelope and rate-limit headers on every response.
"""
from __future__ import annotations

import copy
import datetime as dt
import html
import io
import os
import random
import re
import struct
import unicodedata
import zipfile
import zlib
from html.parser import HTMLParser
from urllib.parse import quote

import pytest
from PIL import Image, JpegImagePlugin, features

import imglink.web.request
from conftest import BufferedClient, auth, encode, make_image, path_of, unavailable, upload
from imglink import config as default_config
from imglink import create_app
from imglink.core import accounts, metadata
from imglink.core.db import database
from imglink.core.models import Image as ImageRecord

RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
ID_RE = re.compile(r"^[A-Za-z0-9]{8,}$")
EXT_MIME = {"jpg": "image/jpeg", "png": "image/png", "gif": "image/gif", "webp": "image/webp",
            "avif": "image/avif", "bmp": "image/bmp", "tiff": "image/tiff"}
PIL_FORMAT_OF_EXT = {"jpg": "JPEG", "png": "PNG", "gif": "GIF", "webp": "WEBP",
                     "avif": "AVIF", "bmp": "BMP", "tiff": "TIFF"}
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)

# conftest runs every app test on both deployments (SQLite + local disk, PostgreSQL + S3).
# Tests of storage and records run on both; tests of what is computed from the request
# alone (imaging, names, validation, headers) run on the embedded one, to stay fast.
EMBEDDED = pytest.mark.parametrize("backend", ["embedded"], indirect=True)


# --------------------------------------------------------------------------------------
# Helpers


def check_headers(r) -> None:
    """Every /api/v1/ response: JSON content type and the three rate-limit headers."""
    assert r.mimetype == "application/json", (r.status_code, r.headers)
    for name in RATE_HEADERS:
        assert r.headers.get(name), f"{name} missing on a {r.status_code} response"


def ok_data(r, status: int = 200) -> dict:
    assert r.status_code == status, r.get_data(as_text=True)
    check_headers(r)
    body = r.get_json()
    assert body["success"] is True
    assert isinstance(body["message"], str) and body["message"]
    assert "error" not in body
    return body["data"]


def err(r, status: int, code: str | set[str]) -> dict:
    assert r.status_code == status, r.get_data(as_text=True)
    check_headers(r)
    body = r.get_json()
    assert body["success"] is False, body
    assert "data" not in body
    error = body["error"]
    if isinstance(code, str):
        assert error["code"] == code, error
    else:
        assert error["code"] in code, error
    assert isinstance(error["message"], str) and error["message"]
    return error


def fetch(client, link: str):
    r = client.get(path_of(link))
    assert r.status_code == 200, (link, r.status_code)
    return r


def open_bytes(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def stored_files(app) -> list[str]:
    """Every key in the app's storage (a local folder or an S3 bucket)."""
    return sorted(app.extensions["imglink.storage"].keys())


def record_count(app) -> int:
    with app.app_context(), database.connection_context():
        return ImageRecord.select().count()


def assert_nothing_stored(app) -> None:
    assert stored_files(app) == []
    assert record_count(app) == 0


def noise(size: tuple[int, int], mode: str = "RGB", seed: int = 0) -> Image.Image:
    """Deterministic random pixels: they do not compress, so truncation hits pixel data."""
    rnd = random.Random(seed)
    return Image.frombytes(mode, size, rnd.randbytes(size[0] * size[1] * len(mode)))


def halves(size: tuple[int, int], left, right, mode: str = "RGB") -> Image.Image:
    """An image whose left half is `left` and right half is `right`."""
    im = Image.new(mode, size, left)
    im.paste(right, (size[0] // 2, 0, size[0], size[1]))
    return im


def _disposition_filename(filename: str) -> str:
    if filename == "":
        return '; filename=""'
    if re.fullmatch(r"[ -~]*", filename) and '"' not in filename and "\\" not in filename \
            and "%" not in filename:
        return f'; filename="{filename}"'
    # Exactly these characters, whatever they are (RFC 5987).
    return "; filename*=UTF-8''" + quote(filename, safe="")


BROWSER_BOUNDARY = "----WebKitFormBoundary7MA4YWxkTrZu0gW"


def multipart(parts: list[tuple[str, str | None, bytes]], boundary: str = BROWSER_BOUNDARY):
    """Build a multipart body by hand, in memory, with file names sent exactly.

    Each part is (field name, file name or None for a plain field, content). (The test
    client's own encoder spools bodies over 500 kB to a temp file it never closes.)
    """
    out = io.BytesIO()
    for name, filename, content in parts:
        out.write(f"--{boundary}\r\n".encode())
        disposition = f'Content-Disposition: form-data; name="{name}"'
        if filename is not None:
            disposition += _disposition_filename(filename)
        out.write(disposition.encode() + b"\r\n")
        if filename is not None:
            out.write(b"Content-Type: application/octet-stream\r\n")
        out.write(b"\r\n" + content + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def post_raw(client, path: str, parts, headers=None):
    body, content_type = multipart(parts)
    return client.post(path, data=body, content_type=content_type, headers=headers or {})


def upload_raw(client, data: bytes, filename: str = "image.jpg", headers=None, **fields):
    """Like conftest's `upload`, with the body built in memory (for large files)."""
    parts = [(k, None, str(v).encode()) for k, v in fields.items()]
    return post_raw(client, "/api/v1/upload", parts + [("file", filename, data)], headers)


def bulk(client, files: list[tuple[bytes, str]], headers=None, **fields):
    parts = [(k, None, str(v).encode()) for k, v in fields.items()]
    parts += [("files", name, data) for data, name in files]
    return post_raw(client, "/api/v1/upload/bulk", parts, headers)


def fitted(size: tuple[int, int], box: int) -> tuple[float, float]:
    scale = min(1.0, box / size[0], box / size[1])
    return size[0] * scale, size[1] * scale


def assert_fits(thumb_size, original_size, box: int) -> None:
    tw, th = thumb_size
    ew, eh = fitted(original_size, box)
    assert tw <= box and th <= box, (thumb_size, box)
    assert tw <= original_size[0] and th <= original_size[1], "thumbnail was upscaled"
    assert abs(tw - ew) <= 1 and abs(th - eh) <= 1, (thumb_size, (ew, eh))
    # The box is used: the larger side is the box (or the original's, when it is smaller).
    if original_size[0] >= original_size[1]:
        assert tw == min(box, original_size[0]), (thumb_size, original_size)
    else:
        assert th == min(box, original_size[1]), (thumb_size, original_size)


def alpha_at(im: Image.Image, xy: tuple[int, int]) -> int:
    return im.convert("RGBA").getpixel(xy)[3]


def cleaned(data: bytes, fmt: str) -> bytes:
    """The bytes ImgLink stores for `data`: the upload without its private metadata."""
    out = io.BytesIO()
    return out.getvalue() if metadata.strip(io.BytesIO(data), out, fmt) else data


def close_to(pixel, colour, tolerance: int = 60) -> bool:
    return all(abs(int(a) - int(b)) <= tolerance for a, b in zip(pixel[:3], colour))


# --------------------------------------------------------------------------------------
# Apps with their own settings


@pytest.fixture
def make_app(tmp_path):
    """Build an app like conftest's `app` fixture, with overrides; return (app, client)."""
    counter = iter(range(1000))

    def make(**overrides):
        app = create_app({
            "TESTING": True,
            "DATA_DIR": str(tmp_path / f"data-{next(counter)}"),
            "SECRET_KEY": "test-secret",
            "RATELIMIT_ENABLED": True,
            "RATELIMIT_STORAGE_URI": "memory://",
            **overrides,
        })
        app.test_client_class = BufferedClient
        return app, app.test_client()

    return make


def plans(**changes) -> dict:
    """The default PLANS with some fields changed: plans(anonymous={"max_file": 10})."""
    result = copy.deepcopy(default_config.PLANS)
    for name, fields in changes.items():
        result[name].update(fields)
    return result


def key_on(app, plan: str) -> str:
    with app.app_context(), database.connection_context():
        _account, key = accounts.create_account(
            f"{plan}-{os.urandom(4).hex()}@example.com", plan, app.config["PLANS"])
    return key


# --------------------------------------------------------------------------------------
# Sample files


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (40, 30), c) for c in (RED, GREEN, BLUE)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100,
                  loop=0)


def animated_webp() -> bytes:
    frames = [Image.new("RGB", (44, 22), c) for c in (RED, GREEN, BLUE)]
    return encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100,
                  lossless=True)


def mpo() -> bytes:
    frames = [Image.new("RGB", (52, 26), c) for c in (RED, BLUE)]
    return encode(frames[0], "MPO", save_all=True, append_images=frames[1:])


# (case id, bytes, format, extension, width, height, frames)
FORMAT_CASES = [
    ("jpeg", lambda: make_image("JPEG", (61, 47)), "JPEG", "jpg", 61, 47, 1),
    ("jpeg-progressive", lambda: make_image("JPEG", (70, 33), progressive=True),
     "JPEG", "jpg", 70, 33, 1),
    ("jpeg-cmyk", lambda: make_image("JPEG", (20, 30), mode="CMYK", color=(0, 200, 200, 0)),
     "JPEG", "jpg", 20, 30, 1),
    ("mpo", mpo, "JPEG", "jpg", 52, 26, 2),
    ("png", lambda: make_image("PNG", (62, 45)), "PNG", "png", 62, 45, 1),
    ("png-rgba", lambda: make_image("PNG", (33, 17), mode="RGBA", color=(1, 2, 3, 100)),
     "PNG", "png", 33, 17, 1),
    ("png-16bit", lambda: make_image("PNG", (19, 23), mode="I;16", color=40000),
     "PNG", "png", 19, 23, 1),
    ("gif", lambda: make_image("GIF", (63, 44), mode="P", color=3), "GIF", "gif", 63, 44, 1),
    ("gif-animated", animated_gif, "GIF", "gif", 40, 30, 3),
    ("webp", lambda: make_image("WEBP", (64, 43)), "WEBP", "webp", 64, 43, 1),
    ("webp-animated", animated_webp, "WEBP", "webp", 44, 22, 3),
    ("avif", lambda: make_image("AVIF", (65, 42)), "AVIF", "avif", 65, 42, 1),
    ("bmp", lambda: make_image("BMP", (66, 41)), "BMP", "bmp", 66, 41, 1),
    ("tiff", lambda: make_image("TIFF", (67, 40)), "TIFF", "tiff", 67, 40, 1),
    ("tiff-lzw", lambda: make_image("TIFF", (68, 39), compression="tiff_lzw"),
     "TIFF", "tiff", 68, 39, 1),
]


# --------------------------------------------------------------------------------------
# 1 and 2: accepted formats, detected from the bytes, stored byte for byte


@EMBEDDED
@pytest.mark.parametrize("build, fmt, ext, width, height, frames",
                         [c[1:] for c in FORMAT_CASES], ids=[c[0] for c in FORMAT_CASES])
def test_accepted_format_detected_and_stored_exactly(client, build, fmt, ext, width, height,
                                                     frames):
    data = build()
    # Sanity of the sample itself.
    with Image.open(io.BytesIO(data)) as sample:
        assert getattr(sample, "n_frames", 1) == frames
    # A misleading name and client Content-Type: only the bytes may count.
    r = client.post("/api/v1/upload", content_type="multipart/form-data",
                    data={"file": (io.BytesIO(data), "upload.dat", "text/plain")})
    d = ok_data(r)
    assert d["format"] == fmt
    assert (d["width"], d["height"]) == (width, height)
    expected = cleaned(data, fmt)  # the same bytes unless the sample carries metadata
    assert d["size"] == len(expected)
    assert d["filename"] == "upload.dat"
    assert ID_RE.match(d["id"])
    assert path_of(d["links"]["direct"]) == f"/i/{d['id']}.{ext}"

    original = fetch(client, d["links"]["direct"])
    assert original.data == expected
    assert d["size"] == len(original.data)
    assert original.mimetype == EXT_MIME[ext]


def test_stored_exactly_on_every_deployment(app, client):
    """The original and thumbnail round-trip through the storage (local disk or S3)."""
    samples = [(make_image("JPEG", (61, 47)), "jpg"), (animated_gif(), "gif"),
               (make_image("AVIF", (65, 42)), "avif"), (make_image("TIFF", (67, 40)), "tiff")]
    for data, ext in samples:
        d = ok_data(upload(client, data, "sample.bin"))
        assert d["links"]["direct"].endswith(f"/i/{d['id']}.{ext}")
        original = fetch(client, d["links"]["direct"])
        assert original.data == data and d["size"] == len(data)
        assert original.mimetype == EXT_MIME[ext]
        thumb = fetch(client, d["links"]["thumbnail"])
        thumb_ext = path_of(d["links"]["thumbnail"]).rpartition(".")[2]
        assert thumb.mimetype == EXT_MIME[thumb_ext]
        with Image.open(io.BytesIO(thumb.data)) as im:
            assert im.size == (d["width"], d["height"])
    assert len(stored_files(app)) == 2 * len(samples)
    assert record_count(app) == len(samples)


@EMBEDDED
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_large_incompressible_files_upload(app, client, fmt, seed):
    """Photos are noisy: a few hundred kB of high-entropy data must upload every time."""
    options = {"quality": 90} if fmt == "JPEG" else {}
    data = encode(noise((600, 600), seed=seed), fmt, **options)
    assert 200_000 < len(data) < 2_000_000
    d = ok_data(upload_raw(client, data, f"photo.{fmt.lower()}"))
    assert d["size"] == len(data)
    assert fetch(client, d["links"]["direct"]).data == data


def test_direct_link_sends_content_length_equal_to_size(client):
    data = make_image("PNG", (50, 50))
    d = ok_data(upload(client, data, "len.png"))
    original = fetch(client, d["links"]["direct"])
    assert original.data == data
    assert original.headers.get("Content-Length") == str(d["size"]) == str(len(data))


def test_upload_response_shape(client):
    data = make_image("PNG", (30, 20))
    d = ok_data(upload(client, data, "shape.png"))
    assert set(d) >= {"id", "filename", "size", "width", "height", "format", "album",
                      "uploaded_at", "expires_at", "links", "delete_token", "metadata_removed"}
    assert d["metadata_removed"] == []
    assert isinstance(d["delete_token"], str) and len(d["delete_token"]) >= 16
    base = "http://localhost"
    image_id = d["id"]
    links = d["links"]
    assert links["direct"] == f"{base}/i/{image_id}.png"
    assert re.fullmatch(rf"{base}/t/{image_id}\.(png|jpg|webp|gif|avif)", links["thumbnail"])
    assert links["view_page"] == f"{base}/image/{image_id}"
    assert links["bbcode"] == f"[img]{links['direct']}[/img]"
    assert links["html"] == f'<img src="{links["direct"]}" alt="shape.png">'
    assert links["markdown"] == f"![shape.png]({links['direct']})"
    assert links["delete"].startswith(base + "/")
    assert d["album"] is None and d["expires_at"] is None
    assert ISO_Z.match(d["uploaded_at"])
    # The secret is only in the upload response.
    again = ok_data(client.get(f"/api/v1/image/{image_id}"))
    assert "delete_token" not in again and "delete" not in again["links"]
    assert {k: v for k, v in again.items() if k != "links"} == \
        {k: v for k, v in d.items() if k not in ("links", "delete_token", "metadata_removed")}


@EMBEDDED
def test_ids_are_unique(client):
    ids = {ok_data(upload(client, make_image(), "x.jpg"))["id"] for _ in range(5)}
    assert len(ids) == 5


@pytest.mark.parametrize("fmt, name, mimetype, expected_format, ext", [
    ("JPEG", "photo.png", "image/png", "JPEG", "jpg"),
    ("PNG", "picture.jpg", "image/jpeg", "PNG", "png"),
    ("GIF", "anim.webp", "image/webp", "GIF", "gif"),
    ("WEBP", "pic.gif", "image/gif", "WEBP", "webp"),
    ("BMP", "noextension", "application/octet-stream", "BMP", "bmp"),
    ("TIFF", "scan.jpeg", "image/jpeg", "TIFF", "tiff"),
])
@EMBEDDED
def test_extension_follows_the_bytes_not_the_name(client, fmt, name, mimetype,
                                                  expected_format, ext):
    data = make_image(fmt, (24, 12))
    r = client.post("/api/v1/upload", content_type="multipart/form-data",
                    data={"file": (io.BytesIO(data), name, mimetype)})
    d = ok_data(r)
    assert d["format"] == expected_format
    assert d["filename"] == name
    image_id = d["id"]
    assert d["links"]["direct"].endswith(f"/i/{image_id}.{ext}")
    assert d["links"]["bbcode"] == f"[img]{d['links']['direct']}[/img]"
    assert f"/i/{image_id}.{ext}" in d["links"]["html"]
    assert f"/i/{image_id}.{ext})" in d["links"]["markdown"]
    assert fetch(client, d["links"]["direct"]).data == data
    # The name's extension does not serve the file.
    wrong = name.rpartition(".")[2] if "." in name else "png"
    if wrong != ext:
        assert client.get(f"/i/{image_id}.{wrong}").status_code == 404


# --------------------------------------------------------------------------------------
# 3: refused and corrupt files


def psd() -> bytes:
    """A minimal raw RGB Photoshop file (Pillow reads PSD but cannot write it)."""
    width, height = 4, 3
    header = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, height, width, 8, 3)
    sections = struct.pack(">III", 0, 0, 0)  # colour mode data, resources, layers
    pixels = struct.pack(">H", 0) + bytes(range(3 * width * height))
    return header + sections + pixels


def zip_file() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("image.jpg", make_image())
    return out.getvalue()


NOT_IMAGES = {
    "text": lambda: b"hello, world\nthis is not an image\n",
    "html": lambda: b"<!DOCTYPE html><html><body><img src=x onerror=alert(1)></body></html>",
    "svg": lambda: (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" '
                    b'width="10" height="10"><rect width="10" height="10"/></svg>'),
    "pdf-header": lambda: (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"
                           b"trailer\n<<>>\n%%EOF\n"),
    "pdf-pillow": lambda: encode(Image.new("RGB", (10, 10)), "PDF"),
    "zip": zip_file,
    "eps-header": lambda: (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"
                           b"newpath 0 0 moveto 10 10 lineto stroke\n%%EOF\n"),
    "ico": lambda: make_image("ICO", (32, 32)),
    "psd": psd,
    "ppm": lambda: make_image("PPM", (8, 8)),
    "pcx": lambda: make_image("PCX", (8, 8)),
    "tga": lambda: make_image("TGA", (8, 8)),
    "qoi": lambda: make_image("QOI", (8, 8)),
    "sgi": lambda: make_image("SGI", (8, 8)),
    "jpeg2000": lambda: make_image("JPEG2000", (8, 8)),
    "random-bytes": lambda: random.Random(1).randbytes(3000),
}
# The samples Pillow itself can open, to be sure we refuse a real image of another format.
PILLOW_OPENS = {"ico": "ICO", "psd": "PSD", "ppm": "PPM", "pcx": "PCX", "tga": "TGA",
                "qoi": "QOI", "sgi": "SGI", "jpeg2000": "JPEG2000"}


@EMBEDDED
@pytest.mark.parametrize("kind", list(NOT_IMAGES))
def test_not_an_accepted_image_is_invalid_file_type(app, client, kind):
    if kind == "jpeg2000" and not features.check("jpg_2000"):
        unavailable("this Pillow has no OpenJPEG (JPEG 2000)")
    data = NOT_IMAGES[kind]()
    if kind in PILLOW_OPENS:
        with Image.open(io.BytesIO(data)) as im:
            assert im.format == PILLOW_OPENS[kind]
    # An image-like name and Content-Type do not help.
    r = client.post("/api/v1/upload", content_type="multipart/form-data",
                    data={"file": (io.BytesIO(data), "innocent.png", "image/png")})
    err(r, 400, "INVALID_FILE_TYPE")
    assert_nothing_stored(app)


def _png_chunk_offsets(data: bytes, chunk: bytes) -> tuple[int, int]:
    """Return (offset of the chunk's type, its data length) for the first such chunk."""
    pos = 8
    while pos < len(data):
        length = struct.unpack(">I", data[pos:pos + 4])[0]
        if data[pos + 4:pos + 8] == chunk:
            return pos + 4, length
        pos += 12 + length
    raise AssertionError(f"no {chunk!r} chunk")


def png_broken_idat() -> bytes:
    """A PNG whose compressed pixel data is garbage (with a CRC that matches it)."""
    data = encode(noise((64, 64)), "PNG")
    at, length = _png_chunk_offsets(data, b"IDAT")
    body = bytearray(data[at + 4:at + 4 + length])
    body[10:40] = b"\xff" * 30
    crc = struct.pack(">I", zlib.crc32(b"IDAT" + bytes(body)))
    return data[:at + 4] + bytes(body) + crc + data[at + 8 + length:]


def png_bad_header_crc() -> bytes:
    """A PNG whose IHDR chunk fails its CRC check."""
    data = encode(noise((32, 32)), "PNG")
    at, length = _png_chunk_offsets(data, b"IHDR")
    crc_at = at + 4 + length
    return data[:crc_at] + bytes(b ^ 0xFF for b in data[crc_at:crc_at + 4]) + data[crc_at + 4:]


def half(data: bytes) -> bytes:
    return data[:len(data) // 2]


CORRUPT = {
    "jpeg-truncated-half": lambda: half(encode(noise((256, 256)), "JPEG")),
    "jpeg-truncated-header": lambda: encode(noise((256, 256)), "JPEG")[:300],
    "png-broken-idat": png_broken_idat,
    "png-bad-ihdr-crc": png_bad_header_crc,
    "png-truncated-half": lambda: half(encode(noise((64, 64)), "PNG")),
    "gif-cut-off": lambda: half(encode(noise((128, 128)).convert("P"), "GIF")),
    "gif-cut-in-header": lambda: encode(noise((128, 128)).convert("P"), "GIF")[:20],
    "gif-animated-cut-off": lambda: animated_gif()[:-40],
    "webp-truncated-half": lambda: half(encode(noise((128, 128)), "WEBP", lossless=True)),
    "bmp-truncated-half": lambda: half(make_image("BMP", (64, 64))),
    "tiff-truncated-half": lambda: half(encode(noise((64, 64)), "TIFF")),
}


@EMBEDDED
@pytest.mark.parametrize("kind", list(CORRUPT))
def test_corrupt_image_of_accepted_format_is_invalid_image(app, client, kind):
    data = CORRUPT[kind]()
    r = upload(client, data, "broken.img")
    err(r, 400, "INVALID_IMAGE")
    assert_nothing_stored(app)


@EMBEDDED
def test_empty_file_is_invalid_image(app, client):
    err(upload(client, b"", "empty.jpg"), 400, "INVALID_IMAGE")
    assert_nothing_stored(app)


@EMBEDDED
@pytest.mark.parametrize("how", ["no-field", "other-field", "json", "no-body", "urlencoded"])
def test_missing_file(app, client, how):
    if how == "no-field":
        r = client.post("/api/v1/upload", data={"album": "x"},
                        content_type="multipart/form-data")
    elif how == "other-field":
        r = client.post("/api/v1/upload", content_type="multipart/form-data",
                        data={"image": (io.BytesIO(make_image()), "a.jpg")})
    elif how == "json":
        r = client.post("/api/v1/upload", json={"file": "aGVsbG8=", "filename": "a.jpg"})
    elif how == "no-body":
        r = client.post("/api/v1/upload")
    else:
        r = client.post("/api/v1/upload", data={"file": "not a file"})
    err(r, 400, "MISSING_FILE")
    assert_nothing_stored(app)


# --------------------------------------------------------------------------------------
# 4: dimensions and thumbnails as displayed (EXIF orientation)


def oriented_jpeg(size: tuple[int, int], orientation: int) -> bytes:
    """A JPEG stored with its left half red and right half blue, and an orientation tag."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(halves(size, RED, BLUE), "JPEG", exif=exif, quality=95)


# orientation -> (displayed dimensions swapped?, where the red half ends up when displayed)
ORIENTATIONS = {1: (False, "left"), 3: (False, "right"), 6: (True, "top"), 8: (True, "bottom")}


@EMBEDDED
@pytest.mark.parametrize("size", [(200, 100), (800, 400)])
@pytest.mark.parametrize("orientation", list(ORIENTATIONS))
def test_exif_orientation_dimensions_and_thumbnail(client, size, orientation):
    swapped, red_side = ORIENTATIONS[orientation]
    data = oriented_jpeg(size, orientation)
    d = ok_data(upload(client, data, "phone.jpg"))
    data = cleaned(data, "JPEG")  # orientation 1 is the default: its EXIF block goes
    shown = (size[1], size[0]) if swapped else size
    assert (d["width"], d["height"]) == shown
    assert d["format"] == "JPEG"
    # The original keeps its bytes, tag included.
    assert fetch(client, d["links"]["direct"]).data == data

    thumb = open_bytes(fetch(client, d["links"]["thumbnail"]).data)
    assert_fits(thumb.size, shown, 320)
    # The pixels are turned, so the thumbnail must not ask a browser to turn them again.
    assert thumb.getexif().get(0x0112) in (None, 1)
    w, h = thumb.size
    rgb = thumb.convert("RGB")
    probes = {"left": (w // 4, h // 2), "right": (3 * w // 4, h // 2),
              "top": (w // 2, h // 4), "bottom": (w // 2, 3 * h // 4)}
    opposite = {"left": "right", "right": "left", "top": "bottom", "bottom": "top"}
    assert close_to(rgb.getpixel(probes[red_side]), RED), rgb.getpixel(probes[red_side])
    assert close_to(rgb.getpixel(probes[opposite[red_side]]), BLUE)


@EMBEDDED
def test_exif_orientation_in_png_and_webp(client):
    exif = Image.Exif()
    exif[0x0112] = 6
    for fmt in ("PNG", "WEBP"):
        data = encode(halves((120, 60), RED, BLUE), fmt, exif=exif, lossless=True)
        d = ok_data(upload(client, data, f"rotated.{fmt.lower()}"))
        assert (d["width"], d["height"]) == (60, 120), fmt
        thumb = open_bytes(fetch(client, d["links"]["thumbnail"]).data)
        assert thumb.size == (60, 120), fmt
        assert close_to(thumb.convert("RGB").getpixel((30, 20)), RED), fmt


# --------------------------------------------------------------------------------------
# 5: thumbnails


@pytest.mark.parametrize("size", [(1000, 500), (500, 1000), (321, 321), (320, 320), (640, 479),
                                  (2000, 30), (30, 2000), (1, 1), (50, 40), (40, 319)])
@EMBEDDED
def test_thumbnail_fits_keeps_aspect_and_never_upscales(client, size):
    data = encode(halves(size, RED, BLUE), "PNG")
    d = ok_data(upload(client, data, "t.png"))
    assert (d["width"], d["height"]) == size
    r = fetch(client, d["links"]["thumbnail"])
    thumb = open_bytes(r.data)
    assert_fits(thumb.size, size, 320)
    if size[0] <= 320 and size[1] <= 320:
        assert thumb.size == size


@EMBEDDED
@pytest.mark.parametrize("build", [c[1] for c in FORMAT_CASES], ids=[c[0] for c in FORMAT_CASES])
def test_thumbnail_of_every_format(client, build):
    data = build()
    with Image.open(io.BytesIO(data)) as im:
        fmt = im.format
    if fmt == "MPO":
        fmt = "JPEG"
    # Scale the sample up so that the thumbnail is a real reduction.
    with Image.open(io.BytesIO(data)) as im:
        big = im.convert("RGB").resize((im.width * 10, im.height * 10))
    big_data = encode(big, fmt if fmt != "GIF" else "GIF")
    d = ok_data(upload_raw(client, big_data, "big"))
    r = fetch(client, d["links"]["thumbnail"])
    ext = path_of(d["links"]["thumbnail"]).rpartition(".")[2]
    assert r.mimetype == EXT_MIME[ext]
    thumb = open_bytes(r.data)
    assert thumb.format == PIL_FORMAT_OF_EXT[ext]
    assert_fits(thumb.size, big.size, 320)


@EMBEDDED
def test_thumbnail_of_animated_gif_is_an_image(client):
    d = ok_data(upload(client, animated_gif(), "anim.gif"))
    thumb = open_bytes(fetch(client, d["links"]["thumbnail"]).data)
    assert thumb.size == (40, 30)
    assert close_to(thumb.convert("RGB").getpixel((20, 15)), RED)


def _transparent_sample(kind: str) -> bytes:
    """400x200, left half fully transparent, right half opaque green."""
    size = (400, 200)
    rgba = halves(size, (255, 0, 0, 0), (0, 255, 0, 255), mode="RGBA")
    if kind == "png-rgba":
        return encode(rgba, "PNG")
    if kind == "png-la":
        return encode(halves(size, (0, 0), (200, 255), mode="LA"), "PNG")
    # Palette images: the transparent entry has the same colour as the opaque one, so a
    # thumbnail that turns transparency into a colour key cannot pass.
    if kind == "png-palette-trns":
        p = halves(size, 0, 1, mode="P")
        p.putpalette([0, 255, 0, 0, 255, 0] + [0] * 762)
        return encode(p, "PNG", transparency=0)
    if kind == "gif":
        p = halves(size, 0, 1, mode="P")
        p.putpalette([0, 255, 0, 0, 255, 0] + [0] * 762)
        return encode(p, "GIF", transparency=0, optimize=False)
    if kind == "webp":
        return encode(rgba, "WEBP", lossless=True)
    if kind == "webp-lossy":
        return encode(rgba, "WEBP", quality=80)
    if kind == "avif":
        return encode(rgba, "AVIF")
    if kind == "tiff":
        return encode(rgba, "TIFF")
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["png-rgba", "png-la", "png-palette-trns", "gif", "webp",
                                  "webp-lossy", "avif", "tiff"])
@EMBEDDED
def test_thumbnail_keeps_transparency(client, kind):
    data = _transparent_sample(kind)
    with Image.open(io.BytesIO(data)) as sample:  # the sample really is half transparent
        assert alpha_at(sample, (100, 100)) == 0 and alpha_at(sample, (300, 100)) == 255
    d = ok_data(upload(client, data, "alpha"))
    thumb = open_bytes(fetch(client, d["links"]["thumbnail"]).data)
    assert thumb.size == (320, 160)
    assert "A" in thumb.getbands() or "transparency" in thumb.info, thumb.mode
    assert alpha_at(thumb, (80, 80)) <= 8, "the transparent half became opaque"
    assert alpha_at(thumb, (240, 80)) >= 247, "the opaque half became transparent"


@EMBEDDED
def test_opaque_image_thumbnail_has_no_transparent_pixels(client):
    d = ok_data(upload(client, make_image("PNG", (400, 200), color=(10, 20, 30)), "o.png"))
    thumb = open_bytes(fetch(client, d["links"]["thumbnail"]).data)
    assert thumb.convert("RGBA").getextrema()[3] == (255, 255)


@pytest.mark.parametrize("size, expected", [((1000, 500), (100, 50)), ((80, 200), (40, 100)),
                                            ((50, 40), (50, 40)), ((100, 100), (100, 100))])
def test_thumbnail_size_is_configurable(make_app, size, expected):
    app, client = make_app(THUMBNAIL_SIZE=100)
    for fmt in ("PNG", "JPEG"):
        d = ok_data(upload(client, encode(halves(size, RED, BLUE), fmt), "c"))
        thumb = open_bytes(fetch(client, d["links"]["thumbnail"]).data)
        assert_fits(thumb.size, size, 100)
        assert thumb.size == expected, fmt


# --------------------------------------------------------------------------------------
# 6: a large JPEG is decoded at a reduced DCT scale


def test_large_jpeg_decoded_with_draft(make_app, monkeypatch):
    _app, client = make_app()
    calls = []
    original_draft = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        before = self.size
        result = original_draft(self, mode, size)
        calls.append({"requested": size, "before": before, "after": self.size})
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    big = Image.new("RGB", (4000, 3000), (30, 120, 200))
    big.paste((250, 250, 0), (0, 0, 2000, 3000))
    data = encode(big, "JPEG", quality=90)

    d = ok_data(upload_raw(client, data, "huge.jpg"))
    assert (d["width"], d["height"]) == (4000, 3000)  # the real size, not the draft's
    assert calls, "draft() was never called: the JPEG was decoded at full size"
    decoded = [c for c in calls if c["before"] == (4000, 3000)]
    assert decoded, calls
    after = decoded[-1]["after"]
    assert after[0] <= 1000 and after[1] <= 750, after
    # ...while still covering the thumbnail, which is therefore not blurred by upscaling.
    assert after[0] >= 320 or after[1] >= 320, after

    thumb = open_bytes(fetch(client, d["links"]["thumbnail"]).data)
    assert_fits(thumb.size, (4000, 3000), 320)
    assert close_to(thumb.convert("RGB").getpixel((40, 120)), (250, 250, 0))
    assert close_to(thumb.convert("RGB").getpixel((280, 120)), (30, 120, 200))
    assert fetch(client, d["links"]["direct"]).data == data


# --------------------------------------------------------------------------------------
# 7: file names, and the links built from them


def upload_named(client, name: str, data: bytes | None = None, headers=None):
    return post_raw(client, "/api/v1/upload", [("file", name, data or make_image())], headers)


def assert_safe_name(name: str, max_length: int = 200) -> None:
    assert name and len(name) <= max_length
    assert "/" not in name and "\\" not in name
    assert not any(unicodedata.category(c) in ("Cc", "Cf") for c in name), repr(name)


@pytest.mark.parametrize("raw, expected", [
    ("plain.jpg", "plain.jpg"),
    ("../../etc/passwd.jpg", "passwd.jpg"),
    ("/var/www/abs.jpg", "abs.jpg"),
    ("C:\\x\\y.jpg", "y.jpg"),
    ("..\\..\\windows\\win.ini.jpg", "win.ini.jpg"),
    ("mixed/dir\\name.jpg", "name.jpg"),
    ("a\x00b\x07c\x1bd\x7fe.jpg", "abcde.jpg"),
    ("tab\there\r\nnew.jpg", "tabherenew.jpg"),
    ("\u202egpj.exe", "gpj.exe"),
    ("zero\u200bwidth.jpg", "zerowidth.jpg"),
    ("café ☕ (1).jpg", "café ☕ (1).jpg"),
    ("日本語の写真.jpg", "日本語の写真.jpg"),
])
@EMBEDDED
def test_filename_is_sanitized(client, raw, expected):
    d = ok_data(upload_named(client, raw))
    assert d["filename"] == expected
    assert_safe_name(d["filename"])
    assert ok_data(client.get(f"/api/v1/image/{d['id']}"))["filename"] == expected


@pytest.mark.parametrize("raw", ["", "...", "/", "../..", "C:\\", "\x01\x02\x03", "\u202e",
                                 "dir/", "   "])
@EMBEDDED
def test_filename_falls_back_when_nothing_is_left(client, raw):
    d = ok_data(upload_named(client, raw, make_image("PNG", (10, 10))))
    assert_safe_name(d["filename"])
    assert d["filename"].strip(". ")
    assert d["format"] == "PNG"


@EMBEDDED
def test_filename_length_is_bounded(client):
    raw = "a" * 500 + ".jpg"
    d = ok_data(upload_named(client, raw))
    assert_safe_name(d["filename"], 200)
    assert d["filename"].startswith("aaaa")
    assert d["filename"].endswith(".jpg")

    raw = "b" * 1000  # no extension at all
    d = ok_data(upload_named(client, raw))
    assert_safe_name(d["filename"], 200)
    assert d["filename"].startswith("bbbb")


def test_filename_length_follows_config(make_app):
    _app, client = make_app(FILENAME_MAX_LENGTH=20)
    d = ok_data(upload_named(client, "abcdefghij" * 5 + ".png", make_image("PNG")))
    assert_safe_name(d["filename"], 20)
    assert d["filename"].startswith("abcdefghij")
    d = ok_data(upload_named(client, "short.png", make_image("PNG")))
    assert d["filename"] == "short.png"


class _TagCollector(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.text, self.ends, self.comments = [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))

    handle_startendtag = handle_starttag

    def handle_endtag(self, tag):
        self.ends.append(tag)

    def handle_data(self, data):
        self.text.append(data)

    def handle_comment(self, data):
        self.comments.append(data)


def _markdown_image(markdown: str) -> tuple[str, str]:
    """Split `![alt](url)` where every bracket inside alt is backslash-escaped."""
    m = re.fullmatch(r"!\[((?:\\.|[^\\\[\]])*)\]\(([^()\s]+)\)", markdown, re.S)
    assert m, f"not a single Markdown image: {markdown!r}"
    return re.sub(r"\\(.)", r"\1", m.group(1), flags=re.S), m.group(2)


HOSTILE_NAMES = [
    '"><script>alert(1)</script>.jpg',
    'x" onerror="alert(1)" y=".jpg',
    "x' onerror='alert(1)'.jpg",
    "<img src=x onerror=alert(1)>.jpg",
    "&quot;&lt;entities&gt;.jpg",
    "a](javascript:x)[.jpg",
    "x)](javascript:alert(1)).jpg",
    "![inner](http://evil.example).jpg",
    "`code` *bold* _em_ <b>.jpg",
    "back]slash[[.jpg",
]


@EMBEDDED
@pytest.mark.parametrize("raw", HOSTILE_NAMES)
def test_links_escape_hostile_filenames(client, raw):
    d = ok_data(upload_named(client, raw))
    name = d["filename"]
    expected = re.split(r"[/\\]", raw)[-1]
    assert name == expected
    direct = d["links"]["direct"]

    # HTML: exactly one <img> with exactly src and alt; alt reads back as the file name.
    markup = d["links"]["html"]
    parser = _TagCollector()
    parser.feed(markup)
    parser.close()
    assert [tag for tag, _ in parser.tags] == ["img"], markup
    assert dict(parser.tags[0][1]) == {"src": direct, "alt": name}, markup
    assert parser.ends == [] and parser.comments == [] and "".join(parser.text) == "", markup
    assert markup.startswith(f'<img src="{direct}" alt="') and markup.endswith('">')
    inside = markup[len(f'<img src="{direct}" alt="'):-2]
    assert '"' not in inside and "<" not in inside and ">" not in inside, markup
    assert html.unescape(inside) == name

    # Markdown: one image, its label the file name, its target the direct link.
    alt, target = _markdown_image(d["links"]["markdown"])
    assert alt == name
    assert target == direct

    # BBCode carries no file name at all.
    assert d["links"]["bbcode"] == f"[img]{direct}[/img]"


# --------------------------------------------------------------------------------------
# 8: album and expiry


def test_album_is_stored_and_returned(client):
    d = ok_data(upload(client, make_image(), "a.jpg", album="my-project"))
    assert d["album"] == "my-project"
    assert ok_data(client.get(f"/api/v1/image/{d['id']}"))["album"] == "my-project"


@EMBEDDED
@pytest.mark.parametrize("album", ["", None])
def test_no_album_is_null(client, album):
    fields = {} if album is None else {"album": album}
    d = ok_data(upload(client, make_image(), "a.jpg", **fields))
    assert d["album"] is None


@EMBEDDED
@pytest.mark.parametrize("album", ["x" * 64, "Holiday 2025 – Café ☕", "日本"])
def test_album_printable_within_bound_is_accepted(client, album):
    d = ok_data(upload(client, make_image(), "a.jpg", album=album))
    assert d["album"] == album


def test_album_with_key_is_stored(client, api_key):
    d = ok_data(upload(client, make_image(), "a.jpg", headers=auth(api_key), album="mine"))
    assert d["album"] == "mine"
    assert ok_data(client.get(f"/api/v1/image/{d['id']}", headers=auth(api_key)))["album"] \
        == "mine"


@pytest.mark.parametrize("album", ["x" * 65, "y" * 1000, "nul\x00byte", "new\nline", "tab\there",
                                   "esc\x1b[31m", "del\x7f", "bidi\u202eoverride"])
@EMBEDDED
def test_bad_album_is_invalid_parameter(app, client, album):
    err(upload(client, make_image(), "a.jpg", album=album), 400, "INVALID_PARAMETER")
    assert_nothing_stored(app)


def test_album_bound_follows_config(make_app):
    app, client = make_app(ALBUM_MAX_LENGTH=5)
    assert ok_data(upload(client, make_image(), "a.jpg", album="abcde"))["album"] == "abcde"
    err(upload(client, make_image(), "a.jpg", album="abcdef"), 400, "INVALID_PARAMETER")


def _parse_iso(value: str) -> dt.datetime:
    assert ISO_Z.match(value), value
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")


@EMBEDDED
@pytest.mark.parametrize("expiry", [None, "0", ""])
def test_permanent_upload_has_no_expiry(client, expiry):
    fields = {} if expiry is None else {"expiry": expiry}
    d = ok_data(upload(client, make_image(), "a.jpg", **fields))
    assert d["expires_at"] is None
    uploaded = _parse_iso(d["uploaded_at"])
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    assert abs((now - uploaded).total_seconds()) < 120


@pytest.mark.parametrize("hours", [2, 24 * 365])
def test_expiry_hours(client, hours):
    d = ok_data(upload(client, make_image(), "a.jpg", expiry=str(hours)))
    uploaded = _parse_iso(d["uploaded_at"])
    expires = _parse_iso(d["expires_at"])
    assert expires - uploaded == dt.timedelta(hours=hours)
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    assert abs((now - uploaded).total_seconds()) < 120
    assert ok_data(client.get(f"/api/v1/image/{d['id']}"))["expires_at"] == d["expires_at"]


@pytest.mark.parametrize("expiry", ["-1", "abc", "1.5", "99999999999", "1e3", "0x10", "2h",
                                    "2 3", "nan", "-0.5", "9" * 40])
@EMBEDDED
def test_bad_expiry_is_invalid_parameter(app, client, expiry):
    err(upload(client, make_image(), "a.jpg", expiry=expiry), 400, "INVALID_PARAMETER")
    assert_nothing_stored(app)


def test_expiry_upper_bound_follows_config(make_app):
    app, client = make_app(MAX_EXPIRY_HOURS=48)
    ok_data(upload(client, make_image(), "a.jpg", expiry="48"))
    err(upload(client, make_image(), "a.jpg", expiry="49"), 400, "INVALID_PARAMETER")
    assert len(stored_files(app)) == 2  # the first image's original and thumbnail only


@pytest.mark.parametrize("fields", [{"expiry": "-1"}, {"album": "z" * 65}])
def test_bad_parameter_in_bulk_stores_nothing(app, client, fields):
    r = bulk(client, [(make_image(), "a.jpg"), (make_image("PNG"), "b.png")], **fields)
    err(r, 400, "INVALID_PARAMETER")
    assert_nothing_stored(app)


# --------------------------------------------------------------------------------------
# 9: size limits per plan


def padded_png(total: int) -> bytes:
    """A valid PNG of exactly `total` bytes (zeros after IEND, which decoders ignore)."""
    data = encode(noise((20, 20)), "PNG")
    assert len(data) <= total
    return data + b"\0" * (total - len(data))


SMALL_PLANS = plans(anonymous={"max_file": 10_000, "bulk": 3},
                    free={"max_file": 100_000, "bulk": 5})


def test_file_at_the_limit_passes_and_one_byte_more_is_too_large(make_app):
    # The padding is a PNG text chunk: keep it (an operator's choice) so sizes stay exact.
    app, client = make_app(PLANS=SMALL_PLANS, STRIP_METADATA=False)
    at_limit = padded_png(10_000)
    d = ok_data(upload(client, at_limit, "at.png"))
    assert d["size"] == 10_000
    assert fetch(client, d["links"]["direct"]).data == at_limit
    stored_before = stored_files(app)

    error = err(upload(client, padded_png(10_001), "over.png"), 413, "FILE_TOO_LARGE")
    assert "10,000" in error["message"] or "10000" in error["message"]
    assert stored_files(app) == stored_before
    assert record_count(app) == 1


def test_file_far_over_the_limit_is_too_large(make_app):
    app, client = make_app(PLANS=SMALL_PLANS)
    big = encode(noise((200, 200)), "BMP")  # 120 kB
    err(upload_raw(client, big, "big.bmp"), 413, "FILE_TOO_LARGE")
    assert_nothing_stored(app)


def test_bigger_plan_allows_bigger_file(make_app):
    app, client = make_app(PLANS=SMALL_PLANS, STRIP_METADATA=False)
    key = key_on(app, "free")
    data = padded_png(50_000)
    err(upload(client, data, "mid.png"), 413, "FILE_TOO_LARGE")
    d = ok_data(upload(client, data, "mid.png", headers=auth(key)))
    assert d["size"] == 50_000
    assert fetch(client, d["links"]["direct"]).data == data
    err(upload(client, padded_png(100_001), "x.png", headers=auth(key)), 413, "FILE_TOO_LARGE")


class ExplodingStream:
    """A request body that claims `size` bytes and must never be read."""

    def __init__(self, size: int = 50 * 1024 ** 3) -> None:
        self.size = size
        self.pos = 0
        self.reads = 0

    def tell(self) -> int:  # the test client measures the body with tell() and seek()
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = self.size + offset if whence == 2 else offset
        return self.pos

    def read(self, *args):
        self.reads += 1
        raise AssertionError("the body was read")

    readline = readinto = read


@pytest.mark.parametrize("endpoint", ["/api/v1/upload", "/api/v1/upload/bulk"])
@pytest.mark.parametrize("small", [True, False], ids=["small-plan", "default-plan"])
def test_plainly_oversized_body_is_refused_before_reading(make_app, endpoint, small):
    app, client = make_app(PLANS=SMALL_PLANS) if small else make_app()
    stream = ExplodingStream()
    r = client.post(endpoint, input_stream=stream,
                    content_type="multipart/form-data; boundary=imglinkTestBoundary")
    err(r, 413, "FILE_TOO_LARGE")
    assert stream.reads == 0
    assert_nothing_stored(app)
    assert os.listdir(app.config["UPLOAD_TMP_DIR"]) == []


def test_bulk_oversized_file_is_reported_and_the_others_stored(make_app):
    app, client = make_app(PLANS=SMALL_PLANS)
    small_a = make_image("PNG", (10, 10))
    small_c = make_image("JPEG", (12, 12))
    r = bulk(client, [(small_a, "a.png"), (padded_png(20_000), "b.png"), (small_c, "c.jpg")])
    d = ok_data(r)
    assert [i["filename"] for i in d["images"]] == ["a.png", "c.jpg"]
    assert len(d["errors"]) == 1
    e = d["errors"][0]
    assert e["index"] == 1 and e["filename"] == "b.png"
    assert e["error"]["code"] == "FILE_TOO_LARGE" and e["error"]["message"]
    assert fetch(client, d["images"][0]["links"]["direct"]).data == small_a
    assert fetch(client, d["images"][1]["links"]["direct"]).data == small_c
    assert record_count(app) == 2


def test_bulk_all_oversized_is_file_too_large(make_app):
    app, client = make_app(PLANS=SMALL_PLANS)
    r = bulk(client, [(padded_png(20_000), "a.png"), (padded_png(30_000), "b.png")])
    error = err(r, 413, "FILE_TOO_LARGE")
    assert [(x["index"], x["filename"], x["error"]["code"]) for x in error["details"]] == \
        [(0, "a.png", "FILE_TOO_LARGE"), (1, "b.png", "FILE_TOO_LARGE")]
    assert_nothing_stored(app)


# --------------------------------------------------------------------------------------
# 10: bulk


def test_bulk_stores_every_file_in_order(app, client):
    files = [(make_image("JPEG", (30, 20)), "one.jpg"), (make_image("PNG", (31, 21)), "two.png"),
             (animated_gif(), "three.gif"), (make_image("WEBP", (33, 23)), "four.webp")]
    r = bulk(client, files, album="trip", expiry="3")
    d = ok_data(r)
    assert set(d) >= {"images", "errors"}
    assert d["errors"] == []
    images = d["images"]
    assert [i["filename"] for i in images] == ["one.jpg", "two.png", "three.gif", "four.webp"]
    assert [i["format"] for i in images] == ["JPEG", "PNG", "GIF", "WEBP"]
    assert [(i["width"], i["height"]) for i in images] == [(30, 20), (31, 21), (40, 30), (33, 23)]
    assert len({i["id"] for i in images}) == 4
    for image, (data, _name) in zip(images, files):
        assert image["size"] == len(data)
        assert fetch(client, image["links"]["direct"]).data == data
        assert image["album"] == "trip"
        assert _parse_iso(image["expires_at"]) - _parse_iso(image["uploaded_at"]) == \
            dt.timedelta(hours=3)
        assert image["delete_token"] and image["links"]["delete"]
    assert record_count(app) == 4


def test_bulk_mixed_results(app, client):
    good_jpeg = make_image("JPEG", (20, 20))
    good_png = make_image("PNG", (21, 21))
    files = [(good_jpeg, "good.jpg"), (b"just text", "notes.txt"), (good_png, "good.png"),
             (CORRUPT["jpeg-truncated-half"](), "broken.jpg"), (b"", "empty.png")]
    d = ok_data(bulk(client, files))
    assert [i["filename"] for i in d["images"]] == ["good.jpg", "good.png"]
    assert [(e["index"], e["filename"], e["error"]["code"]) for e in d["errors"]] == [
        (1, "notes.txt", "INVALID_FILE_TYPE"),
        (3, "broken.jpg", "INVALID_IMAGE"),
        (4, "empty.png", "INVALID_IMAGE"),
    ]
    assert all(e["error"]["message"] for e in d["errors"])
    assert fetch(client, d["images"][0]["links"]["direct"]).data == good_jpeg
    assert fetch(client, d["images"][1]["links"]["direct"]).data == good_png
    assert record_count(app) == 2


def test_bulk_all_refused_with_one_code(app, client):
    r = bulk(client, [(b"plain text", "a.txt"), (NOT_IMAGES["html"](), "b.html"),
                      (NOT_IMAGES["svg"](), "c.svg")])
    error = err(r, 400, "INVALID_FILE_TYPE")
    assert [(x["index"], x["filename"], x["error"]["code"]) for x in error["details"]] == [
        (0, "a.txt", "INVALID_FILE_TYPE"), (1, "b.html", "INVALID_FILE_TYPE"),
        (2, "c.svg", "INVALID_FILE_TYPE")]
    assert_nothing_stored(app)


def test_bulk_all_corrupt_is_invalid_image(app, client):
    r = bulk(client, [(CORRUPT["png-broken-idat"](), "a.png"), (b"", "b.jpg")])
    error = err(r, 400, "INVALID_IMAGE")
    assert [(x["index"], x["filename"], x["error"]["code"]) for x in error["details"]] == [
        (0, "a.png", "INVALID_IMAGE"), (1, "b.jpg", "INVALID_IMAGE")]
    assert_nothing_stored(app)


def test_bulk_all_refused_with_mixed_codes(app, client):
    r = bulk(client, [(b"plain text", "a.txt"), (CORRUPT["jpeg-truncated-half"](), "b.jpg")])
    # API.md allows INVALID_FILE_TYPE or INVALID_IMAGE here; ImgLink answers INVALID_IMAGE.
    error = err(r, 400, "INVALID_IMAGE")
    assert [(x["index"], x["filename"], x["error"]["code"]) for x in error["details"]] == [
        (0, "a.txt", "INVALID_FILE_TYPE"), (1, "b.jpg", "INVALID_IMAGE")]
    assert_nothing_stored(app)


def tiny_files(n: int) -> list[tuple[bytes, str]]:
    data = make_image("PNG", (2, 2))
    return [(data, f"f{i}.png") for i in range(n)]


@EMBEDDED
def test_bulk_anonymous_limit(app, client):
    err(bulk(client, tiny_files(11)), 400, "BULK_LIMIT_EXCEEDED")
    assert_nothing_stored(app)
    d = ok_data(bulk(client, tiny_files(10)))
    assert len(d["images"]) == 10 and d["errors"] == []
    assert [i["filename"] for i in d["images"]] == [f"f{i}.png" for i in range(10)]


@EMBEDDED
def test_bulk_free_plan_limit(app, client, api_key):
    d = ok_data(bulk(client, tiny_files(11), headers=auth(api_key)))
    assert len(d["images"]) == 11
    assert record_count(app) == 11
    err(bulk(client, tiny_files(51), headers=auth(api_key)), 400, "BULK_LIMIT_EXCEEDED")
    assert record_count(app) == 11


def test_bulk_limit_counts_refused_files_too(make_app):
    app, client = make_app(PLANS=SMALL_PLANS)  # anonymous bulk 3
    files = tiny_files(2) + [(b"text", "a.txt"), (b"", "b.png")]
    err(bulk(client, files), 400, "BULK_LIMIT_EXCEEDED")
    assert_nothing_stored(app)


@EMBEDDED
@pytest.mark.parametrize("how", ["no-field", "singular-field", "json"])
def test_bulk_missing_files(app, client, how):
    if how == "no-field":
        r = client.post("/api/v1/upload/bulk", data={"album": "x"},
                        content_type="multipart/form-data")
    elif how == "singular-field":
        r = client.post("/api/v1/upload/bulk", content_type="multipart/form-data",
                        data={"file": (io.BytesIO(make_image()), "a.jpg")})
    else:
        r = client.post("/api/v1/upload/bulk", json={"files": ["a"]})
    err(r, 400, "MISSING_FILE")
    assert_nothing_stored(app)


# --------------------------------------------------------------------------------------
# 11: large parts stream to a temp file in UPLOAD_TMP_DIR


def test_large_part_is_spooled_to_disk(make_app, monkeypatch):
    app, client = make_app()
    buffers = []

    class SpyBuffer(imglink.web.request.UploadBuffer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.disk_dir = None
            self.max_in_memory = 0
            buffers.append(self)

        def write(self, data):
            result = super().write(data)
            if not self._rolled:
                self.max_in_memory = max(self.max_in_memory, self.tell())
            return result

        def rollover(self):
            super().rollover()
            # Where the bytes now go: the open file's folder (Linux), else where it was made.
            link = f"/proc/self/fd/{self._file.fileno()}"
            if os.path.islink(link):
                target = os.readlink(link).removesuffix(" (deleted)")
                self.disk_dir = os.path.dirname(target)
            else:
                self.disk_dir = os.path.realpath(self._TemporaryFileArgs["dir"])

    monkeypatch.setattr(imglink.web.request, "UploadBuffer", SpyBuffer)
    large = encode(noise((700, 600)), "BMP")  # 1.26 MB
    assert len(large) > 1024 * 1024
    small = make_image("PNG", (10, 10))

    r = bulk(client, [(small, "small.png"), (large, "large.bmp")])
    d = ok_data(r)
    assert [i["filename"] for i in d["images"]] == ["small.png", "large.bmp"]
    assert fetch(client, d["images"][1]["links"]["direct"]).data == large

    assert len(buffers) == 2, "the file parts did not go through UploadBuffer"
    small_buffer, large_buffer = buffers
    assert not small_buffer._rolled
    assert large_buffer._rolled, "the 1.26 MB part stayed in memory"
    assert large_buffer.max_in_memory <= 1024 * 1024 + 64 * 1024
    tmp_dir = os.path.realpath(app.config["UPLOAD_TMP_DIR"])
    assert large_buffer.disk_dir == tmp_dir
    # No temp file is left behind.
    assert os.listdir(tmp_dir) == []


def test_single_upload_large_part_is_spooled_to_disk(make_app, monkeypatch):
    _app, client = make_app()
    rolled = []

    class SpyBuffer(imglink.web.request.UploadBuffer):
        def rollover(self):
            super().rollover()
            rolled.append(self)

    monkeypatch.setattr(imglink.web.request, "UploadBuffer", SpyBuffer)
    large = encode(noise((800, 500)), "BMP")
    d = ok_data(upload_raw(client, large, "large.bmp"))
    assert d["size"] == len(large)
    assert len(rolled) == 1
    assert fetch(client, d["links"]["direct"]).data == large


def test_body_refused_while_parsing_closes_its_temp_files(make_app, monkeypatch):
    """A body refused half-way through parsing (here: too many parts) leaves no open file."""
    app, client = make_app(MAX_FORM_PARTS=3)
    buffers = []

    class SpyBuffer(imglink.web.request.UploadBuffer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            buffers.append(self)

    monkeypatch.setattr(imglink.web.request, "UploadBuffer", SpyBuffer)
    r = bulk(client, tiny_files(6))
    closed = [b.closed for b in buffers]
    for b in buffers:
        b.close()
    err(r, 413, "FILE_TOO_LARGE")
    assert_nothing_stored(app)
    assert buffers, "no file part was buffered before the refusal"
    assert all(closed), f"{closed.count(False)} of {len(closed)} upload buffers left open"


# --------------------------------------------------------------------------------------
# 12: the envelope and rate-limit headers on every response


ENVELOPE_SCENARIOS = {
    "ok": (lambda c: upload(c, make_image(), "a.jpg"), 200, None),
    "invalid-type": (lambda c: upload(c, b"text", "a.txt"), 400, "INVALID_FILE_TYPE"),
    "invalid-image": (lambda c: upload(c, CORRUPT["png-broken-idat"](), "a.png"), 400,
                      "INVALID_IMAGE"),
    "empty": (lambda c: upload(c, b"", "a.png"), 400, "INVALID_IMAGE"),
    "missing": (lambda c: c.post("/api/v1/upload", json={}), 400, "MISSING_FILE"),
    "bad-album": (lambda c: upload(c, make_image(), "a.jpg", album="x" * 65), 400,
                  "INVALID_PARAMETER"),
    "bad-expiry": (lambda c: upload(c, make_image(), "a.jpg", expiry="-1"), 400,
                   "INVALID_PARAMETER"),
    "too-large-body": (lambda c: c.post(
        "/api/v1/upload", input_stream=ExplodingStream(),
        content_type="multipart/form-data; boundary=b"), 413, "FILE_TOO_LARGE"),
    "bulk-ok": (lambda c: bulk(c, tiny_files(2)), 200, None),
    "bulk-mixed": (lambda c: bulk(c, tiny_files(1) + [(b"x", "x.txt")]), 200, None),
    "bulk-none": (lambda c: bulk(c, [(b"x", "x.txt")]), 400, "INVALID_FILE_TYPE"),
    "bulk-limit": (lambda c: bulk(c, tiny_files(11)), 400, "BULK_LIMIT_EXCEEDED"),
    "bulk-missing": (lambda c: c.post("/api/v1/upload/bulk"), 400, "MISSING_FILE"),
    "get-405": (lambda c: c.get("/api/v1/upload"), 405, "METHOD_NOT_ALLOWED"),
    "put-405": (lambda c: c.put("/api/v1/upload/bulk"), 405, "METHOD_NOT_ALLOWED"),
}


@EMBEDDED
@pytest.mark.parametrize("scenario", list(ENVELOPE_SCENARIOS))
def test_every_response_is_the_envelope_with_rate_limit_headers(client, scenario):
    call, status, code = ENVELOPE_SCENARIOS[scenario]
    first = call(client)
    if code is None:
        ok_data(first, status)
    else:
        err(first, status, code)
    assert first.headers["Content-Type"] == "application/json"
    assert first.headers["X-RateLimit-Limit"] == "100"  # the anonymous plan
    second = call(client)
    assert second.status_code == status
    check_headers(second)
    assert int(first.headers["X-RateLimit-Remaining"]) < 100
    assert int(second.headers["X-RateLimit-Remaining"]) == \
        int(first.headers["X-RateLimit-Remaining"]) - 1
    assert int(first.headers["X-RateLimit-Reset"]) > 0


@EMBEDDED
def test_rate_limit_headers_follow_the_key_plan(client, api_key):
    r = upload(client, make_image(), "a.jpg", headers=auth(api_key))
    ok_data(r)
    assert r.headers["X-RateLimit-Limit"] == "1000"
    assert int(r.headers["X-RateLimit-Remaining"]) == 999
    r = bulk(client, [(b"text", "a.txt")], headers=auth(api_key))
    err(r, 400, "INVALID_FILE_TYPE")
    assert r.headers["X-RateLimit-Limit"] == "1000"
    assert int(r.headers["X-RateLimit-Remaining"]) == 998


@EMBEDDED
def test_bad_key_is_refused_not_anonymous(app, client):
    r = upload(client, make_image(), "a.jpg", headers={"Authorization": "Bearer ilk_nope"})
    err(r, 401, "UNAUTHORIZED")
    assert r.mimetype == "application/json"
    assert_nothing_stored(app)


def test_spent_quota_is_429_envelope_and_stores_nothing(make_app):
    app, client = make_app(PLANS=plans(anonymous={"hourly": 2}))
    ok_data(upload(client, make_image(), "a.jpg"))
    ok_data(bulk(client, tiny_files(1)))
    stored = stored_files(app)
    r = upload(client, make_image(), "a.jpg")
    err(r, 429, "RATE_LIMIT_EXCEEDED")
    assert int(r.headers["Retry-After"]) > 0
    assert r.headers["X-RateLimit-Remaining"] == "0"
    err(bulk(client, tiny_files(1)), 429, "RATE_LIMIT_EXCEEDED")
    assert stored_files(app) == stored
