"""The files (/i/, /t/) and the pages: view page, delete page, home page and form upload."""
from __future__ import annotations

import io
import re
from html.parser import HTMLParser

import pytest
from PIL import Image as PILImage

import imglink.core.db
import imglink.core.models
from conftest import auth, deleted_and_expired, make_image, path_of, upload, uploaded
from imglink.web import tokens
from imglink.core.models import Image

LINK_KEYS = ("direct", "thumbnail", "view_page", "bbcode", "html", "markdown")
HOSTILE = '"><script>alert(1)</script>'
# No '/' (the name is cut to its last component) and no '"' (the test client's multipart
# encoder does not escape it, unlike browsers): the name reaches the app whole.
HOSTILE_FILENAME = "'><script>alert(1)<img src=x onerror=alert(2)>.jpg"

# Every app test runs on both deployments (conftest's `backend`). Matrices that exercise the
# HTTP layer rather than the database or the storage run on the embedded one only, to stay fast.
embedded_only = pytest.mark.parametrize("backend", ["embedded"], indirect=True)


# Helpers -------------------------------------------------------------------------------------

class Tags(HTMLParser):
    """Collect every start tag with its attributes, and the page's text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def find(self, tag: str, **attrs) -> list[dict]:
        return [a for t, a in self.tags
                if t == tag and all(a.get(k.rstrip("_").replace("_", "-")) == v
                                    for k, v in attrs.items())]

    def meta(self) -> dict[str, str]:
        out = {}
        for tag, a in self.tags:
            if tag == "meta" and (a.get("property") or a.get("name")):
                out[a.get("property") or a.get("name")] = a.get("content")
        return out

    def plain_text(self) -> str:
        return re.sub(r"\s+", " ", " ".join(self.text))


def image_count(app) -> int:
    with app.app_context(), imglink.core.db.database.connection_context():
        return Image.select().count()


def stored_originals(app) -> list[str]:
    return [k for k in app.extensions["imglink.storage"].keys() if k.startswith("i/")]


def delete_form(client, data: dict) -> tuple[str, dict[str, str]]:
    """Open the image's delete link; return the form's action and its hidden fields."""
    r = client.get(path_of(data["links"]["delete"]))
    assert r.status_code == 200, r.get_data(as_text=True)
    page = Tags(r.get_data(as_text=True))
    forms = [a for t, a in page.tags if t == "form" and (a.get("method") or "").lower() == "post"]
    assert len(forms) == 1
    hidden = {a["name"]: a.get("value") for a in page.find("input", type="hidden")}
    action = forms[0].get("action") or path_of(data["links"]["delete"]).split("?")[0]
    return path_of(action), hidden


# /i/ and /t/ -----------------------------------------------------------------------------

@embedded_only
@pytest.mark.parametrize("fmt, filename, ext, mime", [
    ("JPEG", "a.jpg", "jpg", "image/jpeg"),
    ("PNG", "a.png", "png", "image/png"),
    ("GIF", "a.gif", "gif", "image/gif"),
    ("WEBP", "a.webp", "webp", "image/webp"),
])
def test_original_is_served_exactly_with_headers(client, fmt, filename, ext, mime):
    data_bytes = make_image(fmt, size=(50, 40))
    data = uploaded(client, data_bytes, filename)
    assert data["links"]["direct"].endswith(f"/i/{data['id']}.{ext}")

    r = client.get(path_of(data["links"]["direct"]))
    assert r.status_code == 200
    assert r.get_data() == data_bytes
    assert r.headers["Content-Type"].split(";")[0] == mime
    assert len(data_bytes) == data["size"]
    assert r.headers.get("ETag")
    assert r.headers.get("X-Content-Type-Options") == "nosniff"
    assert "sandbox" in r.headers.get("Content-Security-Policy", "")
    match = re.search(r"max-age=(\d+)", r.headers.get("Cache-Control", ""))
    assert match and int(match.group(1)) >= 30 * 24 * 3600
    assert "no-cache" not in r.headers["Cache-Control"]
    assert "private" not in r.headers["Cache-Control"]


def test_thumbnail_is_served_with_headers(client):
    data = uploaded(client, make_image("PNG", size=(800, 400), mode="RGBA",
                                       color=(0, 0, 255, 128)), "wide.png")
    r = client.get(path_of(data["links"]["thumbnail"]))
    assert r.status_code == 200
    body = r.get_data()
    ext = data["links"]["thumbnail"].rsplit(".", 1)[-1]
    assert r.headers["Content-Type"].split(";")[0] == {
        "jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}[ext]
    assert r.headers.get("ETag")
    assert r.headers["ETag"] != client.get(path_of(data["links"]["direct"])).headers["ETag"]
    assert r.headers.get("X-Content-Type-Options") == "nosniff"
    assert "sandbox" in r.headers.get("Content-Security-Policy", "")
    match = re.search(r"max-age=(\d+)", r.headers.get("Cache-Control", ""))
    assert match and int(match.group(1)) >= 30 * 24 * 3600
    with PILImage.open(io.BytesIO(body)) as thumb:
        assert max(thumb.size) <= 320
        assert thumb.size == (320, 160)


@pytest.mark.parametrize("which", ["direct", "thumbnail"])
def test_file_is_served_with_exact_content_length(client, which):
    image_bytes = make_image(size=(70, 50))
    data = uploaded(client, image_bytes)
    r = client.get(path_of(data["links"][which]))
    assert r.status_code == 200
    assert r.headers["Content-Type"].split(";")[0] == "image/jpeg"
    assert r.headers.get("ETag")
    if which == "direct":
        assert r.get_data() == image_bytes
    assert "Content-Length" in r.headers, dict(r.headers)
    assert int(r.headers["Content-Length"]) == len(r.get_data())
    if which == "direct":
        assert int(r.headers["Content-Length"]) == data["size"]


@embedded_only
@pytest.mark.parametrize("which", ["direct", "thumbnail"])
def test_conditional_get_gives_304(client, which):
    data = uploaded(client)
    path = path_of(data["links"][which])
    etag = client.get(path).headers["ETag"]
    r = client.get(path, headers={"If-None-Match": etag})
    assert r.status_code == 304
    assert r.get_data() == b""
    other = client.get(path, headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200


def test_range_request_gives_exact_bytes(client):
    data_bytes = make_image(size=(60, 60))
    data = uploaded(client, data_bytes)
    r = client.get(path_of(data["links"]["direct"]), headers={"Range": "bytes=0-9"})
    assert r.status_code == 206
    assert r.get_data() == data_bytes[:10]
    assert r.headers.get("Content-Range") == f"bytes 0-9/{len(data_bytes)}"
    assert r.headers.get("Content-Length") == "10"

    tail = client.get(path_of(data["links"]["direct"]), headers={"Range": "bytes=10-"})
    assert tail.status_code == 206
    assert tail.get_data() == data_bytes[10:]


@embedded_only
@pytest.mark.parametrize("suffix", ["png", "html", "gif", "JPG", "jpeg", "jpg.html", ""])
def test_wrong_extension_is_404(client, suffix):
    data = uploaded(client)  # a JPEG: only .jpg names it
    name = f"{data['id']}.{suffix}" if suffix else data["id"]
    assert client.get(f"/i/{name}").status_code == 404


@embedded_only
def test_thumbnail_wrong_extension_is_404(client):
    data = uploaded(client, make_image("PNG"), "a.png")
    thumb_ext = data["links"]["thumbnail"].rsplit(".", 1)[-1]
    wrong = "jpg" if thumb_ext != "jpg" else "png"
    assert client.get(f"/t/{data['id']}.{wrong}").status_code == 404
    assert client.get(f"/t/{data['id']}.html").status_code == 404


@embedded_only
@pytest.mark.parametrize("path", ["/i/AAAAAAAAAA.jpg", "/t/AAAAAAAAAA.jpg", "/i/x.jpg",
                                  "/i/.jpg", "/t/nothing"])
def test_unknown_file_is_404(client, path):
    r = client.get(path)
    assert r.status_code == 404
    assert r.mimetype == "text/html"


@embedded_only
@pytest.mark.parametrize("prefix", ["/i/", "/t/"])
@pytest.mark.parametrize("attack", [
    "..%2f..%2fetc%2fpasswd",
    "%2e%2e/x",
    "%2e%2e%2f%2e%2e%2fimglink.db",
    "..%5c..%5cimglink.db",
    "....//....//etc/passwd",
    "..%252f..%252fetc%252fpasswd",
    "%2e%2e%2fsecret_key",
    "..%2fsecret_key",
])
def test_path_traversal_is_refused(client, prefix, attack):
    r = client.get(prefix + attack)
    assert 400 <= r.status_code < 500, r.status_code
    body = r.get_data()
    assert b"root:" not in body
    assert b"SQLite format" not in body
    assert b"test-secret" not in body


@embedded_only
def test_traversal_to_a_real_stored_file_is_refused(app, client):
    data = uploaded(client)
    # The thumbnail's own storage key, reached from the /i/ route through a parent folder.
    shard = data["id"][:2]
    r = client.get(f"/i/..%2ft%2f{shard}%2f{data['id']}.jpg")
    assert 400 <= r.status_code < 500


@embedded_only
@pytest.mark.parametrize("credentials", [
    {"headers": {"Authorization": "Basic dXNlcjpwYXNzd29yZA=="}},  # a site behind auth_basic
    {"headers": {"Authorization": "Bearer not-a-key"}},
    {"query_string": {"token": "x"}},
    {"query_string": {"key": "cache-buster"}},
])
def test_files_and_pages_need_no_credentials_and_ignore_them(client, credentials):
    data = uploaded(client)
    for link in ("direct", "thumbnail", "view_page"):
        r = client.get(path_of(data["links"][link]), **credentials)
        assert r.status_code == 200, (link, r.status_code)
    assert client.get("/", **credentials).status_code == 200


# The view page -----------------------------------------------------------------------------

def test_view_page_shows_image_details_links_and_meta(client):
    data = uploaded(client, make_image(size=(64, 48)), "cat.jpg")
    r = client.get(path_of(data["links"]["view_page"]))
    assert r.status_code == 200
    assert r.mimetype == "text/html"
    html = r.get_data(as_text=True)
    page = Tags(html)
    text = page.plain_text()

    assert page.find("img", src=data["links"]["direct"]), "the image itself is shown"
    assert re.search(r"64\s*(×|x|&times;)\s*48", text)
    assert f"{data['size']:,}" in text or str(data["size"]) in text
    assert "JPEG" in text
    assert "cat.jpg" in text

    values = {a.get("value") for a in page.find("input")}
    for key in LINK_KEYS:
        assert data["links"][key] in values, key
    # Each link's input has a copy button pointing at it.
    inputs_by_value = {a.get("value"): a for a in page.find("input")}
    buttons = [a for t, a in page.tags if t == "button"]
    copy_targets = {b.get("data-copy") for b in buttons}
    for key in LINK_KEYS:
        input_id = inputs_by_value[data["links"][key]].get("id")
        assert input_id and input_id in copy_targets, key
    assert sum(1 for b in buttons if "copy" in (b.get("class") or "")) >= 6

    meta = page.meta()
    assert meta["og:image"] == data["links"]["direct"]
    assert meta["og:image:width"] == "64"
    assert meta["og:image:height"] == "48"
    assert meta["og:image:type"] == "image/jpeg"
    assert meta["twitter:card"] == "summary_large_image"
    assert meta["twitter:image"] == data["links"]["direct"]

    # No delete secret on the public page.
    assert data["delete_token"] not in html
    assert "/delete" not in html


@embedded_only
def test_view_page_escapes_hostile_filename_and_album(client, make_account):
    _, key = make_account("free")
    r = upload(client, make_image(), HOSTILE_FILENAME, headers=auth(key), album=HOSTILE)
    assert r.status_code == 200, r.json
    data = r.json["data"]
    assert "<script>" in data["filename"] and data["album"] == HOSTILE  # kept, to be escaped

    page = client.get(path_of(data["links"]["view_page"]))
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "<script>alert" not in html
    assert "<img src=x" not in html
    assert '"><script' not in html and "'><script" not in html
    # Shown (escaped), not dropped.
    assert "&lt;script&gt;alert(1)" in html
    parsed = Tags(html)
    assert HOSTILE in parsed.plain_text()  # the album, shown as text
    # No script element other than external ones.
    assert all(a.get("src") for t, a in parsed.tags if t == "script")


@embedded_only
def test_view_page_csp_forbids_inline_script(client):
    data = uploaded(client)
    r = client.get(path_of(data["links"]["view_page"]))
    csp = r.headers.get("Content-Security-Policy", "")
    assert csp
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    assert re.search(r"(script-src|default-src) [^;]*'self'", csp)
    assert r.headers.get("X-Content-Type-Options") == "nosniff"
    page = Tags(r.get_data(as_text=True))
    assert all(a.get("src") for t, a in page.tags if t == "script")


def test_view_page_404_identical_for_unknown_deleted_expired(app, client):
    deleted, expired = deleted_and_expired(app, client)
    bodies = {}
    for kind, image_id in (("unknown", "B" * len(deleted)),
                           ("malformed", "not-an-id"),
                           ("deleted", deleted),
                           ("expired", expired)):
        r = client.get(f"/image/{image_id}")
        assert r.status_code == 404, kind
        assert r.mimetype == "text/html", kind
        assert not r.get_data(as_text=True).lstrip().startswith("{")
        bodies[kind] = r.get_data()
    assert len(set(bodies.values())) == 1
    assert b"<html" in bodies["unknown"].lower()


# The delete page ---------------------------------------------------------------------------

def test_delete_page_confirms_then_deletes(app, client):
    data = uploaded(client)
    action, hidden = delete_form(client, data)
    assert hidden.get("token") == data["delete_token"]
    assert hidden.get("form_token")

    # Opening the page deleted nothing.
    assert client.get(path_of(data["links"]["direct"])).status_code == 200

    r = client.post(action, data=hidden)
    assert r.status_code == 200
    assert r.mimetype == "text/html"
    assert "deleted" in r.get_data(as_text=True).lower()
    assert client.get(path_of(data["links"]["direct"])).status_code == 404
    assert client.get(path_of(data["links"]["thumbnail"])).status_code == 404
    assert client.get(f"/api/v1/image/{data['id']}").status_code == 404
    assert not [k for k in app.extensions["imglink.storage"].keys() if data["id"] in k]

    # The used link is dead.
    again = client.get(path_of(data["links"]["delete"]))
    assert again.status_code == 404
    assert again.mimetype == "text/html"
    assert client.post(action, data=hidden).status_code == 404


def signed_form(app, data: dict) -> tuple[str, dict[str, str]]:
    """The form the delete page renders for `data`, made without opening the page (whose
    GET is tested on its own above): the delete token and a fresh signed form token."""
    with app.test_request_context():
        form_token = tokens.sign(tokens.DELETE_FORM, data["id"])
    return f"/image/{data['id']}/delete", {"token": data["delete_token"],
                                            "form_token": form_token}


@embedded_only
@pytest.mark.parametrize("case", ["valid", "no_form_token", "forged_form_token",
                                  "other_images_form_token", "other_secret_form_token",
                                  "no_token", "wrong_token", "other_images_token"])
def test_delete_post_needs_both_tokens(app, client, case):
    data = uploaded(client)
    other = uploaded(client)
    action, hidden = signed_form(app, data)
    _, other_hidden = signed_form(app, other)
    form = dict(hidden)
    if case == "no_form_token":
        del form["form_token"]
    elif case == "forged_form_token":
        form["form_token"] = hidden["form_token"][:-4] + ("AAAA" if not hidden["form_token"]
                                                          .endswith("AAAA") else "BBBB")
    elif case == "other_images_form_token":
        form["form_token"] = other_hidden["form_token"]
    elif case == "other_secret_form_token":
        from itsdangerous import URLSafeTimedSerializer
        form["form_token"] = URLSafeTimedSerializer(
            "not-the-secret", salt=tokens.DELETE_FORM).dumps(data["id"])
    elif case == "no_token":
        del form["token"]
    elif case == "wrong_token":
        form["token"] = "x" * len(hidden["token"])
    elif case == "other_images_token":
        form["token"] = other_hidden["token"]

    r = client.post(action, data=form)
    assert r.mimetype == "text/html"
    if case == "valid":  # the control: the same form, untouched, deletes
        assert r.status_code == 200
        assert client.get(path_of(data["links"]["direct"])).status_code == 404
        assert image_count(app) == 1
        return
    assert 400 <= r.status_code < 500, r.status_code
    for image in (data, other):
        assert client.get(path_of(image["links"]["direct"])).status_code == 200
    assert image_count(app) == 2


@embedded_only
@pytest.mark.parametrize("query", ["?token=wrong", "", "?token=", "?form_token=x"])
def test_delete_page_with_bad_token_is_refused(client, query):
    data = uploaded(client)
    r = client.get(f"/image/{data['id']}/delete{query}")
    assert 400 <= r.status_code < 500
    assert r.mimetype == "text/html"
    assert 'name="form_token"' not in r.get_data(as_text=True)
    assert client.get(path_of(data["links"]["direct"])).status_code == 200


@embedded_only
def test_delete_page_with_other_images_token_is_refused(client):
    data = uploaded(client)
    other = uploaded(client)
    token = other["delete_token"]
    r = client.get(f"/image/{data['id']}/delete?token={token}")
    assert 400 <= r.status_code < 500
    assert 'name="form_token"' not in r.get_data(as_text=True)


# Home page and the plain form --------------------------------------------------------------

@embedded_only
def test_home_page_has_an_upload_form(client):
    r = client.get("/")
    assert r.status_code == 200
    assert r.mimetype == "text/html"
    page = Tags(r.get_data(as_text=True))
    forms = [a for t, a in page.tags if t == "form"]
    assert any((f.get("method") or "").lower() == "post"
               and f.get("enctype") == "multipart/form-data" for f in forms)
    files = page.find("input", type="file")
    assert files and files[0].get("name") == "files"


def test_plain_form_upload(app, client):
    image_bytes = make_image(size=(33, 22))
    r = client.post("/", data={"files": (io.BytesIO(image_bytes), "form.jpg")},
                    content_type="multipart/form-data")
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.mimetype == "text/html"
    page = Tags(r.get_data(as_text=True))

    assert image_count(app) == 1
    assert len(stored_originals(app)) == 1

    values = [a.get("value") for a in page.find("input")]
    direct = [v for v in values if v and re.search(r"/i/[A-Za-z0-9]{8,}\.jpg$", v)]
    assert len(direct) == 1
    got = client.get(path_of(direct[0]))
    assert got.status_code == 200 and got.get_data() == image_bytes
    assert "form.jpg" in page.plain_text()
    # The page gives the delete link, which works.
    delete_links = [a["href"] for t, a in page.tags
                    if t == "a" and "/delete?token=" in (a.get("href") or "")]
    assert len(delete_links) == 1
    assert client.get(path_of(delete_links[0])).status_code == 200


@embedded_only
def test_plain_form_upload_of_a_non_image_stores_nothing(app, client):
    r = client.post("/", data={"files": (io.BytesIO(b"not an image at all"), "x.jpg")},
                    content_type="multipart/form-data")
    assert 400 <= r.status_code < 500
    assert r.mimetype == "text/html"
    assert image_count(app) == 0
    assert stored_originals(app) == []
