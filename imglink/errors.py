"""One error family, rendered as the API envelope under /api/ and as HTML pages elsewhere."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask import Flask, Response, current_app, g, jsonify, render_template, request
from jinja2 import TemplateNotFound
from werkzeug.exceptions import HTTPException


class ApiError(Exception):
    status = 500
    code = "INTERNAL_ERROR"
    message = "An unexpected error occurred"

    def __init__(self, message: str | None = None, *, details: Any = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message
        self.details = details
        self.headers = headers or {}


class MissingFileError(ApiError):
    status, code, message = 400, "MISSING_FILE", "No file was uploaded"


class InvalidFileTypeError(ApiError):
    status, code, message = 400, "INVALID_FILE_TYPE", "Only image files are allowed"


class InvalidImageError(ApiError):
    status, code, message = 400, "INVALID_IMAGE", "The image is corrupt or cannot be decoded"


class InvalidParameterError(ApiError):
    status, code, message = 400, "INVALID_PARAMETER", "A parameter is invalid"


class BulkLimitError(ApiError):
    status, code, message = 400, "BULK_LIMIT_EXCEEDED", "Too many files in one request"


class UnauthorizedError(ApiError):
    status, code, message = 401, "UNAUTHORIZED", "Invalid or missing API key"


class ForbiddenError(ApiError):
    status, code, message = 403, "FORBIDDEN", "This key does not own the image"


class NotFoundError(ApiError):
    status, code, message = 404, "NOT_FOUND", "Image not found"


class FileTooLargeError(ApiError):
    status, code, message = 413, "FILE_TOO_LARGE", "File size exceeds limit"


class RateLimitError(ApiError):
    status, code, message = 429, "RATE_LIMIT_EXCEEDED", "The hourly API quota is used up"


class ServiceUnavailableError(ApiError):
    status, code, message = 503, "SERVICE_UNAVAILABLE", "The service is unavailable"


HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "FILE_TOO_LARGE",
    429: "RATE_LIMIT_EXCEEDED",
}
HTTP_MESSAGES = {
    404: "The requested resource was not found",
    405: "The method is not allowed for the requested URL",
    413: "The request body exceeds the size limit",
}


def envelope(code: str, message: str, details: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"success": False, "error": error}


def wants_json() -> bool:
    return request.path.startswith("/api/")


def _render(status: int, code: str, message: str, details: Any = None,
            headers: Iterable[tuple[str, str]] = ()) -> Response:
    if wants_json():
        response = jsonify(envelope(code, message, details))
    else:
        try:
            body = render_template(f"errors/{status}.html", message=message, status=status)
        except TemplateNotFound:
            body = render_template("errors/error.html", message=message, status=status)
        response = Response(body, mimetype="text/html")
    response.status_code = status
    for name, value in headers:
        if name.lower() not in ("content-type", "content-length"):
            response.headers[name] = value
        if name.lower() == "retry-after":
            g.retry_after = value  # the quota's headers, set after this, must not replace it
    return response


def error_response(e: ApiError) -> Response:
    """Render `e` as the API envelope or an HTML page, by the request's path."""
    return _render(e.status, e.code, e.message, e.details, e.headers.items())


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(ApiError, error_response)

    @app.errorhandler(HTTPException)
    def _http_error(e: HTTPException) -> Response:
        status = e.code or 500
        code = HTTP_CODES.get(status, "BAD_REQUEST" if status < 500 else "INTERNAL_ERROR")
        message = HTTP_MESSAGES.get(status) or e.description or e.name
        if status == 429:
            message = f"Rate limit exceeded ({e.description}). Retry after the time in Retry-After."
        # get_response() carries headers such as Allow and Retry-After.
        return _render(status, code, message, headers=e.get_response().headers.items())

    @app.errorhandler(Exception)
    def _unexpected(e: Exception) -> Response:
        current_app.logger.exception("Unhandled exception on %s %s", request.method, request.path)
        return _render(500, "INTERNAL_ERROR",
                       "An unexpected error occurred; please try again later")
