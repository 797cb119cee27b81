"""The OpenAPI 3.1 document of the /api/v1 API, served at /api/v1/openapi.json.

Plain dicts built by small helpers, so that the envelope, the error responses and the quota
headers are written once. Whatever the deployment configures (plans, formats, album and file
name lengths, the longest expiry) is read from the running app, so the document describes the
server that serves it. Shapes are exact (`additionalProperties: false`) wherever the API's are,
so that a response gaining or losing a field fails the schema checks in tests/test_openapi.py.
"""
from __future__ import annotations

from typing import Any

from flask import current_app

from ..core import metadata
from ..core.ids import IMAGE_ID_LENGTH as ID_LENGTH
from ..core.imaging import FORMATS, thumbnail_format
from .errors import STATUS

Schema = dict[str, Any]

JSON = "application/json"
ID_PATTERN = f"[A-Za-z0-9]{{{ID_LENGTH}}}"
TIMESTAMP = {"type": "string", "format": "date-time",
             "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$"}
OPTIONAL_KEY = [{}, {"bearer": []}]  # anonymous callers are welcome; a bad key is still a 401
COUNTED = "Counts against the caller's hourly quota."


# Small builders.

def ref(name: str, kind: str = "schemas") -> Schema:
    return {"$ref": f"#/components/{kind}/{name}"}


def nullable(schema: Schema) -> Schema:
    """Return `schema` widened to also allow null (JSON Schema 2020-12 spelling)."""
    return {**schema, "type": [schema["type"], "null"]}


def exact(properties: dict[str, Schema], optional: tuple[str, ...] = (), **extra: Any) -> Schema:
    """Return an object schema with exactly these properties, all required but `optional`."""
    return {"type": "object", "properties": properties,
            "required": [name for name in properties if name not in optional],
            "additionalProperties": False, **extra}


def success(data: Schema) -> Schema:
    """Return the success envelope with `data` narrowed to this operation's payload."""
    return {"allOf": [ref("SuccessEnvelope"), {"properties": {"data": data}}]}


def failure(codes: list[str], details: Schema | None = None) -> Schema:
    """Return the error envelope narrowed to `codes` (and to a `details` shape, if given)."""
    error: Schema = {"properties": {"code": {"enum": codes}}}
    if details is not None:
        error["properties"]["details"] = details
    return {"allOf": [ref("ErrorEnvelope"), {"properties": {"error": error}}]}


QUOTA_HEADERS = {
    "X-RateLimit-Limit": ("Requests per hour on this plan, or `unlimited`.",
                          r"^([0-9]+|unlimited)$"),
    "X-RateLimit-Remaining": ("Requests left in the current hour, or `unlimited`.",
                              r"^([0-9]+|unlimited)$"),
    "X-RateLimit-Reset": ("Unix time (seconds) when the oldest counted request leaves the "
                          "window; 0 for unlimited plans.", r"^[0-9]+$"),
}


def header(description: str, pattern: str, required: bool = True) -> Schema:
    return {"description": description, "required": required,
            "schema": {"type": "string", "pattern": pattern}}


def quota_headers(required: bool) -> dict[str, Schema]:
    """Return the quota headers: always sent (by reference), or sent only sometimes."""
    if required:
        return {name: ref(name, "headers") for name in QUOTA_HEADERS}
    return {name: header(description + " Absent when the caller is not identified or the "
                         "request is not counted.", pattern, required=False)
            for name, (description, pattern) in QUOTA_HEADERS.items()}


def response(description: str, schema: Schema, headers: dict[str, Schema] | None = None) -> Schema:
    answer: Schema = {"description": description, "content": {JSON: {"schema": schema}}}
    if headers:
        answer["headers"] = headers
    return answer


def error_codes() -> list[str]:
    """Return every `error.code` the app can send."""
    return sorted(STATUS)


# Schemas that depend on the deployment's settings.

def _image(config: Any, *, secrets: bool) -> Schema:
    """Return the image object; with `secrets`, as the upload answers it (delete token, link)."""
    formats = [f for f in config["ALLOWED_FORMATS"] if f in FORMATS]
    exts = "|".join(dict.fromkeys(FORMATS[f][0] for f in formats))
    thumb_exts = "|".join(dict.fromkeys(FORMATS[thumbnail_format(f)][0] for f in formats))

    def url(pattern: str) -> Schema:
        return {"type": "string", "format": "uri", "pattern": pattern}

    links = {
        "direct": url(rf"/i/{ID_PATTERN}\.({exts})$"),
        "thumbnail": url(rf"/t/{ID_PATTERN}\.({thumb_exts})$"),
        "view_page": url(rf"/image/{ID_PATTERN}$"),
        "bbcode": {"type": "string", "pattern": r"^\[img\][^\[\]]+\[/img\]$"},
        "html": {"type": "string", "pattern": r'^<img src="[^"<>]+" alt="[^"<>]*">$'},
        "markdown": {"type": "string", "pattern": r"^!\[[\s\S]*\]\([^()\s]+\)$"},
    }
    properties: dict[str, Schema] = {
        "id": {"type": "string", "pattern": f"^{ID_PATTERN}$"},
        "filename": {"type": "string", "minLength": 1,
                     "maxLength": config["FILENAME_MAX_LENGTH"],
                     "description": "The client's file name, made safe to show; never a path."},
        "size": {"type": "integer", "minimum": 1, "description": "Bytes of the stored file."},
        "width": {"type": "integer", "minimum": 1},
        "height": {"type": "integer", "minimum": 1},
        "format": {"enum": formats, "description": "Detected from the bytes, never the name."},
        "album": nullable({"type": "string", "minLength": 1,
                           "maxLength": config["ALBUM_MAX_LENGTH"]}),
        "uploaded_at": TIMESTAMP,
        "expires_at": {**nullable(TIMESTAMP), "description": "null for a permanent image."},
        "links": exact(links),
    }
    if secrets:
        links["delete"] = url(rf"/image/{ID_PATTERN}/delete\?token=[^&\s]+$")
        properties["links"] = exact(links)
        properties["delete_token"] = {
            "type": "string", "minLength": 1,
            "description": "Send it as X-Delete-Token to delete the image; shown only once."}
        properties["metadata_removed"] = {
            "type": "array", "uniqueItems": True, "items": {"enum": list(metadata.KINDS)},
            "description": "The kinds of private metadata removed from the stored file."}
    return exact(properties)


def _limits_properties(config: Any) -> dict[str, Schema]:
    count = {"type": "integer", "minimum": 1}
    return {
        "plan": {"enum": list(config["PLANS"])},
        "requests_per_hour": {**nullable(count), "description": "null: unlimited."},
        "requests_remaining": {**nullable({"type": "integer", "minimum": 0}),
                               "description": "null: unlimited."},
        "max_file_size": {**count, "description": "Bytes per file."},
        "max_files_per_bulk": {**nullable(count), "description": "null: unlimited."},
        "max_pixels": count,
        "max_frames": count,
        "max_total_pixels": {**count, "description": "Pixels over all frames of an animation."},
        "formats": {"type": "array", "uniqueItems": True,
                    "items": {"enum": list(config["ALLOWED_FORMATS"])}},
    }


def whole_number_pattern(maximum: int) -> str:
    """Return a regex for the whole numbers 0..`maximum` in decimal, leading zeros allowed."""
    top = str(maximum)
    choices = [f"[0-9]{{1,{len(top) - 1}}}"] if len(top) > 1 else []
    for i, digit in enumerate(top):
        if digit != "0":
            rest = len(top) - i - 1
            choices.append(top[:i] + f"[0-{int(digit) - 1}]" + (f"[0-9]{{{rest}}}" if rest else ""))
    choices.append(top)
    return "^(0*(" + "|".join(choices) + "))?$"


def _schemas(config: Any) -> dict[str, Schema]:
    codes = error_codes()
    limits = _limits_properties(config)
    return {
        "SuccessEnvelope": exact({
            "success": {"const": True},
            "data": {"description": "The operation's payload."},
            "message": {"type": "string", "minLength": 1},
        }),
        "ErrorEnvelope": exact({
            "success": {"const": False},
            "error": exact({
                "code": {"enum": codes, "description": "Stable; clients switch on it."},
                "message": {"type": "string", "minLength": 1,
                            "description": "A sentence for people."},
                "details": {"description": "More about the failure, where there is more."},
            }, optional=("details",)),
        }),
        "ErrorCode": {"enum": codes},
        "Image": _image(config, secrets=False),
        "UploadedImage": _image(config, secrets=True),
        "BulkFileError": exact({
            "index": {"type": "integer", "minimum": 0,
                      "description": "Position of the file in the request."},
            "filename": {"type": "string"},
            "error": exact({"code": ref("ErrorCode"), "message": {"type": "string"}}),
        }),
        "BulkResult": exact({
            "images": {"type": "array", "minItems": 1, "items": ref("UploadedImage"),
                       "description": "The stored images, in request order."},
            "errors": {"type": "array", "items": ref("BulkFileError"),
                       "description": "The refused files, in request order."},
        }),
        "Limits": exact(limits),
        "Account": exact({
            "email": {"type": "string", "format": "email"},
            "created_at": TIMESTAMP,
            "images": {"type": "integer", "minimum": 0,
                       "description": "Live images the account owns."},
            **limits,
        }),
        "Deleted": exact({"id": {"type": "string"}}),
        "Oembed": exact({
            "version": {"const": "1.0"},
            "type": {"const": "photo"},
            "url": {"type": "string", "format": "uri", "description": "The direct link."},
            "width": {"type": "integer", "minimum": 1},
            "height": {"type": "integer", "minimum": 1},
            "title": {"type": "string", "description": "The image's file name."},
            "provider_name": {"type": "string"},
            "provider_url": {"type": "string", "format": "uri"},
        }),
        "Health": exact({part: {"const": "ok"} for part in ("database", "storage",
                                                            "quota_store")}),
        "HealthProblems": {
            **exact({part: {"const": "unreachable"}
                     for part in ("database", "storage", "quota_store")}),
            "required": [], "minProperties": 1},
    }


def _upload_fields(config: Any) -> dict[str, Schema]:
    return {
        "album": {"type": "string", "maxLength": config["ALBUM_MAX_LENGTH"],
                  "description": "A label of printable text, trimmed; empty means none. Albums "
                                 "belong to the key's account."},
        "expiry": {"type": "string", "maxLength": 9,
                   "pattern": whole_number_pattern(config["MAX_EXPIRY_HOURS"]),
                   "description": f"Whole hours from 0 (permanent, as is empty or absent) to "
                                  f"{config['MAX_EXPIRY_HOURS']}."},
    }


def _responses() -> dict[str, Schema]:
    return {
        "Unauthorized": response(
            "The Authorization header is malformed, unknown or revoked, or a key is sent in "
            "the URL, or the operation needs credentials that were not sent. A bad key spends "
            "the client IP's anonymous quota.",
            failure(["UNAUTHORIZED"]), quota_headers(required=True)),
        "Forbidden": response("The credentials do not allow this.", failure(["FORBIDDEN"]),
                              quota_headers(required=True)),
        "NotFound": response("No live image has this id (or URL): unknown, deleted or expired.",
                             failure(["NOT_FOUND"]), quota_headers(required=True)),
        "MethodNotAllowed": response(
            "Any method not documented for a path; `Allow` lists the ones that are.",
            failure(["METHOD_NOT_ALLOWED"]),
            {"Allow": {"required": True, "schema": {"type": "string"}}}),
        "TooManyRequests": response(
            "The plan's hourly quota is spent.", failure(["RATE_LIMIT_EXCEEDED"]),
            {**quota_headers(required=True), "Retry-After": ref("Retry-After", "headers")}),
        "InternalError": response("An unexpected error; the details are only in the logs.",
                                  failure(["INTERNAL_ERROR"]), quota_headers(required=False)),
        "ServiceUnavailable": response(
            "The quota store is unreachable, so nothing is counted or served; or, for an "
            "upload, the server stayed too busy decoding other images to take it.",
            failure(["SERVICE_UNAVAILABLE"]), {"Retry-After": ref("Retry-After", "headers")}),
    }


def _headers() -> dict[str, Schema]:
    return {**{name: header(description, pattern)
               for name, (description, pattern) in QUOTA_HEADERS.items()},
            "Retry-After": header("Seconds to wait before trying again.", r"^[0-9]+$")}


# Operations.

def _statuses(*names: str) -> dict[str, Schema]:
    status = {"Unauthorized": "401", "Forbidden": "403", "NotFound": "404",
              "TooManyRequests": "429", "InternalError": "500", "ServiceUnavailable": "503"}
    return {status[name]: ref(name, "responses") for name in names}


def _counted(ok: Schema, *extra: str, **more: Schema) -> dict[str, Schema]:
    """Return the responses of a quota-counted operation: `ok`, `more`, and the usual failures."""
    return {"200": ok, **more,
            **_statuses("Unauthorized", *extra, "TooManyRequests", "InternalError",
                        "ServiceUnavailable")}


def _upload_errors(bulk: bool) -> dict[str, Schema]:
    codes = ["MISSING_FILE", "INVALID_FILE_TYPE", "INVALID_IMAGE", "INVALID_PARAMETER",
             "BAD_REQUEST"] + (["BULK_LIMIT_EXCEEDED"] if bulk else [])
    per_file = {"type": "array", "items": ref("BulkFileError"),
                "description": "Why each file was refused, when none was stored."}
    details = per_file if bulk else None
    headers = quota_headers(required=True)
    return {
        "400": response("A missing or refused file, or a bad album or expiry"
                        + ("; or more files than the plan allows" if bulk else "") + ".",
                        failure(codes, details), headers),
        "413": response("A file over the plan's per-file limit, or a body plainly over it "
                        "(answered before the body is read).",
                        failure(["FILE_TOO_LARGE"], details), headers),
    }


def _multipart(properties: dict[str, Schema], required: str) -> Schema:
    return {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "properties": properties, "required": [required]}}}}


def _paths(config: Any) -> dict[str, Schema]:
    ok_headers = quota_headers(required=True)
    fields = _upload_fields(config)
    binary = {"type": "string", "format": "binary"}
    image_id = {"name": "id", "in": "path", "required": True,
                "schema": {"type": "string", "pattern": f"^{ID_PATTERN}$"}}
    return {
        "/upload": {"post": {
            "operationId": "uploadImage", "tags": ["images"], "security": OPTIONAL_KEY,
            "summary": "Upload one image",
            "description": "The format is detected from the bytes: "
                           + ", ".join(config["ALLOWED_FORMATS"]) + ". " + COUNTED,
            "requestBody": _multipart({"file": {**binary, "description": "The image."},
                                       **fields}, "file"),
            "responses": _counted(
                response("Stored.", success(ref("UploadedImage")), ok_headers),
                **_upload_errors(bulk=False)),
        }},
        "/upload/bulk": {"post": {
            "operationId": "uploadImages", "tags": ["images"], "security": OPTIONAL_KEY,
            "summary": "Upload several images",
            "description": "Each file is stored or refused on its own; the answer is 200 when "
                           "at least one was stored. When none was, it is the error of the "
                           "files when they share one, else 400 INVALID_IMAGE, with the "
                           "per-file list in `error.details`. " + COUNTED,
            "requestBody": _multipart({"files": {
                "type": "array", "minItems": 1, "items": binary,
                "description": "The images, one part each; at most the plan's "
                               "`max_files_per_bulk` (see /limits)."}, **fields}, "files"),
            "responses": _counted(
                response("At least one image stored.", success(ref("BulkResult")), ok_headers),
                **_upload_errors(bulk=True)),
        }},
        "/image/{id}": {
            "parameters": [image_id],
            "get": {
                "operationId": "getImage", "tags": ["images"], "security": OPTIONAL_KEY,
                "summary": "An image's record, without secrets", "description": COUNTED,
                "responses": _counted(response("The image.", success(ref("Image")), ok_headers),
                                      "NotFound"),
            },
            "delete": {
                "operationId": "deleteImage", "tags": ["images"],
                "security": [{"bearer": []}, {"deleteToken": []}],
                "summary": "Delete an image for good",
                "description": "With the owner's key, or the image's delete token (which "
                               "wins when both are sent). " + COUNTED,
                "responses": _counted(response("Deleted.", success(ref("Deleted")), ok_headers),
                                      "Forbidden", "NotFound"),
            },
        },
        "/limits": {"get": {
            "operationId": "getLimits", "tags": ["account"], "security": OPTIONAL_KEY,
            "summary": "The caller's plan and limits", "description": COUNTED,
            "responses": _counted(response("The limits.", success(ref("Limits")), ok_headers)),
        }},
        "/account": {"get": {
            "operationId": "getAccount", "tags": ["account"], "security": [{"bearer": []}],
            "summary": "The key's account, plan and limits", "description": COUNTED,
            "responses": _counted(response("The account.", success(ref("Account")),
                                           ok_headers)),
        }},
        "/oembed": {"get": {
            "operationId": "getOembed", "tags": ["images"], "security": OPTIONAL_KEY,
            "summary": "Describe an image for oEmbed consumers (oEmbed 1.0, photo)",
            "description": "The answer is the bare oEmbed object, not the envelope; errors keep "
                           "the envelope. " + COUNTED,
            "parameters": [
                {"name": "url", "in": "query", "required": True,
                 "description": "The image's view page or direct link on this site.",
                 "schema": {"type": "string", "minLength": 1}},
                *({"name": name, "in": "query", "required": False,
                   "description": "Scale the reported size down to at most this many pixels.",
                   "schema": {"type": "integer", "minimum": 1, "maximum": 999_999}}
                  for name in ("maxwidth", "maxheight")),
                {"name": "format", "in": "query", "required": False,
                 "schema": {"enum": ["json"], "default": "json"}},
            ],
            "responses": _counted(
                response("The oEmbed object.", ref("Oembed"), ok_headers), "NotFound",
                **{"400": response("A missing url, a bad maxwidth or maxheight, or a format "
                                   "other than json.", failure(["INVALID_PARAMETER"]),
                                   ok_headers)}),
        }},
        "/health": {"get": {
            "operationId": "getHealth", "tags": ["service"], "security": [],
            "summary": "Whether the database, storage and quota store are reachable",
            "description": "Not counted against any quota; credentials are not read.",
            "responses": {
                "200": response("Healthy.", success(ref("Health")), quota_headers(False)),
                "503": response("Some part is unreachable; `error.details` names it.",
                                failure(["SERVICE_UNAVAILABLE"], ref("HealthProblems"))),
                **_statuses("InternalError"),
            },
        }},
        "/openapi.json": {"get": {
            "operationId": "getOpenApiDocument", "tags": ["service"], "security": [],
            "summary": "This document",
            "description": "Not counted against any quota; credentials are not read.",
            "responses": {
                "200": response("The OpenAPI document (not in the envelope).", {
                    "type": "object", "required": ["openapi", "info", "paths"],
                    "properties": {"openapi": {"type": "string", "pattern": r"^3\.1\."}}},
                    quota_headers(False)),
                **_statuses("InternalError"),
            },
        }},
    }


DESCRIPTION = """\
Upload images and get direct links, thumbnails, view pages and share codes.

Every answer is JSON in one envelope: `{"success": true, "data": ..., "message": ...}` or
`{"success": false, "error": {"code": ..., "message": ...}}`, also for unknown routes (404
`NOT_FOUND`) and methods a path does not document (405 `METHOD_NOT_ALLOWED`, with `Allow`).

Send an API key as `Authorization: Bearer ilk_...`; without one you are anonymous, counted
per IP. A malformed, unknown or revoked key is 401, never anonymous (except on /health and
/openapi.json, which do not read credentials). Answers of quota-counted operations carry
`X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`; a 429 adds
`Retry-After`.
"""


def spec(base_url: str) -> dict[str, Any]:
    """Return the OpenAPI document, with `base_url` as its server."""
    config = current_app.config
    return {
        "openapi": "3.1.0",
        "info": {"title": "ImgLink API", "version": "1.0.0", "description": DESCRIPTION},
        "servers": [{"url": base_url + "/api/v1"}],
        "tags": [{"name": "images"}, {"name": "account"}, {"name": "service"}],
        "paths": _paths(config),
        "components": {
            "schemas": _schemas(config),
            "responses": _responses(),
            "headers": _headers(),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "bearerFormat": "ilk_ and 30 base62 characters",
                           "description": "An API key, made by an admin "
                                          "(`imglink account create`)."},
                "deleteToken": {"type": "apiKey", "in": "header", "name": "X-Delete-Token",
                                "description": "The `delete_token` of the upload's answer."},
            },
        },
    }
