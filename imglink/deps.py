"""What the views share from the app and the request: storage, imaging limits, links."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from flask import current_app, request
from markupsafe import escape
from werkzeug.datastructures import FileStorage

from .errors import InvalidParameterError
from .imaging import Limits
from .models import Account, Image
from .services import Upload, UploadResult
from .storage import Storage

if TYPE_CHECKING:
    from .limits import Plan


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
                  thumbnail_quality=c["THUMBNAIL_QUALITY"],
                  budget=current_app.extensions["imglink.decode_budget"])


def base_url() -> str:
    """Return the public base URL: from config, else the request's (proxy-fixed) host."""
    return (current_app.config["BASE_URL"] or request.host_url).rstrip("/")


def markdown_text(text: str) -> str:
    """Escape `text` for a Markdown link or image label."""
    return "".join("\\" + c if c in "\\[]()*_`<>!" else c for c in text)


def image_links(image: Image) -> dict[str, str]:
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
    return links


def iso(value) -> str | None:
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


def upload_options(plan: Plan, account: Account | None) -> dict[str, Any]:
    """Return the upload service's options for this request, the API and the HTML form alike.

    The form's `album` and `expiry` are validated as API.md says (InvalidParameterError,
    400 INVALID_PARAMETER, when bad); the rest comes from the plan and the app.
    """
    config = current_app.config
    album = request.form.get("album", "").strip() or None
    if album is not None and (len(album) > config["ALBUM_MAX_LENGTH"] or not album.isprintable()):
        raise InvalidParameterError(
            f"album must be printable text of at most {config['ALBUM_MAX_LENGTH']} characters")
    raw_expiry = request.form.get("expiry", "").strip()
    if not raw_expiry:
        expiry = 0
    elif re.fullmatch(r"[0-9]{1,9}", raw_expiry) and int(raw_expiry) <= config["MAX_EXPIRY_HOURS"]:
        expiry = int(raw_expiry)
    else:
        raise InvalidParameterError(
            f"expiry must be a whole number of hours from 0 (permanent) to "
            f"{config['MAX_EXPIRY_HOURS']}")
    return {"storage": get_storage(), "limits": imaging_limits(), "max_file": plan.max_file,
            "account": account, "album": album, "expiry_hours": expiry,
            "filename_max_length": config["FILENAME_MAX_LENGTH"],
            "strip_metadata": config["STRIP_METADATA"], "tmp_dir": config["UPLOAD_TMP_DIR"]}
