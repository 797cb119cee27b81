"""What the views share from the app and the request: storage, imaging limits, links."""
from __future__ import annotations

from typing import Any

from flask import current_app, request
from markupsafe import escape
from werkzeug.datastructures import FileStorage

from .imaging import Limits
from .models import Image
from .services import Upload
from .storage import Storage


def as_upload(file: FileStorage) -> Upload:
    """Wrap a parsed multipart file for the upload service."""
    return Upload(file.stream, file.filename or "", getattr(file.stream, "received", None))


def get_storage() -> Storage:
    return current_app.extensions["imglink.storage"]


def imaging_limits() -> Limits:
    c = current_app.config
    return Limits(formats=tuple(c["ALLOWED_FORMATS"]), max_pixels=c["MAX_PIXELS"],
                  max_frames=c["MAX_FRAMES"], max_total_pixels=c["MAX_TOTAL_PIXELS"],
                  thumbnail_size=c["THUMBNAIL_SIZE"],
                  thumbnail_quality=c["THUMBNAIL_QUALITY"])


def base_url() -> str:
    """Return the public base URL: from config, else the request's (proxy-fixed) host."""
    return (current_app.config["BASE_URL"] or request.host_url).rstrip("/")


def markdown_text(text: str) -> str:
    """Escape `text` for a Markdown link or image label."""
    return "".join("\\" + c if c in "\\[]()*_`<>!" else c for c in text)


def image_links(image: Image, delete_token: str | None = None) -> dict[str, str]:
    base = base_url()
    direct = f"{base}/i/{image.id}.{image.ext}"
    links = {
        "direct": direct,
        "thumbnail": f"{base}/t/{image.id}.{image.thumb_ext}",
        "view_page": f"{base}/image/{image.id}",
        "bbcode": f"[img]{direct}[/img]",
        "html": f'<img src="{direct}" alt="{escape(image.filename)}">',
        "markdown": f"![{markdown_text(image.filename)}]({direct})",
    }
    if delete_token:
        links["delete"] = f"{base}/image/{image.id}/delete?token={delete_token}"
    return links


def iso(value) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def image_data(image: Image, delete_token: str | None = None) -> dict[str, Any]:
    """Serialize an image as API.md's image object; secrets only with `delete_token`."""
    data: dict[str, Any] = {
        "id": image.id,
        "filename": image.filename,
        "size": image.size,
        "width": image.width,
        "height": image.height,
        "format": image.format,
        "album": image.album,
        "uploaded_at": iso(image.uploaded_at),
        "expires_at": iso(image.expires_at),
        "links": image_links(image, delete_token),
    }
    if delete_token:
        data["delete_token"] = delete_token
    return data
