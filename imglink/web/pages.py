"""Blueprint "web": the pages, and the /i/ and /t/ files."""
from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlencode

from flask import (Blueprint, Response, current_app, redirect, render_template, request,
                   send_file, url_for)

from ..core import images, uploads
from ..core.errors import (BulkLimitError, ForbiddenError, InvalidParameterError,
                           NotFoundError)
from ..core.imaging import MEDIA_TYPES
from ..core.models import Image
from . import tokens
from .context import (as_upload, base_url, get_storage, plan_named, prepare_body,
                      upload_fields, upload_policy)
from .serializers import image_links, upload_data

bp = Blueprint("web", __name__)

ONE_YEAR = 365 * 24 * 3600
DELETE_FORM_MAX_AGE = 3600
PAGE_CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
            "script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
            "frame-ancestors 'none'; form-action 'self'")
FILE_CSP = "default-src 'none'; sandbox"

# What browsers call each format: media types and file name extensions, for the file
# picker's `accept` and the home page's check before uploading. The server still decides
# from the bytes alone.
FORMAT_HINTS = {
    "JPEG": (("image/jpeg", "image/pjpeg"), ("jpg", "jpeg", "jpe", "jfif")),
    "PNG": (("image/png",), ("png",)),
    "GIF": (("image/gif",), ("gif",)),
    "WEBP": (("image/webp",), ("webp",)),
    "AVIF": (("image/avif",), ("avif",)),
    "BMP": (("image/bmp", "image/x-ms-bmp"), ("bmp",)),
    "TIFF": (("image/tiff",), ("tif", "tiff")),
}
# The expiry menu of the upload form, in hours (0: never); the API takes any whole number.
EXPIRY_CHOICES = ((0, "Never"), (1, "1 hour"), (24, "1 day"), (24 * 7, "1 week"),
                  (24 * 30, "30 days"), (24 * 365, "1 year"))


@bp.after_app_request
def add_page_headers(response: Response) -> Response:
    # App-wide, so that error pages for unrouted URLs and the static files get them too;
    # the API's JSON is left as the API blueprint makes it.
    if request.path.startswith("/api/"):
        return response
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Content-Security-Policy", PAGE_CSP)
    response.headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    return response


@bp.app_template_filter("human_size")
def human_size(size: int) -> str:
    """Return a byte count in people's units (MB means MiB, as API.md says): 1.5 MB."""
    if size < 1024:
        return f"{size:,} bytes" if size != 1 else "1 byte"
    value = float(size)
    for unit in ("KB", "MB", "GB", "TB"):
        value /= 1024
        if value < 1024 or unit == "TB":
            break
    return f"{value:.0f} {unit}" if value >= 100 or value == int(value) else f"{value:.1f} {unit}"


@bp.app_context_processor
def page_helpers() -> dict[str, Any]:
    # A callable, so that pages which do not show the limits (files, errors) pay nothing.
    return {"anonymous_limits": anonymous_limits}


def anonymous_limits() -> dict[str, Any]:
    """Return the anonymous plan's upload limits, as GET /api/v1/limits names them."""
    plan = plan_named("anonymous")
    formats = [f for f in current_app.config["ALLOWED_FORMATS"] if f in FORMAT_HINTS]
    return {
        "plan": plan.name,
        "max_file_size": plan.max_file,
        "max_files_per_bulk": plan.bulk,
        "formats": formats,
        "types": {f: {"media_types": FORMAT_HINTS[f][0], "extensions": FORMAT_HINTS[f][1]}
                  for f in formats},
    }


def _render_home(error: str | None = None, form: Any = None) -> str:
    limits = anonymous_limits()
    accept = ",".join([t for f in limits["formats"] for t in FORMAT_HINTS[f][0]]
                      + ["." + e for f in limits["formats"] for e in FORMAT_HINTS[f][1]])
    return render_template("home.html", limits=limits, accept=accept, error=error,
                           form=form or {}, expiry_choices=EXPIRY_CHOICES,
                           album_max_length=current_app.config["ALBUM_MAX_LENGTH"])


@bp.get("/")
def home():
    return _render_home()


@bp.post("/")
def upload_form():
    """Upload from the plain HTML form (no JavaScript): one or more files, then their links.

    The form is anonymous (a browser sends no API key with it), so the anonymous plan's
    limits hold; `album` and `expiry` are checked exactly as the API checks them.
    """
    policy = upload_policy(plan_named("anonymous"))
    prepare_body(policy, policy.plan.bulk)
    files = [f for f in request.files.getlist("files") if f.filename]
    try:
        if not files:
            raise InvalidParameterError("Choose at least one image to upload")
        policy.check_file_count(len(files), "files")
        fields = upload_fields(policy)
    except (InvalidParameterError, BulkLimitError) as e:
        return _render_home(error=e.message, form=request.form), 400
    result = uploads.upload_images([as_upload(f) for f in files], policy, fields,
                                   storage=get_storage(), account=None)
    return render_template(
        "uploaded.html",
        images=[upload_data(r) for r in result.results],
        errors=[(name, e.message) for _, name, e in result.errors]), \
        200 if result.results else 400


@bp.get("/image/<image_id>")
def show_image(image_id: str):
    image = images.get_image(image_id)
    links = image_links(image)
    oembed = base_url() + url_for("api.show_oembed") + "?" + urlencode(
        {"url": links["view_page"], "format": "json"})
    return render_template("image.html", image=image, links=links, oembed_url=oembed,
                           media_type=MEDIA_TYPES[image.ext])


def _image_for_delete(image_id: str, token: str) -> Image:
    # A used link finds no image (404); a wrong one finds an image it does not open (403).
    image = images.get_image(image_id)
    if not token or not images.check_delete_token(image, token):
        raise ForbiddenError("This delete link is not valid for this image")
    return image


@bp.get("/image/<image_id>/delete")
def confirm_delete(image_id: str):
    token = request.args.get("token", "")
    image = _image_for_delete(image_id, token)
    return render_template("delete.html", image=image, links=image_links(image), token=token,
                           form_token=tokens.sign(tokens.DELETE_FORM, image.id))


@bp.post("/image/<image_id>/delete")
def delete_image(image_id: str):
    token = request.form.get("token", "")
    image = _image_for_delete(image_id, token)
    try:
        tokens.verify(tokens.DELETE_FORM, request.form.get("form_token", ""), image.id,
                      DELETE_FORM_MAX_AGE)
    except tokens.InvalidTokenError:
        raise InvalidParameterError(
            "This confirmation form has expired; open the delete link again") from None
    images.delete_image(image, get_storage())
    return render_template("deleted.html", image=image)


def _send_file(filename: str, thumbnail: bool) -> Response:
    image_id, _, ext = filename.rpartition(".")
    image = images.get_image(image_id)
    if ext != (image.thumb_ext if thumbnail else image.ext):
        raise NotFoundError()
    key = image.thumbnail_key if thumbnail else image.original_key
    storage = get_storage()
    path = storage.local_path(key)
    if path is None and current_app.config["S3_SERVE"] == "redirect":
        return redirect(storage.presigned_url(key, current_app.config["S3_PRESIGN_EXPIRY"]))
    try:
        source = path or storage.open(key)
        response = send_file(source, mimetype=MEDIA_TYPES[ext], conditional=False, etag=False,
                             last_modified=image.uploaded_at, max_age=ONE_YEAR)
    except FileNotFoundError:
        current_app.logger.error("Image %s has a record but no file %s", image.id, key)
        raise NotFoundError() from None
    if response.content_length is None:  # Werkzeug sizes paths only; remote files are temp files
        response.content_length = os.fstat(source.fileno()).st_size
    response.set_etag(("t-" if thumbnail else "i-") + image.id)
    response.make_conditional(request, accept_ranges=True,
                              complete_length=response.content_length)
    response.headers["Cache-Control"] = f"public, max-age={ONE_YEAR}, immutable"
    response.headers["Content-Security-Policy"] = FILE_CSP
    response.headers["Content-Disposition"] = f'inline; filename="{image.id}.{ext}"'
    return response


@bp.get("/i/<filename>")
def original_file(filename: str):
    return _send_file(filename, thumbnail=False)


@bp.get("/t/<filename>")
def thumbnail_file(filename: str):
    return _send_file(filename, thumbnail=True)
