"""Blueprint "api" at /api/v1: parse the request, call a service, answer in the envelope."""
from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from ..core import images, uploads
from ..core.db import database
from ..core.errors import (BusyError, InvalidImageError, InvalidParameterError, NotFoundError,
                           UnauthorizedError)
from . import openapi
from .auth import current_account
from .context import as_upload, base_url, get_storage, prepare_body, upload_fields, upload_policy
from .limits import UNCOUNTED_ENDPOINTS, current_plan, limiter
from .serializers import image_data, iso, upload_data

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def ok(data: Any, message: str, status: int = 200) -> tuple[Response, int]:
    return jsonify({"success": True, "data": data, "message": message}), status


@bp.after_request
def add_api_headers(response: Response) -> Response:
    origin = current_app.config["CORS_ALLOW_ORIGIN"]
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = (
            "X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, Retry-After")
        if request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, DELETE, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = (
                "Authorization, Content-Type, X-Delete-Token")
            response.headers["Access-Control-Max-Age"] = "86400"
    return response


@bp.before_request
def answer_preflight_and_authenticate() -> Response | None:
    if request.method == "OPTIONS":
        response = Response(status=204)
        del response.headers["Content-Type"]  # no body, so no type
        return response
    if request.endpoint not in UNCOUNTED_ENDPOINTS:
        current_account()  # a bad key is a 401 on every endpoint, before any work
    return None


@bp.post("/upload")
def upload_image():
    policy = upload_policy(current_plan())
    prepare_body(policy, 1)
    fields = upload_fields(policy)
    file = request.files.get("file")
    policy.check_file_count(0 if file is None else 1, "file")
    result = uploads.upload_image(as_upload(file), policy, fields, storage=get_storage(),
                                  account=current_account())
    return ok(upload_data(result), "Image uploaded successfully")


@bp.post("/upload/bulk")
def upload_bulk():
    policy = upload_policy(current_plan())
    prepare_body(policy, policy.plan.bulk)
    fields = upload_fields(policy)
    files = request.files.getlist("files")
    policy.check_file_count(len(files), "files")
    result = uploads.upload_images([as_upload(f) for f in files], policy, fields,
                                   storage=get_storage(), account=current_account())
    errors = [{"index": index, "filename": name,
               "error": {"code": e.code, "message": e.message}}
              for index, name, e in result.errors]
    if not result.results:
        codes = {e.code for _, _, e in result.errors}
        first = result.errors[0][2]
        if len(codes) == 1:
            raise type(first)(f"No image was stored: {first.message}", details=errors)
        raise InvalidImageError("No image was stored; error.details says why for each file",
                                details=errors)
    data = [upload_data(r) for r in result.results]
    message = f"{len(data)} of {len(files)} images uploaded successfully"
    return ok({"images": data, "errors": errors}, message)


@bp.get("/image/<image_id>")
def show_image(image_id: str):
    return ok(image_data(images.get_image(image_id)), "Image found")


@bp.delete("/image/<image_id>")
def delete_image(image_id: str):
    account = current_account()
    token = request.headers.get("X-Delete-Token")
    images.require_delete_credentials(account, token)
    image = images.get_image(image_id)
    images.authorize_delete(image, account, token)
    images.delete_image(image, get_storage())
    return ok({"id": image_id}, "Image deleted successfully")


def _limits_data() -> dict[str, Any]:
    plan = current_plan()
    config = current_app.config
    quota = limiter.current_limit
    return {
        "plan": plan.name,
        "requests_per_hour": plan.hourly,
        "requests_remaining": quota.remaining if quota else None,
        "max_file_size": plan.max_file,
        "max_files_per_bulk": plan.bulk,
        "max_pixels": config["MAX_PIXELS"],
        "max_frames": config["MAX_FRAMES"],
        "max_total_pixels": config["MAX_TOTAL_PIXELS"],
        "formats": config["ALLOWED_FORMATS"],
    }


@bp.get("/limits")
def show_limits():
    return ok(_limits_data(), "Limits for this caller")


@bp.get("/account")
def show_account():
    account = current_account()
    if account is None:
        raise UnauthorizedError("Send an API key as 'Authorization: Bearer KEY'")
    data = {"email": account.email, "created_at": iso(account.created_at),
            "images": account.images.count(), **_limits_data()}
    return ok(data, "Account details")


@bp.get("/openapi.json")
def openapi_document():
    return jsonify(openapi.spec(base_url()))


@bp.get("/health")
def health():
    problems = {}
    for name, check in (("database", lambda: database.execute_sql("SELECT 1")),
                        ("storage", lambda: get_storage().check()),
                        ("quota_store", _check_quota_store)):
        try:
            check()
        except Exception as e:  # noqa: BLE001 - any failure makes the service unhealthy
            current_app.logger.warning("health check %s failed: %s", name, e)
            problems[name] = "unreachable"
    if problems:
        raise BusyError("Some parts of the service are unreachable",
                                      details=problems)
    return ok({"database": "ok", "storage": "ok", "quota_store": "ok"}, "Healthy")


def _check_quota_store() -> None:
    if limiter.enabled and not limiter.storage.check():
        raise ConnectionError("quota store check failed")


# A view page or direct link: http(s)://HOST/image/ID or http(s)://HOST/i/ID.EXT
OEMBED_URL = re.compile(r"https?://(?P<host>[^/?#]+)/(?:image/(?P<view>[A-Za-z0-9]+)/?"
                        r"|i/(?P<direct>[A-Za-z0-9]+)\.(?P<ext>\w+))(?:[?#].*)?")


@bp.get("/oembed")
def show_oembed():
    """Describe an image for oEmbed consumers (oEmbed 1.0, type "photo").

    `url` is the image's view page or direct link on this site; `maxwidth` and `maxheight`
    scale the reported size down, keeping the aspect ratio. The answer is the bare oEmbed
    object consumers expect, not the envelope. Errors keep the envelope: 404 NOT_FOUND for
    a URL that names no live image of this site, 400 INVALID_PARAMETER for a bad parameter,
    a `format` other than json included (rather than the spec's 501, which API.md's error
    table has no code for; the view pages only ever advertise JSON).
    """
    if request.args.get("format", "json") != "json":
        raise InvalidParameterError("Only format=json is available")
    url = request.args.get("url", "").strip()
    if not url:
        raise InvalidParameterError("url is required: the view page or direct link of an image")
    bounds = {}
    for name in ("maxwidth", "maxheight"):
        raw = request.args.get(name, "").strip()
        if raw:
            if not re.fullmatch(r"[0-9]{1,6}", raw) or int(raw) == 0:
                raise InvalidParameterError(f"{name} must be a positive whole number of pixels")
            bounds[name] = int(raw)
    match = OEMBED_URL.fullmatch(url)
    hosts = {base_url().partition("://")[2].split("/")[0].lower(), request.host.lower()}
    if match is None or match["host"].lower() not in hosts:
        raise NotFoundError("No image of this site has this URL")
    image = images.get_image(match["view"] or match["direct"])
    if match["direct"] and match["ext"] != image.ext:
        raise NotFoundError("No image of this site has this URL")
    data = image_data(image)
    scale = min(1.0, bounds.get("maxwidth", image.width) / image.width,
                bounds.get("maxheight", image.height) / image.height)
    return jsonify({
        "version": "1.0",
        "type": "photo",
        "url": data["links"]["direct"],
        "width": max(1, int(image.width * scale)),
        "height": max(1, int(image.height * scale)),
        "title": image.filename,
        "provider_name": "ImgLink",
        "provider_url": base_url() + "/",
    })
