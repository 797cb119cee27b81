"""Blueprint "web": the pages, and the /i/ and /t/ files."""
from __future__ import annotations

from flask import (Blueprint, Response, current_app, redirect, render_template, request,
                   send_file)

from . import services, tokens
from .deps import as_upload, get_storage, image_data, image_links, imaging_limits
from .errors import BulkLimitError, ForbiddenError, InvalidParameterError, NotFoundError
from .imaging import MEDIA_TYPES
from .limits import current_plan
from .models import Image

bp = Blueprint("web", __name__)

ONE_YEAR = 365 * 24 * 3600
DELETE_FORM_MAX_AGE = 3600
PAGE_CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
            "script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
            "frame-ancestors 'none'; form-action 'self'")
FILE_CSP = "default-src 'none'; sandbox"


@bp.after_request
def add_page_headers(response: Response) -> Response:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Content-Security-Policy", PAGE_CSP)
    response.headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    return response


@bp.get("/")
def home():
    return render_template("home.html", plan=current_plan())


@bp.post("/")
def upload_form():
    """Upload from the plain HTML form (no JavaScript): one or more files, then their links."""
    plan = current_plan()
    request.file_size_limit = plan.max_file
    if plan.bulk is not None:
        request.max_content_length = plan.max_file * plan.bulk + 1024 * 1024
    files = [f for f in request.files.getlist("files") if f.filename]
    if plan.bulk is not None and len(files) > plan.bulk:
        raise BulkLimitError(f"{len(files)} files sent; at most {plan.bulk} at a time")
    uploads = [as_upload(f) for f in files]
    options = dict(storage=get_storage(), limits=imaging_limits(), max_file=plan.max_file,
                   account=None, album=None, expiry_hours=0,
                   filename_max_length=current_app.config["FILENAME_MAX_LENGTH"])
    result = services.upload_images(uploads, **options)
    status = 200 if result.results or not uploads else 400
    return render_template(
        "uploaded.html",
        images=[image_data(r.image, r.delete_token) for r in result.results],
        errors=[(name, e.message) for _, name, e in result.errors],
        nothing=not uploads, plan=plan), status


@bp.get("/image/<image_id>")
def show_image(image_id: str):
    image = services.get_image(image_id)
    return render_template("image.html", image=image, links=image_links(image),
                           media_type=MEDIA_TYPES[image.ext])


def _image_for_delete(image_id: str, token: str) -> Image:
    image = services.get_image(image_id)
    if not token or not services.check_delete_token(image, token):
        raise ForbiddenError("This delete link is not valid: it is wrong or was already used")
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
        raise InvalidParameterError("This form has expired; open the delete link again") from None
    services.delete_image(image, get_storage())
    return render_template("deleted.html", image_id=image_id)


def _send_file(filename: str, thumbnail: bool) -> Response:
    image_id, _, ext = filename.rpartition(".")
    image = services.get_image(image_id)
    if ext != (image.thumb_ext if thumbnail else image.ext):
        raise NotFoundError()
    key = image.thumbnail_key if thumbnail else image.original_key
    storage = get_storage()
    if storage.local_path(key) is None and current_app.config["S3_SERVE"] == "redirect":
        return redirect(storage.presigned_url(key, current_app.config["S3_PRESIGN_EXPIRY"]))
    try:
        source = storage.local_path(key) or storage.open(key)
        response = send_file(source, mimetype=MEDIA_TYPES[ext], conditional=True,
                             etag=("t-" if thumbnail else "i-") + image.id,
                             last_modified=image.uploaded_at, max_age=ONE_YEAR)
    except FileNotFoundError:
        current_app.logger.error("Image %s has a record but no file %s", image.id, key)
        raise NotFoundError() from None
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
