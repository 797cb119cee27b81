"""Pillow only: identify, validate and thumbnail an uploaded image in one pass."""
from __future__ import annotations

import contextlib
import io
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import BusyError, InvalidFileTypeError, InvalidImageError

# Our ceilings (`Limits`) are checked right after the header is read and before any pixel is
# decoded; they replace Pillow's own check, which only warns below twice its default.
Image.MAX_IMAGE_PIXELS = None

# Pillow's format name -> (extension, media type). MPO is a JPEG with extra frames (phones).
FORMATS = {
    "JPEG": ("jpg", "image/jpeg"),
    "PNG": ("png", "image/png"),
    "GIF": ("gif", "image/gif"),
    "WEBP": ("webp", "image/webp"),
    "AVIF": ("avif", "image/avif"),
    "BMP": ("bmp", "image/bmp"),
    "TIFF": ("tiff", "image/tiff"),
}
MEDIA_TYPES = {ext: mime for ext, mime in FORMATS.values()}
ALIASES = {"MPO": "JPEG"}

# What Pillow raises for bad input while reading headers or decoding pixels: the errors its
# plugins use for malformed files, plus what its TIFF reader (TypeError, KeyError for
# missing tags) and AVIF reader (RuntimeError from libavif) raise for corrupt ones, and
# MemoryError for a frame that still proves too large to hold.
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError,
                 ZeroDivisionError, TypeError, KeyError, RuntimeError, MemoryError,
                 Image.DecompressionBombError)
# Thumbnailing a fully decoded image fails only on bad metadata (an EXIF orientation);
# anything else there is our bug and must stay a 500.
THUMBNAIL_ERRORS = (OSError, SyntaxError, ValueError, struct.error)

ORIENTATION = 0x0112
SWAPPED_ORIENTATIONS = {5, 6, 7, 8}  # EXIF orientations that turn the image a quarter
TRANSPOSED = {2, 3, 4, 5, 6, 7, 8}  # EXIF orientations whose display is a turned copy
BUSY_RETRY_AFTER = 5  # seconds a client waits when the decode budget stays spent
BYTES_PER_PIXEL = 4  # Pillow holds every mode ImgLink decodes in at most 4 bytes a pixel


class DecodeBudget:
    """The bytes of decoded pixels that the uploads of one process may hold at once.

    The pixel limits bound one image; this bounds their sum, so that a burst of small files
    that decode huge (a 400 KB PNG can hold 400 MB of pixels) makes uploads wait their turn
    instead of pushing the process out of memory. An image larger than the whole budget
    waits until it can run alone.
    """

    def __init__(self, limit: int, wait_seconds: float) -> None:
        self.limit = limit
        self.wait_seconds = wait_seconds
        self.used = 0
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def reserve(self) -> Iterator[Callable[[int], None]]:
        """Yield `hold(amount)`, which grows this reservation to `amount` bytes, waiting for
        them; BusyError when they do not come in time. All is given back on
        exit."""
        held = 0

        def hold(amount: int) -> None:
            nonlocal held
            amount = min(amount, self.limit)
            if amount <= held:
                return
            with self._changed:
                if not self._changed.wait_for(
                        lambda: self.used - held + amount <= self.limit, self.wait_seconds):
                    raise BusyError(
                        "The server is busy decoding other images; please retry shortly",
                        retry_after=BUSY_RETRY_AFTER)
                self.used += amount - held
                held = amount

        try:
            yield hold
        finally:
            with self._changed:
                self.used -= held
                self._changed.notify_all()


def keep_freed_pixel_memory(limit: int) -> None:
    """Let Pillow keep the memory blocks of freed images, up to `limit` bytes, for the next
    image to reuse. Given back to the C allocator instead, a block stays with the thread that
    freed it, and a process whose threads take turns decoding large images grows to several
    times what it ever holds at once."""
    Image.core.set_blocks_max(max(limit // Image.core.get_block_size(), 0))


@dataclass(frozen=True)
class Limits:
    formats: Sequence[str]
    max_pixels: int
    max_frames: int
    max_total_pixels: int
    thumbnail_size: int
    budget: DecodeBudget  # the process's, shared by every upload
    thumbnail_quality: int = 85


@dataclass(frozen=True)
class ImageInfo:
    format: str  # Pillow's name, e.g. "JPEG"
    ext: str
    width: int  # as displayed, after EXIF orientation
    height: int
    frames: int
    thumbnail: bytes
    thumbnail_ext: str


def thumbnail_format(fmt: str) -> str:
    """Return the format a thumbnail of `fmt` is saved in: one every browser shows."""
    return fmt if fmt in ("JPEG", "WEBP") else "PNG"


def process(fp: BinaryIO, limits: Limits) -> ImageInfo:
    """Identify the image in `fp` from its bytes, decode it fully once, and thumbnail it.

    Raises InvalidFileTypeError for anything that is not one of `limits.formats`, and
    InvalidImageError for a corrupt, truncated or oversized image.
    """
    fp.seek(0)
    try:
        # Pillow's JPEG opener also opens MPO files (JPEGs with extra frames, from phones).
        im = Image.open(fp, formats=list(limits.formats))
    except UnidentifiedImageError:
        if _signature(fp) in limits.formats:
            raise InvalidImageError("The image is corrupt: its header cannot be read") from None
        raise InvalidFileTypeError(
            "Only image files are allowed (" + ", ".join(limits.formats) + ")") from None
    except DECODE_ERRORS as e:
        raise InvalidImageError(f"The image cannot be read: {e}") from None
    with im:
        fmt = ALIASES.get(im.format, im.format)
        try:
            width, height = im.size
            frames = getattr(im, "n_frames", 1)
            _check_limits(width, height, frames, limits)
            if fmt == "JPEG":
                # Decode at the smallest DCT scale that still covers the thumbnail.
                im.draft("RGB", (limits.thumbnail_size, limits.thumbnail_size))
        except DECODE_ERRORS as e:
            raise InvalidImageError(f"The image is corrupt or truncated: {e}") from None
        with limits.budget.reserve() as hold:
            try:
                # Held before reading the EXIF: Pillow decodes a PNG to look for it.
                hold(_decoded_bytes(im, frames, transposed=False))
                orientation = im.getexif().get(ORIENTATION)
                if orientation in SWAPPED_ORIENTATIONS:
                    width, height = height, width
                _decode_frames(im, frames, limits, hold, transposed=orientation in TRANSPOSED)
            except DECODE_ERRORS as e:
                raise InvalidImageError(f"The image is corrupt or truncated: {e}") from None
            try:
                thumb, thumb_ext = _thumbnail(im, limits)
            except THUMBNAIL_ERRORS as e:
                raise InvalidImageError(f"The image cannot be thumbnailed: {e}") from None
    return ImageInfo(fmt, FORMATS[fmt][0], width, height, frames, thumb, thumb_ext)


def _decoded_bytes(im: Image.Image, frames: int, transposed: bool) -> int:
    """Estimate the most memory decoding and thumbnailing the current frame of `im` holds at
    once: the frame (as drafted), twice when another full-size copy is made (the canvas an
    animation composes onto, the turned copy of a rotated photo, or the RGB(A) copy of a
    palette or bilevel image)."""
    plain = frames == 1 and not transposed and im.mode in ("RGB", "RGBA", "L", "LA")
    return im.size[0] * im.size[1] * BYTES_PER_PIXEL * (1 if plain else 2)


def _decode_frames(im: Image.Image, frames: int, limits: Limits,
                   hold: Callable[[int], None], *, transposed: bool) -> None:
    """Decode every frame once, holding each to the pixel limits before its pixels are
    read: a later GIF frame can grow the canvas, and TIFF pages each have their own size."""
    total = 0
    for index in range(frames):
        im.seek(index)
        width, height = im.size
        total += width * height
        if width * height > limits.max_pixels or total > limits.max_total_pixels:
            raise InvalidImageError(
                f"Frame {index + 1} makes the image larger than the limits "
                f"({limits.max_pixels:,} pixels a frame, {limits.max_total_pixels:,} in all)")
        hold(_decoded_bytes(im, frames, transposed))
        im.load()
    im.seek(0)


SIGNATURES = [
    (b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"), (b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"),
]


def _signature(fp: BinaryIO) -> str | None:
    """Name the format whose magic bytes `fp` starts with, to tell a broken image from a
    file that is no image at all."""
    fp.seek(0)
    head = fp.read(16)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis"):
        return "AVIF"
    return next((fmt for magic, fmt in SIGNATURES if head.startswith(magic)), None)


def _check_limits(width: int, height: int, frames: int, limits: Limits) -> None:
    if width < 1 or height < 1:
        raise InvalidImageError("The image has no pixels")
    if width * height > limits.max_pixels:
        raise InvalidImageError(
            f"The image has {width * height:,} pixels; the limit is {limits.max_pixels:,}")
    if frames > limits.max_frames:
        raise InvalidImageError(
            f"The image has {frames:,} frames; the limit is {limits.max_frames:,}")
    if width * height * frames > limits.max_total_pixels:
        raise InvalidImageError(
            f"The animation has {width * height * frames:,} pixels in all; "
            f"the limit is {limits.max_total_pixels:,}")


def _thumbnail(im: Image.Image, limits: Limits) -> tuple[bytes, str]:
    fmt = thumbnail_format(ALIASES.get(im.format, im.format))
    icc = im.info.get("icc_profile")
    has_alpha = im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info
    # In place: the decoded image is ours to change, and a copy of a large PNG costs its size.
    ImageOps.exif_transpose(im, in_place=True)
    thumb = im
    if thumb.mode not in ("RGB", "RGBA", "L", "LA"):
        # Palette and bilevel images resize poorly; CMYK and others have no PNG/WebP form.
        thumb = thumb.convert("RGBA" if has_alpha else "RGB")
    thumb.thumbnail((limits.thumbnail_size, limits.thumbnail_size))
    if fmt == "JPEG" and thumb.mode not in ("RGB", "L"):
        thumb = thumb.convert("RGB")
    if fmt == "WEBP" and thumb.mode not in ("RGB", "RGBA"):
        thumb = thumb.convert("RGBA" if has_alpha else "RGB")
    out = io.BytesIO()
    options = {"icc_profile": icc} if icc else {}
    if fmt in ("JPEG", "WEBP"):
        options["quality"] = limits.thumbnail_quality
    thumb.save(out, fmt, **options)
    return out.getvalue(), FORMATS[fmt][0]
