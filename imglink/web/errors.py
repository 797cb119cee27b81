"""Domain errors and HTTP errors rendered in one place: the API envelope under /api/, HTML
pages elsewhere."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask import Flask, Response, current_app, jsonify, render_template, request
from jinja2 import TemplateNotFound
from werkzeug.exceptions import HTTPException

from ..core.errors import ImgLinkError

# The HTTP status of each error code of the contract (API.md's error table).
STATUS = {
    "MISSING_FILE": 400,
    "INVALID_FILE_TYPE": 400,
    "INVALID_IMAGE": 400,
    "INVALID_PARAMETER": 400,
    "BULK_LIMIT_EXCEEDED": 400,
    "BAD_REQUEST": 400,
    "UNAUTHORIZED": 401,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "FILE_TOO_LARGE": 413,
    "RATE_LIMIT_EXCEEDED": 429,
    "INTERNAL_ERROR": 500,
    "SERVICE_UNAVAILABLE": 503,
}
# The code of an HTTP error raised by Werkzeug, Flask or Flask-Limiter, by status.
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
    """Return the error envelope of API.md."""
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
    return response


def error_response(e: ImgLinkError) -> Response:
    """Render `e` as the API envelope or an HTML page, by the request's path."""
    headers = {"Retry-After": str(e.retry_after)} if e.retry_after is not None else {}
    return _render(STATUS[e.code], e.code, e.message, e.details, headers.items())


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(ImgLinkError, error_response)

    @app.errorhandler(HTTPException)
    def _http_error(e: HTTPException) -> Response:
        status = e.code or 500
        code = HTTP_CODES.get(status, "BAD_REQUEST" if status < 500 else "INTERNAL_ERROR")
        message = HTTP_MESSAGES.get(status) or e.description or e.name
        # get_response() carries headers such as Allow.
        return _render(status, code, message, headers=e.get_response().headers.items())

    @app.errorhandler(Exception)
    def _unexpected(e: Exception) -> Response:
        current_app.logger.exception("Unhandled exception on %s %s", request.method, request.path)
        return _render(500, "INTERNAL_ERROR",
                       "An unexpected error occurred; please try again later")
