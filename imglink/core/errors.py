"""The domain's one exception family. Each names the contract's error `code` (API.md) and a
sentence for people; the web layer chooses the HTTP status and renders the envelope."""
from __future__ import annotations

from typing import Any


class ImgLinkError(Exception):
    code = "INTERNAL_ERROR"
    message = "An unexpected error occurred"

    def __init__(self, message: str | None = None, *, details: Any = None,
                 retry_after: int | None = None) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message
        self.details = details
        self.retry_after = retry_after  # seconds the client should wait before trying again


class MissingFileError(ImgLinkError):
    code, message = "MISSING_FILE", "No file was uploaded"


class InvalidFileTypeError(ImgLinkError):
    code, message = "INVALID_FILE_TYPE", "Only image files are allowed"


class InvalidImageError(ImgLinkError):
    code, message = "INVALID_IMAGE", "The image is corrupt or cannot be decoded"


class InvalidParameterError(ImgLinkError):
    code, message = "INVALID_PARAMETER", "A parameter is invalid"


class BulkLimitError(ImgLinkError):
    code, message = "BULK_LIMIT_EXCEEDED", "Too many files in one request"


class UnauthorizedError(ImgLinkError):
    code, message = "UNAUTHORIZED", "Invalid or missing API key"


class ForbiddenError(ImgLinkError):
    code, message = "FORBIDDEN", "This key does not own the image"


class NotFoundError(ImgLinkError):
    code, message = "NOT_FOUND", "Image not found"


class FileTooLargeError(ImgLinkError):
    code, message = "FILE_TOO_LARGE", "File size exceeds limit"


class RateLimitError(ImgLinkError):
    code, message = "RATE_LIMIT_EXCEEDED", "The hourly API quota is used up"


class BusyError(ImgLinkError):
    """A resource the request needs is spent or unreachable for now; retrying later helps."""
    code, message = "SERVICE_UNAVAILABLE", "The service is unavailable"


class AdminError(ImgLinkError):
    """A bad admin request (unknown plan, unknown account...), for the CLI."""
    code, message = "INVALID_PARAMETER", "The request is invalid"
