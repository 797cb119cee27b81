"""The repo's nginx site in front of gunicorn, as a self-hoster deploys it."""
from __future__ import annotations

import http.client
import io
import json
import os
import signal
import sqlite3
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from PIL import Image

from conftest import auth, make_image, raw_request

pytestmark = pytest.mark.live

MiB = 1024 * 1024


@pytest.fixture
def deployment(start_server, start_nginx, tmp_path):
    """gunicorn (trusting one proxy) behind nginx serving files from the storage folder."""
    app = start_server(IMGLINK_TRUSTED_PROXIES="1", IMGLINK_PLANS__anonymous__hourly="20")
    files_root = Path(app.env["IMGLINK_DATA_DIR"]) / "files"
    front = start_nginx([app.url], "files-local.conf", FILES_ROOT=str(files_root))
    return app, front


def noise_png(megabytes: int) -> bytes:
    """An incompressible PNG of about `megabytes` MiB (stored, not deflated)."""
    side = int((megabytes * MiB / 3) ** 0.5)
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=0)
    return out.getvalue()


def post_headers_only(base: str, path: str, length: int, headers: dict) -> tuple[int, dict]:
    """Send only the request headers of a large upload and read nginx's answer."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.putrequest("POST", path)
    conn.putheader("Content-Type", "multipart/form-data; boundary=x")
    conn.putheader("Content-Length", str(length))
    for name, value in headers.items():
        conn.putheader(name, value)
    conn.endheaders()
    response = conn.getresponse()
    body = json.loads(response.read())
    conn.close()
    return response.status, body


def test_anonymous_65_mib_is_refused_by_nginx_with_the_envelope(deployment):
    _, front = deployment
    status, body = post_headers_only(front, "/api/v1/upload", 65 * MiB + 2 * MiB, {})
    assert status == 413
    assert body["success"] is False and body["error"]["code"] == "FILE_TOO_LARGE"
    assert "64 MiB" in body["error"]["message"]
    # Bulk too, past ten files' worth.
    status, body = post_headers_only(front, "/api/v1/upload/bulk", 700 * MiB, {})
    assert status == 413 and body["error"]["code"] == "FILE_TOO_LARGE"


def test_a_key_lifts_the_anonymous_cap_and_a_60_mb_upload_goes_through(deployment):
    app, front = deployment
    key = app.create_key("pro")
    status, body = post_headers_only(front, "/api/v1/upload", 1100 * MiB, auth(key))
    assert status == 413 and body["error"]["code"] == "FILE_TOO_LARGE"  # over every plan

    data = noise_png(60)
    assert len(data) > 60_000_000
    r = requests.post(front + "/api/v1/upload", headers=auth(key),
                      files={"file": ("big.png", data)}, timeout=120)
    assert r.status_code == 200, r.text
    image = r.json()["data"]
    assert image["size"] == len(data) and image["links"]["direct"].startswith(front + "/i/")
    served = requests.get(image["links"]["direct"], timeout=60)
    assert served.status_code == 200 and served.content == data


def test_files_are_served_by_nginx_with_the_app_headers(deployment, start_server):
    app, front = deployment
    data = make_image("JPEG", (640, 480))
    r = requests.post(front + "/api/v1/upload", files={"file": ("a.jpg", data)}, timeout=30)
    image = r.json()["data"]
    direct, thumbnail = image["links"]["direct"], image["links"]["thumbnail"]
    assert direct.startswith(front)

    from_app = requests.get(app.url + urlsplit(direct).path, timeout=10)
    from_nginx = requests.get(direct, timeout=10)
    assert from_nginx.content == data == from_app.content
    # nginx's own ETag proves the file did not come through the app.
    assert from_nginx.headers["ETag"] != from_app.headers["ETag"]
    for name in ("Content-Type", "Cache-Control", "X-Content-Type-Options",
                 "Content-Security-Policy", "Content-Disposition"):
        assert from_nginx.headers[name] == from_app.headers[name], name
    assert from_nginx.headers["Content-Length"] == str(len(data))
    ranged = requests.get(direct, headers={"Range": "bytes=0-9"}, timeout=10)
    assert ranged.status_code == 206 and ranged.content == data[:10]
    again = requests.get(direct, headers={"If-None-Match": from_nginx.headers["ETag"]},
                         timeout=10)
    assert again.status_code == 304
    thumb = requests.get(thumbnail, timeout=10)
    assert thumb.status_code == 200 and thumb.headers["Content-Type"] == "image/jpeg"
    assert thumb.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"

    # What storage does not have is the app's own 404 page.
    for path in (f"/i/{image['id']}.png", "/i/AAAAAAAAAA.jpg"):
        missing = requests.get(front + path, timeout=10)
        assert missing.status_code == 404, path
        assert "text/html" in missing.headers["Content-Type"]
        assert "Image not found" in missing.text
    for path in ("/i/..%2f..%2fetc%2fpasswd", "/i/../../etc/passwd", "/t/%2e%2e/%2e%2e/etc/hosts"):
        refused = requests.get(front + path, timeout=10)
        assert refused.status_code in (400, 404), path
        assert "root:" not in refused.text and "localhost" not in refused.text


def test_delete_removes_the_files_at_once_and_purge_the_expired(deployment):
    app, front = deployment
    r = requests.post(front + "/api/v1/upload", files={"file": ("a.png", make_image("PNG"))},
                      timeout=30)
    image = r.json()["data"]
    assert requests.get(image["links"]["direct"], timeout=10).status_code == 200
    deleted = requests.delete(front + f"/api/v1/image/{image['id']}",
                              headers={"X-Delete-Token": image["delete_token"]}, timeout=10)
    assert deleted.status_code == 200
    assert requests.get(image["links"]["direct"], timeout=10).status_code == 404
    assert requests.get(image["links"]["thumbnail"], timeout=10).status_code == 404

    r = requests.post(front + "/api/v1/upload", data={"expiry": "1"},
                      files={"file": ("b.png", make_image("PNG"))}, timeout=30)
    expiring = r.json()["data"]
    db = sqlite3.connect(Path(app.env["IMGLINK_DATA_DIR"]) / "imglink.db")
    with db:
        db.execute("UPDATE image SET expires_at = '2000-01-01 00:00:00' WHERE id = ?",
                   (expiring["id"],))
    db.close()
    result = app.cli("purge-expired")
    assert result.returncode == 0, result.stderr
    assert "Purged 1 expired image" in result.stdout
    assert requests.get(expiring["links"]["direct"], timeout=10).status_code == 404


def test_the_client_ip_comes_from_nginx_and_cannot_be_forged(deployment):
    _, front = deployment
    statuses = [requests.get(front + "/api/v1/limits", timeout=10,
                             headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code
                for i in range(21)]
    assert statuses == [200] * 20 + [429]
    r = requests.get(front + "/api/v1/limits", timeout=10)
    assert r.status_code == 429 and r.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    assert requests.get(front + "/", timeout=10).status_code == 200


def test_gunicorn_reloads_gracefully_on_hup(start_server):
    app = start_server()
    os.kill(app.process.pid, signal.SIGHUP)
    for _ in range(20):
        assert requests.get(app.url + "/api/v1/health", timeout=10).status_code == 200


@pytest.mark.parametrize("request_bytes", [
    b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 20_000 + b"\r\n\r\n",
    b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nCookie: " + b"c=1; " * 4_000 + b"\r\n\r\n",
    b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nno colon on this line\r\n\r\n",
    b"GET /api/v1/health HTTP/1.1 and more\r\nHost: x\r\n\r\n",
    b"GET /api/v1/health HTTP/9.9\r\nHost: x\r\n\r\n",
], ids=["header-too-large", "cookie-too-large", "malformed-header", "malformed-request-line",
        "unknown-http-version"])
def test_a_request_nginx_refuses_itself_gets_the_envelope(deployment, request_bytes):
    _, front = deployment
    status, headers, body = raw_request(front, request_bytes)
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["code"] == "BAD_REQUEST"
