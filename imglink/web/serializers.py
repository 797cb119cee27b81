"""The API's shapes as JSON-ready dicts: the image object and its links."""
from __future__ import annotations

import datetime as dt
from typing import Any

from markupsafe import escape

from ..core.models import Image
from ..core.uploads import UploadResult
from .context import base_url


def markdown_text(text: str) -> str:
    """Escape `text` for a Markdown link or image label."""
    return "".join("\\" + c if c in "\\[]()*_`<>!" else c for c in text)


def image_links(image: Image) -> dict[str, str]:
    base = base_url()
    direct = f"{base}/i/{image.id}.{image.ext}"
    return {
        "direct": direct,
        "thumbnail": f"{base}/t/{image.id}.{image.thumb_ext}",
        "view_page": f"{base}/image/{image.id}",
        "bbcode": f"[img]{direct}[/img]",
        "html": f'<img src="{direct}" alt="{escape(image.filename)}">',
        "markdown": f"![{markdown_text(image.filename)}]({direct})",
    }


def iso(value: dt.datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def image_data(image: Image) -> dict[str, Any]:
    """Serialize an image as API.md's image object, without secrets."""
    return {
        "id": image.id,
        "filename": image.filename,
        "size": image.size,
        "width": image.width,
        "height": image.height,
        "format": image.format,
        "album": image.album,
        "uploaded_at": iso(image.uploaded_at),
        "expires_at": iso(image.expires_at),
        "links": image_links(image),
    }


def upload_data(result: UploadResult) -> dict[str, Any]:
    """Serialize a fresh upload: the image object plus its delete token, its delete page and
    the metadata that was removed. Only the upload response carries these."""
    data = image_data(result.image)
    data["links"]["delete"] = (f"{base_url()}/image/{result.image.id}/delete"
                               f"?token={result.delete_token}")
    data["delete_token"] = result.delete_token
    data["metadata_removed"] = result.metadata_removed
    return data
