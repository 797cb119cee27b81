"""Plan quotas: exact counts, headers, who the client is, and a failing quota store."""
from __future__ import annotations

import concurrent.futures
import copy
import io
import os

import pytest
import requests
from PIL import Image

from imglink import config as defaults
from imglink import create_app
from conftest import BufferedClient, auth, make_image, upload


def low_plans(**hourly: int | None) -> dict:
    plans = copy.deepcopy(defaults.PLANS)
    for name, value in hourly.items():
        plans[name]["hourly"] = value
    return plans


@pytest.fixture
def make_app(tmp_path):
    def make(**config):
        app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path / "data"),
                          "SECRET_KEY": "test", "RATELIMIT_ENABLED": True,
                          "RATELIMIT_STORAGE_URI": "memory://", **config})
        app.test_client_class = BufferedClient
        return app
    return make


def test_anonymous_quota_runs_out_at_exactly_the_limit(make_app):
    app = make_app(PLANS=low_plans(anonymous=5))
    client = app.test_client()
    first = upload(client, make_image())
    assert first.status_code == 200
    assert first.headers["X-RateLimit-Limit"] == "5"
    assert first.headers["X-RateLimit-Remaining"] == "4"
    assert int(first.headers["X-RateLimit-Reset"]) > 0
    assert "Retry-After" not in first.headers
    image = first.json["data"]
    # Every API endpoint spends the same quota.
    for path in ("/api/v1/limits", f"/api/v1/image/{image['id']}", "/api/v1/nothing-here"):
        client.get(path)
    last = client.get("/api/v1/limits")
    assert last.status_code == 200 and last.headers["X-RateLimit-Remaining"] == "0"

    refused = upload(client, make_image())
    assert refused.status_code == 429
    assert refused.json["success"] is False
    assert refused.json["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    assert "5 API requests per hour" in refused.json["error"]["message"]
    assert "allowed at" in refused.json["error"]["message"]
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert 3500 <= int(refused.headers["Retry-After"]) <= 3600
    assert refused.content_type == "application/json"

    # Files, pages and health are never refused for a spent API quota.
    assert client.get(f"/i/{image['id']}.jpg").status_code == 200
    assert client.get(f"/t/{image['id']}.jpg").status_code == 200
    assert client.get(f"/image/{image['id']}").status_code == 200
    assert client.get("/api/v1/health").status_code == 200


def test_unknown_api_routes_are_not_free(make_app):
    """404s under /api/v1/ are API requests too (they are the envelope, not pages)."""
    app = make_app(PLANS=low_plans(anonymous=2))
    client = app.test_client()
    assert client.get("/api/v1/limits").status_code == 200
    assert client.get("/api/v1/limits").status_code == 200
    assert client.get("/api/v1/limits").status_code == 429


def test_keys_have_their_own_count_and_plan(make_app):
    app = make_app(PLANS=low_plans(anonymous=1, free=3))
    client = app.test_client()
    from imglink.core import accounts
    from imglink.core.db import database
    with app.app_context(), database.connection_context():
        _, free_key = accounts.create_account("f@example.com", "free", app.config["PLANS"])
        _, other_key = accounts.create_account("o@example.com", "free", app.config["PLANS"])
    assert client.get("/api/v1/limits").status_code == 200
    assert client.get("/api/v1/limits").status_code == 429
    for remaining in ("2", "1", "0"):
        r = client.get("/api/v1/limits", headers=auth(free_key))
        assert r.status_code == 200 and r.json["data"]["plan"] == "free"
        assert r.headers["X-RateLimit-Limit"] == "3"
        assert r.headers["X-RateLimit-Remaining"] == remaining
    assert client.get("/api/v1/limits", headers=auth(free_key)).status_code == 429
    assert client.get("/api/v1/limits", headers=auth(other_key)).status_code == 200
    # A bad key spends the client IP's anonymous quota, which is spent here already.
    bad = client.get("/api/v1/limits", headers=auth("ilk_" + "x" * 30))
    assert bad.status_code == 429


def test_bad_keys_are_401_and_spend_the_ip_quota(make_app):
    """Guessing keys is throttled like anonymous calls, and every 401 carries the headers."""
    app = make_app(PLANS=low_plans(anonymous=3))
    client = app.test_client()
    for remaining, header in (("2", "Bearer ilk_" + "x" * 30), ("1", "Basic dXNlcjpwYXNz"),
                              ("0", "Bearer ilk_AAAAAAAAAAAAAAAAAAAAAAAA000000")):
        r = client.get("/api/v1/limits", headers={"Authorization": header})
        assert r.status_code == 401 and r.json["error"]["code"] == "UNAUTHORIZED"
        assert r.headers["X-RateLimit-Limit"] == "3"
        assert r.headers["X-RateLimit-Remaining"] == remaining
    assert client.get("/api/v1/limits", headers=auth("ilk_" + "y" * 30)).status_code == 429
    assert client.get("/api/v1/limits").status_code == 429


def test_enterprise_is_unlimited_and_says_so(make_app):
    app = make_app(PLANS=low_plans(anonymous=1))
    client = app.test_client()
    from imglink.core import accounts
    from imglink.core.db import database
    with app.app_context(), database.connection_context():
        _, key = accounts.create_account("e@example.com", "enterprise", app.config["PLANS"])
    for _ in range(5):
        r = client.get("/api/v1/limits", headers=auth(key))
        assert r.status_code == 200
        assert r.headers["X-RateLimit-Limit"] == "unlimited"
        assert r.headers["X-RateLimit-Remaining"] == "unlimited"
        assert r.json["data"]["requests_per_hour"] is None


def test_preflight_and_health_do_not_count(make_app):
    app = make_app(PLANS=low_plans(anonymous=1))
    client = app.test_client()
    for _ in range(3):
        preflight = client.options("/api/v1/upload", headers={
            "Origin": "https://example.org", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization"})
        assert preflight.status_code == 204
        assert client.get("/api/v1/health").status_code == 200
    assert client.get("/api/v1/limits").status_code == 200
    assert client.get("/api/v1/limits").status_code == 429


def test_forged_forwarded_for_changes_nothing_without_a_trusted_proxy(make_app):
    app = make_app(PLANS=low_plans(anonymous=100), TRUSTED_PROXIES=0)
    client = app.test_client()
    statuses = [client.get("/api/v1/limits", headers={"X-Forwarded-For": f"10.0.{i // 250}.{i % 250}"}).status_code
                for i in range(101)]
    assert statuses.count(200) == 100 and statuses[-1] == 429


def test_a_trusted_proxy_sets_the_client_ip(make_app):
    app = make_app(PLANS=low_plans(anonymous=1), TRUSTED_PROXIES=1)
    client = app.test_client()
    for i in range(3):
        r = client.get("/api/v1/limits", headers={"X-Forwarded-For": f"198.51.100.{i}"})
        assert r.status_code == 200
    # The proxy appends the real client address: only the last one counts.
    forged = {"X-Forwarded-For": "203.0.113.9, 198.51.100.0"}
    assert client.get("/api/v1/limits", headers=forged).status_code == 429


def test_moving_window_allows_no_burst_at_the_hour_boundary(make_app, monkeypatch):
    import time as time_module
    now = [3600 * 500_000 - 5.0]  # five seconds before a clock hour
    monkeypatch.setattr(time_module, "time", lambda: now[0])
    app = make_app(PLANS=low_plans(anonymous=3))
    client = app.test_client()
    assert [client.get("/api/v1/limits").status_code for _ in range(3)] == [200] * 3
    now[0] += 10  # a fixed window would start afresh here
    assert client.get("/api/v1/limits").status_code == 429
    now[0] += 3600
    assert client.get("/api/v1/limits").status_code == 200


def test_plan_change_takes_effect_on_the_next_request(make_app):
    app = make_app(PLANS=low_plans(free=2))
    client = app.test_client()
    runner = app.test_cli_runner()
    result = runner.invoke(args=["account", "create", "p@example.com", "--plan", "free"])
    key = result.stdout.strip().splitlines()[-1]
    assert client.get("/api/v1/limits", headers=auth(key)).headers["X-RateLimit-Limit"] == "2"
    runner.invoke(args=["account", "set-plan", "p@example.com", "pro"])
    r = client.get("/api/v1/limits", headers=auth(key))
    assert r.json["data"]["plan"] == "pro"
    assert r.headers["X-RateLimit-Limit"] == "10000"


def test_413_names_the_limit_and_the_size(make_app):
    plans = low_plans()
    plans["anonymous"]["max_file"] = 1000
    app = make_app(PLANS=plans)
    client = app.test_client()
    noise = Image.frombytes("L", (200, 200), os.urandom(200 * 200))
    out = io.BytesIO()
    noise.save(out, "PNG")
    data = out.getvalue()
    r = client.post("/api/v1/upload/bulk", data={"files": [(io.BytesIO(data), "big.png")]},
                    content_type="multipart/form-data")
    assert r.status_code == 413
    assert r.json["error"]["code"] == "FILE_TOO_LARGE"
    assert f"{len(data):,} bytes" in r.json["error"]["message"]
    assert "1,000 bytes" in r.json["error"]["message"]


# Several gunicorn workers sharing one real Redis.

@pytest.mark.live
def test_redis_counts_exactly_across_four_workers(start_server, redis_server):
    server = start_server(IMGLINK_RATELIMIT_STORAGE_URI=redis_server.url, GUNICORN_WORKERS="4",
                          GUNICORN_THREADS="4", IMGLINK_PLANS__free__hourly="10")
    key = server.create_key("free")
    with concurrent.futures.ThreadPoolExecutor(max_workers=40) as pool:
        statuses = list(pool.map(
            lambda _: requests.get(server.url + "/api/v1/limits", headers=auth(key),
                                   timeout=30).status_code, range(40)))
    assert sorted(statuses) == [200] * 10 + [429] * 30


@pytest.mark.live
def test_a_dead_quota_store_means_503_not_500_nor_unlimited(start_server, redis_server):
    server = start_server(IMGLINK_RATELIMIT_STORAGE_URI=redis_server.url, GUNICORN_WORKERS="2",
                          IMGLINK_PLANS__anonymous__hourly="3")
    first = requests.post(server.url + "/api/v1/upload",
                          files={"file": ("a.png", make_image("PNG"))}, timeout=30)
    assert first.status_code == 200
    direct = first.json()["data"]["links"]["direct"]

    redis_server.stop()
    for _ in range(10):
        r = requests.get(server.url + "/api/v1/limits", timeout=30)
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
        assert int(r.headers["Retry-After"]) > 0
    health = requests.get(server.url + "/api/v1/health", timeout=30)
    assert health.status_code == 503 and health.json()["error"]["details"]["quota_store"]
    assert requests.get(direct, timeout=30).status_code == 200

    redis_server.start()  # empty again: the count starts afresh
    statuses = [requests.get(server.url + "/api/v1/limits", timeout=30).status_code
                for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert requests.get(server.url + "/api/v1/health", timeout=30).status_code == 200


def test_limits_report_every_ceiling(make_app):
    app = make_app(MAX_PIXELS=5_000_000, MAX_FRAMES=7, MAX_TOTAL_PIXELS=9_000_000)
    data = app.test_client().get("/api/v1/limits").json["data"]
    assert data["plan"] == "anonymous"
    assert (data["max_pixels"], data["max_frames"], data["max_total_pixels"]) == (
        5_000_000, 7, 9_000_000)
    assert data["max_file_size"] == 64 * 1024 * 1024 and data["max_files_per_bulk"] == 10
    assert data["requests_per_hour"] == 100 and data["requests_remaining"] == 99
    assert data["formats"] == ["JPEG", "PNG", "GIF", "WEBP", "AVIF", "BMP", "TIFF"]
