"""Property-based fuzzing of uploads: mutated images of every accepted format.

Hypothesis takes small valid images of every accepted format (made here with Pillow), breaks
them (byte flips, overwrites with boundary values, insertions, deletions, truncations,
duplicated runs, splices between formats) and uploads the result through the Flask test
client. Whatever the bytes, the answer is a 200 with a complete image object whose file is
served with exactly the recorded size, or a 4xx in the API envelope; never a 5xx. After each
example the storage holds exactly the files of the stored records.

Budget: IMGLINK_FUZZ_EXAMPLES examples (default 300, a few seconds). A long run:

    IMGLINK_FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest tests/test_fuzz.py

With CI set, the examples are derandomized (the same on every run). Elsewhere they differ
from run to run, and Hypothesis keeps the failing ones in .hypothesis/ to replay them first.
"""
from __future__ import annotations

import io
import os
import random
import resource
import time
from functools import cache
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from PIL import Image, features

from conftest import BufferedClient, base_config, encode, upload
from imglink import create_app
from imglink.core.db import database, open_database
from imglink.core.models import Image as ImageRecord

# Pillow warns (UserWarning) on the broken files this test makes: in production that is a
# line on stderr and a normal answer; under the suite's filterwarnings=error it would raise
# inside the app. Only warnings issued by Pillow itself are let through.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL")

EXAMPLES = int(os.environ.get("IMGLINK_FUZZ_EXAMPLES", "300"))
IN_CI = bool(os.environ.get("CI"))
SLOW = 10.0  # seconds for one upload of a few kilobytes: a sanity bound, not a benchmark

FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=IN_CI,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

REFUSALS = {"INVALID_IMAGE", "INVALID_FILE_TYPE"}
EXT_MIME = {"jpg": "image/jpeg", "png": "image/png", "gif": "image/gif", "webp": "image/webp",
            "avif": "image/avif", "bmp": "image/bmp", "tiff": "image/tiff"}
IMAGE_KEYS = {"id", "filename", "size", "width", "height", "format", "album", "uploaded_at",
              "expires_at", "links"}
LINK_KEYS = {"direct", "thumbnail", "view_page", "bbcode", "html", "markdown"}


# --------------------------------------------------------------------------------------
# Seeds: small valid images of every accepted format, in their common variants


def noise(size=(24, 16), mode: str = "RGB", seed: int = 11) -> Image.Image:
    rnd = random.Random(seed)
    return Image.frombytes(mode, size, rnd.randbytes(size[0] * size[1] * len(mode)))


def frames(count: int, size=(12, 10), mode: str = "RGB") -> list[Image.Image]:
    return [noise(size, mode, seed=i) for i in range(count)]


def with_exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation
    exif[0x010F] = "FuzzCam"  # Make
    exif.get_ifd(0x8825)[2] = (48.0, 51.0, 24.0)  # GPSLatitude
    return exif


def animated(fmt: str, count: int = 3, mode: str = "RGB", **options) -> bytes:
    first, *rest = frames(count, mode=mode)
    if fmt == "GIF":
        first, *rest = [f.convert("P") for f in (first, *rest)]
    return encode(first, fmt, save_all=True, append_images=rest, **options)


SEED_BUILDERS = {
    "jpeg": lambda: encode(noise(), "JPEG", quality=85),
    "jpeg-progressive": lambda: encode(noise(), "JPEG", progressive=True),
    "jpeg-exif": lambda: encode(noise(), "JPEG", exif=with_exif(6)),
    "jpeg-grey-comment": lambda: encode(noise(mode="L"), "JPEG", comment=b"fuzz"),
    "mpo": lambda: animated("MPO", 2),
    "png-rgba": lambda: encode(noise(mode="RGBA"), "PNG"),
    "png-palette": lambda: encode(noise().convert("P"), "PNG", transparency=0),
    "png-text-exif": lambda: encode(noise(), "PNG", exif=with_exif(3),
                                    pnginfo=_png_text()),
    "apng": lambda: animated("PNG", 3),
    "gif": lambda: encode(noise().convert("P"), "GIF"),
    "gif-animated": lambda: animated("GIF", 3, duration=50, loop=0),
    "webp": lambda: encode(noise(), "WEBP", quality=70),
    "webp-lossless-alpha": lambda: encode(noise(mode="RGBA"), "WEBP", lossless=True),
    "webp-animated": lambda: animated("WEBP", 3, lossless=True),
    "webp-exif": lambda: encode(noise(), "WEBP", exif=with_exif(8)),
    "avif": lambda: encode(noise(), "AVIF", quality=50),
    "avif-alpha": lambda: encode(noise(mode="RGBA"), "AVIF", quality=50),
    "bmp": lambda: encode(noise(), "BMP"),
    "bmp-palette": lambda: encode(noise().convert("P"), "BMP"),
    "tiff": lambda: encode(noise(), "TIFF"),
    "tiff-lzw": lambda: encode(noise(), "TIFF", compression="tiff_lzw"),
    "tiff-deflate-exif": lambda: encode(noise(), "TIFF", compression="tiff_adobe_deflate",
                                        exif=with_exif(6)),
    "tiff-multipage": lambda: animated("TIFF", 3),
}
if features.check_codec("jpg") and features.check("libtiff"):
    SEED_BUILDERS["tiff-jpeg"] = lambda: encode(noise(), "TIFF", compression="jpeg")


def _png_text():
    from PIL.PngImagePlugin import PngInfo
    info = PngInfo()
    info.add_text("Comment", "fuzz")
    info.add_text("Description", "compressed " * 20, zip=True)
    info.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta xmlns:x='adobe:ns:meta/'/>")
    return info


SEED_NAMES = sorted(SEED_BUILDERS)


@cache
def seed(name: str) -> bytes:
    return SEED_BUILDERS[name]()


# --------------------------------------------------------------------------------------
# Mutations


BOUNDARY_VALUES = [b"\x00", b"\xff", b"\x7f", b"\x80", b"\x00\x00\x00\x00", b"\xff\xff\xff\xff",
                   b"\x7f\xff\xff\xff", b"\x80\x00\x00\x00", b"\xff\xff", b"\x00\x01",
                   b"\x01\x00", b"\xff\xd8", b"\xff\xd9", b"IEND", b"IDAT", b"\x21\xf9",
                   b"\x2c", b"\x3b", b"RIFF", b"VP8X", b"ftyp", b"II*\x00"]
OPERATIONS = ["flip", "overwrite", "insert", "delete", "truncate", "duplicate", "splice"]


def position(draw, data: bytes | bytearray) -> int:
    """A position in `data`: most often in the first 64 bytes, where the headers are."""
    last = max(len(data) - 1, 0)
    return draw(st.one_of(st.integers(0, min(63, last)), st.integers(0, last)))


@st.composite
def mutated_images(draw) -> tuple[str, list[str], bytes]:
    name = draw(st.sampled_from(SEED_NAMES))
    data = bytearray(seed(name))
    steps = []
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        op = draw(st.sampled_from(OPERATIONS))
        at = position(draw, data)
        if op == "flip":
            mask = draw(st.integers(1, 255))
            data[at] ^= mask
            steps.append(f"flip {at} ^{mask:#x}")
        elif op == "overwrite":
            value = draw(st.sampled_from(BOUNDARY_VALUES))
            data[at:at + len(value)] = value
            steps.append(f"overwrite {at} {value!r}")
        elif op == "insert":
            value = draw(st.one_of(st.sampled_from(BOUNDARY_VALUES),
                                   st.binary(min_size=1, max_size=64)))
            data[at:at] = value
            steps.append(f"insert {at} {value[:16]!r}")
        elif op == "delete":
            length = draw(st.integers(1, 64))
            del data[at:at + length]
            steps.append(f"delete {at}+{length}")
        elif op == "truncate":
            del data[at:]
            steps.append(f"truncate {at}")
        elif op == "duplicate":
            length = draw(st.integers(1, 256))
            data[at:at] = data[at:at + length]
            steps.append(f"duplicate {at}+{length}")
        else:
            other_name = draw(st.sampled_from(SEED_NAMES))
            other = seed(other_name)
            start = position(draw, other)
            data[at:] = other[start:]
            steps.append(f"splice {at} <- {other_name}[{start}:]")
    return name, steps, bytes(data)


# --------------------------------------------------------------------------------------
# The app


GiB = 1024 ** 3


@pytest.fixture(scope="module", autouse=True)
def bounded_memory():
    """Cap this process's address space at its current size + 3 GiB while fuzzing.

    A mutation that slips a giant frame past the pixel checks then fails with MemoryError
    (a 500, so a failing example) instead of swapping or being killed by the OOM killer.
    """
    statm = "/proc/self/statm"
    if not os.path.exists(statm):
        yield
        return
    with open(statm) as f:
        virtual = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = virtual + 3 * GiB
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory):
    config = base_config(tmp_path_factory.mktemp("fuzz"))
    # A mutated size field can claim anything up to the pixel ceiling, and each such example
    # would allocate that much before finding the data missing: a lower ceiling keeps
    # thousands of examples fast without changing what is tested (corrupt structure).
    config.update({"RATELIMIT_ENABLED": False, "MAX_PIXELS": 4_000_000,
                   "MAX_TOTAL_PIXELS": 16_000_000, "MAX_FRAMES": 64})
    app = create_app(config)
    app.test_client_class = BufferedClient
    yield app


@pytest.fixture
def fuzz(fuzz_app):
    open_database(fuzz_app.config["DATABASE_URL"])  # other apps rebind the one proxy
    return fuzz_app


def storage_of(app):
    return app.extensions["imglink.storage"]


def record_keys(app) -> set[str]:
    with app.app_context(), database.connection_context():
        return {k for im in ImageRecord.select() for k in (im.original_key, im.thumbnail_key)}


def check_answer(app, client, r, sent: bytes) -> None:
    body = r.get_data()
    assert r.status_code < 500, (r.status_code, body[:300])
    assert b"Traceback" not in body
    assert r.mimetype == "application/json", r.headers
    envelope = r.get_json()
    if r.status_code != 200:
        assert 400 <= r.status_code < 500, r.status_code
        assert envelope["success"] is False and "data" not in envelope
        assert envelope["error"]["code"] in REFUSALS, envelope["error"]
        assert envelope["error"]["message"].strip()
        assert set(storage_of(app).keys()) == set(), "a refused upload left files"
        assert record_keys(app) == set()
        return

    data = envelope["data"]
    assert envelope["success"] is True
    assert IMAGE_KEYS <= set(data) and LINK_KEYS <= set(data["links"]), data
    assert isinstance(data["width"], int) and data["width"] >= 1
    assert isinstance(data["height"], int) and data["height"] >= 1
    assert data["width"] * data["height"] <= app.config["MAX_PIXELS"]
    ext = data["links"]["direct"].rsplit(".", 1)[1]
    served = client.get(urlsplit(data["links"]["direct"]).path)
    assert served.status_code == 200
    assert served.mimetype == EXT_MIME[ext]
    content = served.get_data()
    assert len(content) == data["size"] == int(served.headers["Content-Length"])
    if not data.get("metadata_removed"):
        assert content == sent
    thumbnail = client.get(urlsplit(data["links"]["thumbnail"]).path)
    assert thumbnail.status_code == 200
    with Image.open(io.BytesIO(thumbnail.get_data())) as thumb:
        thumb.load()
        size = app.config["THUMBNAIL_SIZE"]
        assert thumb.width <= size and thumb.height <= size
    keys = set(storage_of(app).keys())
    assert keys == record_keys(app) and len(keys) == 2, keys

    # Delete it, so that every example starts from an empty store.
    gone = client.delete(f"/api/v1/image/{data['id']}",
                         headers={"X-Delete-Token": data["delete_token"]})
    assert gone.status_code == 200, gone.get_data(as_text=True)
    assert set(storage_of(app).keys()) == set() and record_keys(app) == set()


@pytest.mark.parametrize("name", SEED_NAMES)
def test_every_seed_is_accepted(fuzz, name):
    """The seeds are valid: a refusal seen while fuzzing comes from the mutation."""
    client = fuzz.test_client()
    r = upload(client, seed(name), f"{name}.bin")
    assert r.status_code == 200, (name, r.get_data(as_text=True))
    check_answer(fuzz, client, r, seed(name))


@FUZZ_SETTINGS
@given(case=mutated_images())
def test_mutated_image_is_stored_whole_or_refused_cleanly(fuzz, case):
    name, steps, data = case
    note(f"seed {name}, {len(data)} bytes after: {'; '.join(steps)}")
    client = fuzz.test_client()
    start = time.monotonic()
    r = upload(client, data, "fuzz.bin")
    elapsed = time.monotonic() - start
    assert elapsed < SLOW, f"{elapsed:.1f} s"
    check_answer(fuzz, client, r, data)


def test_storage_matches_records_and_health_after_fuzzing(fuzz):
    assert set(storage_of(fuzz).keys()) == record_keys(fuzz) == set()
    r = fuzz.test_client().get("/api/v1/health")
    assert r.status_code == 200 and r.get_json()["success"] is True
