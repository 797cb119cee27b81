"""The embedded default under real load: concurrent uploads on SQLite, memory while streaming."""
from __future__ import annotations

import concurrent.futures
import json
import os
from pathlib import Path

import pytest
import requests
from PIL import Image

from conftest import auth, encode, make_image, raw_request

pytestmark = pytest.mark.live


def worker_pids(master_pid: int) -> list[int]:
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    return [int(pid) for pid in children]


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.mark.parametrize("workers, threads", [(1, 8), (3, 4)])
def test_concurrent_uploads_never_hit_a_locked_database(start_server, workers, threads):
    server = start_server(GUNICORN_WORKERS=str(workers), GUNICORN_THREADS=str(threads))
    key = server.create_key("enterprise")
    images = [make_image("PNG", (64 + i, 48)) for i in range(48)]

    def send(data: bytes) -> requests.Response:
        return requests.post(server.url + "/api/v1/upload", headers=auth(key), timeout=60,
                             files={"file": ("x.png", data)})

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        responses = list(pool.map(send, images))
    assert [r.status_code for r in responses] == [200] * 48, [r.text for r in responses if r.status_code != 200][:3]
    ids = {r.json()["data"]["id"] for r in responses}
    assert len(ids) == 48
    # Deletes in parallel too: every one lands.
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        deleted = list(pool.map(lambda i: requests.delete(
            f"{server.url}/api/v1/image/{i}", headers=auth(key), timeout=60).status_code, ids))
    assert deleted == [200] * 48


def test_a_60_mb_upload_streams_to_disk(start_server, tmp_path):
    """The body goes to a temp file and the JPEG decodes at reduced scale: the worker's peak
    memory grows by far less than the file."""
    server = start_server(GUNICORN_WORKERS="1", GUNICORN_THREADS="2")
    key = server.create_key("pro")
    side = 7400
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    path = tmp_path / "big.jpg"
    image.save(path, "JPEG", quality=95)
    del image
    size = path.stat().st_size
    assert size > 60 * 1024 * 1024

    requests.post(server.url + "/api/v1/upload", headers=auth(key), timeout=60,
                  files={"file": ("warm.jpg", make_image("JPEG", (800, 600)))})
    (worker,) = worker_pids(server.process.pid)
    before = peak_rss_kib(worker)
    with open(path, "rb") as f:
        r = requests.post(server.url + "/api/v1/upload", headers=auth(key), timeout=120,
                          files={"file": ("big.jpg", f)})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["size"] == size
    grown_mib = (peak_rss_kib(worker) - before) / 1024
    assert grown_mib < 40, f"worker peak memory grew by {grown_mib:.0f} MiB for a {size >> 20} MiB upload"
    served = requests.get(r.json()["data"]["links"]["direct"], timeout=60)
    assert len(served.content) == size


def test_a_burst_of_files_that_decode_huge_stays_within_the_decode_budget(start_server):
    """Eight 40-megapixel PNGs of about 100 KB each, sent at once: each decodes to 160 MB,
    and a 200 MB budget lets the worker hold one at a time instead of eight."""
    server = start_server(GUNICORN_WORKERS="1", GUNICORN_THREADS="8",
                          IMGLINK_DECODE_MEMORY_LIMIT=str(200 * 1024 * 1024))
    key = server.create_key("pro")
    png = encode(Image.new("RGB", (8000, 5000)), "PNG")
    assert len(png) < 1024 * 1024

    def send(index: int) -> int:
        return requests.post(server.url + "/api/v1/upload", headers=auth(key), timeout=120,
                             files={"file": (f"{index}.png", png)}).status_code

    assert send(-1) == 200  # warm: one decode, the most the budget lets in
    (worker,) = worker_pids(server.process.pid)
    before = peak_rss_kib(worker)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert list(pool.map(send, range(8))) == [200] * 8
    grown_mib = (peak_rss_kib(worker) - before) / 1024
    assert grown_mib < 150, f"peak memory grew by {grown_mib:.0f} MiB (8 at once: 1,220 MiB)"


def _boot(data_dir: str, barrier) -> None:
    from imglink import create_app
    barrier.wait()
    create_app({"DATA_DIR": data_dir, "SECRET_KEY": "x"})


def test_workers_booting_together_on_a_new_database_all_start(tmp_path):
    """gunicorn starts its workers at once; each sets up the new SQLite file (WAL, tables)."""
    import multiprocessing
    context = multiprocessing.get_context("spawn")
    for round_ in range(6):
        barrier = context.Barrier(6)
        workers = [context.Process(target=_boot, args=(str(tmp_path / f"data{round_}"), barrier))
                   for _ in range(6)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
        assert [w.exitcode for w in workers] == [0] * 6


@pytest.mark.parametrize("request_bytes", [
    b"GET /api/v1/health?" + b"q" * 5_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 9_000 + b"\r\n\r\n",
    b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n" + b"X-A: 1\r\n" * 120 + b"\r\n",
    b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n",
    b"GET /api/v1/health HTTP/9.9\r\nHost: x\r\n\r\n",
], ids=["request-line-too-long", "header-too-large", "too-many-headers", "invalid-header-name",
        "unknown-http-version"])
def test_a_request_gunicorn_refuses_itself_gets_the_envelope(live_server, request_bytes):
    status, headers, body = raw_request(live_server.url, request_bytes)
    assert 400 <= status < 500
    assert headers["content-type"] == "application/json"
    error = json.loads(body)
    assert error["success"] is False and error["error"]["code"] == "BAD_REQUEST"
    assert error["error"]["message"]
    assert requests.get(live_server.url + "/api/v1/health", timeout=10).ok  # still serving
