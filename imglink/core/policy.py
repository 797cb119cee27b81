"""Plans and the upload policy: what one caller may upload, resolved once per request."""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import BulkLimitError, FileTooLargeError, InvalidParameterError, MissingFileError
from .imaging import Limits

# Multipart headers and boundaries around the files themselves.
BODY_SLACK = 1024 * 1024
EXPIRY_PATTERN = re.compile(r"[0-9]{1,9}")


@dataclass(frozen=True)
class Plan:
    name: str
    hourly: int | None  # API requests per hour; None: unlimited
    max_file: int  # bytes per file
    bulk: int | None  # files per bulk request; None: unlimited


def get_plan(plans: Mapping[str, Mapping[str, Any]], name: str) -> Plan:
    """Return the plan `name` as the config's PLANS define it."""
    spec = plans[name]
    return Plan(name, spec["hourly"], spec["max_file"], spec["bulk"])


@dataclass(frozen=True)
class UploadFields:
    """The form fields of an upload, checked."""
    album: str | None
    expiry_hours: int  # 0: permanent


@dataclass(frozen=True)
class UploadPolicy:
    """Every bound on one caller's uploads: its plan's caps, the imaging limits, and the
    bounds on names and expiry. The API and the web form check uploads with it alike."""
    plan: Plan
    limits: Limits
    filename_max_length: int
    album_max_length: int
    max_expiry_hours: int
    strip_metadata: bool
    tmp_dir: str

    @property
    def max_file(self) -> int:
        return self.plan.max_file

    def body_limit(self, files: int | None) -> int | None:
        """Return the most bytes a request carrying up to `files` files may have (None: no
        bound, for an unlimited bulk plan)."""
        return self.plan.max_file * files + BODY_SLACK if files else None

    def check_body(self, content_length: int | None, files: int | None) -> None:
        """Refuse a body plainly over the plan's limits before it is read."""
        limit = self.body_limit(files)
        if limit is not None and content_length is not None and content_length > limit:
            raise FileTooLargeError(
                f"The request is {content_length:,} bytes; this plan allows "
                f"{self.plan.max_file:,} bytes per file")

    def check_file_count(self, count: int, field: str) -> None:
        """Refuse a request with no file in `field`, or more than the plan's bulk count."""
        if count == 0:
            raise MissingFileError(
                "No files were uploaded: send them in the multipart field 'files'"
                if field == "files" else
                f"No file was uploaded: send it in the multipart field '{field}'")
        if self.plan.bulk is not None and count > self.plan.bulk:
            raise BulkLimitError(f"{count} files sent; the {self.plan.name} plan allows "
                                 f"{self.plan.bulk} per request")

    def check_fields(self, album: str | None, expiry: str | None) -> UploadFields:
        """Check the `album` and `expiry` form fields as API.md says; InvalidParameterError
        when either is bad."""
        album = (album or "").strip() or None
        if album is not None and (len(album) > self.album_max_length
                                  or not album.isprintable()):
            raise InvalidParameterError(
                f"album must be printable text of at most {self.album_max_length} characters")
        raw_expiry = (expiry or "").strip()
        if not raw_expiry:
            return UploadFields(album, 0)
        if EXPIRY_PATTERN.fullmatch(raw_expiry) and int(raw_expiry) <= self.max_expiry_hours:
            return UploadFields(album, int(raw_expiry))
        raise InvalidParameterError(
            f"expiry must be a whole number of hours from 0 (permanent) to "
            f"{self.max_expiry_hours}")
