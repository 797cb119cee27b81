"""The seed's client examples, unmodified but for the host and key, against a live server."""
from __future__ import annotations

import ast
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from PIL import Image

from conftest import make_image, require

pytestmark = pytest.mark.live

CLIENTS = Path(__file__).parent / "seed_clients"
SEED_HOST = "https://imglink.io"


def photo(width: int = 1600, height: int = 1200) -> bytes:
    """A photo-like JPEG: a gradient, so it compresses like a picture, not a flat colour."""
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def client_script(name: str, base: str, key: str | None, workdir: Path) -> Path:
    text = (CLIENTS / name).read_text().replace(SEED_HOST, base)
    for placeholder in ("your-api-key", "YOUR_API_KEY"):
        text = text.replace(placeholder, key or "")
    path = workdir / name
    path.write_text(text)
    return path


def check_direct_link(url: str, base: str, expected: bytes) -> None:
    assert url.startswith(base + "/i/") and url.endswith(".jpg")
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    assert response.content == expected
    assert response.headers["Content-Type"] == "image/jpeg"


@pytest.mark.parametrize("with_key", [True, False], ids=["key", "anonymous"])
def test_python_upload_image_example(live_server, tmp_path, with_key):
    key = live_server.create_key() if with_key else None
    data = photo()
    (tmp_path / "my-photo.jpg").write_bytes(data)
    script = client_script("upload_image.py", live_server.url, key, tmp_path)
    result = subprocess.run([sys.executable, script.name], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    url = result.stdout.strip().removeprefix("Image uploaded: ")
    check_direct_link(url, live_server.url, data)


def test_python_example_raises_with_the_server_message_for_a_bad_key(live_server, tmp_path):
    (tmp_path / "my-photo.jpg").write_bytes(photo(64, 48))
    script = client_script("upload_image.py", live_server.url, "ilk_not-a-real-key", tmp_path)
    result = subprocess.run([sys.executable, script.name], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode != 0
    assert "Upload failed: The API key is malformed" in result.stderr


def test_python_bulk_example(live_server, tmp_path):
    key = live_server.create_key("pro")
    inputs = {"image1.jpg": photo(800, 600), "image2.png": make_image("PNG", (300, 200)),
              "image3.gif": make_image("GIF", (120, 90), mode="P", color=3)}
    for name, data in inputs.items():
        (tmp_path / name).write_bytes(data)
    script = client_script("bulk_upload.py", live_server.url, key, tmp_path)
    result = subprocess.run([sys.executable, script.name], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    body = ast.literal_eval(result.stdout.strip())
    assert body["success"] is True and body["data"]["errors"] == []
    images = body["data"]["images"]
    assert [i["format"] for i in images] == ["JPEG", "PNG", "GIF"]
    for image, data in zip(images, inputs.values()):
        assert requests.get(image["links"]["direct"], timeout=10).content == data


def test_browser_fetch_examples_in_node(live_server, tmp_path):
    node = require("node", "nodejs")
    key = live_server.create_key()
    data = photo()
    (tmp_path / "my-photo.jpg").write_bytes(data)
    script = client_script("fetch_upload.mjs", live_server.url, key, tmp_path)
    result = subprocess.run([node, script.name], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    logs = json.loads(result.stdout)
    by_label = {entry[1]: entry[2] for entry in logs}
    assert "Upload failed:" not in by_label and "Network error:" not in by_label, logs
    uploaded = by_label["Upload successful:"]
    assert uploaded["success"] is True and uploaded["data"]["album"] == "my-project"
    check_direct_link(uploaded["data"]["links"]["direct"], live_server.url, data)
    check_direct_link(by_label["Image uploaded:"], live_server.url, data)


def test_php_curl_example(live_server, tmp_path):
    php = require("php", "php-cli php-curl")
    key = live_server.create_key()
    data = photo()
    (tmp_path / "my-photo.jpg").write_bytes(data)
    script = client_script("upload_image.php", live_server.url, key, tmp_path)
    result = subprocess.run([php, script.name], cwd=tmp_path, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    url = result.stdout.strip().removeprefix("Image uploaded: ")
    check_direct_link(url, live_server.url, data)


def test_curl_examples(live_server, tmp_path):
    """The seed's curl lines, then a 1600 x 1200 JPEG upload checked file by file."""
    curl_bin = require("curl")
    key = live_server.create_key()
    base = live_server.url

    def curl(*args: str) -> tuple[int, dict]:
        result = subprocess.run([curl_bin, "-sS", "-w", "\n%{http_code}", *args],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        body, _, status = result.stdout.rpartition("\n")
        return int(status), json.loads(body)

    # The seed's first example sends no file: a clear error, not a crash.
    status, body = curl("-H", f"Authorization: Bearer {key}", "-X", "POST", f"{base}/api/v1/upload")
    assert status == 400 and body["error"]["code"] == "MISSING_FILE"

    data = photo()
    (tmp_path / "photo.jpg").write_bytes(data)
    status, body = curl("-H", f"Authorization: Bearer {key}", "-F", f"file=@{tmp_path / 'photo.jpg'}",
                        f"{base}/api/v1/upload")
    assert status == 200, body
    image = body["data"]
    assert (image["width"], image["height"], image["size"]) == (1600, 1200, len(data))
    check_direct_link(image["links"]["direct"], base, data)
    thumb = Image.open(io.BytesIO(requests.get(image["links"]["thumbnail"], timeout=10).content))
    assert max(thumb.size) <= 320 and thumb.size == (320, 240)
    page = requests.get(image["links"]["view_page"], timeout=10)
    assert page.status_code == 200
    assert f'<meta property="og:image" content="{image["links"]["direct"]}">' in page.text

    status, body = curl("-H", f"Authorization: Bearer {key}", f"{base}/api/v1/image/{image['id']}")
    assert status == 200 and body["data"]["id"] == image["id"] and "delete_token" not in body["data"]
    status, body = curl("-X", "DELETE", "-H", f"Authorization: Bearer {key}",
                        f"{base}/api/v1/image/{image['id']}")
    assert status == 200 and body["success"] is True
    assert requests.get(image["links"]["direct"], timeout=10).status_code == 404
