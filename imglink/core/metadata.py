"""Strip location and personal metadata from images, without re-encoding pixels where we can.

JPEG, PNG, WebP and GIF are rewritten container by container: their image data is copied byte
for byte, only metadata blocks are dropped. The orientation survives as a minimal EXIF block
(taken from EXIF, or from XMP's tiff:Orientation the way Pillow reads it), the ICC profile and
colour chunks stay. MPO files keep only their primary image: the MPF index points at the extra
images by offset, and those images carry their own EXIF. AVIF and TIFF cannot be edited in
place with Pillow, so they are re-encoded (TIFF losslessly, AVIF at quality 90) only when they
hold metadata, with the orientation applied to the pixels and the ICC profile kept. BMP has no
metadata. AVIF boxes other than EXIF/XMP are not inspected.
"""
from __future__ import annotations

import io
import re
import struct
import zlib
from collections.abc import Callable
from typing import BinaryIO

from PIL import Image, ImageOps, ImageSequence

KINDS: dict[str, str] = {
    "exif": "EXIF or TIFF tags other than orientation (camera, dates, software, owner...)",
    "gps": "an EXIF GPS IFD: where the picture was taken",
    "maker_note": "the EXIF MakerNote, vendor data that may hold serials or location",
    "serial_number": "body, lens or camera serial numbers (EXIF 0xA431, 0xA435, 0xC62F)",
    "exif_thumbnail": "a preview in EXIF IFD1 or TIFF SubIFDs, which may show the uncropped shot",
    "thumbnail": "a JFIF or JFXX thumbnail in JPEG APP0",
    "xmp": "XMP packets (JPEG APP1 and extended XMP, PNG iTXt, WebP, GIF, TIFF, AVIF)",
    "iptc": "IPTC and Photoshop resources (JPEG APP13, TIFF IPTC/Photoshop tags)",
    "comment": "free-text comments: JPEG COM segments, GIF comment extensions",
    "text": "PNG tEXt, zTXt and iTXt chunks (author, description, software...)",
    "timestamp": "the PNG tIME last-modification time",
    "mpf": "a JPEG APP2 MPF index of an MPO's extra images, which are dropped with it",
    "trailing_data": "bytes after the end of the image: MPO extra images, appended videos, files",
    "other": "other data not needed for display: vendor JPEG APPn, PNG/WebP chunks, GIF extensions",
}

ORIENTATION = 0x0112
EXIF_HEADER = b"Exif\x00\x00"
COPY_CHUNK = 1 << 20
XMP_READ_LIMIT = 1 << 20  # Pillow ignores larger text chunks; enough to find tiff:Orientation

Part = tuple[int, int] | bytes  # a range of the source to copy, or new bytes


class _Plan:
    """The output as source ranges and new bytes, what was dropped, where orientation was."""

    def __init__(self) -> None:
        self.parts: list[Part] = []
        self.removed: set[str] = set()
        self.exif: tuple[int | None, int | None] | None = None  # (orientation tag, slot)
        self.xmp: tuple[int | None, int] | None = None

    def copy(self, start: int, end: int) -> None:
        last = self.parts[-1] if self.parts else None
        if isinstance(last, tuple) and last[1] == start:
            self.parts[-1] = (last[0], end)
        elif end > start:
            self.parts.append((start, end))

    def slot(self, data: bytes = b"") -> int:
        """Append new bytes (or a placeholder to fill later) and return their index."""
        self.parts.append(data)
        return len(self.parts) - 1

    def drop(self, kinds: str | set[str]) -> None:
        self.removed |= {kinds} if isinstance(kinds, str) else kinds

    def drop_exif(self, payload: bytes, block: tuple[int, int], source: bool = True) -> bool:
        """Keep an EXIF block holding only an orientation, else drop it; return whether kept."""
        orientation, kinds = _exif_facts(payload)
        first = source and self.exif is None
        if orientation and orientation != 1 and payload in (
                _minimal_exif(orientation), EXIF_HEADER + _minimal_exif(orientation)):
            self.copy(*block)
            if first:
                self.exif = (orientation, None)
            return True
        # The bytes change, so report something even when only the layout differed.
        self.drop(kinds or "exif")
        if first:
            self.exif = (orientation, self.slot())
        return False

    def drop_xmp(self, packet: bytes) -> None:
        self.drop("xmp")
        if self.xmp is None:
            self.xmp = (_xmp_orientation(packet), self.slot())

    def place_orientation(self, wrap: Callable[[bytes], bytes]) -> bool:
        """Put a minimal EXIF where the dropped orientation was; return whether one is written."""
        orientation, slot = self.exif or (None, None)
        if orientation is None and self.xmp:
            orientation = self.xmp[0]
            slot = slot if slot is not None else self.xmp[1]
        if slot is None or not orientation or not 2 <= orientation <= 8:
            return False
        self.parts[slot] = wrap(_minimal_exif(orientation))
        return True

    def size(self) -> int:
        return sum(len(p) if isinstance(p, bytes) else p[1] - p[0] for p in self.parts)


def strip(src: BinaryIO, dst: BinaryIO, fmt: str) -> list[str]:
    """Write the image in `src` (from its start) to `dst` without private metadata; return
    what was removed. When nothing is, `dst` is left untouched: `src` is already clean."""
    handler = _HANDLERS.get(fmt.upper())
    if handler is None:
        raise ValueError(f"unsupported format {fmt!r}")
    size = src.seek(0, io.SEEK_END)
    src.seek(0)
    plan = handler(src, size)
    src.seek(0)
    if not plan.removed:
        return []
    for part in plan.parts:
        if isinstance(part, bytes):
            dst.write(part)
            continue
        start, end = part
        src.seek(start)
        while start < end:
            data = src.read(min(COPY_CHUNK, end - start))
            if not data:
                raise ValueError("image is truncated")
            dst.write(data)
            start += len(data)
    return sorted(plan.removed)


# --- EXIF and XMP ---------------------------------------------------------------------------

def _minimal_exif(orientation: int) -> bytes:
    """Return a TIFF-structured EXIF payload holding only the orientation tag."""
    return (b"MM\x00*\x00\x00\x00\x08\x00\x01"
            + struct.pack(">HHIHH", ORIENTATION, 3, 1, orientation, 0) + b"\x00\x00\x00\x00")


def _ifd(tiff: bytes, order: str, offset: int) -> tuple[dict[int, tuple[int, int, bytes]], int]:
    """Return one IFD's entries as tag -> (type, count, raw value field), and the next offset."""
    (count,) = struct.unpack_from(order + "H", tiff, offset)
    entries = {}
    for at in range(offset + 2, offset + 2 + 12 * count, 12):
        tag, kind, n = struct.unpack_from(order + "HHI", tiff, at)
        entries[tag] = (kind, n, tiff[at + 8:at + 12])
    (next_ifd,) = struct.unpack_from(order + "I", tiff, offset + 2 + 12 * count)
    return entries, next_ifd


def _exif_facts(payload: bytes) -> tuple[int | None, set[str]]:
    """Return an EXIF payload's orientation tag (None if absent) and the other kinds it holds."""
    tiff = payload[len(EXIF_HEADER):] if payload.startswith(EXIF_HEADER) else payload
    try:
        order = {b"II": "<", b"MM": ">"}[tiff[:2]]
        ifd0, next_ifd = _ifd(tiff, order, struct.unpack_from(order + "I", tiff, 4)[0])
        kinds = {"gps"} if 0x8825 in ifd0 else set()
        if next_ifd:
            kinds.add("exif_thumbnail")
        if 0xC62F in ifd0:
            kinds.add("serial_number")
        if set(ifd0) - {ORIENTATION, 0x8769, 0x8825, 0xC62F}:
            kinds.add("exif")
        if 0x8769 in ifd0:
            sub, _ = _ifd(tiff, order, struct.unpack(order + "I", ifd0[0x8769][2])[0])
            if 0x927C in sub:
                kinds.add("maker_note")
            if sub.keys() & {0xA431, 0xA435}:
                kinds.add("serial_number")
            if set(sub) - {0x927C, 0xA431, 0xA435}:
                kinds.add("exif")
        orientation = None
        if ORIENTATION in ifd0:
            kind, n, raw = ifd0[ORIENTATION]
            # Like Pillow: a tag that is present but unusable still means "no rotation".
            fmt = {1: "B", 3: "H", 4: "I"}.get(kind)
            value = struct.unpack_from(order + fmt, raw)[0] if fmt and n == 1 else 1
            orientation = value if 1 <= value <= 8 else 1
        return orientation, kinds
    except (KeyError, struct.error):
        return None, {"exif"}


def _xmp_orientation(packet: bytes) -> int | None:
    """Return the tiff:Orientation of an XMP packet, matched the way Pillow's getexif does."""
    match = re.search(rb'tiff:Orientation(="|>)([0-9])', packet)
    return int(match[2]) if match else None


# --- helpers --------------------------------------------------------------------------------

def _read(src: BinaryIO, pos: int, n: int) -> bytes:
    src.seek(pos)
    data = src.read(n)
    if len(data) != n:
        raise ValueError("image is truncated")
    return data


def _read_up_to(src: BinaryIO, pos: int, n: int) -> bytes:
    src.seek(pos)
    return src.read(n)


# --- JPEG -----------------------------------------------------------------------------------

_SCAN_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")  # not stuffing, restart or fill
_STANDALONE = {0x01, *range(0xD0, 0xD8)}


def _jpeg_app1(payload: bytes) -> bytes:
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 8) + EXIF_HEADER + payload


def _jpeg_kind(marker: int, head: bytes) -> str | None:
    """Return the kind of metadata a JPEG segment holds, or None to keep it as it is."""
    if marker == 0xE0:
        return None if head.startswith(b"JFIF\x00") else "thumbnail" if head.startswith(
            b"JFXX\x00") else "other"
    if marker == 0xE1:
        return "xmp" if head.startswith(b"http://ns.adobe.com/x") else "other"
    if marker == 0xE2:
        # ICC profiles may span several APP2 chunks; they are all kept, in order.
        return None if head.startswith(b"ICC_PROFILE\x00") else "mpf" if head.startswith(
            b"MPF\x00") else "other"
    if marker == 0xED:
        return "iptc"
    if marker == 0xEE:
        return None if head.startswith(b"Adobe") else "other"  # colour transform for CMYK
    if 0xE3 <= marker <= 0xEF:
        return "other"
    return "comment" if marker == 0xFE else None


def _jpeg(src: BinaryIO, size: int) -> _Plan:
    plan = _Plan()
    if _read(src, 0, 2) != b"\xff\xd8":
        raise ValueError("JPEG does not start with SOI")
    plan.copy(0, 2)
    pos, in_scans = 2, False
    while pos < size:  # a file ending without EOI keeps all its scan data
        fill = _read_up_to(src, pos, 4096)
        if not fill or fill[0] != 0xFF:
            raise ValueError(f"JPEG marker expected at offset {pos}")
        rest = fill.lstrip(b"\xff")
        if not rest:
            raise ValueError("JPEG is truncated in fill bytes")
        at = pos + len(fill) - len(rest) - 1  # the 0xFF right before the marker code
        plan.copy(pos, at)  # fill bytes are harmless padding
        marker = rest[0]
        if marker == 0xD9:
            plan.copy(at, at + 2)
            if at + 2 < size:
                plan.drop("trailing_data")
            break
        if marker in _STANDALONE:
            plan.copy(at, at + 2)
            pos = at + 2
            continue
        if marker in (0x00, 0xD8):
            raise ValueError(f"unexpected JPEG marker 0xFF{marker:02X} at offset {at}")
        (length,) = struct.unpack(">H", _read(src, at + 2, 2))
        end = at + 2 + length
        if length < 2 or end > size:
            raise ValueError(f"bad JPEG segment length at offset {at}")
        head = _read(src, at + 4, min(length - 2, 64))
        if marker == 0xE1 and head.startswith(b"Exif\x00"):
            # Pillow reads orientation only from the first EXIF before the first scan.
            plan.drop_exif(_read(src, at + 4, length - 2), (at, end), source=not in_scans)
        elif marker == 0xE1 and head.startswith(b"http://ns.adobe.com/xap/1.0/\x00") \
                and not in_scans:
            plan.drop_xmp(_read(src, at + 4, length - 2))
        elif marker == 0xE0 and head.startswith(b"JFIF\x00") and length > 16:
            # Anything past the 14-byte JFIF header is a thumbnail; keep the header, no thumb.
            plan.drop("thumbnail")
            plan.slot(b"\xff\xe0\x00\x10" + head[:12] + b"\x00\x00")
        elif kind := _jpeg_kind(marker, head):
            plan.drop(kind)
        else:
            plan.copy(at, end)
        pos = end
        if marker == 0xDA:
            in_scans = True
            pos = _next_jpeg_marker(src, end, size)
            plan.copy(end, pos)
    plan.place_orientation(_jpeg_app1)
    return plan


def _next_jpeg_marker(src: BinaryIO, pos: int, size: int) -> int:
    """Return the offset of the first marker after entropy-coded data, or size if none."""
    while pos < size:
        block = _read_up_to(src, pos, COPY_CHUNK)
        if match := _SCAN_MARKER.search(block):
            return pos + match.start()
        pos += max(len(block) - 1, 1)  # a 0xFF at the end pairs with the next block
    return size


# --- PNG ------------------------------------------------------------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Ancillary chunks that change how the pixels look (colour, transparency, animation).
_PNG_KEEP = {b"tRNS", b"iCCP", b"sRGB", b"gAMA", b"cHRM", b"cICP", b"mDCV", b"cLLI", b"sBIT",
             b"pHYs", b"bKGD", b"hIST", b"acTL", b"fcTL", b"fdAT"}
_PNG_TEXT = {b"tEXt", b"zTXt", b"iTXt"}


def _png_chunk(ctype: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", zlib.crc32(ctype + data))


def _png_text(ctype: bytes, data: bytes) -> bytes:
    """Return the text of a tEXt/zTXt/iTXt chunk, or b"" when it cannot be read."""
    _keyword, _, rest = data.partition(b"\x00")
    compressed = ctype == b"zTXt"
    if ctype == b"zTXt":
        rest = rest[1:]
    elif ctype == b"iTXt":
        compressed = rest[:1] == b"\x01"
        rest = rest[2:].partition(b"\x00")[2].partition(b"\x00")[2]  # language, translated
    if not compressed:
        return rest
    try:
        return zlib.decompressobj().decompress(rest, XMP_READ_LIMIT)
    except zlib.error:
        return b""


def _png(src: BinaryIO, size: int) -> _Plan:
    plan = _Plan()
    if _read_up_to(src, 0, 8) != PNG_SIGNATURE:
        raise ValueError("not a PNG signature")
    plan.copy(0, 8)
    pos, raw_exif = 8, None
    while pos < size:  # a file ending cleanly without IEND is accepted, as decoders do
        length, ctype = struct.unpack(">I4s", _read(src, pos, 8))
        end = pos + 12 + length
        if length > 0x7FFFFFFF or not ctype.isalpha() or end > size:
            raise ValueError(f"bad PNG chunk at offset {pos}")
        if ctype[:1].isupper() or ctype in _PNG_KEEP:
            plan.copy(pos, end)
        elif ctype == b"eXIf":
            plan.drop_exif(_read(src, pos + 8, length), (pos, end))
        elif ctype in _PNG_TEXT:
            head = _read(src, pos + 8, min(length, 80))
            keyword = head.partition(b"\x00")[0]
            big = length > XMP_READ_LIMIT
            if keyword == b"XML:com.adobe.xmp":
                plan.drop_xmp(b"" if big else _png_text(ctype, _read(src, pos + 8, length)))
            elif keyword == b"Raw profile type exif" and not big:
                # ImageMagick's hex EXIF, which Pillow uses when there is no eXIf chunk.
                text = _png_text(ctype, _read(src, pos + 8, length)).decode("latin-1")
                try:
                    payload = bytes.fromhex("".join(text.split("\n")[3:]))
                except ValueError:
                    payload = b""
                orientation, kinds = _exif_facts(payload)
                plan.drop(kinds | {"text"})
                if raw_exif is None:
                    raw_exif = (orientation, plan.slot())
            else:
                plan.drop("text")
        else:
            plan.drop("timestamp" if ctype == b"tIME" else "other")
        pos = end
        if ctype == b"IEND":
            if pos < size:
                plan.drop("trailing_data")
            break
    if plan.exif is None:
        plan.exif = raw_exif
    plan.place_orientation(lambda p: _png_chunk(b"eXIf", p))
    return plan


# --- WebP -----------------------------------------------------------------------------------

_WEBP_KEEP = {b"VP8 ", b"VP8L", b"VP8X", b"ALPH", b"ANIM", b"ANMF", b"ICCP"}
_VP8X_EXIF, _VP8X_XMP = 0x08, 0x04


def _riff_chunk(fourcc: bytes, data: bytes) -> bytes:
    return fourcc + struct.pack("<I", len(data)) + data + b"\x00" * (len(data) & 1)


def _webp(src: BinaryIO, size: int) -> _Plan:
    plan = _Plan()
    head = _read(src, 0, 12)
    riff_end = 8 + struct.unpack("<I", head[4:8])[0]
    if head[:4] != b"RIFF" or head[8:] != b"WEBP":
        raise ValueError("not a WebP RIFF header")
    if riff_end > size:
        raise ValueError("WebP is truncated")
    header = plan.slot()
    pos, vp8x, kept_exif = 12, None, False
    while pos < riff_end:
        fourcc, length = struct.unpack("<4sI", _read(src, pos, 8))
        end = pos + 8 + length + (length & 1)
        if end > riff_end:
            if pos + 8 + length != riff_end:  # only a missing final pad byte is tolerated
                raise ValueError(f"bad WebP chunk at offset {pos}")
            end = riff_end
        if fourcc == b"VP8X" and vp8x is None and length >= 10:
            vp8x = (plan.slot(), _read(src, pos, 18))
            plan.copy(pos + 18, end)
        elif fourcc in _WEBP_KEEP:
            plan.copy(pos, end)
        elif fourcc == b"EXIF":
            kept_exif |= plan.drop_exif(_read(src, pos + 8, length), (pos, end))
        elif fourcc == b"XMP ":
            plan.drop_xmp(_read(src, pos + 8, min(length, XMP_READ_LIMIT)))
        else:
            plan.drop("other")
        pos = end
    if riff_end < size:
        plan.drop("trailing_data")
    # Without VP8X a WebP is "simple" and may not carry EXIF, so orientation had no effect.
    wrote_exif = vp8x is not None and plan.place_orientation(lambda p: _riff_chunk(b"EXIF", p))
    if vp8x is not None:
        slot, chunk = vp8x
        flags = chunk[8] & ~(_VP8X_EXIF | _VP8X_XMP)
        if wrote_exif or kept_exif:
            flags |= _VP8X_EXIF
        plan.parts[slot] = chunk[:8] + bytes([flags]) + chunk[9:]
    riff_size = plan.size() + 4  # the size counts "WEBP" and the chunks after it
    plan.parts[header] = b"RIFF" + struct.pack("<I", riff_size) + b"WEBP"
    return plan


# --- GIF ------------------------------------------------------------------------------------

# Looping and the ICC profile; other application extensions are vendor data.
_GIF_APPS = {b"NETSCAPE2.0", b"ANIMEXTS1.0", b"ICCRGBG1012"}


def _skip_sub_blocks(src: BinaryIO, pos: int) -> int:
    """Return the offset just past a chain of GIF data sub-blocks starting at pos."""
    while True:
        block = _read_up_to(src, pos, 65536)
        if not block:
            raise ValueError("GIF is truncated in a data block")
        i = 0
        while i < len(block):
            if block[i] == 0:
                return pos + i + 1
            i += block[i] + 1
        pos += i


def _gif(src: BinaryIO, size: int) -> _Plan:
    plan = _Plan()
    head = _read(src, 0, 13)
    if head[:6] not in (b"GIF87a", b"GIF89a"):
        raise ValueError("not a GIF header")
    pos = 13 + (3 << ((head[10] & 7) + 1) if head[10] & 0x80 else 0)
    if pos > size:
        raise ValueError("GIF is truncated in its colour table")
    plan.copy(0, pos)
    while pos < size:  # a file ending without a trailer is accepted, as decoders do
        introducer = _read(src, pos, 1)[0]
        if introducer == 0x3B:
            plan.copy(pos, pos + 1)
            if pos + 1 < size:
                plan.drop("trailing_data")
            break
        if introducer == 0x2C:
            flags = _read(src, pos, 10)[9]
            data = pos + 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0) + 1
            end = _skip_sub_blocks(src, data)
            plan.copy(pos, end)
        elif introducer == 0x21:
            label = _read(src, pos + 1, 1)[0]
            end = _skip_sub_blocks(src, pos + 2)
            app = _read_up_to(src, pos + 2, 12) if label == 0xFF else b""
            if label in (0xF9, 0x01):  # graphic control and plain text are display data
                plan.copy(pos, end)
            elif label == 0xFE:
                plan.drop("comment")
            elif app[:1] == b"\x0b" and app[1:] in _GIF_APPS:
                plan.copy(pos, end)
            else:
                plan.drop("xmp" if app == b"\x0bXMP DataXMP" else "other")
        else:
            raise ValueError(f"bad GIF block 0x{introducer:02X} at offset {pos}")
        pos = end
    return plan


# --- formats Pillow can only re-encode ------------------------------------------------------

# TIFF tags that describe pixels, layout or colour; anything else is metadata.
_TIFF_STRUCTURE = {254, 255, 256, 257, 258, 259, 262, 263, 266, 273, 274, 277, 278, 279, 280,
                   281, 282, 283, 284, 290, 291, 296, 297, 301, 317, 318, 319, 320, 322, 323,
                   324, 325, 332, 334, 338, 339, 340, 341, 347, *range(512, 522), 529, 530,
                   531, 532, 34675}
_TIFF_KINDS = {34853: "gps", 700: "xmp", 33723: "iptc", 34377: "iptc", 0xC62F: "serial_number",
               330: "exif_thumbnail"}
# Lossless compressions Pillow writes; others (JPEG, WebP...) become Adobe Deflate.
_TIFF_LOSSLESS = {"raw", "packbits", "tiff_lzw", "tiff_adobe_deflate", "group3", "group4"}


def _tiff_kinds(page: Image.Image) -> set[str]:
    tags = set(page.tag_v2) - _TIFF_STRUCTURE  # type: ignore[attr-defined]
    kinds = {_TIFF_KINDS.get(tag, "exif") for tag in tags}
    if 0x8769 in tags:
        sub = page.getexif().get_ifd(0x8769)
        if 0x927C in sub:
            kinds.add("maker_note")
        if sub.keys() & {0xA431, 0xA435}:
            kinds.add("serial_number")
    return kinds


def _reencode(src: BinaryIO, fmt: str) -> _Plan:
    """Re-encode a TIFF or AVIF holding metadata, with upright pixels and its ICC profile."""
    plan = _Plan()
    try:
        with Image.open(src, formats=[fmt]) as im:
            if fmt == "TIFF":
                for page in ImageSequence.Iterator(im):
                    plan.drop(_tiff_kinds(page))
            else:
                if exif := im.info.get("exif"):
                    plan.drop(_exif_facts(exif)[1])  # orientation alone is not worth re-encoding
                if im.info.get("xmp"):
                    plan.drop("xmp")
            if not plan.removed:
                return plan
            im.seek(0)
            icc = im.info.get("icc_profile")
            options: dict[str, object] = {"icc_profile": icc} if icc else {}
            if fmt == "TIFF":
                compression = im.info.get("compression", "raw")
                compression = {"tiff_deflate": "tiff_adobe_deflate"}.get(compression, compression)
                options["compression"] = (compression if compression in _TIFF_LOSSLESS
                                          else "tiff_adobe_deflate")
                options["tiffinfo"] = {tag: im.tag_v2[tag] for tag in (282, 283, 296)
                                       if tag in im.tag_v2}
            # Pillow already turns TIFF pages upright on load; exif_transpose covers the rest.
            pages = [ImageOps.exif_transpose(page) for page in ImageSequence.Iterator(im)]
            if fmt == "AVIF":
                options.update(quality=90, duration=[p.info.get("duration", 0) for p in pages])
            for page in pages:
                page.info = {}  # so nothing from the original rides along into the encoder
            out = io.BytesIO()
            pages[0].save(out, fmt, save_all=True, append_images=pages[1:], **options)
    except Exception as e:  # the contract is ValueError for anything Pillow rejects
        raise ValueError(f"cannot re-encode {fmt}: {e}") from e
    plan.slot(out.getvalue())
    return plan


def _untouched(src: BinaryIO, size: int) -> _Plan:
    return _Plan()


_HANDLERS: dict[str, Callable[[BinaryIO, int], _Plan]] = {
    "JPEG": _jpeg,
    "MPO": _jpeg,  # what Pillow calls a JPEG with an MPF index
    "PNG": _png,
    "WEBP": _webp,
    "GIF": _gif,
    "AVIF": lambda src, size: _reencode(src, "AVIF"),
    "TIFF": lambda src, size: _reencode(src, "TIFF"),
    "BMP": _untouched,
}
