"""Privacy by default, through the API: a phone photo comes back without where it was taken."""
from __future__ import annotations

import io
import os
import stat

from PIL import Image, ImageCms, PngImagePlugin

from conftest import base_config, make_image, upload
from imglink import create_app
from imglink.core.db import database
from test_metadata import private_exif

SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def phone_photo() -> bytes:
    """A 400 x 300 JPEG, orientation 6 (shown 300 x 400), GPS, serials, XMP, comment, ICC."""
    picture = Image.new("RGB", (400, 300), "white")
    picture.paste((220, 20, 20), (0, 0, 200, 300))  # left half red, right half white
    out = io.BytesIO()
    picture.save(out, "JPEG", exif=b"Exif\x00\x00" + private_exif(orientation=6), icc_profile=SRGB,
                 comment=b"shot at 12 Rue Secrete", xmp=b"<x:xmpmeta>XMP-SECRET</x:xmpmeta>")
    return out.getvalue()


def test_a_phone_photo_loses_gps_and_stays_upright(client):
    data = phone_photo()
    assert b"GPS-DATUM-SECRET" in data and b"XMP-SECRET" in data
    r = upload(client, data, "IMG_0001.jpg")
    assert r.status_code == 200, r.json
    image = r.json["data"]
    assert {"gps", "xmp", "comment", "serial_number", "maker_note"} <= set(image["metadata_removed"])
    assert (image["width"], image["height"]) == (300, 400)

    stored = client.get(f"/i/{image['id']}.jpg").data
    assert len(stored) == image["size"] < len(data)
    for secret in (b"GPS-DATUM-SECRET", b"XMP-SECRET", b"SN-PRIVATE-1234", b"Rue Secrete"):
        assert secret not in stored
    with Image.open(io.BytesIO(stored)) as im:
        exif = im.getexif()
        assert exif.get(0x0112) == 6 and 0x8825 not in exif
        assert im.info["icc_profile"] == SRGB
        # Displayed upright: after the orientation, the red half is on top.
        upright = im.transpose(Image.Transpose.ROTATE_270).convert("RGB")
        assert upright.size == (300, 400)
        assert upright.getpixel((150, 50))[0] > 180 and upright.getpixel((150, 350))[1] > 180

    thumb = client.get(f"/t/{image['id']}.jpg").data
    assert b"GPS" not in thumb and b"XMP-SECRET" not in thumb
    with Image.open(io.BytesIO(thumb)) as im:
        assert im.size == (240, 320) and 0x0112 not in im.getexif()
    # The image object afterwards does not repeat what was removed (only uploads say it).
    again = client.get(f"/api/v1/image/{image['id']}").json["data"]
    assert "metadata_removed" not in again and again["size"] == image["size"]


def test_png_text_chunks_are_removed(client):
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Jane Private")
    info.add_itxt("Location", "48.85N 2.35E", zip=True)
    out = io.BytesIO()
    Image.new("RGBA", (50, 40), (0, 0, 255, 128)).save(out, "PNG", pnginfo=info)
    image = upload(client, out.getvalue(), "a.png").json["data"]
    assert image["metadata_removed"] == ["text"]
    stored = client.get(f"/i/{image['id']}.png").data
    assert b"Jane Private" not in stored and b"Location" not in stored
    with Image.open(io.BytesIO(stored)) as im:
        assert im.mode == "RGBA" and im.getpixel((0, 0)) == (0, 0, 255, 128)


def test_an_operator_can_keep_metadata(app, client):
    app.config["STRIP_METADATA"] = False
    data = phone_photo()
    image = upload(client, data, "IMG_0002.jpg").json["data"]
    assert image["metadata_removed"] == [] and image["size"] == len(data)
    assert client.get(f"/i/{image['id']}.jpg").data == data


def test_the_embedded_database_is_readable_by_the_service_user_only(tmp_path):
    # It holds e-mails and the hashes of keys and delete tokens; the data folder itself is
    # usually readable by all (nginx serves the files under it).
    app = create_app(base_config(tmp_path))
    try:
        assert upload(app.test_client(), make_image()).status_code == 200  # -wal and -shm made
        path = database.database
        for name in (path, path + "-wal", path + "-shm"):
            assert os.path.exists(name), name
            assert stat.S_IMODE(os.stat(name).st_mode) == 0o600, name
    finally:
        database.close_all()
