"""The image API beyond upload: read, delete, keys, ids, expiry, envelope, CORS, health."""
from __future__ import annotations

import datetime as dt
import io
import re

import pytest

import imglink.core.db
import imglink.core.models
import imglink.core.images
import imglink.core.uploads
from conftest import (auth, deleted_and_expired, expire_now, make_image, path_of, upload,
                      uploaded)
from imglink.core import ids as auth_module
from imglink import create_app
from imglink.core import accounts
from imglink.core.models import Image, RetiredId

BASE62 = re.compile(r"^[A-Za-z0-9]{8,}$")
IMAGE_FIELDS = {"id", "filename", "size", "width", "height", "format", "album", "uploaded_at",
                "expires_at", "links"}

# Every app test runs on both deployments (conftest's `backend`). Matrices that exercise the
# HTTP layer rather than the database or the storage run on the embedded one only, to stay fast.
embedded_only = pytest.mark.parametrize("backend", ["embedded"], indirect=True)


# Helpers -------------------------------------------------------------------------------------

def storage_of(app):
    return app.extensions["imglink.storage"]


def stored_keys(app, image_id: str) -> list[str]:
    """Every storage key whose file name belongs to `image_id`."""
    return [k for k in storage_of(app).keys() if k.rsplit("/", 1)[-1].split(".")[0] == image_id]


def image_row(app, image_id: str):
    with app.app_context(), imglink.core.db.database.connection_context():
        return Image.get_or_none(Image.id == image_id)


def assert_envelope_error(r, status: int, code: str) -> dict:
    assert r.status_code == status, r.get_data(as_text=True)
    assert r.mimetype == "application/json"
    body = r.json
    assert body["success"] is False
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body


def invoke(app, runner, *args):
    """Run an `imglink` command as the real CLI does (FlaskGroup pushes the app context)."""
    with app.app_context():
        return runner.invoke(args=list(args))


def revoke(app, key: str) -> None:
    with app.app_context(), imglink.core.db.database.connection_context():
        accounts.revoke_key(key)


# GET /api/v1/image/{id} ----------------------------------------------------------------------

def test_get_image_is_upload_object_without_secrets(client, make_account):
    email, key = make_account("free")
    r = upload(client, make_image(size=(40, 30)), "holiday.jpg", headers=auth(key),
               album="trip", expiry="5")
    assert r.status_code == 200
    up = r.json["data"]
    token = up["delete_token"]

    for headers in ({}, auth(key)):
        got = client.get(f"/api/v1/image/{up['id']}", headers=headers)
        assert got.status_code == 200
        assert got.mimetype == "application/json"
        assert got.json["success"] is True
        data = got.json["data"]
        # Every field of API.md's image object, equal to the upload's; nothing the upload
        # did not return; and none of the upload-only secrets.
        assert IMAGE_FIELDS <= set(data) <= set(up)
        assert "delete_token" not in data
        for name in data:
            if name != "links":
                assert data[name] == up[name], name
        assert data["links"] == {k: v for k, v in up["links"].items() if k != "delete"}
        assert set(data["links"]) == {"direct", "thumbnail", "view_page", "bbcode", "html",
                                      "markdown"}
        text = got.get_data(as_text=True)
        for secret in (token, key, email, "delete_token", "/delete", "key_hash"):
            assert secret not in text
        with client.application.app_context(), imglink.core.db.database.connection_context():
            row = Image.get_by_id(up["id"])
        assert row.delete_token_hash not in text


def test_get_not_found_bodies_identical_for_unknown_malformed_deleted_expired(app, client):
    deleted, expired = deleted_and_expired(app, client)
    ids = {
        "unknown": "A" * len(deleted),
        "malformed": "not-an-id!",
        "deleted": deleted,
        "expired": expired,
    }
    bodies = {}
    for kind, image_id in ids.items():
        r = client.get(f"/api/v1/image/{image_id}")
        assert_envelope_error(r, 404, "NOT_FOUND")
        bodies[kind] = r.get_data()
    assert len(set(bodies.values())) == 1, bodies


# DELETE /api/v1/image/{id} -------------------------------------------------------------------

def test_owner_key_deletes_image_files_and_links(app, client, make_account):
    _, key = make_account("free")
    data = uploaded(client, headers=auth(key))
    image_id = data["id"]
    assert len(stored_keys(app, image_id)) == 2  # original and thumbnail
    assert client.get(path_of(data["links"]["direct"])).status_code == 200

    r = client.delete(f"/api/v1/image/{image_id}", headers=auth(key))
    assert r.status_code == 200, r.json
    assert r.json["success"] is True

    assert stored_keys(app, image_id) == []
    assert image_row(app, image_id) is None
    assert_envelope_error(client.get(f"/api/v1/image/{image_id}"), 404, "NOT_FOUND")
    assert client.get(path_of(data["links"]["direct"])).status_code == 404
    assert client.get(path_of(data["links"]["thumbnail"])).status_code == 404
    assert client.get(path_of(data["links"]["view_page"])).status_code == 404
    # A second delete finds nothing.
    assert_envelope_error(client.delete(f"/api/v1/image/{image_id}", headers=auth(key)),
                          404, "NOT_FOUND")


def test_delete_token_header_deletes_anonymous_upload(app, client):
    data = uploaded(client)
    r = client.delete(f"/api/v1/image/{data['id']}",
                      headers={"X-Delete-Token": data["delete_token"]})
    assert r.status_code == 200, r.json
    assert r.json["success"] is True
    assert stored_keys(app, data["id"]) == []
    assert client.get(f"/api/v1/image/{data['id']}").status_code == 404


@embedded_only
def test_delete_token_of_keyed_upload_works_without_the_key(app, client, make_account):
    _, key = make_account("free")
    data = uploaded(client, headers=auth(key))
    r = client.delete(f"/api/v1/image/{data['id']}",
                      headers={"X-Delete-Token": data["delete_token"]})
    assert r.status_code == 200
    assert image_row(app, data["id"]) is None


@embedded_only
@pytest.mark.parametrize("case, status, code", [
    ("no_credentials", 401, "UNAUTHORIZED"),
    ("other_account_key", 403, "FORBIDDEN"),
    ("key_on_anonymous_image", 403, "FORBIDDEN"),
    ("wrong_token", 403, "FORBIDDEN"),
    ("token_of_other_image", 403, "FORBIDDEN"),
])
def test_delete_refused(app, client, make_account, case, status, code):
    _, owner_key = make_account("free")
    _, other_key = make_account("pro")
    owned = uploaded(client, headers=auth(owner_key))
    anonymous = uploaded(client)
    target, headers = {
        "no_credentials": (owned, {}),
        "other_account_key": (owned, auth(other_key)),
        "key_on_anonymous_image": (anonymous, auth(other_key)),
        "wrong_token": (anonymous, {"X-Delete-Token": "x" * len(anonymous["delete_token"])}),
        "token_of_other_image": (anonymous, {"X-Delete-Token": owned["delete_token"]}),
    }[case]

    r = client.delete(f"/api/v1/image/{target['id']}", headers=headers)
    assert_envelope_error(r, status, code)

    # Nothing was deleted.
    for image in (owned, anonymous):
        assert client.get(f"/api/v1/image/{image['id']}").status_code == 200
        assert len(stored_keys(app, image["id"])) == 2
        assert client.get(path_of(image["links"]["direct"])).status_code == 200


# Authentication: a bad key is always 401, never anonymous ------------------------------------

ENDPOINTS = ["limits", "get_image", "delete_image", "upload", "bulk"]
BAD_CREDENTIALS = ["malformed", "bad_checksum", "unknown", "revoked", "basic",
                   "other_scheme_valid_key", "empty_bearer", "query_api_key",
                   "query_key_valid_header"]


def _bad_request_parts(app, make_account, kind: str) -> tuple[dict, str]:
    """Return (headers, query string) carrying the bad credentials of `kind`."""
    _, valid = make_account("free")
    if kind == "malformed":
        return {"Authorization": "Bearer not-a-real-key"}, ""
    if kind == "bad_checksum":
        last = valid[-1]
        return auth(valid[:-1] + ("A" if last != "A" else "B")), ""
    if kind == "unknown":
        return auth(auth_module.generate_key()), ""
    if kind == "revoked":
        revoke(app, valid)
        return auth(valid), ""
    if kind == "basic":
        return {"Authorization": "Basic dXNlcjpwYXNzd29yZA=="}, ""
    if kind == "other_scheme_valid_key":
        return {"Authorization": f"Token {valid}"}, ""
    if kind == "empty_bearer":
        return {"Authorization": "Bearer "}, ""
    if kind == "query_api_key":
        return {}, f"?api_key={valid}"
    if kind == "query_key_valid_header":
        return auth(valid), f"?api_key={valid}"
    raise AssertionError(kind)


@embedded_only
@pytest.mark.parametrize("kind", BAD_CREDENTIALS)
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_bad_credentials_are_401_on_every_endpoint(app, client, make_account, endpoint, kind):
    target = uploaded(client)  # anonymous: its delete token would let an anonymous call through
    headers, query = _bad_request_parts(app, make_account, kind)
    image_path = f"/api/v1/image/{target['id']}{query}"
    if endpoint == "limits":
        r = client.get(f"/api/v1/limits{query}", headers=headers)
    elif endpoint == "get_image":
        r = client.get(image_path, headers=headers)
    elif endpoint == "delete_image":
        r = client.delete(image_path,
                          headers={**headers, "X-Delete-Token": target["delete_token"]})
    elif endpoint == "upload":
        r = client.post(f"/api/v1/upload{query}", headers=headers,
                        data={"file": (io.BytesIO(make_image()), "a.jpg")},
                        content_type="multipart/form-data")
    else:
        r = client.post(f"/api/v1/upload/bulk{query}", headers=headers,
                        data={"files": [(io.BytesIO(make_image()), "a.jpg")]},
                        content_type="multipart/form-data")
    assert_envelope_error(r, 401, "UNAUTHORIZED")

    # Nothing happened as an anonymous fall-back: the target is intact, nothing new stored.
    assert client.get(f"/api/v1/image/{target['id']}").status_code == 200
    with app.app_context(), imglink.core.db.database.connection_context():
        assert Image.select().count() == 1


def test_valid_unknown_and_revoked_keys(app, client, make_account):
    _, key = make_account("pro")
    assert client.get("/api/v1/limits", headers=auth(key)).json["data"]["plan"] == "pro"
    unknown = auth_module.generate_key()
    assert_envelope_error(client.get("/api/v1/limits", headers=auth(unknown)), 401,
                          "UNAUTHORIZED")
    revoke(app, key)
    assert_envelope_error(client.get("/api/v1/limits", headers=auth(key)), 401, "UNAUTHORIZED")


# Ids ---------------------------------------------------------------------------------------

@embedded_only
def test_ids_are_long_base62_and_unique(client):
    ids = []
    for _ in range(25):
        r = upload(client, make_image(size=(8, 8)), "x.png")
        assert r.status_code == 200
        ids.append(r.json["data"]["id"])
    for image_id in ids:
        assert BASE62.match(image_id), image_id
    assert len(set(ids)) == len(ids)


def test_deleted_id_is_retired_and_never_reused(app, client, monkeypatch):
    first = uploaded(client)
    retired_id = first["id"]
    assert client.delete(f"/api/v1/image/{retired_id}",
                         headers={"X-Delete-Token": first["delete_token"]}).status_code == 200
    with app.app_context(), imglink.core.db.database.connection_context():
        assert RetiredId.get_or_none(RetiredId.id == retired_id) is not None

    # The id generator draws the retired id first, then a fresh one.
    fresh_id = "Zz9" + retired_id[3:][::-1]
    if fresh_id == retired_id:
        fresh_id = "Q" * len(retired_id)
    assert BASE62.match(fresh_id) and fresh_id != retired_id
    planned = iter([retired_id, fresh_id])
    monkeypatch.setattr(imglink.core.uploads, "random_image_id", lambda: next(planned))
    second = uploaded(client)
    assert second["id"] == fresh_id
    assert client.get(f"/api/v1/image/{retired_id}").status_code == 404
    assert client.get(f"/api/v1/image/{fresh_id}").status_code == 200


# Expiry ------------------------------------------------------------------------------------

def test_expired_image_is_gone_everywhere_at_once_then_purged(app, client, runner):
    keep = uploaded(client)  # permanent: the purge must leave it alone
    data = uploaded(client, expiry="1")
    assert data["expires_at"] is not None and data["expires_at"].endswith("Z")
    image_id = data["id"]
    assert client.get(f"/api/v1/image/{image_id}").status_code == 200

    expire_now(app, image_id)

    assert_envelope_error(client.get(f"/api/v1/image/{image_id}"), 404, "NOT_FOUND")
    page = client.get(path_of(data["links"]["view_page"]))
    assert page.status_code == 404 and page.mimetype == "text/html"
    assert client.get(path_of(data["links"]["direct"])).status_code == 404
    assert client.get(path_of(data["links"]["thumbnail"])).status_code == 404
    # Files and record are still there until the purge; the 404 comes from the expiry itself.
    assert len(stored_keys(app, image_id)) == 2

    result = invoke(app, runner, "purge-expired")
    assert result.exit_code == 0, result.output
    assert re.search(r"\b1\b", result.output), result.output
    assert stored_keys(app, image_id) == []
    assert image_row(app, image_id) is None

    again = invoke(app, runner, "purge-expired")
    assert again.exit_code == 0, again.output
    assert re.search(r"\b0\b", again.output), again.output
    assert not re.search(r"\b1\b", again.output), again.output

    assert client.get(f"/api/v1/image/{keep['id']}").status_code == 200
    assert len(stored_keys(app, keep["id"])) == 2


@embedded_only
def test_expiry_follows_the_clock(app, client, clock):
    data = uploaded(client, expiry="1")
    image_id = data["id"]
    clock.advance(minutes=58)
    assert client.get(f"/api/v1/image/{image_id}").status_code == 200
    assert client.get(path_of(data["links"]["direct"])).status_code == 200
    clock.advance(minutes=4)
    assert client.get(f"/api/v1/image/{image_id}").status_code == 404
    assert client.get(path_of(data["links"]["direct"])).status_code == 404
    assert client.get(path_of(data["links"]["view_page"])).status_code == 404


# The envelope for framework errors -----------------------------------------------------------

@embedded_only
def test_unknown_api_route_is_enveloped_404(client):
    assert_envelope_error(client.get("/api/v1/no-such-thing"), 404, "NOT_FOUND")


@embedded_only
@pytest.mark.parametrize("method, path", [
    ("PUT", "/api/v1/upload"),
    ("GET", "/api/v1/upload"),
    ("PATCH", "/api/v1/image/AAAAAAAAAA"),
    ("POST", "/api/v1/limits"),
])
def test_wrong_method_is_enveloped_405(client, method, path):
    r = client.open(path, method=method)
    assert_envelope_error(r, 405, "METHOD_NOT_ALLOWED")
    assert "Allow" in r.headers


SECRET_DETAIL = "kaboom-internal-detail-8471 at /srv/imglink/services.py"


@embedded_only
def test_unexpected_exception_in_a_service_is_enveloped_500(client, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError(SECRET_DETAIL)

    monkeypatch.setattr(imglink.core.images, "get_image", explode)
    r = client.get("/api/v1/image/AAAAAAAAAA")
    body = assert_envelope_error(r, 500, "INTERNAL_ERROR")
    text = r.get_data(as_text=True)
    assert "kaboom" not in text and "Traceback" not in text and "RuntimeError" not in text
    assert ".py" not in text
    assert set(body) == {"success", "error"}


@embedded_only
def test_unexpected_exception_on_a_route_is_enveloped_500(app):
    def boom():
        raise RuntimeError(SECRET_DETAIL)

    app.add_url_rule("/api/v1/_test_boom", "test_boom", boom)
    client = app.test_client()
    r = client.get("/api/v1/_test_boom")
    try:
        assert_envelope_error(r, 500, "INTERNAL_ERROR")
        text = r.get_data(as_text=True)
        assert "kaboom" not in text and "Traceback" not in text
    finally:
        r.close()


# CORS ----------------------------------------------------------------------------------------

@embedded_only
@pytest.mark.parametrize("path, method, header", [
    ("/api/v1/upload", "POST", "Authorization"),
    ("/api/v1/image/AAAAAAAAAA", "DELETE", "X-Delete-Token"),
], ids=["upload", "delete"])
def test_preflight_allows_the_method_and_header(client, path, method, header):
    r = client.options(path, headers={
        "Origin": "https://example.org",
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": header,
    })
    assert 200 <= r.status_code < 300
    assert r.headers.get("Access-Control-Allow-Origin") in ("*", "https://example.org")
    allow_headers = [h.strip().lower()
                     for h in r.headers.get("Access-Control-Allow-Headers", "").split(",")]
    assert header.lower() in allow_headers
    allow_methods = [m.strip().upper()
                     for m in r.headers.get("Access-Control-Allow-Methods", "").split(",")]
    assert method in allow_methods


@embedded_only
def test_normal_and_error_responses_carry_cors_origin(client):
    origin = {"Origin": "https://example.org"}
    ok = upload(client, make_image(), headers=origin)
    assert ok.status_code == 200
    image_id = ok.json["data"]["id"]
    responses = [
        ok,
        client.get(f"/api/v1/image/{image_id}", headers=origin),
        client.get("/api/v1/limits", headers=origin),
        client.get("/api/v1/image/AAAAAAAAAA", headers=origin),  # 404
        client.get("/api/v1/limits", headers={**origin, **auth("ilk_bad")}),  # 401
    ]
    for r in responses:
        assert r.headers.get("Access-Control-Allow-Origin") in ("*", "https://example.org"), \
            (r.status_code, dict(r.headers))


@embedded_only
def test_preflights_do_not_consume_the_quota(client):
    before = client.get("/api/v1/limits")
    remaining = int(before.headers["X-RateLimit-Remaining"])
    for _ in range(5):
        r = client.options("/api/v1/upload", headers={
            "Origin": "https://example.org", "Access-Control-Request-Method": "POST"})
        assert 200 <= r.status_code < 300
    after = client.get("/api/v1/limits")
    assert int(after.headers["X-RateLimit-Remaining"]) == remaining - 1


def test_preflight_answered_when_quota_is_spent(tmp_path):
    plans = {
        "anonymous": {"hourly": 2, "max_file": 1024 * 1024, "bulk": 2},
        "free": {"hourly": 5, "max_file": 1024 * 1024, "bulk": 5},
        "pro": {"hourly": 10, "max_file": 1024 * 1024, "bulk": 10},
        "enterprise": {"hourly": None, "max_file": 1024 * 1024, "bulk": None},
    }
    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path / "tight"),
                      "SECRET_KEY": "test-secret", "RATELIMIT_ENABLED": True,
                      "RATELIMIT_STORAGE_URI": "memory://", "PLANS": plans})
    client = app.test_client()
    statuses = []
    for _ in range(3):
        r = client.get("/api/v1/limits")
        statuses.append(r.status_code)
        r.close()
    assert statuses == [200, 200, 429]
    r = client.options("/api/v1/upload", headers={
        "Origin": "https://example.org", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Authorization"})
    assert 200 <= r.status_code < 300
    assert "authorization" in r.headers.get("Access-Control-Allow-Headers", "").lower()
    r.close()


# Health --------------------------------------------------------------------------------------

def test_health_ok(client):
    r = client.get("/api/v1/health")
    assert r.status_code == 200
    assert r.mimetype == "application/json"
    assert r.json["success"] is True


def _fail_storage(app, monkeypatch):
    def broken():
        raise OSError("storage folder is not writable")
    monkeypatch.setattr(storage_of(app), "check", broken)


def _fail_database(app, monkeypatch):
    from peewee import OperationalError

    real = imglink.core.db.database.obj

    def broken(sql, *args, **kwargs):
        if sql.strip().upper().startswith("SELECT 1"):
            raise OperationalError("unable to open database file")
        return type(real).execute_sql(real, sql, *args, **kwargs)

    monkeypatch.setattr(real, "execute_sql", broken)


@pytest.mark.parametrize("break_part", [_fail_storage, _fail_database],
                         ids=["storage", "database"])
def test_health_503_when_a_part_fails(app, client, monkeypatch, break_part):
    break_part(app, monkeypatch)
    r = client.get("/api/v1/health")
    assert r.status_code == 503
    assert r.mimetype == "application/json"
    body = r.json
    assert body["success"] is False
    assert re.fullmatch(r"[A-Z][A-Z_]+", body["error"]["code"])
    assert body["error"]["message"]
    assert "unable to open" not in r.get_data(as_text=True)


# Limits --------------------------------------------------------------------------------------

@embedded_only
@pytest.mark.parametrize("plan", [None, "free", "pro", "enterprise"])
def test_limits_report_the_callers_plan(app, client, make_account, plan):
    headers = auth(make_account(plan)[1]) if plan else {}
    r = client.get("/api/v1/limits", headers=headers)
    assert r.status_code == 200
    assert r.mimetype == "application/json"
    data = r.json["data"]
    name = plan or "anonymous"
    spec = app.config["PLANS"][name]
    assert data["plan"] == name
    assert data["requests_per_hour"] == spec["hourly"]
    assert data["max_file_size"] == spec["max_file"]
    assert data["max_files_per_bulk"] == spec["bulk"]
    for header in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"):
        assert header in r.headers


@embedded_only
def test_limits_match_the_documented_plans(client, make_account):
    anon = client.get("/api/v1/limits").json["data"]
    assert (anon["requests_per_hour"], anon["max_file_size"], anon["max_files_per_bulk"]) == \
        (100, 64 * 1024 * 1024, 10)
    free = client.get("/api/v1/limits", headers=auth(make_account("free")[1])).json["data"]
    assert (free["requests_per_hour"], free["max_file_size"], free["max_files_per_bulk"]) == \
        (1000, 64 * 1024 * 1024, 50)

