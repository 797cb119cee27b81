"""The one Limiter: one hourly quota per caller, resolved lazily per request, and the
X-RateLimit-* headers."""
from __future__ import annotations

import datetime as dt
import time

from flask import Flask, Response, current_app, g, request
from flask_limiter import Limiter, RateLimitExceeded
from limits.errors import StorageError

from ..core.errors import BusyError, RateLimitError, UnauthorizedError
from ..core.models import Account
from ..core.policy import Plan
from .auth import current_account
from .context import plan_named
from .errors import error_response

STORE_RETRY_AFTER = 30  # seconds a client waits when the quota store is unreachable

# API endpoints that cost no quota and take no credentials: health checks and the OpenAPI
# document. Every other /api/v1/ request counts (unknown routes too), and so do uploads
# through the plain HTML form; files and pages never do.
UNCOUNTED_ENDPOINTS = frozenset({"api.health", "api.openapi_document"})
COUNTED_PAGE_ENDPOINTS = frozenset({"web.upload_form"})


def current_plan() -> Plan:
    """Return the plan of the current caller (anonymous without a key); raise on a bad key."""
    account = current_account()
    return plan_named(account.plan if account else "anonymous")


def quota_account() -> Account | None:
    """Return the account whose quota this request spends. A bad key spends its client IP's
    anonymous quota (the request is then refused with 401), so guessing keys is throttled."""
    try:
        return current_account()
    except UnauthorizedError:
        return None


def quota_plan() -> Plan:
    account = quota_account()
    return plan_named(account.plan if account else "anonymous")


def quota_key() -> str:
    account = quota_account()
    return f"account:{account.id}" if account else f"ip:{request.remote_addr}"


def hourly_limit() -> str:
    return f"{quota_plan().hourly or 1} per hour"


def is_counted() -> bool:
    """Tell whether this request spends the API quota (CORS preflights carry no credentials
    and never do)."""
    if request.method == "OPTIONS":
        return False
    if request.path.startswith("/api/v1/"):
        return request.endpoint not in UNCOUNTED_ENDPOINTS
    return request.endpoint in COUNTED_PAGE_ENDPOINTS


def exempt_from_quota() -> bool:
    return not is_counted() or quota_plan().hourly is None


# One application-wide limit: one counter per caller across every endpoint. The request
# identifier names unrouted paths too, so a 404 under /api/v1/ is counted like any call.
# The headers are ours (`_quota_headers`): Flask-Limiter's would put a Retry-After on every
# response, overriding the one a busy server's 503 carries.
limiter = Limiter(key_func=quota_key, application_limits=[hourly_limit],
                  request_identifier=lambda: request.endpoint or request.path,
                  headers_enabled=False)
# A request filter, not `application_limits_exempt_when`: the limiter then skips resolving
# the limits of files, pages and unlimited plans altogether.
limiter.request_filter(exempt_from_quota)


def _quota_store_down(e: StorageError) -> Response:
    current_app.logger.error("Quota store unreachable: %s", e.storage_error)
    return error_response(BusyError("The quota store is unreachable; please retry shortly",
                                    retry_after=STORE_RETRY_AFTER))


def _quota_spent(e: RateLimitExceeded) -> Response:
    quota = limiter.current_limit
    plan = quota_plan()
    message = f"The {plan.name} plan allows {plan.hourly:,} API requests per hour"
    if quota:
        reset = dt.datetime.fromtimestamp(quota.reset_at, dt.timezone.utc)
        message += f"; the next one is allowed at {reset:%Y-%m-%dT%H:%M:%SZ}"
    return error_response(RateLimitError(message))


def _quota_headers(response: Response) -> Response:
    """Add the caller's quota to every counted response, and Retry-After to a refusal."""
    quota = limiter.current_limit if limiter.enabled else None
    if quota is not None:
        response.headers["X-RateLimit-Limit"] = str(quota.limit.amount)
        response.headers["X-RateLimit-Remaining"] = str(quota.remaining)
        response.headers["X-RateLimit-Reset"] = str(quota.reset_at)
        if response.status_code == 429:
            response.headers["Retry-After"] = str(int(quota.reset_at - time.time()))
    elif "account" in g and is_counted() and quota_plan().hourly is None:
        response.headers["X-RateLimit-Limit"] = "unlimited"
        response.headers["X-RateLimit-Remaining"] = "unlimited"
        response.headers["X-RateLimit-Reset"] = "0"
    return response


def init_app(app: Flask) -> None:
    """Bind the limiter, and make a refused or failed quota check a clean response."""
    limiter.init_app(app)

    # Read the window now, while a store failure can still become a 503: the headers read
    # it again after the view, where an exception could only be a 500.
    @app.before_request
    def _read_quota_window() -> None:
        quota = limiter.current_limit
        if quota is not None:
            try:
                quota.window
            except Exception as e:  # noqa: BLE001 - whatever the store client raises
                raise StorageError(e) from e

    app.after_request(_quota_headers)
    app.register_error_handler(StorageError, _quota_store_down)
    app.register_error_handler(RateLimitExceeded, _quota_spent)
