"""Metadata stripping: private data goes, pixels, orientation and ICC profile stay."""
from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image, ImageCms, ImageOps, ImageSequence, PngImagePlugin

from imglink.core import metadata

ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
       b'22-rdf-syntax-ns#"><rdf:Description dc:creator="XMP-SECRET"/></rdf:RDF></x:xmpmeta>')
SECRETS = [b"GPS-DATUM-SECRET", b"SN-PRIVATE-1234", b"LENS-SN-5678", b"MAKERNOTE-SECRET",
           b"THUMB-SECRET", b"Canon-SECRET", b"XMP-SECRET", b"COMMENT-SECRET", b"TEXT-SECRET",
           b"IPTC-SECRET", b"VENDOR-SECRET"]


def picture(size: tuple[int, int] = (64, 48)) -> Image.Image:
    """Return a deterministic RGB picture with detail in every channel."""
    grey = Image.linear_gradient("L")
    return Image.merge("RGB", (grey, Image.radial_gradient("L"), grey.rotate(90))).resize(size)


def private_exif(orientation: int = 6, thumbnail: bool = True) -> bytes:
    """Return a TIFF EXIF payload with GPS, maker note, serials and an IFD1 thumbnail."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "Canon-SECRET"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[0x12] = "N", (48.0, 51.0, 24.37), "GPS-DATUM-SECRET"
    sub = exif.get_ifd(0x8769)
    sub[0xA431], sub[0xA435], sub[0x927C] = "SN-PRIVATE-1234", "LENS-SN-5678", b"MAKERNOTE-SECRET"
    tiff = exif.tobytes()[6:]
    if not thumbnail:
        return tiff
    # Pillow does not write IFD1, so chain one by hand: it points at a tiny JPEG.
    order = "<" if tiff[:2] == b"II" else ">"
    (ifd0,) = struct.unpack_from(order + "I", tiff, 4)
    (count,) = struct.unpack_from(order + "H", tiff, ifd0)
    thumb = io.BytesIO()
    picture((8, 6)).save(thumb, "JPEG", comment="THUMB-SECRET")
    ifd1 = len(tiff) + len(tiff) % 2
    tiff = bytearray(tiff + b"\x00" * (len(tiff) % 2))
    struct.pack_into(order + "I", tiff, ifd0 + 2 + 12 * count, ifd1)
    tiff += struct.pack(order + "H", 2)
    tiff += struct.pack(order + "HHII", 0x0201, 4, 1, ifd1 + 30)
    tiff += struct.pack(order + "HHII", 0x0202, 4, 1, len(thumb.getvalue()))
    return bytes(tiff + b"\x00\x00\x00\x00" + thumb.getvalue())


def run(data: bytes, fmt: str) -> tuple[list[str], bytes]:
    """Strip `data`; return what was removed and the bytes to store."""
    out = io.BytesIO()
    removed = metadata.strip(io.BytesIO(data), out, fmt)
    assert removed == sorted(set(removed)) and set(removed) <= set(metadata.KINDS)
    if not removed:
        assert out.getvalue() == b""  # nothing to remove: nothing is written, the original stays
        return removed, data
    return removed, out.getvalue()


def frames(data: bytes) -> list[Image.Image]:
    with Image.open(io.BytesIO(data)) as im:
        return [frame.convert("RGBA") for frame in ImageSequence.Iterator(im)]


def upright(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as im:
        return ImageOps.exif_transpose(im).convert("RGBA").tobytes()


def assert_clean(data: bytes) -> None:
    for secret in SECRETS:
        assert secret not in data, secret
    with Image.open(io.BytesIO(data)) as im:
        exif = im.getexif()
        assert 0x8825 not in exif and 0x8769 not in exif and 0x010F not in exif
        assert im.format == "TIFF" or not exif.get_ifd(-1)  # IFD1 is a thumbnail, not a page
        assert "xmp" not in im.info


def assert_same_look(before: bytes, after: bytes) -> None:
    """Same pixels frame by frame, same upright view, same ICC profile."""
    assert [f.tobytes() for f in frames(before)] == [f.tobytes() for f in frames(after)]
    assert upright(before) == upright(after)
    with Image.open(io.BytesIO(after)) as im:
        assert im.info.get("icc_profile") == ICC


# --- container walkers for the assertions ---------------------------------------------------

def jpeg_scan(data: bytes) -> bytes:
    """Return a baseline JPEG's SOS segment and entropy-coded data (no FFDA can hide in it)."""
    return data[data.rindex(b"\xff\xda"):]


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, pos = [], 8
    while pos < len(data):
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        assert data[pos + 8 + length:pos + 12 + length] == struct.pack(
            ">I", zlib.crc32(ctype + body))
        chunks.append((ctype, body))
        pos += 12 + length
    return chunks


def riff_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert struct.unpack("<I", data[4:8])[0] == len(data) - 8
    chunks, pos = [], 12
    while pos < len(data):
        fourcc, length = struct.unpack("<4sI", data[pos:pos + 8])
        chunks.append((fourcc, data[pos + 8:pos + 8 + length]))
        pos += 8 + length + (length & 1)
    return chunks


def jpeg_segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def gif_insert(data: bytes, block: bytes) -> bytes:
    """Insert an extension block right after a GIF's header and global colour table."""
    flags = data[10]
    at = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    return data[:at] + block + data[at:]


def gif_app(identifier: bytes, payload: bytes) -> bytes:
    blocks = b"".join(bytes([len(payload[i:i + 255])]) + payload[i:i + 255]
                      for i in range(0, len(payload), 255))
    return b"\x21\xff\x0b" + identifier + blocks + b"\x00"


# --- fixtures -------------------------------------------------------------------------------

def private_jpeg(exif: bytes | None = None) -> bytes:
    out = io.BytesIO()
    picture().save(out, "JPEG", quality=90, exif=metadata.EXIF_HEADER + (exif or private_exif()),
                   xmp=XMP, comment="COMMENT-SECRET", icc_profile=ICC)
    data = out.getvalue()
    extra = (jpeg_segment(0xED, b"Photoshop 3.0\x008BIM\x04\x04\x00\x00\x00\x00\x00\x0bIPTC-SECRET")
             + jpeg_segment(0xE4, b"VENDOR-SECRET"))
    return data[:2] + extra + data[2:]


def private_png(**params: object) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "TEXT-SECRET")
    info.add_text("Comment", "COMMENT-SECRET " * 20, zip=True)
    info.add_itxt("Description", "TEXT-SECRET", lang="en", zip=True)
    info.add_itxt("XML:com.adobe.xmp", XMP.decode())
    info.add(b"tIME", struct.pack(">HBBBBB", 2024, 5, 6, 7, 8, 9))
    info.add(b"prVt", b"VENDOR-SECRET")
    out = io.BytesIO()
    params.setdefault("exif", private_exif())
    picture().save(out, "PNG", pnginfo=info, icc_profile=ICC, **params)
    return out.getvalue()


def private_webp(animated: bool = False) -> bytes:
    out = io.BytesIO()
    im = picture()
    more = {"save_all": True, "append_images": [im.rotate(90), im.rotate(180)],
            "duration": 50} if animated else {}
    im.save(out, "WEBP", lossless=True, exif=private_exif(), xmp=XMP, icc_profile=ICC, **more)
    return out.getvalue()


def private_gif() -> bytes:
    im = picture().convert("P")
    out = io.BytesIO()
    im.save(out, "GIF", save_all=True, append_images=[im.rotate(90), im.rotate(180)],
            duration=50, loop=0, comment="COMMENT-SECRET")
    data = out.getvalue()
    xmp = XMP + bytes([1, *range(255, -1, -1)])  # the XMP spec's "magic trailer"
    return gif_insert(data, gif_app(b"ICCRGBG1012", ICC) + gif_app(b"XMP DataXMP", xmp)
                      + gif_app(b"VENDOR01ABC", b"VENDOR-SECRET"))


EXIF_KINDS = ["exif", "exif_thumbnail", "gps", "maker_note", "serial_number"]


# --- JPEG -----------------------------------------------------------------------------------

def test_jpeg_fixture_really_carries_the_metadata():
    with Image.open(io.BytesIO(private_jpeg())) as im:
        exif = im.getexif()
        assert exif.get_ifd(0x8825)[0x12] == "GPS-DATUM-SECRET"
        assert exif.get_ifd(0x8769)[0xA431] == "SN-PRIVATE-1234"
        assert exif.get_ifd(-1)  # IFD1
        assert b"XMP-SECRET" in im.info["xmp"] and im.info["comment"] == b"COMMENT-SECRET"


def test_jpeg_loses_private_metadata_but_not_pixels_orientation_or_icc():
    data = private_jpeg()
    removed, out = run(data, "JPEG")
    assert removed == sorted([*EXIF_KINDS, "xmp", "comment", "iptc", "other"])
    assert_clean(out)
    assert_same_look(data, out)
    assert jpeg_scan(out) == jpeg_scan(data)
    with Image.open(io.BytesIO(out)) as im:
        assert im.getexif()[0x0112] == 6
        assert dict(im.getexif()) == {0x0112: 6}
        assert im.info["jfif"]  # APP0 kept


def test_jpeg_stripping_is_idempotent_and_keeps_an_orientation_only_exif():
    _, once = run(private_jpeg(), "JPEG")
    removed, twice = run(once, "JPEG")
    assert removed == [] and twice == once


def test_jpeg_xmp_orientation_becomes_exif():
    out = io.BytesIO()
    xmp = XMP.replace(b"<rdf:Description ", b'<rdf:Description tiff:Orientation="6" ')
    picture().save(out, "JPEG", xmp=xmp, icc_profile=ICC)
    data = out.getvalue()
    removed, clean = run(data, "JPEG")
    assert removed == ["xmp"]
    assert_clean(clean)
    assert_same_look(data, clean)
    with Image.open(io.BytesIO(clean)) as im:
        assert im.getexif()[0x0112] == 6


def test_jpeg_orientation_one_and_jfif_thumbnail_are_dropped():
    out = io.BytesIO()
    picture().save(out, "JPEG", exif=metadata.EXIF_HEADER + private_exif(1, thumbnail=False))
    data = bytearray(out.getvalue())
    # Give the JFIF APP0 a 1x1 RGB thumbnail, with fill bytes before the next marker.
    assert data[2:4] == b"\xff\xe0"
    app0 = jpeg_segment(0xE0, bytes(data[6:18]) + b"\x01\x01" + b"\x10\x20\x30") + b"\xff\xff"
    data = bytes(data[:2] + app0 + data[20:])
    removed, clean = run(data, "JPEG")
    assert removed == ["exif", "gps", "maker_note", "serial_number", "thumbnail"]
    assert_clean(clean)
    with Image.open(io.BytesIO(clean)) as im:
        assert 0x0112 not in im.getexif()
        assert im.tobytes() == Image.open(io.BytesIO(data)).tobytes()
    assert clean.startswith(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00")


def test_progressive_jpeg_keeps_all_scans():
    out = io.BytesIO()
    picture().save(out, "JPEG", progressive=True, comment="COMMENT-SECRET", icc_profile=ICC)
    data = out.getvalue()
    removed, clean = run(data, "JPEG")
    assert removed == ["comment"]
    assert_clean(clean)
    assert_same_look(data, clean)
    assert clean.count(b"\xff\xda") == data.count(b"\xff\xda") > 1
    assert clean[clean.index(b"\xff\xda"):] == data[data.index(b"\xff\xda"):]


def test_mpo_keeps_only_the_primary_image():
    out = io.BytesIO()
    im = picture()
    im.save(out, "MPO", save_all=True, append_images=[im.rotate(180)],
            exif=metadata.EXIF_HEADER + private_exif(thumbnail=False))
    data = out.getvalue()
    removed, clean = run(data, "MPO")
    assert removed == ["exif", "gps", "maker_note", "mpf", "serial_number", "trailing_data"]
    assert_clean(clean)
    with Image.open(io.BytesIO(clean)) as primary, Image.open(io.BytesIO(data)) as mpo:
        assert primary.format == "JPEG" and mpo.format == "MPO"
        assert primary.tobytes() == mpo.tobytes()
        assert primary.getexif()[0x0112] == 6


# --- PNG ------------------------------------------------------------------------------------

def test_png_loses_private_chunks_but_not_pixels_orientation_or_icc():
    data = private_png()
    removed, out = run(data, "PNG")
    assert removed == sorted([*EXIF_KINDS, "xmp", "text", "timestamp", "other"])
    assert_clean(out)
    assert_same_look(data, out)
    before, after = png_chunks(data), png_chunks(out)
    assert [c for c in after if c[0] == b"IDAT"] == [c for c in before if c[0] == b"IDAT"]
    assert [c[0] for c in after] == [b"IHDR", b"iCCP", b"eXIf", b"IDAT", b"IEND"]
    with Image.open(io.BytesIO(out)) as im:
        assert dict(im.getexif()) == {0x0112: 6}


def test_png_imagemagick_raw_exif_profile_keeps_its_orientation():
    tiff = private_exif(thumbnail=False)
    info = PngImagePlugin.PngInfo()
    info.add_text("Raw profile type exif", f"\nexif\n{len(tiff):8}\n{tiff.hex()}\n", zip=True)
    out = io.BytesIO()
    picture().save(out, "PNG", pnginfo=info, icc_profile=ICC)
    data = out.getvalue()
    removed, clean = run(data, "PNG")
    assert removed == ["exif", "gps", "maker_note", "serial_number", "text"]
    assert_clean(clean)
    assert_same_look(data, clean)
    with Image.open(io.BytesIO(clean)) as im:
        assert im.getexif()[0x0112] == 6


def test_apng_keeps_every_frame():
    im = picture()
    data = private_png(save_all=True, append_images=[im.rotate(90), im.rotate(180)],
                       duration=50)
    removed, out = run(data, "PNG")
    assert "gps" in removed and "text" in removed
    assert_clean(out)
    assert_same_look(data, out)
    assert len(frames(out)) == 3
    kinds = [c[0] for c in png_chunks(out)]
    assert b"acTL" in kinds and kinds.count(b"fcTL") == 3 and b"fdAT" in kinds


# --- WebP -----------------------------------------------------------------------------------

@pytest.mark.parametrize("animated", [False, True], ids=["still", "animated"])
def test_webp_loses_exif_and_xmp_but_not_pixels_orientation_or_icc(animated):
    data = private_webp(animated)
    removed, out = run(data, "WEBP")
    assert removed == sorted([*EXIF_KINDS, "xmp"])
    assert_clean(out)
    assert_same_look(data, out)
    before, after = riff_chunks(data), riff_chunks(out)
    image = {b"VP8L", b"VP8 ", b"ANIM", b"ANMF", b"ALPH"}
    assert [c for c in after if c[0] in image] == [c for c in before if c[0] in image]
    assert [c[0] for c in after if c[0] not in image] == [b"VP8X", b"ICCP", b"EXIF"]
    flags = after[0][1][0]
    assert flags & 0x08 and not flags & 0x04  # EXIF yes, XMP no
    assert len(frames(out)) == (3 if animated else 1)
    with Image.open(io.BytesIO(out)) as im:
        assert dict(im.getexif()) == {0x0112: 6}


# --- GIF ------------------------------------------------------------------------------------

def test_gif_loses_comments_and_xmp_but_keeps_frames_looping_and_icc():
    data = private_gif()
    removed, out = run(data, "GIF")
    assert removed == ["comment", "other", "xmp"]
    assert_clean(out)
    assert [f.tobytes() for f in frames(out)] == [f.tobytes() for f in frames(data)]
    assert len(frames(out)) == 3
    assert b"NETSCAPE2.0" in out and b"ICCRGBG1012" + bytes([len(ICC[:255])]) + ICC[:255] in out
    with Image.open(io.BytesIO(out)) as im:
        assert im.info["loop"] == 0 and "comment" not in im.info


# --- re-encoded formats ---------------------------------------------------------------------

def test_tiff_is_reencoded_losslessly_without_metadata():
    im = picture()
    out = io.BytesIO()
    im.save(out, "TIFF", exif=private_exif(thumbnail=False), icc_profile=ICC)
    data = out.getvalue()
    removed, clean = run(data, "TIFF")
    assert removed == ["exif", "gps", "maker_note", "serial_number"]
    assert_clean(clean)
    assert upright(clean) == upright(data)
    with Image.open(io.BytesIO(clean)) as result:
        assert result.info["icc_profile"] == ICC and result.info["compression"] == "raw"


def test_multipage_lzw_tiff_keeps_pages_and_compression():
    im = picture()
    out = io.BytesIO()
    im.save(out, "TIFF", save_all=True, append_images=[im.rotate(180)], compression="tiff_lzw",
            icc_profile=ICC, tiffinfo={274: 6, 271: "Canon-SECRET", 700: XMP})
    data = out.getvalue()
    removed, clean = run(data, "TIFF")
    assert removed == ["exif", "xmp"]
    assert_clean(clean)
    assert [f.tobytes() for f in frames(clean)] == [f.tobytes() for f in frames(data)]
    with Image.open(io.BytesIO(clean)) as result:
        assert result.n_frames == 2 and result.info["compression"] == "tiff_lzw"
        assert result.info["icc_profile"] == ICC


def test_avif_is_reencoded_without_metadata():
    out = io.BytesIO()
    picture().save(out, "AVIF", exif=private_exif(thumbnail=False), xmp=XMP, icc_profile=ICC)
    data = out.getvalue()
    removed, clean = run(data, "AVIF")
    assert removed == ["exif", "gps", "maker_note", "serial_number", "xmp"]
    assert_clean(clean)
    with Image.open(io.BytesIO(clean)) as result, Image.open(io.BytesIO(data)) as original:
        assert result.info["icc_profile"] == ICC
        a, b = ImageOps.exif_transpose(original), ImageOps.exif_transpose(result)
        assert a.size == b.size == (48, 64)
        diff = [abs(x - y) for x, y in zip(a.convert("L").tobytes(), b.convert("L").tobytes())]
        assert sum(diff) / len(diff) < 4  # lossy, but the same picture the same way up


# --- files with nothing to strip ------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "AVIF"])
def test_clean_file_is_copied_byte_for_byte(fmt):
    out = io.BytesIO()
    picture().save(out, fmt)
    data = out.getvalue()
    assert run(data, fmt) == ([], data)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_orientation_only_exif_is_left_alone(fmt):
    out = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6
    picture().save(out, fmt, exif=exif, icc_profile=ICC)
    data = out.getvalue()
    assert run(data, fmt) == ([], data)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF"])
def test_data_after_the_image_is_dropped(fmt):
    out = io.BytesIO()
    picture().save(out, fmt)
    removed, clean = run(out.getvalue() + b"PK\x03\x04VENDOR-SECRET", fmt)
    assert removed == ["trailing_data"] and clean == out.getvalue()


def test_cmyk_jpeg_keeps_its_adobe_segment():
    out = io.BytesIO()
    picture().convert("CMYK").save(out, "JPEG", comment="COMMENT-SECRET", icc_profile=ICC)
    data = out.getvalue()
    adobe = b"\xff\xee\x00\x0eAdobe"  # APP14, which says how to undo the colour transform
    assert adobe in data
    removed, clean = run(data, "JPEG")
    assert removed == ["comment"] and adobe in clean
    assert_same_look(data, clean)


# --- broken input ---------------------------------------------------------------------------

def broken() -> list:
    jpeg, png, webp, gif = private_jpeg(), private_png(), private_webp(), private_gif()
    cases = {
        "jpeg-inside-segment": ("JPEG", jpeg[:40]),
        "jpeg-no-soi": ("JPEG", b"\x00" + jpeg[1:]),
        "jpeg-length-below-2": ("JPEG", jpeg[:2] + b"\xff\xe1\x00\x01" + jpeg[2:]),
        "jpeg-no-marker": ("JPEG", jpeg[:2] + b"garbage" + jpeg[2:]),
        "jpeg-only-fill": ("JPEG", jpeg[:2] + b"\xff" * 10),
        "png-inside-chunk": ("PNG", png[:40]),
        "png-signature": ("PNG", b"\x89PNX" + png[4:]),
        "png-chunk-type": ("PNG", png[:8] + b"\x00\x00\x00\x0d1HDR" + png[16:]),
        "webp-riff-past-end": ("WEBP", webp[:-10]),
        "webp-chunk-past-riff": ("WEBP", webp[:12] + b"VP8L\xff\xff\xff\x00" + webp[20:]),
        "gif-inside-palette": ("GIF", gif[:200]),
        "gif-inside-image": ("GIF", gif[:len(gif) // 2]),
        "gif-unknown-block": ("GIF", gif[:13 + 768] + b"\x99" + gif[13 + 768:]),
        "tiff": ("TIFF", b"II*\x00" + b"\x00" * 20),
        "avif": ("AVIF", b"\x00\x00\x00\x1cftypavif" + b"\x00" * 20),
        "unknown-format": ("XCF", b"gimp xcf"),
    }
    return [pytest.param(*case, id=name) for name, case in cases.items()]


@pytest.mark.parametrize("fmt,data", broken())
def test_broken_structure_raises_value_error(fmt, data):
    with pytest.raises(ValueError):
        metadata.strip(io.BytesIO(data), io.BytesIO(), fmt)


def test_large_scan_is_streamed_across_chunks(monkeypatch):
    monkeypatch.setattr(metadata, "COPY_CHUNK", 7)  # force markers to straddle reads
    data = private_jpeg()
    removed, out = run(data, "JPEG")
    assert "gps" in removed and jpeg_scan(out) == jpeg_scan(data)
