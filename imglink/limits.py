"""The one Limiter and the plans: hourly API quotas resolved lazily per request."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from flask import Flask, Response, current_app, g, request
from flask_limiter import Limiter, RateLimitExceeded
from limits.errors import StorageError

from .auth import current_account
from .errors import RateLimitError, ServiceUnavailableError, UnauthorizedError, error_response
from .models import Account


@dataclass(frozen=True)
class Plan:
    name: str
    hourly: int | None  # None: unlimited
    max_file: int
    bulk: int | None  # None: unlimited


def get_plan(name: str) -> Plan:
    spec = current_app.config["PLANS"][name]
    return Plan(name, spec["hourly"], spec["max_file"], spec["bulk"])


def current_plan() -> Plan:
    """Return the plan of the current caller (anonymous without a key)."""
    account = current_account()
    return get_plan(account.plan if account else "anonymous")


def quota_account() -> Account | None:
    """Return the account whose quota this request spends. A bad key spends its client IP's
    anonymous quota (the request is then refused with 401), so guessing keys is throttled."""
    try:
        return current_account()
    except UnauthorizedError:
        return None


def quota_plan() -> Plan:
    account = quota_account()
    return get_plan(account.plan if account else "anonymous")


def quota_key() -> str:
    account = quota_account()
    return f"account:{account.id}" if account else f"ip:{request.remote_addr}"


def hourly_limit() -> str:
    return f"{quota_plan().hourly or 1} per hour"


def is_api_request() -> bool:
    """Tell whether this request spends the API quota: every /api/v1/ request (unknown
    routes too), and uploads through the plain HTML form, but not health checks, the
    OpenAPI document, CORS preflights (they carry no credentials), files or pages."""
    if request.method == "OPTIONS":
        return False
    if request.path.startswith("/api/v1/"):
        return request.path not in ("/api/v1/health", "/api/v1/openapi.json")
    return request.endpoint == "web.upload_form"


def exempt_from_quota() -> bool:
    return not is_api_request() or quota_plan().hourly is None


def unlimited_caller() -> bool:
    """Tell whether the request's caller, already identified, has no hourly quota."""
    return "account" in g and quota_plan().hourly is None


# One application-wide limit: one counter per caller across every endpoint. The request
# identifier names unrouted paths too, so a 404 under /api/v1/ is counted like any call.
limiter = Limiter(key_func=quota_key, application_limits=[hourly_limit],
                  request_identifier=lambda: request.endpoint or request.path)
# A request filter, not `application_limits_exempt_when`: the limiter then skips resolving
# the limits of files, pages and unlimited plans altogether.
limiter.request_filter(exempt_from_quota)


STORE_RETRY_AFTER = 30  # seconds a client waits when the quota store is unreachable


def _quota_store_down(e: StorageError) -> Response:
    current_app.logger.error("Quota store unreachable: %s", e.storage_error)
    return error_response(ServiceUnavailableError(
        "The quota store is unreachable; please retry shortly",
        headers={"Retry-After": str(STORE_RETRY_AFTER)}))


def _quota_spent(e: RateLimitExceeded) -> Response:
    quota = limiter.current_limit
    plan = quota_plan()
    reset = dt.datetime.fromtimestamp(quota.reset_at, dt.timezone.utc) if quota else None
    message = f"The {plan.name} plan allows {plan.hourly:,} API requests per hour"
    if reset:
        message += f"; the next one is allowed at {reset:%Y-%m-%dT%H:%M:%SZ}"
    return error_response(RateLimitError(message, headers=dict(e.get_response().headers)))


def init_app(app: Flask) -> None:
    """Bind the limiter, and make a refused or failed quota check a clean response."""
    # Registered before the limiter's own hook, so it runs after it: Flask-Limiter sets
    # Retry-After on every response, but it only means something on a 429 or 503, and
    # there the error's own value (the quota's reset, or a wait for a busy server) wins.
    @app.after_request
    def _retry_after_only_when_refused(response: Response) -> Response:
        if response.status_code not in (429, 503):
            response.headers.pop("Retry-After", None)
        elif "retry_after" in g:
            response.headers["Retry-After"] = g.retry_after
        return response

    limiter.init_app(app)

    # Read the window now, while a store failure can still become a 503: the limiter reads
    # it again for its headers after the view, where an exception could only be a 500.
    @app.before_request
    def _read_quota_window() -> None:
        quota = limiter.current_limit
        if quota is not None:
            try:
                quota.window
            except Exception as e:  # noqa: BLE001 - whatever the store client raises
                raise StorageError(e) from e

    app.register_error_handler(StorageError, _quota_store_down)
    app.register_error_handler(RateLimitExceeded, _quota_spent)
