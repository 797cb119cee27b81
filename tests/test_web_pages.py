"""The web experience, server side: oEmbed, the upload form's fields and limits, the error
pages, and the strict CSP (no inline script or style in any page or template)."""
from __future__ import annotations

import datetime as dt
import io
import os
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from PIL import Image as PILImage

import imglink.core.db
from conftest import ROOT, base_config, make_image, path_of, upload, uploaded
from imglink import config as defaults
from imglink import create_app
from imglink.core.models import Image
from imglink.web.pages import human_size

embedded_only = pytest.mark.parametrize("backend", ["embedded"], indirect=True)
TEMPLATES = ROOT / "templates"
STATIC = ROOT / "static"


class Page(HTMLParser):
    """Start tags with their attributes, inline script and style bodies, and the text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.inline_code: list[str] = []
        self._open: str | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._open = tag if tag in ("script", "style") else None

    handle_startendtag = handle_starttag

    def handle_endtag(self, tag):
        self._open = None

    def handle_data(self, data):
        if self._open:
            if data.strip():
                self.inline_code.append(f"<{self._open}>{data.strip()[:60]}")
        else:
            self.text.append(data)

    def find(self, tag: str, **attrs) -> list[dict]:
        return [a for t, a in self.tags
                if t == tag and all(a.get(k.replace("_", "-")) == v for k, v in attrs.items())]

    def plain_text(self) -> str:
        return re.sub(r"\s+", " ", " ".join(self.text))


def image_count(app) -> int:
    with app.app_context(), imglink.core.db.database.connection_context():
        return Image.select().count()


def noisy_png(size: tuple[int, int]) -> bytes:
    """Return a PNG of random pixels: it does not compress, so its size is about w*h*3."""
    out = io.BytesIO()
    PILImage.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3)).save(out, "PNG")
    return out.getvalue()


def form_post(client, files=(("form.jpg", None),), **fields):
    data = {"files": [(io.BytesIO(body if body is not None else make_image()), name)
                      for name, body in files], **fields}
    return client.post("/", data=data, content_type="multipart/form-data")


@pytest.fixture
def make_app(tmp_path):
    """Build an embedded app with settings of the test's own (small plans, say)."""
    def make(**config):
        return create_app({**base_config(tmp_path), **config})
    return make


def small_plans(**anonymous):
    plans = {name: dict(spec) for name, spec in defaults.PLANS.items()}
    plans["anonymous"].update(anonymous)
    return plans


# oEmbed ------------------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["view_page", "direct"])
def test_oembed_describes_the_image_as_a_photo(client, which):
    data = uploaded(client, make_image(size=(640, 480)), "sunset.jpg")
    r = client.get("/api/v1/oembed", query_string={"url": data["links"][which],
                                                    "format": "json"})
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.mimetype == "application/json"
    assert r.json == {
        "version": "1.0",
        "type": "photo",
        "url": data["links"]["direct"],
        "width": 640,
        "height": 480,
        "title": "sunset.jpg",
        "provider_name": "ImgLink",
        "provider_url": "http://localhost/",
    }


@embedded_only
@pytest.mark.parametrize("query, size", [
    ({"maxwidth": "320"}, (320, 240)),
    ({"maxheight": "120"}, (160, 120)),
    ({"maxwidth": "320", "maxheight": "120"}, (160, 120)),
    ({"maxwidth": "5000", "maxheight": "5000"}, (640, 480)),  # never scaled up
    ({"maxwidth": "1"}, (1, 1)),
    ({}, (640, 480)),
])
def test_oembed_scales_down_to_maxwidth_and_maxheight(client, query, size):
    data = uploaded(client, make_image(size=(640, 480)))
    r = client.get("/api/v1/oembed", query_string={"url": data["links"]["view_page"], **query})
    assert r.status_code == 200
    assert (r.json["width"], r.json["height"]) == size


@embedded_only
@pytest.mark.parametrize("make_url, status, code", [
    (lambda d: d["links"]["view_page"] + "?x=1", 200, None),
    (lambda d: d["links"]["view_page"] + "/", 200, None),
    (lambda d: "http://localhost/image/" + "Z" * len(d["id"]), 404, "NOT_FOUND"),
    (lambda d: "http://localhost/image/not-an-id", 404, "NOT_FOUND"),
    (lambda d: d["links"]["view_page"].replace("localhost", "evil.example"), 404, "NOT_FOUND"),
    (lambda d: d["links"]["direct"].replace(".jpg", ".png"), 404, "NOT_FOUND"),
    (lambda d: d["links"]["thumbnail"], 404, "NOT_FOUND"),
    (lambda d: "http://localhost/", 404, "NOT_FOUND"),
    (lambda d: "javascript:alert(1)", 404, "NOT_FOUND"),
    (lambda d: "", 400, "INVALID_PARAMETER"),
])
def test_oembed_answers_only_for_this_sites_images(client, make_url, status, code):
    data = uploaded(client)
    r = client.get("/api/v1/oembed", query_string={"url": make_url(data)})
    assert r.status_code == status, r.get_data(as_text=True)
    assert r.mimetype == "application/json"
    if code:
        assert r.json["success"] is False
        assert r.json["error"]["code"] == code
        assert r.json["error"]["message"]


@embedded_only
@pytest.mark.parametrize("query", [{"format": "xml"}, {"format": "XML"}, {"format": ""},
                                   {"maxwidth": "0"}, {"maxwidth": "-5"}, {"maxheight": "abc"},
                                   {"maxheight": "1.5"}])
def test_oembed_refuses_bad_parameters_in_the_envelope(client, query):
    """Only JSON is served: another format is 400 INVALID_PARAMETER (see the view's docstring)."""
    data = uploaded(client)
    r = client.get("/api/v1/oembed", query_string={"url": data["links"]["view_page"], **query})
    assert r.status_code == 400
    assert r.json["error"]["code"] == "INVALID_PARAMETER"


def test_oembed_of_a_deleted_image_is_404(client):
    data = uploaded(client)
    assert client.delete(f"/api/v1/image/{data['id']}",
                         headers={"X-Delete-Token": data["delete_token"]}).status_code == 200
    r = client.get("/api/v1/oembed", query_string={"url": data["links"]["view_page"]})
    assert r.status_code == 404
    assert r.json["error"]["code"] == "NOT_FOUND"


def test_view_page_advertises_its_oembed_document(client):
    data = uploaded(client, make_image(size=(300, 200)), "cat.jpg")
    page = Page(client.get(path_of(data["links"]["view_page"])).get_data(as_text=True))
    links = page.find("link", rel="alternate", type="application/json+oembed")
    assert len(links) == 1
    href = links[0]["href"]
    assert href.startswith("http://localhost/api/v1/oembed?")
    query = parse_qs(urlsplit(href).query)
    assert query == {"url": [data["links"]["view_page"]], "format": ["json"]}
    r = client.get(path_of(href))
    assert r.status_code == 200
    assert r.json["type"] == "photo" and r.json["url"] == data["links"]["direct"]
    assert (r.json["width"], r.json["height"]) == (300, 200)
    # The unfurling tags stay.
    meta = {a.get("property") or a.get("name"): a.get("content") for a in page.find("meta")}
    assert meta["og:image"] == data["links"]["direct"]
    assert meta["twitter:card"] == "summary_large_image"


# The view page -----------------------------------------------------------------------------

@embedded_only
def test_view_page_shows_size_in_people_units_date_expiry_and_album(client, api_key):
    body = noisy_png((40, 30))
    data = uploaded(client, body, "big.png", expiry="48", album="trip",
                    headers={"Authorization": f"Bearer {api_key}"})
    text = Page(client.get(path_of(data["links"]["view_page"])).get_data(as_text=True)
                ).plain_text()
    assert human_size(data["size"]) in text
    assert f"{data['size']:,} bytes" in text
    assert "40 × 30 px" in text and "PNG" in text
    assert data["uploaded_at"][:10] in text and "UTC" in text
    assert "Expires" in text and data["expires_at"][:10] in text
    assert "trip" in text


@pytest.mark.parametrize("size, text", [
    (0, "0 bytes"), (1, "1 byte"), (1023, "1,023 bytes"), (1024, "1 KB"), (1536, "1.5 KB"),
    (10 * 1024 * 1024, "10 MB"), (64 * 1024 * 1024, "64 MB"), (123_456_789, "118 MB"),
    (1024 ** 3, "1 GB"), (5 * 1024 ** 4, "5 TB"),
])
def test_human_size(size, text):
    assert human_size(size) == text


# The home page and the plain form ----------------------------------------------------------

@embedded_only
def test_home_page_shows_the_anonymous_limits_up_front(client):
    r = client.get("/")
    assert r.status_code == 200
    page = Page(r.get_data(as_text=True))
    text = page.plain_text()
    assert "JPEG, PNG, GIF, WEBP, AVIF, BMP, TIFF" in text
    assert "up to 64 MB each" in text
    assert "up to 10 files at a time" in text
    # The same numbers, for the page's script, as GET /api/v1/limits names them.
    import json
    limits = json.loads(page.find("p", id="limits")[0]["data-limits"])
    api = client.get("/api/v1/limits").json["data"]
    for field in ("plan", "max_file_size", "max_files_per_bulk", "formats"):
        assert limits[field] == api[field], field
    assert limits["types"]["JPEG"]["extensions"][0] == "jpg"
    accept = page.find("input", type="file")[0]["accept"]
    assert "image/jpeg" in accept and ".png" in accept


def test_home_page_limits_follow_the_configuration(make_app):
    app = make_app(PLANS=small_plans(max_file=3000, bulk=2), ALLOWED_FORMATS=["PNG", "GIF"])
    text = Page(app.test_client().get("/").get_data(as_text=True)).plain_text()
    assert "PNG, GIF · up to 2.9 KB each · up to 2 files at a time" in text


@embedded_only
def test_home_page_form_has_album_expiry_and_a_js_only_api_key_field(client):
    page = Page(client.get("/").get_data(as_text=True))
    forms = page.find("form", id="upload-form")
    assert forms and forms[0]["method"] == "post" and forms[0]["enctype"] == "multipart/form-data"
    assert "multiple" in page.find("input", name="files", type="file")[0]
    album = page.find("input", name="album")
    assert album and album[0]["maxlength"] == "64"
    options = [a["value"] for t, a in page.tags if t == "option"]
    assert options[0] == "0" and "24" in options and all(o.isdigit() for o in options)
    assert page.find("select", name="expiry")
    # The key never goes with the plain form: the field has no name, and is for scripts only.
    key = page.find("input", id="api-key")
    assert key and "name" not in key[0] and key[0]["type"] == "password"
    assert "js-only" in page.find("details", id="api-key-box")[0]["class"]


def test_plain_form_upload_with_album_and_expiry(app, client):
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    r = form_post(client, album="holiday", expiry="24")
    assert r.status_code == 200, r.get_data(as_text=True)
    page = Page(r.get_data(as_text=True))
    view = [a["value"] for a in page.find("input") if "/image/" in (a.get("value") or "")]
    image_id = view[0].rsplit("/", 1)[-1]
    data = client.get(f"/api/v1/image/{image_id}").json["data"]
    assert data["album"] == "holiday"
    expires = dt.datetime.strptime(data["expires_at"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=dt.timezone.utc)
    assert dt.timedelta(hours=23, minutes=59) <= expires - before <= dt.timedelta(hours=24,
                                                                                 minutes=1)
    assert "holiday" in page.plain_text() and "expires" in page.plain_text()


@embedded_only
@pytest.mark.parametrize("fields", [
    {"expiry": "-1"}, {"expiry": "soon"}, {"expiry": "1.5"}, {"expiry": "999999999"},
    {"album": "x" * 65}, {"album": "bell\x07"},
])
def test_plain_form_validates_album_and_expiry_like_the_api(app, client, fields):
    api = upload(client, make_image(), **fields)
    assert api.status_code == 400 and api.json["error"]["code"] == "INVALID_PARAMETER"
    count = image_count(app)
    r = form_post(client, **fields)
    assert r.status_code == 400
    assert r.mimetype == "text/html"
    page = Page(r.get_data(as_text=True))
    assert api.json["error"]["message"] in page.plain_text()
    assert image_count(app) == count
    # The form is back, with what was typed.
    assert page.find("input", type="file", name="files")
    if "album" in fields:
        assert page.find("input", name="album")[0]["value"] == fields["album"]


def test_plain_form_refuses_more_files_than_the_plan_allows(make_app):
    app = make_app(PLANS=small_plans(bulk=2))
    client = app.test_client()
    r = form_post(client, files=[(f"{n}.jpg", None) for n in range(3)])
    assert r.status_code == 400
    assert "3 files sent; the anonymous plan allows 2 per request" in Page(r.get_data(as_text=True)).plain_text()
    assert image_count(app) == 0


@embedded_only
def test_plain_form_without_a_file_says_so(client):
    r = client.post("/", data={"album": "x"}, content_type="multipart/form-data")
    assert r.status_code == 400
    assert "Choose at least one image" in Page(r.get_data(as_text=True)).plain_text()


def test_plain_form_reports_each_refused_file_in_words(make_app):
    app = make_app(PLANS=small_plans(max_file=2000))
    client = app.test_client()
    big = noisy_png((60, 60))
    assert len(big) > 2000
    r = form_post(client, files=[("ok.jpg", None), ("big.png", big), ("notes.jpg", b"hello")])
    assert r.status_code == 200
    text = Page(r.get_data(as_text=True)).plain_text()
    assert "big.png was not uploaded" in text and "2,000 bytes" in text
    assert "notes.jpg was not uploaded" in text
    assert image_count(app) == 1
    assert "{" not in text  # words, never JSON


# Error pages -------------------------------------------------------------------------------

@embedded_only
@pytest.mark.parametrize("path, heading", [("/image/AAAAAAAAAA", "Image not found"),
                                           ("/i/AAAAAAAAAA.jpg", "Image not found"),
                                           ("/no/such/page", "Page not found")])
def test_404_page_looks_like_the_site_and_says_what_to_do(client, path, heading):
    r = client.get(path)
    assert r.status_code == 404
    assert r.mimetype == "text/html"
    page = Page(r.get_data(as_text=True))
    assert heading in page.plain_text()
    assert f"Error 404 {heading} There is nothing here" in page.plain_text()  # said once
    assert "deleted or has expired" in page.plain_text()
    assert page.find("a", href="/")  # the way back
    assert page.find("link", rel="stylesheet")
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]


def test_413_page_when_the_form_body_is_over_the_limit(make_app):
    app = make_app(PLANS=small_plans(max_file=1000, bulk=1))
    # A body built by hand: the test client spools big form bodies to a file it never closes.
    body = (b'--B\r\nContent-Disposition: form-data; name="files"; filename="huge.jpg"\r\n'
            b"Content-Type: image/jpeg\r\n\r\n" + b"x" * (1024 * 1024 + 5000) + b"\r\n--B--\r\n")
    r = app.test_client().post("/", data=body, content_type="multipart/form-data; boundary=B")
    assert r.status_code == 413
    assert r.mimetype == "text/html"
    text = Page(r.get_data(as_text=True)).plain_text()
    assert "Too large to upload" in text
    assert "at most 1,000 bytes" in text  # the limit, in words


def test_429_page_when_the_hourly_uploads_are_spent(make_app):
    app = make_app(PLANS=small_plans(hourly=1))
    client = app.test_client()
    assert form_post(client).status_code == 200
    r = form_post(client)
    assert r.status_code == 429
    assert r.mimetype == "text/html"
    assert r.headers.get("Retry-After")
    page = Page(r.get_data(as_text=True))
    assert "Too many uploads for now" in page.plain_text()
    assert "API key" in page.plain_text()
    assert page.find("a", href="/")
    # Pages and files are never refused because a quota is spent.
    assert client.get("/").status_code == 200


# The delete page ---------------------------------------------------------------------------

def test_delete_page_shows_the_image_and_then_says_it_is_gone(client):
    data = uploaded(client, make_image(size=(90, 60)), "old.jpg")
    r = client.get(path_of(data["links"]["delete"]))
    assert r.status_code == 200
    page = Page(r.get_data(as_text=True))
    assert page.find("img", src=data["links"]["thumbnail"])
    assert "old.jpg" in page.plain_text() and "cannot be undone" in page.plain_text()
    assert page.find("button", type="submit", id="confirm-delete")
    assert page.find("a", href=data["links"]["view_page"])  # a way out
    hidden = {a["name"]: a["value"] for a in page.find("input", type="hidden")}
    done = client.post(f"/image/{data['id']}/delete", data=hidden)
    assert done.status_code == 200
    text = Page(done.get_data(as_text=True)).plain_text()
    assert "Image deleted" in text and "old.jpg" in text
    again = client.get(path_of(data["links"]["delete"]))
    assert again.status_code == 404
    assert "deleted or has expired" in Page(again.get_data(as_text=True)).plain_text()


@embedded_only
def test_wrong_delete_token_gets_a_clear_page(client):
    data = uploaded(client)
    r = client.get(f"/image/{data['id']}/delete?token=wrong")
    assert r.status_code == 403
    page = Page(r.get_data(as_text=True))
    assert "This link does not work" in page.plain_text()
    assert "whole delete link" in page.plain_text()
    assert not page.find("form")


@embedded_only
def test_expired_confirmation_form_gets_a_clear_page(client):
    data = uploaded(client)
    r = client.post(f"/image/{data['id']}/delete",
                    data={"token": data["delete_token"], "form_token": "stale"})
    assert r.status_code == 400
    text = Page(r.get_data(as_text=True)).plain_text()
    assert "open the delete link again" in text
    assert client.get(path_of(data["links"]["direct"])).status_code == 200


# No inline script or style, and a strict CSP -----------------------------------------------

def page_paths(client) -> dict[str, tuple[str, str, dict]]:
    data = uploaded(client, make_image(), '"><img src=x onerror=alert(1)>.jpg')
    return {
        "home": ("GET", "/", {}),
        "view": ("GET", path_of(data["links"]["view_page"]), {}),
        "delete": ("GET", path_of(data["links"]["delete"]), {}),
        "bad delete": ("GET", f"/image/{data['id']}/delete?token=nope", {}),
        "uploaded": ("POST", "/", {"data": {"files": (io.BytesIO(make_image()), "a.jpg")},
                                   "content_type": "multipart/form-data"}),
        "form error": ("POST", "/", {"data": {"expiry": "x"},
                                     "content_type": "multipart/form-data"}),
        "404 image": ("GET", "/image/AAAAAAAAAA", {}),
        "404 route": ("GET", "/nowhere", {}),
    }


@embedded_only
def test_every_page_has_a_strict_csp_and_no_inline_code(client):
    for name, (method, path, kwargs) in page_paths(client).items():
        r = client.open(path, method=method, **kwargs)
        assert r.mimetype == "text/html", name
        csp = r.headers.get("Content-Security-Policy", "")
        directives = dict((d.strip().split(" ", 1) + [""])[:2] for d in csp.split(";"))
        assert directives.get("script-src") == "'self'", (name, csp)
        assert directives.get("style-src") == "'self'", (name, csp)
        assert directives.get("object-src") == "'none'", name
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, name
        assert r.headers.get("X-Content-Type-Options") == "nosniff", name
        page = Page(r.get_data(as_text=True))
        assert not page.inline_code, (name, page.inline_code)
        for tag, attrs in page.tags:
            assert "style" not in attrs, (name, tag)
            assert not [a for a in attrs if a.startswith("on")], (name, tag, attrs)
            if tag == "script":
                assert attrs.get("src", "").startswith("/static/"), (name, attrs)
            for attr in ("src", "href"):
                value = attrs.get(attr) or ""
                assert not value.lower().startswith("javascript:"), (name, tag)
                # Nothing from another site: no CDN.
                if tag in ("script", "link") and value.startswith("http"):
                    assert value.startswith("http://localhost/"), (name, tag, value)


TEMPLATE_FILES = sorted(TEMPLATES.rglob("*.html"))


@pytest.mark.parametrize("template", TEMPLATE_FILES, ids=lambda p: str(p.relative_to(TEMPLATES)))
def test_templates_contain_no_inline_script_or_style(template: Path):
    source = template.read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", source), "inline <script>"
    assert not re.search(r"<style\b", source, re.I), "<style> element"
    assert not re.search(r"\sstyle\s*=", source, re.I), "style= attribute"
    assert not re.search(r"\son[a-z]+\s*=", source, re.I), "on...= event handler attribute"
    assert "javascript:" not in source.lower()
    assert "|safe" not in source, "markup from data must stay escaped"
    assert not re.search(r"(src|href)=\"(https?:)?//", source), "no CDN: assets are in static/"


def test_scripts_build_pages_without_html_strings():
    for script in STATIC.glob("*.js"):
        source = script.read_text()
        for risky in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
                      "eval(", "new Function", 'setAttribute("style"', ".style."):
            assert risky not in source, (script.name, risky)


def test_every_static_asset_the_templates_name_exists():
    names = set()
    for template in TEMPLATE_FILES:
        names.update(re.findall(r"filename='([^']+)'", template.read_text()))
    assert {"style.css", "app.js", "upload.js", "favicon.svg"} <= names
    for name in names:
        assert (STATIC / name).is_file(), name
