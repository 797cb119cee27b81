"""What the views take from the app and the request: storage, the upload policy, the base
URL, and an upload's parsed parts."""
from __future__ import annotations

from flask import current_app, request
from werkzeug.datastructures import FileStorage

from ..core.imaging import DecodeBudget, Limits
from ..core.policy import Plan, UploadFields, UploadPolicy, get_plan
from ..core.storage import Storage
from ..core.uploads import Upload


def get_storage() -> Storage:
    return current_app.extensions["imglink.storage"]


def plan_named(name: str) -> Plan:
    return get_plan(current_app.config["PLANS"], name)


def imaging_limits() -> Limits:
    c = current_app.config
    budget: DecodeBudget = current_app.extensions["imglink.decode_budget"]
    return Limits(formats=tuple(c["ALLOWED_FORMATS"]), max_pixels=c["MAX_PIXELS"],
                  max_frames=c["MAX_FRAMES"], max_total_pixels=c["MAX_TOTAL_PIXELS"],
                  thumbnail_size=c["THUMBNAIL_SIZE"],
                  thumbnail_quality=c["THUMBNAIL_QUALITY"], budget=budget)


def upload_policy(plan: Plan) -> UploadPolicy:
    """Resolve the upload policy of a caller on `plan` from the app's config."""
    c = current_app.config
    return UploadPolicy(plan=plan, limits=imaging_limits(),
                        filename_max_length=c["FILENAME_MAX_LENGTH"],
                        album_max_length=c["ALBUM_MAX_LENGTH"],
                        max_expiry_hours=c["MAX_EXPIRY_HOURS"],
                        strip_metadata=c["STRIP_METADATA"], tmp_dir=c["UPLOAD_TMP_DIR"])


def prepare_body(policy: UploadPolicy, files: int | None) -> None:
    """Refuse a body plainly over the policy's limits before reading it, and cap each file
    part as it streams in."""
    policy.check_body(request.content_length, files)
    request.max_content_length = policy.body_limit(files)
    request.file_size_limit = policy.max_file  # type: ignore[attr-defined]


def upload_fields(policy: UploadPolicy) -> UploadFields:
    return policy.check_fields(request.form.get("album"), request.form.get("expiry"))


def as_upload(file: FileStorage) -> Upload:
    """Wrap a parsed multipart file for the upload service."""
    return Upload(file.stream, file.filename or "", getattr(file.stream, "received", None))


def base_url() -> str:
    """Return the public base URL: from config, else the request's (proxy-fixed) host."""
    return (current_app.config["BASE_URL"] or request.host_url).rstrip("/")
