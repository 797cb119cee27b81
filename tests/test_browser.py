"""The pages in a real browser: Debian's Chromium driven by Playwright, against a live gunicorn.

Every test fails on a console error, an uncaught exception, a CSP violation or a dialog (the
hostile file name must not open one), and saves screenshots under artifacts/screenshots/
(desktop 1280x800 and phone 390x844) to look at.
"""
from __future__ import annotations

import base64
import io
import os
import re
from pathlib import Path

import pytest
import requests
from markupsafe import escape
from PIL import Image

from conftest import ROOT, make_image, require, unavailable

pytestmark = pytest.mark.live

SHOTS = ROOT / "artifacts" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
LINK_KEYS = ("direct", "thumbnail", "view_page", "bbcode", "html", "markdown")
HOSTILE_NAME = '"><img src=x onerror=alert(1)>.png'

# Report CSP violations to the test as they happen (init scripts are exempt from the CSP).
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) => {
  window.__reportViolation(`${e.violatedDirective} blocked ${e.blockedURI || "inline"}`
                           + ` at ${e.sourceFile}:${e.lineNumber} ${e.sample || ""}`);
});
"""
# A DataTransfer holding files, for synthetic drop and paste events.
MAKE_DATA_TRANSFER = """
(files) => {
  const transfer = new DataTransfer();
  for (const f of files) {
    const bytes = Uint8Array.from(atob(f.data), (c) => c.charCodeAt(0));
    transfer.items.add(new File([bytes], f.name, { type: f.type }));
  }
  return transfer;
}
"""


@pytest.fixture(scope="module")
def browser():
    chromium = require("chromium", "chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install playwright)")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Browse:
    """Open pages on a server, and collect what must not happen on them."""

    def __init__(self, browser) -> None:
        self.browser = browser
        self.contexts = []
        self.problems: list[str] = []
        self.allowed: list[re.Pattern] = []

    def allow(self, pattern: str) -> None:
        """Let console errors matching `pattern` pass (a status the test itself provokes)."""
        self.allowed.append(re.compile(pattern))

    def open(self, server_url: str, viewport=DESKTOP, javascript: bool = True):
        phone = viewport == PHONE
        context = self.browser.new_context(
            base_url=server_url, viewport=viewport, java_script_enabled=javascript,
            is_mobile=phone, has_touch=phone, device_scale_factor=1)
        self.contexts.append(context)
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server_url)
        context.expose_binding("__reportViolation",
                               lambda source, text: self.problems.append(f"CSP: {text}"))
        context.add_init_script(REPORT_VIOLATIONS)
        page = context.new_page()
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("dialog", self._dialog)
        return page

    def _console(self, message) -> None:
        text = message.text
        if message.type == "error" or "Content Security Policy" in text:
            if not any(p.search(text) for p in self.allowed):
                self.problems.append(f"console {message.type}: {text}")

    def _dialog(self, dialog) -> None:
        self.problems.append(f"a {dialog.type} dialog opened: {dialog.message}")
        dialog.dismiss()

    def assert_clean(self) -> None:
        assert not self.problems, "\n".join(self.problems)

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def browse(browser):
    session = Browse(browser)
    yield session
    session.close()
    session.assert_clean()


def shot(page, name: str) -> Path:
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def png(size=(64, 48), color=(30, 120, 200)) -> bytes:
    return make_image("PNG", size=size, color=color)


def noisy_png(size: tuple[int, int]) -> bytes:
    """A PNG of random pixels: it does not compress, so it weighs about w*h*3 bytes."""
    out = io.BytesIO()
    Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3)).save(out, "PNG")
    return out.getvalue()


def file_payload(name: str, data: bytes, mime: str = "image/png") -> dict:
    return {"name": name, "mimeType": mime, "buffer": data}


def data_transfer(page, files: list[tuple[str, bytes, str]]):
    return page.evaluate_handle(MAKE_DATA_TRANSFER, [
        {"name": name, "type": mime, "data": base64.b64encode(data).decode()}
        for name, data, mime in files])


def api_upload(server, data: bytes, name: str = "photo.jpg", **fields) -> dict:
    r = requests.post(server.url + "/api/v1/upload", files={"file": (name, data)}, data=fields,
                      timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["data"]


def api_links(server, image_id: str) -> dict:
    r = requests.get(f"{server.url}/api/v1/image/{image_id}", timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["data"]["links"]


def card_links(card) -> dict[str, str]:
    return {key: card.locator(f'input[data-key="{key}"]').input_value() for key in LINK_KEYS}


def uploads_posted(page) -> list[str]:
    """Start recording the paths of the API uploads the page sends; return the list."""
    posted: list[str] = []
    page.on("request", lambda r: posted.append(re.sub(r"^https?://[^/]+", "", r.url))
            if r.method == "POST" and "/api/" in r.url else None)
    return posted


def check_result_cards(page, server, expected_names: list[str]) -> list[dict[str, str]]:
    """Wait for the uploads to finish; check each card against the API; return their links."""
    done = page.locator("#results .result.done")
    done.nth(len(expected_names) - 1).wait_for()
    assert done.count() == len(expected_names)
    assert page.locator("#results .result.failed").count() == 0
    names = [done.nth(i).locator(".result-name").inner_text() for i in range(done.count())]
    assert sorted(names) == sorted(expected_names)
    all_links = []
    for i in range(done.count()):
        card = done.nth(i)
        links = card_links(card)
        image_id = links["view_page"].rsplit("/", 1)[-1]
        assert links == {k: v for k, v in api_links(server, image_id).items() if k in LINK_KEYS}
        delete = card.locator("a.result-delete")
        assert delete.get_attribute("href") == delete.inner_text()
        assert f"/image/{image_id}/delete?token=" in delete.inner_text()
        thumb = card.locator("img.result-thumb")
        assert thumb.get_attribute("src") == links["thumbnail"]
        page.wait_for_function("(img) => img.complete && img.naturalWidth > 0",
                               arg=thumb.element_handle())
        all_links.append(links | {"delete": delete.inner_text()})
    return all_links


def copy_and_read(page, button) -> str:
    button.click()
    page.wait_for_function("(b) => b.textContent !== 'Copy'", arg=button.element_handle())
    assert button.inner_text() == "Copied"
    return page.evaluate("navigator.clipboard.readText()")


# The home page -----------------------------------------------------------------------------

def test_upload_through_the_file_input_shows_links_that_copy(browse, live_server):
    page = browse.open(live_server.url)
    posted = uploads_posted(page)
    page.goto("/")
    assert "up to 64 MB each" in page.locator("#limits").inner_text()
    assert page.locator("#limits-plan").text_content() == "anonymous"
    assert page.locator("#upload-button").is_hidden()  # picking a file uploads it
    shot(page, "home-desktop")

    page.set_input_files("#files", [file_payload("red.png", png(color=(200, 30, 30))),
                                    file_payload("blue.png", png(color=(30, 30, 200)))])
    links = check_result_cards(page, live_server, ["red.png", "blue.png"])
    assert posted == ["/api/v1/upload/bulk"]

    card = page.locator("#results .result.done").first
    for key in ("markdown", "direct"):
        copied = copy_and_read(page, card.locator(f'input[data-key="{key}"] + button.copy'))
        assert copied == card.locator(f'input[data-key="{key}"]').input_value()
    assert copied in [item["direct"] for item in links]

    # One file goes to the single-file endpoint.
    page.set_input_files("#files", [file_payload("green.png", png(color=(30, 200, 30)))])
    page.locator("#results .result.done").nth(2).wait_for()
    assert posted == ["/api/v1/upload/bulk", "/api/v1/upload"]
    assert page.locator("#results .result-name").first.inner_text() == "green.png"
    shot(page, "home-results-desktop")

    phone = browse.open(live_server.url, PHONE)
    phone.goto("/")
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot(phone, "home-phone")
    phone.set_input_files("#files", [file_payload("phone.png", png(size=(300, 500)))])
    check_result_cards(phone, live_server, ["phone.png"])
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot(phone, "home-results-phone")
    browse.assert_clean()


def test_each_file_gets_a_progress_bar_that_fills_while_it_uploads(browse, live_server):
    page = browse.open(live_server.url)
    page.goto("/")
    # Slow the upload down so that the bars are seen between empty and full.
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": 0, "downloadThroughput": -1,
        "uploadThroughput": 1_000_000})
    big, small = noisy_png((400, 400)), png()
    page.set_input_files("#files", [file_payload("big.png", big), file_payload("small.png", small)])
    bars = page.locator("#results .result progress")
    assert bars.count() == 2
    # The first file is part way while the second has not started: one bar per file.
    page.wait_for_function("""() => {
        const [first, second] = document.querySelectorAll('#results .result progress');
        return first.value > 5 && first.value < 95 && second.value === 0;
    }""", timeout=15_000)
    status = page.locator("#results .result-status").first.inner_text()
    assert re.fullmatch(r"Uploading… \d+%", status), status
    shot(page, "home-progress-desktop")
    cdp.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    check_result_cards(page, live_server, ["big.png", "small.png"])
    browse.assert_clean()


def test_drag_and_drop_and_paste_upload(browse, live_server):
    page = browse.open(live_server.url)
    posted = uploads_posted(page)
    page.goto("/")
    dropped = data_transfer(page, [("dropped-1.png", png(color=(10, 10, 10)), "image/png"),
                                   ("dropped-2.jpg", make_image(), "image/jpeg")])
    page.dispatch_event("#dropzone", "dragenter", {"dataTransfer": dropped})
    assert "dragging" in page.locator("#dropzone").get_attribute("class")
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": dropped})
    assert "dragging" not in page.locator("#dropzone").get_attribute("class")
    check_result_cards(page, live_server, ["dropped-1.png", "dropped-2.jpg"])
    assert posted == ["/api/v1/upload/bulk"]

    pasted = data_transfer(page, [("image.png", png(color=(250, 200, 0)), "image/png")])
    page.evaluate("""(transfer) => document.body.dispatchEvent(new ClipboardEvent("paste", {
        clipboardData: transfer, bubbles: true, cancelable: true}))""", pasted)
    page.locator("#results .result.done").nth(2).wait_for()
    assert posted == ["/api/v1/upload/bulk", "/api/v1/upload"]
    assert page.locator("#results .result-name").first.inner_text() == "image.png"
    # Text pasted into a field stays text, and uploads nothing.
    page.fill("#album", "")
    page.focus("#album")
    page.evaluate("""() => {
        const transfer = new DataTransfer();
        transfer.setData("text/plain", "trip");
        document.activeElement.dispatchEvent(new ClipboardEvent("paste", {
            clipboardData: transfer, bubbles: true, cancelable: true}));
    }""")
    assert posted == ["/api/v1/upload/bulk", "/api/v1/upload"]
    browse.assert_clean()


def test_limits_are_enforced_before_uploading(browse, start_server):
    server = start_server(IMGLINK_PLANS__anonymous__max_file="3000",
                          IMGLINK_PLANS__anonymous__bulk="2")
    browse.allow(r"status of 400")  # the one file only the server can refuse
    page = browse.open(server.url)
    posted = uploads_posted(page)
    page.goto("/")
    assert "up to 2.9 KB each · up to 2 files at a time" in page.locator("#limits").inner_text()

    page.set_input_files("#files", [file_payload(f"{n}.png", png()) for n in range(3)])
    notice = page.locator("#notice")
    assert notice.is_visible()
    assert "You chose 3 files, but the anonymous plan takes at most 2 at a time" in (
        notice.inner_text())
    assert page.locator("#results .result").count() == 0

    page.set_input_files("#files", [file_payload("big.png", noisy_png((40, 40))),
                                    file_payload("notes.txt", b"hello", "text/plain")])
    assert notice.is_hidden()
    failed = page.locator("#results .result.failed")
    assert failed.count() == 2
    texts = [failed.nth(i).locator(".result-status").inner_text() for i in range(2)]
    assert any(re.search(r"big\.png is 4\.\d KB; the anonymous plan allows at most 2\.9 KB", t)
               for t in texts), texts
    assert any("notes.txt is not an accepted image type. Accepted: JPEG, PNG" in t
               for t in texts), texts
    assert posted == []
    shot(page, "home-refused-desktop")

    # What only the server can tell is shown in words too, never as JSON.
    page.set_input_files("#files", [file_payload("fake.png", b"not really a png")])
    page.locator("#results .result.failed").nth(2).wait_for()
    status = page.locator("#results .result.failed .result-status").first.inner_text()
    assert status and "{" not in status and "INVALID" not in status
    assert posted == ["/api/v1/upload"]
    browse.assert_clean()


def test_api_key_is_remembered_sent_and_checked(browse, live_server):
    key = live_server.create_key("pro")
    browse.allow(r"status of 401")  # the wrong key, on purpose
    page = browse.open(live_server.url)
    sent: list[str | None] = []
    page.on("request", lambda r: sent.append(r.headers.get("authorization"))
            if r.method == "POST" else None)
    page.goto("/")
    page.click("#api-key-box summary")
    page.fill("#api-key", key)
    page.press("#api-key", "Tab")
    page.wait_for_function("() => document.getElementById('limits-plan').textContent === 'pro'")
    assert "Key accepted" in page.locator("#key-status").inner_text()
    assert "up to 256 MB each · up to 500 files at a time" in page.locator("#limits").inner_text()

    page.reload()
    assert page.locator("#api-key").input_value() == key
    page.wait_for_function("() => document.getElementById('limits-plan').textContent === 'pro'")
    page.set_input_files("#files", [file_payload("mine.png", png())])
    check_result_cards(page, live_server, ["mine.png"])
    assert sent == [f"Bearer {key}"]
    account = requests.get(live_server.url + "/api/v1/account",
                           headers={"Authorization": f"Bearer {key}"}, timeout=30).json()
    assert account["data"]["images"] == 1

    page.fill("#api-key", "ilk_not-a-real-key")
    page.press("#api-key", "Tab")
    status = page.locator("#key-status")
    page.wait_for_function("() => document.getElementById('key-status').textContent !== ''")
    assert "The API key is malformed. Fix the key, or press Forget" in status.inner_text()
    assert "{" not in status.inner_text()
    shot(page, "home-bad-key-desktop")

    page.click("#forget-key")
    assert page.locator("#api-key").input_value() == ""
    assert page.evaluate("localStorage.getItem('imglink.apiKey')") is None
    assert page.locator("#limits-plan").text_content() == "anonymous"
    browse.assert_clean()


# The view page -----------------------------------------------------------------------------

def test_view_page_shows_the_image_details_links_and_unfurl_tags(browse, live_server):
    data = api_upload(live_server, make_image(size=(1600, 1000), color=(40, 90, 160)),
                      "harbour at dusk.jpg", expiry="72", album="trips")
    page = browse.open(live_server.url)
    response = page.goto(data["links"]["view_page"])
    assert response.status == 200
    image = page.locator("img.full")
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0",
                           arg=image.element_handle())
    assert image.evaluate("img => img.naturalWidth") == 1600
    assert image.evaluate("img => img.getBoundingClientRect().width") <= DESKTOP["width"]
    assert page.locator("a:has(img.full)").get_attribute("href") == data["links"]["direct"]
    details = page.locator("dl.details").inner_text()
    for text in ("1600 × 1000 px", "JPEG", "UTC", "Expires", "trips",
                 f"{data['size']:,} bytes" if data["size"] >= 1024 else "bytes"):
        assert text in details, text

    def meta(name: str) -> str:
        return page.locator(f'meta[property="{name}"], meta[name="{name}"]').get_attribute(
            "content")

    assert meta("og:image") == data["links"]["direct"]
    assert meta("og:image:width") == "1600" and meta("og:image:height") == "1000"
    assert meta("og:image:type") == "image/jpeg"
    assert meta("twitter:card") == "summary_large_image"
    assert meta("twitter:image") == data["links"]["direct"]
    oembed = page.locator('link[rel="alternate"][type="application/json+oembed"]')
    document = page.request.get(oembed.get_attribute("href")).json()
    assert document["type"] == "photo" and document["version"] == "1.0"
    assert document["url"] == data["links"]["direct"]
    assert (document["width"], document["height"]) == (1600, 1000)

    for key in ("bbcode", "view_page"):
        copied = copy_and_read(page, page.locator(f'input[data-key="{key}"] + button.copy'))
        assert copied == data["links"][key]
    shot(page, "view-desktop")

    phone = browse.open(live_server.url, PHONE)
    phone.goto(data["links"]["view_page"])
    full = phone.locator("img.full")
    phone.wait_for_function("(img) => img.complete && img.naturalWidth > 0",
                            arg=full.element_handle())
    assert full.evaluate("img => img.getBoundingClientRect().right") <= PHONE["width"]
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot(phone, "view-phone")
    browse.assert_clean()


def test_hostile_file_name_is_shown_as_text(browse, live_server):
    page = browse.open(live_server.url)
    page.goto("/")
    page.set_input_files("#files", [file_payload(HOSTILE_NAME, png())])
    links = check_result_cards(page, live_server, [HOSTILE_NAME])[0]
    assert page.locator('img[src="x"]').count() == 0
    assert f'alt="{escape(HOSTILE_NAME)}"' in links["html"]
    page.goto(links["view_page"])
    assert page.locator("h1").inner_text() == HOSTILE_NAME
    assert page.locator('img[src="x"]').count() == 0
    assert page.title() == f"{HOSTILE_NAME} · ImgLink"
    page.goto(links["delete"])
    assert HOSTILE_NAME in page.locator("figcaption").inner_text()
    assert page.locator('img[src="x"]').count() == 0
    browse.assert_clean()  # and no dialog opened


# The delete page and the error pages -------------------------------------------------------

def test_delete_through_the_delete_page(browse, live_server):
    data = api_upload(live_server, make_image(size=(800, 600), color=(160, 60, 40)), "old.jpg")
    delete_link = data["links"]["delete"]
    browse.allow(r"status of 40[34]")  # the dead links this test opens on purpose

    phone = browse.open(live_server.url, PHONE)
    phone.goto(delete_link)
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot(phone, "delete-phone")

    page = browse.open(live_server.url)
    page.goto(delete_link)
    assert page.locator("h1").inner_text() == "Delete this image?"
    thumb = page.locator("img.thumb")
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0",
                           arg=thumb.element_handle())
    assert "old.jpg" in page.locator("figcaption").inner_text()
    shot(page, "delete-desktop")
    page.click("#confirm-delete")
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == "Image deleted"
    assert "old.jpg" in page.locator("main").inner_text()
    shot(page, "deleted-desktop")

    response = page.goto(data["links"]["view_page"])
    assert response.status == 404
    assert page.locator("h1").inner_text() == "Image not found"
    assert page.locator("a.button", has_text="Upload an image").get_attribute("href") == "/"
    shot(page, "404-desktop")
    phone.goto(data["links"]["view_page"])
    shot(phone, "404-phone")
    assert requests.get(data["links"]["direct"], timeout=30).status_code == 404

    used = page.goto(delete_link)
    assert used.status == 404
    assert page.locator("h1").inner_text() == "Image not found"

    other = api_upload(live_server, make_image(), "other.jpg")
    wrong = page.goto(other["links"]["delete"].rsplit("=", 1)[0] + "=not-the-token")
    assert wrong.status == 403
    assert page.locator("h1").inner_text() == "This link does not work"
    assert page.locator("form").count() == 0
    shot(page, "403-desktop")
    browse.assert_clean()


# Without JavaScript ------------------------------------------------------------------------

def test_plain_form_post_works_without_javascript(browse, live_server):
    page = browse.open(live_server.url, javascript=False)
    page.goto("/")
    assert page.locator("#upload-button").is_visible()
    assert page.locator("#files").is_visible()
    assert page.locator("#api-key-box").is_hidden()  # needs JavaScript to be sent
    assert "up to 64 MB each" in page.locator("#limits").inner_text()
    shot(page, "nojs-home-desktop")
    page.set_input_files("#files", [file_payload("one.png", png()),
                                    file_payload(HOSTILE_NAME, png(color=(0, 0, 0)))])
    page.fill("#album", "no-js")
    page.select_option("#expiry", "24")
    page.click("#upload-button")
    page.wait_for_load_state()
    cards = page.locator("article.result")
    assert cards.count() == 2
    names = sorted(cards.nth(i).locator("h2").inner_text() for i in range(2))
    assert names == sorted(["one.png", HOSTILE_NAME])
    for i in range(2):
        links = card_links(cards.nth(i))
        image_id = links["view_page"].rsplit("/", 1)[-1]
        record = requests.get(f"{live_server.url}/api/v1/image/{image_id}", timeout=30).json()
        assert record["data"]["album"] == "no-js" and record["data"]["expires_at"]
        assert links == {k: v for k, v in record["data"]["links"].items() if k in LINK_KEYS}
    assert page.locator('img[src="x"]').count() == 0
    shot(page, "nojs-results-desktop")

    phone = browse.open(live_server.url, PHONE, javascript=False)
    phone.goto("/")
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot(phone, "nojs-home-phone")
    browse.assert_clean()
