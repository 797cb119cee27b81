"""Several app hosts, one service: PostgreSQL, Redis and S3 shared behind one nginx."""
from __future__ import annotations

import itertools
import subprocess

import pytest
import requests

from conftest import BIN, ROOT, S3_CREDENTIALS, make_image

pytestmark = pytest.mark.live


@pytest.fixture
def cluster(tmp_path, postgres_url, redis_server, s3_server, s3_bucket, start_server,
            start_nginx):
    env = {
        "IMGLINK_DATABASE_URL": postgres_url,
        "IMGLINK_RATELIMIT_STORAGE_URI": redis_server.url,
        "IMGLINK_STORAGE_URL": f"s3://{s3_bucket}/images",
        "IMGLINK_S3_ENDPOINT_URL": s3_server,
        **{f"IMGLINK_{name}": value for name, value in S3_CREDENTIALS.items()},
        "IMGLINK_SECRET_KEY": "shared-between-hosts",
        "IMGLINK_TRUSTED_PROXIES": "1",
        "IMGLINK_PLANS__anonymous__hourly": "12",
        "GUNICORN_WORKERS": "2",
    }
    upgrade = subprocess.run([str(BIN / "imglink"), "db", "upgrade"], cwd=ROOT, text=True,
                             capture_output=True, timeout=60,
                             env={**hosts_env(tmp_path / "admin"), **env})
    assert upgrade.returncode == 0, upgrade.stderr
    hosts = [start_server(IMGLINK_DATA_DIR=str(tmp_path / f"host{n}"), **env) for n in (1, 2)]
    front = start_nginx([h.url for h in hosts], "files-s3.conf", S3_ENDPOINT=s3_server,
                        S3_BUCKET=s3_bucket, S3_PREFIX="images")
    return hosts, front


def hosts_env(data_dir) -> dict[str, str]:
    import os
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGLINK_")}
    return {**env, "IMGLINK_DATA_DIR": str(data_dir)}


def test_two_hosts_share_images_quota_and_deletes(cluster):
    (one, two), front = cluster
    data = make_image("PNG", (300, 200))
    r = requests.post(one.url + "/api/v1/upload", files={"file": ("a.png", data)}, timeout=30)
    assert r.status_code == 200, r.text
    image = r.json()["data"]
    path = f"/i/{image['id']}.png"

    # Uploaded through one host, served by the other, and by nginx straight from the bucket.
    assert requests.get(two.url + f"/api/v1/image/{image['id']}", timeout=10).json()["data"]["size"] == len(data)
    assert requests.get(two.url + path, timeout=10).content == data
    via_nginx = requests.get(front + path, timeout=10)
    assert via_nginx.status_code == 200 and via_nginx.content == data
    assert via_nginx.headers["Content-Type"] == "image/png"
    assert via_nginx.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert via_nginx.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert requests.get(front + f"/t/{image['id']}.png", timeout=10).status_code == 200

    # A delete through one host is a 404 everywhere at once.
    deleted = requests.delete(one.url + f"/api/v1/image/{image['id']}", timeout=10,
                              headers={"X-Delete-Token": image["delete_token"]})
    assert deleted.status_code == 200
    assert requests.get(two.url + f"/api/v1/image/{image['id']}", timeout=10).status_code == 404
    assert requests.get(two.url + path, timeout=10).status_code == 404
    assert requests.get(front + path, timeout=10).status_code == 404

    # One hourly quota across both hosts.
    remaining = int(requests.get(one.url + "/api/v1/limits", timeout=10)
                    .headers["X-RateLimit-Remaining"])
    assert remaining >= 4
    statuses = [requests.get(host.url + "/api/v1/limits", timeout=10).status_code
                for host in itertools.islice(itertools.cycle((two, one)), remaining + 1)]
    assert statuses == [200] * remaining + [429]
    # Through nginx the client is still 127.0.0.1 (from X-Forwarded-For): the same count.
    assert requests.get(front + "/api/v1/limits", timeout=10).status_code == 429

    for host in (one, two):
        health = requests.get(host.url + "/api/v1/health", timeout=10)
        assert health.status_code == 200, health.text
